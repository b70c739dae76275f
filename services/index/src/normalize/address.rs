//! Japanese addresses reduced to a locality, a list of numbers and a building, so that
//! `宮城県仙台市青葉区一番町一丁目２番１３号`, `仙台市青葉区一番町1-2-13 コーポ青葉101` and
//! `〒980-0811 仙台市青葉区一番町１−２−１３` compare equal where they name the same place.
//!
//! Hand-written: no maintained crate parses Japanese street addresses offline (the geocoders that do
//! need a national address master, which the centre does not hold).

use unicode_normalization::UnicodeNormalization;

use super::kanji::fold_kanji;
use super::spacing::{is_space, strip_spaces};

/// The 47 prefectures with their suffix, as addresses begin.
const PREFECTURES: &[&str] = &[
    "北海道",
    "青森県",
    "岩手県",
    "宮城県",
    "秋田県",
    "山形県",
    "福島県",
    "茨城県",
    "栃木県",
    "群馬県",
    "埼玉県",
    "千葉県",
    "東京都",
    "神奈川県",
    "新潟県",
    "富山県",
    "石川県",
    "福井県",
    "山梨県",
    "長野県",
    "岐阜県",
    "静岡県",
    "愛知県",
    "三重県",
    "滋賀県",
    "京都府",
    "大阪府",
    "兵庫県",
    "奈良県",
    "和歌山県",
    "鳥取県",
    "島根県",
    "岡山県",
    "広島県",
    "山口県",
    "徳島県",
    "香川県",
    "愛媛県",
    "高知県",
    "福岡県",
    "佐賀県",
    "長崎県",
    "熊本県",
    "大分県",
    "宮崎県",
    "鹿児島県",
    "沖縄県",
];

/// An address as the matcher compares it.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct NormalizedAddress {
    /// City, ward and town, without prefecture, county (郡), 大字 or spaces: `仙台市青葉区一番町`.
    pub locality: String,
    /// 丁目, 番地, 号 (and any further numbers) in order: `[1, 2, 13]`.
    pub numbers: Vec<u32>,
    /// Whatever follows the numbers (building and room), without spaces.
    pub building: String,
}

impl NormalizedAddress {
    /// Locality and numbers as one string, `仙台市青葉区一番町1-2-13`; the building is left out
    /// because registers add or drop it freely.
    pub fn canonical(&self) -> String {
        let nums: Vec<String> = self.numbers.iter().map(u32::to_string).collect();
        format!("{}{}", self.locality, nums.join("-"))
    }

    /// True when nothing was recognised.
    pub fn is_empty(&self) -> bool {
        self.locality.is_empty() && self.numbers.is_empty() && self.building.is_empty()
    }
}

/// Characters registers use as the hyphen in `1-2-3`.
fn is_hyphen(c: char) -> bool {
    matches!(
        c,
        '-' | '\u{2010}'
            | '\u{2011}'
            | '\u{2012}'
            | '\u{2013}'
            | '\u{2014}'
            | '\u{2015}'
            | '\u{2212}'
            | '\u{30FC}'
            | '\u{FF0D}'
            | '\u{FE63}'
            | '\u{2043}'
    )
}

fn kanji_digit(c: char) -> Option<u32> {
    "〇一二三四五六七八九".chars().position(|d| d == c).map(|p| p as u32)
}

fn is_kanji_numeral(c: char) -> bool {
    kanji_digit(c).is_some() || matches!(c, '十' | '百' | '千')
}

/// The value of a run of kanji numerals: `十二` = 12, `二十三` = 23, `百五` = 105, `二〇` = 20.
pub fn parse_kanji_number(s: &str) -> Option<u32> {
    if s.is_empty() {
        return None;
    }
    let positional = !s.chars().any(|c| matches!(c, '十' | '百' | '千'));
    if positional {
        return s.chars().try_fold(0u32, |acc, c| Some(acc.checked_mul(10)? + kanji_digit(c)?));
    }
    let mut total = 0u32;
    let mut digit: Option<u32> = None;
    for c in s.chars() {
        if let Some(d) = kanji_digit(c) {
            digit = Some(d);
        } else {
            let unit = match c {
                '十' => 10,
                '百' => 100,
                '千' => 1000,
                _ => return None,
            };
            total += digit.take().unwrap_or(1) * unit;
        }
    }
    Some(total + digit.unwrap_or(0))
}

