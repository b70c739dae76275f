//! The character repertoire every generated message keeps to.

/// True when every character of `s` is ASCII or in JIS X 0208 proper: rows 1–8 and 16–84 (lead bytes
/// 0x21–0x28 and 0x30–0x74). `encoding_rs` also encodes NEC row 13 (①, ㈱) and the IBM extensions
/// (髙, 﨑) into ISO-2022-JP, which SS-MIX2's validators reject; `ssmix2`'s encoder refuses them, and
/// the bytes are checked here as well so that the generator never depends on that.
pub fn is_jis_x_0208(s: &str) -> bool {
    let Ok(bytes) = ssmix2::hl7::encode_iso2022jp(s) else { return false };
    let mut two_byte = false;
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == 0x1b {
            two_byte = bytes.get(i + 1) == Some(&b'$');
            i += 3;
            continue;
        }
        if two_byte {
            let lead = bytes[i];
            if !((0x21..=0x28).contains(&lead) || (0x30..=0x74).contains(&lead)) {
                return false;
            }
            i += 2;
        } else {
            i += 1;
        }
    }
    true
}
