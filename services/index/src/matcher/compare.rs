//! Comparison vectors: how far two prepared records agree on each field, as a small level number
//! (higher = closer), or `None` when either side did not record the field.

use serde::{Deserialize, Serialize};
use strsim::{damerau_levenshtein, jaro_winkler};

use super::prepare::Prepared;
use crate::normalize::NormalizedAddress;

/// The fields the matcher compares. Family and given names are compared apart (a family shares the
/// one and not the other); each combines its kanji and its reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Field {
    FamilyName,
    GivenName,
    BirthDate,
    Sex,
    Address,
    Phone,
}

impl Field {
    pub const ALL: [Field; 6] =
        [Self::FamilyName, Self::GivenName, Self::BirthDate, Self::Sex, Self::Address, Self::Phone];
    pub const COUNT: usize = 6;

    /// How many agreement levels the field has (level 0 is "disagree").
    pub fn levels(self) -> usize {
        match self {
            Self::Sex | Self::Phone => 2,
            _ => 4,
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::FamilyName => "family_name",
            Self::GivenName => "given_name",
            Self::BirthDate => "birth_date",
            Self::Sex => "sex",
            Self::Address => "address",
            Self::Phone => "phone",
        }
    }

    /// What each level means, for reports and the review screen.
    pub fn level_label(self, level: u8) -> &'static str {
        match (self, level) {
            (Self::FamilyName | Self::GivenName, 3) => "kanji and reading agree",
            (Self::FamilyName | Self::GivenName, 2) => "one agrees, the other differs by one character",
            (Self::FamilyName | Self::GivenName, 1) => "one agrees, or both are one character off",
            (Self::BirthDate, 3) => "exact",
            (Self::BirthDate, 2) => "one digit off, adjacent digits swapped, or month and day swapped",
            (Self::BirthDate, 1) => "two digits off, or same year and month, or same month and day",
            (Self::Sex | Self::Phone, 1) => "agree",
            (Self::Address, 3) => "same locality and numbers",
            (Self::Address, 2) => "same locality, numbers nearly agree",
            (Self::Address, 1) => "same or similar locality",
            _ => "disagree",
        }
    }
}

/// One level per [`Field`], indexed by [`Field::index`].
pub type ComparisonVector = [Option<u8>; Field::COUNT];

/// How two spellings of one name part relate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Closeness {
    Exact,
    Near,
    Far,
}

/// Kanji: equal, or one edit apart in a name of two or more characters (a one-character name that
/// differs is another name).
fn kanji_closeness(a: &str, b: &str) -> Option<Closeness> {
    if a.is_empty() || b.is_empty() {
        return None;
    }
    if a == b {
        return Some(Closeness::Exact);
    }
    let shorter = a.chars().count().min(b.chars().count());
    Some(if shorter >= 2 && damerau_levenshtein(a, b) <= 1 { Closeness::Near } else { Closeness::Far })
}

/// Readings: equal, one voicing slip or one edit apart (names of three kana or more), else far.
/// `ka` and `kb` are the readings' voiceless keys.
fn kana_closeness(a: &str, b: &str, ka: &str, kb: &str) -> Option<Closeness> {
    if a.is_empty() || b.is_empty() {
        return None;
    }
    if a == b {
        return Some(Closeness::Exact);
    }
    let shorter = a.chars().count().min(b.chars().count());
    let near = (shorter >= 2 && ka == kb) || (shorter >= 3 && damerau_levenshtein(a, b) <= 1);
    Some(if near { Closeness::Near } else { Closeness::Far })
}

/// A name part from its kanji and reading closeness.
fn name_level(kanji: Option<Closeness>, kana: Option<Closeness>) -> Option<u8> {
    use Closeness::*;
    Some(match (kanji, kana) {
        (None, None) => return None,
        (Some(Exact), Some(Exact)) | (Some(Exact), None) | (None, Some(Exact)) => 3,
        (Some(Exact), Some(Near)) | (Some(Near), Some(Exact)) => 2,
        (Some(Exact), Some(Far))
        | (Some(Far), Some(Exact))
        | (Some(Near), Some(Near))
        | (Some(Near), None)
        | (None, Some(Near)) => 1,
        _ => 0,
    })
}

fn birth_level(a: &str, b: &str) -> u8 {
    if a == b {
        return 3;
    }
    let swapped =
        a.len() == 8 && b.len() == 8 && a[..4] == b[..4] && a[4..6] == b[6..8] && a[6..8] == b[4..6];
    let d = damerau_levenshtein(a, b);
    if d <= 1 || swapped {
        2
    } else if d <= 2 || (a.len() == 8 && b.len() == 8 && (a[..6] == b[..6] || a[4..] == b[4..])) {
        1
    } else {
        0
    }
}

/// `ca` and `cb` are the addresses' canonical forms.
fn address_level(a: &NormalizedAddress, b: &NormalizedAddress, ca: &str, cb: &str) -> Option<u8> {
    if a.locality.is_empty() && a.numbers.is_empty() || b.locality.is_empty() && b.numbers.is_empty() {
        return None;
    }
    let same_locality = a.locality == b.locality;
    if same_locality && a.numbers == b.numbers && !a.numbers.is_empty() {
        return Some(3);
    }
    let (short, long) = if a.numbers.len() <= b.numbers.len() { (a, b) } else { (b, a) };
    let prefix = !short.numbers.is_empty() && long.numbers.starts_with(&short.numbers);
    let one_off = a.numbers.len() == b.numbers.len()
        && a.numbers.iter().zip(&b.numbers).filter(|(x, y)| x != y).count() == 1;
    // "Numbers nearly agree" needs numbers on both sides in one locality: the canonical forms one
    // edit apart also matched two bare equal localities, or two towns with the same numbers.
    let both_numbered = !a.numbers.is_empty() && !b.numbers.is_empty();
    if same_locality && both_numbered && (prefix || one_off || damerau_levenshtein(ca, cb) <= 1) {
        return Some(2);
    }
    if same_locality || jaro_winkler(&a.locality, &b.locality) >= 0.9 {
        return Some(1);
    }
    Some(0)
}