/// Markers that end one number of the street part.
const NUMBER_MARKERS: &[&str] = &["丁目", "番地", "番", "号", "の", "地割"];

/// Where the street numbers begin in `s` (already NFKC): the first ASCII digit, or the first run of
/// kanji numerals followed by 丁目 or 番地, or by 番 and another numeral (so that the town name
/// 一番町 is left alone).
fn numbers_start(s: &[char]) -> Option<usize> {
    let first_digit = s.iter().position(char::is_ascii_digit);
    let mut i = 0;
    while i < first_digit.unwrap_or(s.len()) {
        if is_kanji_numeral(s[i]) {
            let mut j = i;
            while j < s.len() && is_kanji_numeral(s[j]) {
                j += 1;
            }
            let rest: String = s[j..].iter().take(3).collect();
            let after_ban = s.get(j + 1).copied();
            if rest.starts_with("丁目")
                || rest.starts_with("番地")
                || (rest.starts_with('番')
                    && after_ban.is_some_and(|c| c.is_ascii_digit() || is_kanji_numeral(c)))
            {
                return Some(i);
            }
            i = j;
        } else {
            i += 1;
        }
    }
    first_digit
}

/// Locality without prefecture, county or 大字, with old kanji forms folded and ケ/ヶ/が unified.
fn normalize_locality(s: &str) -> String {
    let mut loc = strip_spaces(s);
    if let Some(p) = PREFECTURES.iter().find(|p| loc.starts_with(*p)) {
        loc = loc[p.len()..].to_owned();
    }
    // 柴田郡大河原町 → 大河原町: registers drop the county freely. 郡山市 has no county before it.
    if let Some(pos) = loc.find('郡')
        && pos > 0
        && !loc[..pos].contains(['市', '区', '町', '村'])
    {
        loc = loc[pos + '郡'.len_utf8()..].to_owned();
    }
    loc = loc.replace("大字", "");
    fold_kanji(&loc).chars().map(|c| if matches!(c, 'ヶ' | 'ヵ' | 'が' | 'ガ') { 'ケ' } else { c }).collect()
}

