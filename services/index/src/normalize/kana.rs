//! Kana readings folded to one spelling per pronunciation.
//!
//! Registers spell the same reading many ways: hiragana or katakana, half-width katakana, small kana
//! stored as large by older systems (ショウ / シヨウ), long vowels written with ー or with a vowel
//! (サトウ / サトー / サトオ), ヴ or バ-row, and the 四つ仮名 ヂ/ジ and ヅ/ズ. [`fold_kana`] maps all of
//! them to one katakana string; [`voiceless_key`] also drops the voicing marks, for blocking.

use unicode_normalization::UnicodeNormalization;

use super::spacing::strip_spaces;

/// Small kana and the large kana they are folded to.
const SMALL_TO_LARGE: &[(char, char)] = &[
    ('ァ', 'ア'),
    ('ィ', 'イ'),
    ('ゥ', 'ウ'),
    ('ェ', 'エ'),
    ('ォ', 'オ'),
    ('ッ', 'ツ'),
    ('ャ', 'ヤ'),
    ('ュ', 'ユ'),
    ('ョ', 'ヨ'),
    ('ヮ', 'ワ'),
    ('ヵ', 'カ'),
    ('ヶ', 'ケ'),
];

/// Kana that sound alike in modern Japanese and are folded to the common spelling.
const SAME_SOUND: &[(char, char)] = &[
    ('ヂ', 'ジ'),
    ('ヅ', 'ズ'),
    ('ヲ', 'オ'),
    ('ヰ', 'イ'),
    ('ヱ', 'エ'),
    ('ヷ', 'バ'),
    ('ヸ', 'ビ'),
    ('ヹ', 'ベ'),
    ('ヺ', 'ボ'),
];

/// Katakana for a hiragana character (the two blocks are 0x60 apart); other characters unchanged.
pub fn to_katakana(c: char) -> char {
    match c {
        '\u{3041}'..='\u{3096}' | '\u{309D}' | '\u{309E}' => char::from_u32(c as u32 + 0x60).unwrap_or(c),
        _ => c,
    }
}

/// The vowel a katakana syllable ends in (`a i u e o`), or `None` for ン, ツ-less marks and non-kana.
fn vowel_of(c: char) -> Option<char> {
    const ROWS: [(&str, char); 5] = [
        ("アカガサザタダナハバパマヤラワ", 'a'),
        ("イキギシジチヂニヒビピミリ", 'i'),
        ("ウクグスズツヅヌフブプムユルヴ", 'u'),
        ("エケゲセゼテデネヘベペメレ", 'e'),
        ("オコゴソゾトドノホボポモヨロヲ", 'o'),
    ];
    ROWS.iter().find(|(row, _)| row.contains(c)).map(|(_, v)| *v)
}

/// True when `c` only lengthens a syllable ending in `prev_vowel` (ー always; オウ, オオ, エイ, エエ,
/// ウウ, イイ, アア).
fn lengthens(prev_vowel: char, c: char) -> bool {
    c == 'ー'
        || matches!(
            (prev_vowel, c),
            ('o', 'ウ') | ('o', 'オ') | ('e', 'イ') | ('e', 'エ') | ('u', 'ウ') | ('i', 'イ') | ('a', 'ア')
        )
}

/// One katakana spelling per reading: NFKC (half-width → full-width), hiragana → katakana, spaces
/// removed, ヴ-row → バ-row, small → large kana, ヂ/ヅ/ヲ/ヰ/ヱ → ジ/ズ/オ/イ/エ, and long vowels
/// dropped (サトウ, サトー and サトオ all give サト). Non-kana characters pass through.
pub fn fold_kana(s: &str) -> String {
    let nfkc: String = strip_spaces(&s.nfkc().collect::<String>()).chars().map(to_katakana).collect();
    // ヴァ ヴィ ヴェ ヴォ before small → large, so that ヴァ folds to バ rather than ブア.
    let mut chars: Vec<char> = Vec::with_capacity(nfkc.len());
    let mut it = nfkc.chars().peekable();
    while let Some(c) = it.next() {
        if c == 'ヴ' {
            let next = it.peek().copied();
            let folded = match next {
                Some('ァ') => Some('バ'),
                Some('ィ') => Some('ビ'),
                Some('ェ') => Some('ベ'),
                Some('ォ') => Some('ボ'),
                _ => None,
            };
            if let Some(f) = folded {
                it.next();
                chars.push(f);
            } else {
                chars.push('ブ');
            }
            continue;
        }
        let c = SMALL_TO_LARGE.iter().find(|(s, _)| *s == c).map_or(c, |(_, l)| *l);
        let c = SAME_SOUND.iter().find(|(s, _)| *s == c).map_or(c, |(_, l)| *l);
        chars.push(c);
    }
    let mut out = String::with_capacity(nfkc.len());
    let mut prev_vowel: Option<char> = None;
    for c in chars {
        if let Some(v) = prev_vowel
            && lengthens(v, c)
        {
            continue;
        }
        if c == 'ー' {
            continue;
        }
        prev_vowel = vowel_of(c);
        out.push(c);
    }
    out
}

