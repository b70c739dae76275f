//! Japanese text normalization for matching: pure functions, no I/O.
//!
//! - [`spacing`]: half- and full-width spaces;
//! - [`kana`]: one katakana spelling per reading (small kana, long vowels, ヴ, 四つ仮名);
//! - [`kanji`]: old and variant kanji forms folded to the common form;
//! - [`address`]: prefecture, county, 丁目・番地・号 and hyphen variants, kanji numerals.

pub mod address;
pub mod kana;
pub mod kanji;
pub mod spacing;

use unicode_normalization::UnicodeNormalization;

pub use address::{NormalizedAddress, normalize_address};
pub use kana::{fold_kana, voiceless_key};
pub use kanji::fold_kanji;

/// A kanji name part as the matcher compares it: NFKC (full-width Latin and half-width kana to their
/// usual widths, compatibility ideographs to their unified forms), no spaces, old forms folded.
pub fn fold_kanji_name(s: &str) -> String {
    fold_kanji(&spacing::strip_spaces(&s.nfkc().collect::<String>()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kanji_names_fold_width_space_and_old_forms() {
        assert_eq!(fold_kanji_name("髙橋　"), "高橋");
        assert_eq!(fold_kanji_name("渡 邊"), "渡辺");
        // U+FA10 is a compatibility ideograph NFKC maps to 塚.
        assert_eq!(fold_kanji_name("大\u{FA10}"), "大塚");
        assert_eq!(fold_kanji_name("ＡＢＣ"), "ABC");
    }
}