/// The comparison vector of two records.
pub fn compare(a: &Prepared, b: &Prepared) -> ComparisonVector {
    let mut v: ComparisonVector = [None; Field::COUNT];
    v[Field::FamilyName.index()] = name_level(
        kanji_closeness(&a.family_kanji, &b.family_kanji),
        kana_closeness(&a.family_kana, &b.family_kana, &a.family_kana_key, &b.family_kana_key),
    );
    v[Field::GivenName.index()] = name_level(
        kanji_closeness(&a.given_kanji, &b.given_kanji),
        kana_closeness(&a.given_kana, &b.given_kana, &a.given_kana_key, &b.given_kana_key),
    );
    v[Field::BirthDate.index()] = match (&a.birth_date, &b.birth_date) {
        (Some(x), Some(y)) => Some(birth_level(x, y)),
        _ => None,
    };
    v[Field::Sex.index()] = match (a.sex, b.sex) {
        (Some(x), Some(y)) => Some(u8::from(x == y)),
        _ => None,
    };
    v[Field::Address.index()] =
        address_level(&a.address, &b.address, &a.address_canonical, &b.address_canonical);
    v[Field::Phone.index()] =
        (!a.phone.is_empty() && !b.phone.is_empty()).then(|| u8::from(a.phone == b.phone));
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Demographics, Sex};

    fn person(fk: &str, gk: &str, fr: &str, gr: &str, dob: &str, sex: Sex, addr: &str) -> Prepared {
        Prepared::new(&Demographics {
            family_kanji: fk.into(),
            given_kanji: gk.into(),
            family_kana: fr.into(),
            given_kana: gr.into(),
            birth_date: Some(dob.into()),
            sex: Some(sex),
            address: addr.into(),
            phone: String::new(),
        })
    }

    #[test]
    fn the_same_person_written_differently_agrees_fully() {
        let a = person(
            "渡邊",
            "恭平",
            "ワタナベ",
            "キョウヘイ",
            "19750312",
            Sex::Male,
            "宮城県仙台市若林区荒井二丁目３番４号",
        );
        let b = person("渡辺", "恭平", "ﾜﾀﾅﾍﾞ", "キヨウヘイ", "19750312", Sex::Male, "仙台市若林区荒井2-3-4");
        assert_eq!(compare(&a, &b), [Some(3), Some(3), Some(3), Some(1), Some(3), None]);
    }

    #[test]
    fn typos_give_partial_levels() {
        let a = person("佐藤", "裕子", "サトウ", "ユウコ", "19800102", Sex::Female, "石巻市中央1-2-3");
        let b = person("佐藤", "祐子", "サトウ", "ユウコ", "19800120", Sex::Female, "石巻市中央1-2");
        let v = compare(&a, &b);
        assert_eq!(v[Field::GivenName.index()], Some(2), "kanji one off, reading exact");
        assert_eq!(v[Field::BirthDate.index()], Some(2), "adjacent digits swapped");
        assert_eq!(v[Field::Address.index()], Some(2), "号 missing");
        let c = person("佐藤", "裕子", "サトウ", "ユウコ", "19800201", Sex::Female, "石巻市中央1-2-3");
        assert_eq!(compare(&a, &c)[Field::BirthDate.index()], Some(2), "month and day swapped");
    }

    #[test]
    fn numbers_nearly_agree_only_when_both_have_numbers_in_one_locality() {
        let addr = |a: &str, b: &str| {
            let p = |s: &str| person("佐藤", "裕子", "サトウ", "ユウコ", "19800102", Sex::Female, s);
            compare(&p(a), &p(b))[Field::Address.index()]
        };
        assert_eq!(addr("石巻市中央", "石巻市中央"), Some(1), "same locality, no numbers");
        assert_eq!(addr("石巻市中央1-2-3", "石巻市中央"), Some(1), "one side without numbers");
        assert_eq!(addr("石巻市中央1-2-3", "石巻市中里1-2-3"), Some(1), "another town, same numbers");
        assert_eq!(addr("石巻市中央1-2-3", "石巻市中央1-2-8"), Some(2));
        assert_eq!(addr("石巻市中央1-2", "石巻市中央12"), Some(2), "a hyphen dropped");
    }

    #[test]
    fn family_members_disagree_on_given_name_and_birth_date() {
        let a = person("千葉", "茂", "チバ", "シゲル", "19400505", Sex::Male, "気仙沼市古町1-1-1");
        let b = person("千葉", "清", "チバ", "キヨシ", "19420808", Sex::Male, "気仙沼市古町1-1-1");
        let v = compare(&a, &b);
        assert_eq!(v[Field::FamilyName.index()], Some(3));
        assert_eq!(
            v[Field::GivenName.index()],
            Some(0),
            "one-character names one edit apart are different names"
        );
        assert_eq!(v[Field::BirthDate.index()], Some(0));
        assert_eq!(v[Field::Address.index()], Some(3));
    }

    #[test]
    fn missing_fields_compare_as_none() {
        let a = person("佐藤", "", "", "", "19800102", Sex::Female, "");
        let mut b = a.clone();
        b.sex = None;
        let v = compare(&a, &b);
        assert_eq!(v[Field::GivenName.index()], None);
        assert_eq!(v[Field::Sex.index()], None);
        assert_eq!(v[Field::Address.index()], None);
        assert_eq!(v[Field::FamilyName.index()], Some(3));
    }
}
