//! A fast ISO-2022-JP decoder for the validator's hot path, with exactly the behaviour of
//! `encoding_rs::ISO_2022_JP` (the WHATWG decoder), which the rest of the crate uses, plus a report of
//! every character that decodes but is not JIS X 0208.
//!
//! Hand-written because `encoding_rs` decodes ISO-2022-JP one byte at a time through a general state
//! machine, which made decoding a third of the cost of validating a file. SS-MIX2 messages are mostly
//! ASCII, so this decoder copies ASCII runs whole and looks JIS X 0208 pairs up in a table taken from
//! `encoding_rs` itself at first use. The tests below check that both decoders agree on every JIS X 0208
//! pair and on random byte strings shaped like ISO-2022-JP.
//!
//! The WHATWG decoder accepts more than ISO-2022-JP (RFC 1468: ASCII, JIS X 0201 Roman, JIS X 0208):
//! half-width katakana after `ESC ( I`, and in the two-byte set the NEC special characters of row 13
//! (①, Ⅰ, ㈱) and the NEC-selected IBM extensions of rows 89–92 (髙, 﨑), which are CP932, not JIS
//! X 0208. Python's `iso2022_jp` codec, which the NHO validator's `checkJIS.py` reads every file with,
//! rejects exactly those (checked pair by pair: apart from them the two accept the same 6,879 pairs),
//! so they are reported as [`Outside`] characters.

use std::sync::LazyLock;

/// JIS X 0208 pairs (lead, trail in 0x21..=0x7E) to characters, `'\0'` where unmapped; built by
/// asking `encoding_rs` about each pair.
static JIS0208: LazyLock<Box<[char]>> = LazyLock::new(|| {
    let mut table = vec!['\0'; 94 * 94].into_boxed_slice();
    for lead in 0x21u8..=0x7E {
        for trail in 0x21u8..=0x7E {
            let bytes = [0x1B, b'$', b'B', lead, trail];
            if let Some(s) =
                encoding_rs::ISO_2022_JP.decode_without_bom_handling_and_without_replacement(&bytes)
            {
                let mut chars = s.chars();
                if let (Some(c), None) = (chars.next(), chars.next()) {
                    table[usize::from(lead - 0x21) * 94 + usize::from(trail - 0x21)] = c;
                }
            }
        }
    }
    table
});

/// A character that decodes but is outside ASCII, JIS X 0201 Roman and JIS X 0208.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outside {
    /// Byte offset in the input of its first byte (for `ESC ( I` text, of the byte itself).
    pub offset: usize,
    /// Byte offset of the character in the decoded text.
    pub at: usize,
    pub ch: char,
    pub set: OutsideSet,
}

/// Which non-JIS X 0208 set an [`Outside`] character comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutsideSet {
    /// Half-width katakana, JIS X 0201 designated by `ESC ( I`.
    HalfWidthKatakana,
    /// NEC special characters, row 13 of the two-byte set.
    NecRow13,
    /// NEC-selected IBM extensions, rows 89–92 of the two-byte set (the row is kept).
    IbmExtension(u8),
}

impl std::fmt::Display for OutsideSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::HalfWidthKatakana => f.write_str("half-width katakana of JIS X 0201 after ESC ( I"),
            Self::NecRow13 => f.write_str("an NEC special character of row 13"),
            Self::IbmExtension(row) => write!(f, "an IBM extension character of row {row}"),
        }
    }
}

