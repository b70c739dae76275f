//! Characters a pharmacy's export may hold that SS-MIX2 cannot: its messages are ISO-2022-JP, that
//! is ASCII and JIS X 0208 only, while NSIPS files are CP932 or UTF-8. CP932 adds the NEC special
//! characters (row 13: ①, Ⅰ, ㈱, ㍻) and the IBM extension kanji (髙, 﨑, 德), which are common in
//! names and addresses; the SS-MIX2 validators (ours and the NHO's `checkJIS`) reject them.
//!
//! Refusing the whole export for one such character would keep a patient's dispensings out of the
//! network, so the converter writes each one as a JIS X 0208 stand-in, in the way Japanese
//! medical systems exchange 外字: its compatibility form when that is writable (NFKC: ① → 1,
//! ㈱ → (株), Ⅰ → I, the CJK compatibility ideographs → their unified kanji), else its usual JIS X
//! 0208 variant from [`VARIANTS`] (髙 → 高), else the geta mark 〓. Every replacement is reported
//! ([`Replacement`]) so the agent's log names the file, line, field and character.

use unicode_normalization::UnicodeNormalization;

/// The stand-in for a character with no writable form: the geta mark, JIS X 0208 row 2.
pub const GETA: char = '〓';

/// IBM extension kanji (CP932 rows 89–92, no compatibility decomposition) and the JIS X 0208
/// variant that names and addresses use for them. Only pairs of the same character in another
/// form are listed; anything else becomes [`GETA`].
pub const VARIANTS: &[(char, char)] =
    &[('髙', '高'), ('﨑', '崎'), ('德', '徳'), ('濵', '濱'), ('瀨', '瀬'), ('栁', '柳')];

/// One character written as a stand-in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replacement {
    /// 1-based line of the NSIPS file.
    pub line: usize,
    /// Record type (`1`–`8`).
    pub record: String,
    /// Field number after the record type, and its name.
    pub field: usize,
    pub name: &'static str,
    /// The character as exported, and what the SS-MIX2 message holds instead.
    pub from: char,
    pub to: String,
}

impl std::fmt::Display for Replacement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "line {}: record {} field {} ({}): '{}' (U+{:04X}) is not JIS X 0208; written as '{}'",
            self.line, self.record, self.field, self.name, self.from, self.from as u32, self.to
        )
    }
}

/// Whether `s` can be written in SS-MIX2's ISO-2022-JP.
fn writable(s: &str) -> bool {
    ssmix2::hl7::encode_iso2022jp(s).is_ok()
}

/// `text` with every character SS-MIX2 cannot hold replaced by its stand-in, and the replaced
/// characters with their stand-ins, in order. Text that is writable as it is comes back unchanged
/// (half-width katakana included: the encoder makes them full-width).
pub fn to_jis(text: &str) -> (String, Vec<(char, String)>) {
    if writable(text) {
        return (text.to_owned(), Vec::new());
    }
    let mut out = String::with_capacity(text.len());
    let mut replaced = Vec::new();
    let mut buf = [0u8; 4];
    for c in text.chars() {
        if writable(c.encode_utf8(&mut buf)) {
            out.push(c);
            continue;
        }
        let nfkc: String = std::iter::once(c).nfkc().collect();
        let to = if nfkc != c.to_string() && writable(&nfkc) {
            nfkc
        } else if let Some((_, v)) = VARIANTS.iter().find(|(from, _)| *from == c) {
            v.to_string()
        } else {
            GETA.to_string()
        };
        out.push_str(&to);
        replaced.push((c, to));
    }
    (out, replaced)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writable_text_is_kept_as_it_is() {
        for s in ["山田　太郎", "ﾔﾏﾀﾞ ﾀﾛｳ", "宮城県仙台市青葉区1-2-3", "ABC-123", ""]
        {
            assert_eq!(to_jis(s), (s.to_owned(), vec![]), "{s}");
        }
    }

    #[test]
    fn cp932_extensions_become_their_jis_forms_and_the_rest_geta() {
        // U+FA19 is the compatibility ideograph of 神 (U+795E).
        let (out, replaced) = to_jis("髙橋①﨑㈱Ⅱ\u{FA19}😀é");
        assert_eq!(out, "高橋1崎(株)II神〓〓");
        let from: Vec<char> = replaced.iter().map(|(c, _)| *c).collect();
        assert_eq!(from, vec!['髙', '①', '﨑', '㈱', 'Ⅱ', '\u{FA19}', '😀', 'é']);
        assert!(writable(&out));
    }

    #[test]
    fn every_variant_is_refused_as_exported_and_written_as_jis() {
        for (from, to) in VARIANTS {
            assert!(!writable(&from.to_string()), "{from} is writable: no need to replace it");
            assert!(writable(&to.to_string()), "{to} is not JIS X 0208");
            // Not a compatibility character: NFKC would have handled it.
            assert_eq!(std::iter::once(*from).nfkc().collect::<String>(), from.to_string());
        }
    }
}