/// [`fold_kana`] without voicing marks (ガ → カ, パ → ハ): a key that survives the voicing slips
/// clerks make (タ/ダ, ハ/バ), for blocking only.
pub fn voiceless_key(s: &str) -> String {
    fold_kana(s).nfd().filter(|c| !matches!(c, '\u{3099}' | '\u{309A}')).nfc().collect()
}

/// True when every character is kana (either script), a long-vowel mark or a space: a reading, as
/// opposed to kanji or Latin text put in the kana field by mistake.
pub fn is_reading(s: &str) -> bool {
    !s.trim().is_empty()
        && s.nfkc().all(|c| matches!(c, '\u{3041}'..='\u{309F}' | '\u{30A0}'..='\u{30FF}' | ' ' | '\u{3000}'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hiragana_halfwidth_and_katakana_fold_together() {
        assert_eq!(fold_kana("さとう"), fold_kana("サトウ"));
        assert_eq!(fold_kana("ｻﾄｳ"), fold_kana("サトウ"));
        assert_eq!(fold_kana("ｶﾞｸ"), "ガク");
    }

    #[test]
    fn small_kana_fold_to_large() {
        assert_eq!(fold_kana("ショウタ"), fold_kana("シヨウタ"));
        assert_eq!(fold_kana("キョウコ"), fold_kana("キヨウコ"));
        assert_eq!(fold_kana("ハットリ"), fold_kana("ハツトリ"));
        assert_eq!(fold_kana("リュウ"), "リユ");
    }

    #[test]
    fn long_vowels_written_any_way_fold_together() {
        assert_eq!(fold_kana("サトウ"), "サト");
        assert_eq!(fold_kana("サトー"), "サト");
        assert_eq!(fold_kana("サトオ"), "サト");
        assert_eq!(fold_kana("オオタ"), fold_kana("オータ"));
        assert_eq!(fold_kana("ユウコ"), fold_kana("ユーコ"));
        assert_eq!(fold_kana("ケイコ"), fold_kana("ケーコ"));
        // A vowel after ン or a different vowel is not a lengthening.
        assert_eq!(fold_kana("シンイチ"), "シンイチ");
        assert_eq!(fold_kana("アオイ"), "アオイ");
    }

    #[test]
    fn v_row_and_yotsugana_fold() {
        assert_eq!(fold_kana("ヴァイオリン"), fold_kana("バイオリン"));
        assert_eq!(fold_kana("ヴ"), "ブ");
        assert_eq!(fold_kana("ミヅキ"), fold_kana("ミズキ"));
        assert_eq!(fold_kana("チヂル"), "チジル");
        assert_eq!(fold_kana("ヲ"), "オ");
    }

    #[test]
    fn spaces_of_either_width_are_dropped() {
        assert_eq!(fold_kana("サトウ　タロウ"), fold_kana("サトウタロウ"));
        assert_eq!(fold_kana(" サトウ タロウ "), fold_kana("サトウタロウ"));
    }

    #[test]
    fn voiceless_key_ignores_voicing_slips() {
        assert_eq!(voiceless_key("タカハシ"), voiceless_key("ダカバシ"));
        assert_eq!(voiceless_key("パン"), "ハン");
        assert_ne!(fold_kana("タカハシ"), fold_kana("ダカバシ"));
    }

    #[test]
    fn readings_are_told_from_kanji() {
        assert!(is_reading("サトウ タロウ"));
        assert!(is_reading("さとう"));
        assert!(!is_reading("佐藤"));
        assert!(!is_reading(""));
    }
}