/// The two-byte set's rows that are not JIS X 0208, by lead byte (row = lead − 0x20).
fn outside_row(lead: u8) -> Option<OutsideSet> {
    match lead {
        0x2D => Some(OutsideSet::NecRow13),
        0x79..=0x7C => Some(OutsideSet::IbmExtension(lead - 0x20)),
        _ => None,
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Ascii,
    Roman,
    Katakana,
    Jis0208,
}

/// Decodes `bytes` into `out` (cleared first), listing in `outside` (cleared first) every character
/// that is not JIS X 0208. On malformed input, the offset of the first byte of the offending sequence.
pub fn decode_into(bytes: &[u8], out: &mut String, outside: &mut Vec<Outside>) -> Result<(), usize> {
    out.clear();
    outside.clear();
    // Every byte of valid ISO-2022-JP is below 0x80, so the input is ASCII and its runs can be
    // copied as text; otherwise some byte is an error, and the loop below finds the first one.
    let ascii = std::str::from_utf8(bytes).ok().filter(|s| s.is_ascii());
    out.reserve(bytes.len() + bytes.len() / 2);
    let table = &*JIS0208;
    let mut mode = Mode::Ascii;
    // Set right after an escape sequence: a second one with nothing in between is an error.
    let mut just_escaped = false;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == 0x1B {
            let (Some(&b1), Some(&b2)) = (bytes.get(i + 1), bytes.get(i + 2)) else {
                return Err(i);
            };
            let next = match (b1, b2) {
                (b'(', b'B') => Mode::Ascii,
                (b'(', b'J') => Mode::Roman,
                (b'(', b'I') => Mode::Katakana,
                (b'$', b'@' | b'B') => Mode::Jis0208,
                _ => return Err(i),
            };
            if just_escaped {
                return Err(i);
            }
            mode = next;
            just_escaped = true;
            i += 3;
            continue;
        }
        just_escaped = false;
        match mode {
            Mode::Ascii => {
                let end = memchr::memchr3(0x1B, 0x0E, 0x0F, &bytes[i..]).map_or(bytes.len(), |n| i + n);
                match ascii {
                    Some(text) => out.push_str(&text[i..end]),
                    None => match bytes[i..end].iter().position(|c| *c >= 0x80) {
                        Some(n) => return Err(i + n),
                        None => out.push_str(std::str::from_utf8(&bytes[i..end]).expect("ASCII run")),
                    },
                }
                i = end;
                if matches!(bytes.get(i), Some(0x0E | 0x0F)) {
                    return Err(i);
                }
            }
            Mode::Roman => {
                match b {
                    0x5C => out.push('\u{A5}'),
                    0x7E => out.push('\u{203E}'),
                    0x0E | 0x0F | 0x80.. => return Err(i),
                    _ => out.push(char::from(b)),
                }
                i += 1;
            }
            Mode::Katakana => {
                if !(0x21..=0x5F).contains(&b) {
                    return Err(i);
                }
                let ch = char::from_u32(0xFF61 + u32::from(b - 0x21)).expect("half-width katakana");
                outside.push(Outside { offset: i, at: out.len(), ch, set: OutsideSet::HalfWidthKatakana });
                out.push(ch);
                i += 1;
            }
            Mode::Jis0208 => {
                if !(0x21..=0x7E).contains(&b) {
                    return Err(i);
                }
                let Some(&trail) = bytes.get(i + 1) else { return Err(i) };
                if !(0x21..=0x7E).contains(&trail) {
                    return Err(i);
                }
                let c = table[usize::from(b - 0x21) * 94 + usize::from(trail - 0x21)];
                if c == '\0' {
                    return Err(i);
                }
                if let Some(set) = outside_row(b) {
                    outside.push(Outside { offset: i, at: out.len(), ch: c, set });
                }
                out.push(c);
                i += 2;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::{Outside, OutsideSet, decode_into};

    /// What `encoding_rs` makes of the bytes: the text, or that they are malformed.
    fn reference(bytes: &[u8]) -> Option<String> {
        encoding_rs::ISO_2022_JP
            .decode_without_bom_handling_and_without_replacement(bytes)
            .map(|c| c.into_owned())
    }

    fn ours(bytes: &[u8]) -> Option<String> {
        let mut s = String::new();
        decode_into(bytes, &mut s, &mut Vec::new()).ok().map(|()| s)
    }

    /// The outside characters of `bytes`, which must decode.
    fn outside(bytes: &[u8]) -> Vec<Outside> {
        let mut v = Vec::new();
        decode_into(bytes, &mut String::new(), &mut v).unwrap();
        v
    }

    #[test]
    fn jis_x_0208_is_every_pair_but_rows_13_and_89_to_92() {
        let mut jis = 0;
        for lead in 0x21u8..=0x7E {
            for trail in 0x21u8..=0x7E {
                let bytes = [0x1B, b'$', b'B', lead, trail];
                if ours(&bytes).is_some() && outside(&bytes).is_empty() {
                    jis += 1;
                }
            }
        }
        // JIS X 0208:1990: 524 non-kanji, 2,965 level-1 and 3,390 level-2 kanji; the pairs Python's
        // iso2022_jp decodes.
        assert_eq!(jis, 6879);
    }

    #[test]
    fn outside_characters_are_listed_where_they_are() {
        // a 髙 ① ｶ, then JIS X 0208 and JIS X 0201 Roman, which are not listed.
        let bytes = b"a\x1b$B\x7c\x62\x2d\x21\x1b(I\x36\x1b$B\x30\x21\x1b(J~\x1b(B";
        let v = outside(bytes);
        let got: Vec<_> = v.iter().map(|o| (o.offset, o.at, o.ch, o.set)).collect();
        assert_eq!(
            got,
            [
                (4, 1, '髙', OutsideSet::IbmExtension(92)),
                (6, 4, '①', OutsideSet::NecRow13),
                (11, 7, 'ｶ', OutsideSet::HalfWidthKatakana),
            ]
        );
        assert_eq!(ours(bytes).unwrap(), "a髙①ｶ亜\u{203E}");
    }

    #[test]
    fn every_jis0208_pair_decodes_as_encoding_rs_decodes_it() {
        for lead in 0x20u8..=0x80 {
            for trail in 0x20u8..=0x80 {
                let bytes = [b'A', 0x1B, b'$', b'B', lead, trail, 0x1B, b'(', b'B', b'|'];
                assert_eq!(ours(&bytes), reference(&bytes), "{lead:#x} {trail:#x}");
            }
        }
    }

    #[test]
    fn edge_cases_agree() {
        let cases: &[&[u8]] = &[
            b"",
            b"\x1b",
            b"\x1b(",
            b"\x1b(B",
            b"\x1b(B\x1b$B",
            b"a\x1b$B",
            b"\x1b$B\x30",
            b"\x1b$B\x30\x21\x0a",
            b"\x1b(J\\~a",
            b"\x1b(I\x21\x5f\x60",
            b"\x0e",
            b"\x7f\x80",
            b"MSH|\x1b$@\x30\x21\x1b(B\r\x1c",
        ];
        for c in cases {
            assert_eq!(ours(c), reference(c), "{c:?}");
        }
    }

    /// Bytes that look like ISO-2022-JP, with the occasional fault.
    fn iso2022jp_like() -> impl Strategy<Value = Vec<u8>> {
        let piece = prop_oneof![
            4 => "[ -~]{0,6}".prop_map(String::into_bytes),
            2 => Just(b"\x1b$B".to_vec()),
            2 => Just(b"\x1b(B".to_vec()),
            1 => Just(b"\x1b(J".to_vec()),
            1 => Just(b"\x1b(I".to_vec()),
            1 => Just(b"\x1b$@".to_vec()),
            3 => (0x21u8..=0x7E, 0x21u8..=0x7E).prop_map(|(a, b)| vec![a, b]),
            1 => any::<u8>().prop_map(|b| vec![b]),
            1 => Just(b"\r\x1c".to_vec()),
        ];
        prop::collection::vec(piece, 0..40).prop_map(|v| v.concat())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1500))]
        #[test]
        fn random_bytes_decode_as_encoding_rs_decodes_them(bytes in iso2022jp_like()) {
            prop_assert_eq!(ours(&bytes), reference(&bytes));
        }
    }
}