/// Splits an address into locality, numbers and building (see [`NormalizedAddress`]).
pub fn normalize_address(raw: &str) -> NormalizedAddress {
    let mut s: String = raw.nfkc().collect();
    // A leading postcode: 〒980-0811 or 980-0811, with any hyphen look-alike (NFKC keeps − ー ‐),
    // or 〒9800811 (seven digits alone only after 〒: without it they may be a lot number).
    let marked = s.trim_start_matches(is_space).starts_with('〒');
    s = s.trim_start_matches(|c: char| is_space(c) || c == '〒').to_owned();
    let head: Vec<char> = s.chars().take(8).collect();
    let digits = |r: std::ops::Range<usize>| head.get(r).is_some_and(|d| d.iter().all(char::is_ascii_digit));
    let postcode = if digits(0..3) && head.get(3).is_some_and(|c| is_hyphen(*c)) && digits(4..8) {
        8
    } else if marked && digits(0..7) && !head.get(7).is_some_and(char::is_ascii_digit) {
        7
    } else {
        0
    };
    let chars: Vec<char> = s.chars().skip(postcode).collect();
    s = chars.iter().collect();
    let Some(start) = numbers_start(&chars) else {
        return NormalizedAddress {
            locality: normalize_locality(&s),
            numbers: Vec::new(),
            building: String::new(),
        };
    };
    let locality = normalize_locality(&chars[..start].iter().collect::<String>());
    let mut numbers = Vec::new();
    let mut i = start;
    loop {
        let j = chars[i..].iter().position(|c| !c.is_ascii_digit()).map_or(chars.len(), |p| i + p);
        let value = if j > i {
            chars[i..j].iter().collect::<String>().parse::<u32>().ok()
        } else {
            let k = chars[i..].iter().position(|c| !is_kanji_numeral(*c)).map_or(chars.len(), |p| i + p);
            let v = parse_kanji_number(&chars[i..k].iter().collect::<String>());
            i = k;
            v
        };
        let Some(v) = value else { break };
        numbers.push(v);
        i = i.max(j);
        // A marker or hyphen continues the street part only if another number follows it.
        let rest: String = chars[i..].iter().take(3).collect();
        let mut step = NUMBER_MARKERS.iter().find(|m| rest.starts_with(*m)).map(|m| m.chars().count());
        if step.is_none() && chars.get(i).is_some_and(|c| is_hyphen(*c)) {
            step = Some(1);
        }
        let Some(step) = step else { break };
        let next = i + step;
        // `１番` at the very end, or `２番地` before a building, ends the part after the marker.
        if chars.get(next).is_some_and(|c| c.is_ascii_digit() || is_kanji_numeral(*c)) {
            i = next;
        } else {
            i = next;
            break;
        }
    }
    let building = strip_spaces(&chars[i.min(chars.len())..].iter().collect::<String>());
    let building = building.trim_start_matches(is_hyphen).to_owned();
    NormalizedAddress { locality, numbers, building }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canon(s: &str) -> String {
        normalize_address(s).canonical()
    }

    #[test]
    fn the_styles_registers_use_give_one_address() {
        let want = "仙台市青葉区一番町1-2-13";
        assert_eq!(canon("宮城県仙台市青葉区一番町一丁目２番１３号"), want);
        assert_eq!(canon("仙台市青葉区一番町1-2-13 コーポ青葉101"), want);
        assert_eq!(canon("仙台市青葉区一番町１−２−１３"), want);
        assert_eq!(canon("仙台市青葉区一番町1丁目2-13"), want);
        assert_eq!(canon("〒980-0811　宮城県仙台市青葉区一番町1丁目2番地13"), want);
        assert_eq!(canon("仙台市青葉区一番町１ー２ー１３"), want);
    }

    #[test]
    fn a_postcode_with_any_hyphen_or_none_is_dropped() {
        let want = "仙台市青葉区一番町1-2-13";
        for raw in [
            "〒980−0811 仙台市青葉区一番町1-2-13",
            "〒980ー0811 仙台市青葉区一番町1-2-13",
            "〒980‐0811　仙台市青葉区一番町1-2-13",
            "〒9800811 仙台市青葉区一番町1-2-13",
            "〒９８００８１１仙台市青葉区一番町1-2-13",
            "980−0811 仙台市青葉区一番町1-2-13",
        ] {
            assert_eq!(canon(raw), want, "{raw}");
        }
        // Seven digits without 〒 are not taken for a postcode.
        assert_eq!(normalize_address("9800811").numbers, vec![9800811]);
    }

    #[test]
    fn building_is_kept_apart() {
        let a = normalize_address("仙台市青葉区一番町1-2-13 コーポ青葉101");
        assert_eq!(a.building, "コーポ青葉101");
        assert_eq!(a.numbers, vec![1, 2, 13]);
        let b = normalize_address("宮城県仙台市青葉区一番町一丁目２番１３号　コーポ青葉１０１");
        assert_eq!(b, a);
    }

    #[test]
    fn town_names_with_numerals_are_not_numbers() {
        let a = normalize_address("仙台市青葉区一番町");
        assert_eq!(a.locality, "仙台市青葉区一番町");
        assert!(a.numbers.is_empty());
        assert_eq!(normalize_address("仙台市青葉区北一番丁2-5").locality, "仙台市青葉区北一番丁");
        assert_eq!(normalize_address("仙台市太白区八木山本町二丁目３番").numbers, vec![2, 3]);
    }

    #[test]
    fn county_and_prefecture_are_optional() {
        assert_eq!(canon("宮城県柴田郡大河原町新南5-6"), canon("大河原町新南５−６"));
        assert_eq!(normalize_address("福島県郡山市駅前1-1").locality, "郡山市駅前");
    }

    #[test]
    fn kanji_numbers_parse() {
        for (s, n) in
            [("一", 1), ("十", 10), ("十二", 12), ("二十", 20), ("二十三", 23), ("百五", 105), ("二〇", 20)]
        {
            assert_eq!(parse_kanji_number(s), Some(n), "{s}");
        }
        assert_eq!(parse_kanji_number(""), None);
    }

    #[test]
    fn old_forms_and_ke_variants_in_place_names_fold() {
        assert_eq!(normalize_address("霞ヶ関1").locality, normalize_address("霞が関1").locality);
        assert_eq!(normalize_address("澤田町3").locality, "沢田町");
    }
}
