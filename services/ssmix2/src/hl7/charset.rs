//! ISO-2022-JP (ASCII + JIS X 0208), the character set SS-MIX2 requires (MSH-18 `~ISO IR87`).

use std::borrow::Cow;

use encoding_rs::{DecoderResult, ISO_2022_JP};
use unicode_normalization::UnicodeNormalization;

use crate::Hl7Error;

/// Decodes ISO-2022-JP bytes, failing with the offset of the first malformed byte.
pub fn decode_iso2022jp(bytes: &[u8]) -> Result<String, Hl7Error> {
    if let Some(s) = ISO_2022_JP.decode_without_bom_handling_and_without_replacement(bytes) {
        return Ok(s.into_owned());
    }
    // Slow path, only to find where it went wrong.
    let mut decoder = ISO_2022_JP.new_decoder_without_bom_handling();
    let mut out = String::with_capacity(bytes.len() * 2);
    let mut read_total = 0;
    loop {
        let (result, read) =
            decoder.decode_to_string_without_replacement(&bytes[read_total..], &mut out, true);
        read_total += read;
        match result {
            DecoderResult::InputEmpty => return Ok(out),
            DecoderResult::OutputFull => out.reserve(bytes.len()),
            DecoderResult::Malformed(bad, _) => {
                return Err(Hl7Error::NotIso2022Jp { offset: read_total.saturating_sub(bad as usize) });
            }
        }
    }
}

/// Replaces each run of half-width katakana (U+FF61–U+FF9F) by its NFKC form, so that `ｶﾞ` becomes
/// `ガ`; everything else, including full-width alphanumerics, is left exactly as it was. What NFKC
/// makes that JIS X 0208 lacks is spelled with JIS characters: a voiced mark with nothing to
/// combine with (`ｱﾞ`, a lone `ﾞ`) becomes the spacing `゛`/`゜`, and `ﾜﾞ` (NFKC `ヷ`) becomes `ワ゛`
/// (likewise ヸ, ヹ, ヺ), as encoders that map half-width katakana one by one write them.
pub fn normalize_halfwidth_katakana(s: &str) -> Cow<'_, str> {
    let is_hw = |c: char| ('\u{FF61}'..='\u{FF9F}').contains(&c);
    if !s.chars().any(is_hw) {
        return Cow::Borrowed(s);
    }
    fn push_jis(out: &mut String, c: char) {
        match c {
            '\u{3099}' => out.push('゛'),
            '\u{309A}' => out.push('゜'),
            'ヷ' => out.push_str("ワ゛"),
            'ヸ' => out.push_str("ヰ゛"),
            'ヹ' => out.push_str("ヱ゛"),
            'ヺ' => out.push_str("ヲ゛"),
            c => out.push(c),
        }
    }
    let mut out = String::with_capacity(s.len());
    let mut run = String::new();
    for c in s.chars() {
        if is_hw(c) {
            run.push(c);
        } else {
            run.nfkc().for_each(|k| push_jis(&mut out, k));
            run.clear();
            out.push(c);
        }
    }
    run.nfkc().for_each(|k| push_jis(&mut out, k));
    Cow::Owned(out)
}

/// Encodes text as ISO-2022-JP after normalising half-width katakana. A character outside JIS X 0208
/// is an error naming it and its segment (counted from 1), never a silent replacement.
///
/// `encoding_rs` (the WHATWG encoder) also writes the NEC special characters (row 13: ①, ㈱) and the
/// NEC-selected IBM extensions (rows 89–92: 髙, 﨑) of CP932 into the two-byte set; they are not JIS
/// X 0208, the validator reports them (`not-iso-2022-jp`), and so they are refused here too.
pub fn encode_iso2022jp(text: &str) -> Result<Vec<u8>, Hl7Error> {
    let out = encode_whatwg(text)?;
    match first_outside_jis_x_0208(&out) {
        None => Ok(out),
        Some(at) => {
            let ch = ISO_2022_JP
                .decode_without_bom_handling_and_without_replacement(&[
                    0x1B,
                    b'$',
                    b'B',
                    out[at],
                    out[at + 1],
                ])
                .and_then(|s| s.chars().next())
                .unwrap_or(char::REPLACEMENT_CHARACTER);
            let segment = out[..at].iter().filter(|b| **b == b'\r').count() + 1;
            Err(Hl7Error::Unencodable { ch, code: ch as u32, segment })
        }
    }
}

/// The offset of the first two-byte character of rows 13 or 89–92 in ISO-2022-JP bytes as
/// `encoding_rs` writes them (`ESC $ B` for two-byte text, `ESC ( B` or `ESC ( J` back).
fn first_outside_jis_x_0208(bytes: &[u8]) -> Option<usize> {
    let mut two_byte = false;
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == 0x1B {
            two_byte = bytes.get(i + 1) == Some(&b'$');
            i += 3;
        } else if two_byte {
            if matches!(bytes[i], 0x2D | 0x79..=0x7C) {
                return Some(i);
            }
            i += 2;
        } else {
            i += 1;
        }
    }
    None
}

fn encode_whatwg(text: &str) -> Result<Vec<u8>, Hl7Error> {
    let text = normalize_halfwidth_katakana(text);
    let mut encoder = ISO_2022_JP.new_encoder();
    let mut out = Vec::with_capacity(text.len() + 16);
    let mut rest: &str = &text;
    loop {
        let needed = encoder
            .max_buffer_length_from_utf8_without_replacement(rest.len())
            .unwrap_or(rest.len() * 8 + 16);
        out.reserve(needed);
        let (result, read) = encoder.encode_from_utf8_to_vec_without_replacement(rest, &mut out, true);
        match result {
            encoding_rs::EncoderResult::InputEmpty => return Ok(out),
            encoding_rs::EncoderResult::OutputFull => rest = &rest[read..],
            encoding_rs::EncoderResult::Unmappable(ch) => {
                let consumed = text.len() - rest.len() + read;
                let segment = text[..consumed].matches('\r').count() + 1;
                return Err(Hl7Error::Unencodable { ch, code: ch as u32, segment });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn halfwidth_katakana_becomes_fullwidth_but_fullwidth_digits_stay() {
        assert_eq!(normalize_halfwidth_katakana("ｶﾞｰｾﾞ（５mg)"), "ガーゼ（５mg)");
    }

    #[test]
    fn halfwidth_voiced_marks_without_a_jis_composition_stay_encodable() {
        assert_eq!(normalize_halfwidth_katakana("ﾜﾞｲﾝ"), "ワ゛イン");
        assert_eq!(normalize_halfwidth_katakana("ｱﾞｰ ﾞ ｶﾟ"), "ア゛ー ゛ カ゜");
        for s in ["ﾜﾞｲﾝ", "ｱﾞｰ", "ﾞ", "ｶﾟ", "ｦﾞ"] {
            let bytes = encode_iso2022jp(s).unwrap_or_else(|e| panic!("{s}: {e}"));
            assert_eq!(decode_iso2022jp(&bytes).unwrap(), normalize_halfwidth_katakana(s));
        }
    }

    #[test]
    fn unencodable_character_is_named() {
        let err = encode_iso2022jp("MSH|x\rPID|😀").unwrap_err();
        assert_eq!(err, Hl7Error::Unencodable { ch: '😀', code: 0x1F600, segment: 2 });
    }

    #[test]
    fn nec_and_ibm_extensions_are_not_jis_x_0208_and_not_written() {
        for (text, ch) in [
            ("MSH|x\rPID|髙橋", '髙'),
            ("MSH|x\rPID|山﨑", '﨑'),
            ("MSH|x\rPID|①", '①'),
            ("MSH|x\rPID|㈱", '㈱'),
        ] {
            assert_eq!(
                encode_iso2022jp(text).unwrap_err(),
                Hl7Error::Unencodable { ch, code: ch as u32, segment: 2 },
                "{text}"
            );
        }
        // Their JIS X 0208 look-alikes and neighbours are written.
        let bytes = encode_iso2022jp("高橋 山崎 ※∵≒ 熙").unwrap();
        assert_eq!(decode_iso2022jp(&bytes).unwrap(), "高橋 山崎 ※∵≒ 熙");
    }

    #[test]
    fn malformed_byte_offset_is_reported() {
        let err = decode_iso2022jp(b"MSH|\x1b$B\x30\x21\xfb").unwrap_err();
        assert!(matches!(err, Hl7Error::NotIso2022Jp { .. }));
    }
}
