//! How one facility recorded one person: the person's true data passed through the facility's system
//! habits (old kanji forms, no small kana, full name in one field, an address style) and the clerk's
//! occasional typo. Every change is tagged, and the tags go into the ground truth.

use jiff::civil::Date;
use rand::Rng;

use super::address::AddressStyle;
use super::names::{FAMILY, KANA_CONFUSIONS, KANJI_CONFUSIONS, OLD_FORMS, SMALL_KANA};
use super::{Person, Sex};
use crate::calendar::add_days;

/// A facility system's habits in recording demographics.
#[derive(Debug, Clone)]
pub struct RecordingHabits {
    /// The system cannot store small kana: ショウ → シヨウ.
    pub large_kana_only: bool,
    /// The whole name goes in PID-5.1 with an ideographic space, given name empty.
    pub name_in_one_field: bool,
    /// Long vowels written with ー: ユウコ → ユーコ.
    pub long_vowel_bar: bool,
    pub address_style: AddressStyle,
    pub with_prefecture: bool,
    pub with_building: bool,
    /// Clerks at this facility keep old kanji forms when the patient writes them.
    pub keeps_old_forms: bool,
}

/// The demographics as one facility holds them.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub family_kanji: String,
    pub given_kanji: String,
    pub family_kana: String,
    pub given_kana: String,
    /// PID-5 written as one field (see [`RecordingHabits::name_in_one_field`]).
    pub one_field: bool,
    pub kana_missing: bool,
    pub birth: Date,
    pub sex: Sex,
    pub phone: Option<String>,
    /// (from, postcode, written address): the facility learns of a move when the patient comes after it.
    pub addresses: Vec<(Date, String, String)>,
    /// What differs from the truth, for the ground truth file.
    pub tags: Vec<&'static str>,
}

impl Recorded {
    /// The address on file on `d`.
    pub fn address_on(&self, d: Date) -> (&str, &str) {
        let mut cur = &self.addresses[0];
        for a in &self.addresses {
            if a.0 <= d {
                cur = a;
            }
        }
        (&cur.1, &cur.2)
    }

    /// PID-5 in wire form: ideographic then phonetic.
    pub fn pid5(&self) -> String {
        let (fk, gk, fr, gr) = if self.one_field {
            (
                format!("{}　{}", self.family_kanji, self.given_kanji),
                String::new(),
                format!("{}　{}", self.family_kana, self.given_kana),
                String::new(),
            )
        } else {
            (
                self.family_kanji.clone(),
                self.given_kanji.clone(),
                self.family_kana.clone(),
                self.given_kana.clone(),
            )
        };
        if self.kana_missing {
            format!("{fk}^{gk}^^^^^L^I")
        } else {
            format!("{fk}^{gk}^^^^^L^I~{fr}^{gr}^^^^^L^P")
        }
    }
}

fn replace_chars(s: &str, pairs: &[(char, char)]) -> String {
    s.chars().map(|c| pairs.iter().find(|(a, _)| *a == c).map_or(c, |(_, b)| *b)).collect()
}

/// Replaces one character found in `pairs` (either direction); `None` when none occurs.
fn confuse_one(rng: &mut impl Rng, s: &str, pairs: &[(char, char)]) -> Option<String> {
    let chars: Vec<char> = s.chars().collect();
    let spots: Vec<(usize, char)> = chars
        .iter()
        .enumerate()
        .filter_map(|(i, c)| {
            pairs.iter().find_map(|(a, b)| {
                if a == c {
                    Some((i, *b))
                } else if b == c {
                    Some((i, *a))
                } else {
                    None
                }
            })
        })
        .collect();
    if spots.is_empty() {
        return None;
    }
    let (i, to) = spots[rng.random_range(0..spots.len())];
    let mut out = chars;
    out[i] = to;
    Some(out.into_iter().collect())
}

fn long_vowels(kana: &str) -> String {
    // ウ after an o- or u-row kana is a long vowel: ユウコ → ユーコ, サトウ → サトー.
    let o_u_row = "オコソトノホモヨロゴゾドボポョュウクスツヌフムユルグズヅブプ";
    let mut out = String::new();
    let mut prev = ' ';
    for c in kana.chars() {
        if c == 'ウ' && o_u_row.contains(prev) {
            out.push('ー');
        } else {
            out.push(c);
        }
        prev = c;
    }
    out
}

/// How a facility records `p`, first registering them on `since`.
pub fn record(
    rng: &mut impl Rng,
    p: &Person,
    habits: &RecordingHabits,
    since: Date,
    until: Date,
) -> Recorded {
    let mut tags = Vec::new();
    let fam = &FAMILY[p.family_at(since)];
    if p.family_at(since) != p.family {
        tags.push("family-name-changed");
    }
    let mut family_kanji = fam.kanji.to_owned();
    let mut given_kanji = p.given.kanji.to_owned();
    let mut family_kana = fam.kana.to_owned();
    let mut given_kana = p.given.kana.to_owned();

    // Old forms: a patient who writes 澤 keeps it where the clerk keeps it.
    let old_family = replace_chars(&family_kanji, OLD_FORMS);
    if old_family != family_kanji && habits.keeps_old_forms && rng.random_bool(0.6) {
        family_kanji = old_family;
        tags.push("old-kanji");
    }
    let old_given = replace_chars(&given_kanji, OLD_FORMS);
    if old_given != given_kanji && habits.keeps_old_forms && rng.random_bool(0.4) {
        given_kanji = old_given;
        tags.push("old-kanji-given");
    }
    if habits.large_kana_only {
        let (f, g) = (replace_chars(&family_kana, SMALL_KANA), replace_chars(&given_kana, SMALL_KANA));
        if f != family_kana || g != given_kana {
            tags.push("kana-large");
        }
        (family_kana, given_kana) = (f, g);
    }
    if habits.long_vowel_bar {
        let (f, g) = (long_vowels(&family_kana), long_vowels(&given_kana));
        if f != family_kana || g != given_kana {
            tags.push("kana-long-vowel");
        }
        (family_kana, given_kana) = (f, g);
    }
    if given_kana.contains('ヅ') && rng.random_bool(0.5) {
        given_kana = given_kana.replace("ヅ", "ズ");
        tags.push("kana-du-zu");
    }
    // Clerk typos.
    if rng.random_bool(0.03)
        && let Some(t) = confuse_one(rng, &given_kana, KANA_CONFUSIONS)
    {
        given_kana = t;
        tags.push("typo-kana");
    }
    if rng.random_bool(0.015)
        && let Some(t) = confuse_one(rng, &family_kana, KANA_CONFUSIONS)
    {
        family_kana = t;
        tags.push("typo-kana-family");
    }
    if rng.random_bool(0.025)
        && let Some(t) = confuse_one(rng, &given_kanji, KANJI_CONFUSIONS)
    {
        given_kanji = t;
        tags.push("typo-kanji");
    }
    let mut birth = p.birth;
    if rng.random_bool(0.012) {
        let (y, m, d) = (birth.year(), birth.month(), birth.day());
        let swapped = if d <= 12 && d != m { Date::new(y, d, m).ok() } else { None };
        birth = swapped.unwrap_or_else(|| add_days(birth, if rng.random_bool(0.5) { 1 } else { -1 }));
        tags.push("typo-birth-date");
    }
    let kana_missing = rng.random_bool(0.015);
    if kana_missing {
        tags.push("kana-missing");
    }
    if habits.name_in_one_field {
        tags.push("name-one-field");
    }
    let phone = if rng.random_bool(0.85) { Some(p.phone.clone()) } else { None };

    let style = habits.address_style;
    tags.push(style.tag());
    // A clerk's slip in the 番地 (one off), now and then.
    let banchi_slip = rng.random_bool(0.01);
    if banchi_slip {
        tags.push("typo-address");
    }
    let write = |a: &super::Address| {
        let mut a = a.clone();
        if banchi_slip {
            a.banchi = if a.banchi > 1 { a.banchi - 1 } else { a.banchi + 1 };
        }
        (a.postcode(), a.render(style, habits.with_prefecture, habits.with_building))
    };
    let mut addresses = Vec::new();
    match &p.moved {
        Some((when, new)) if *when <= since => {
            let (pc, s) = write(new);
            addresses.push((since, pc, s));
            tags.push("moved-new-address");
        }
        Some((when, new)) if *when <= until => {
            let (pc, s) = write(&p.address);
            addresses.push((since, pc, s));
            // The facility learns of the move at the first contact after it; the timeline decides
            // when that is and writes an ADT-00 update. Until then, the old address is on file.
            let (pc, s) = write(new);
            addresses.push((*when, pc, s));
            tags.push("moved-during-period");
        }
        _ => {
            let (pc, s) = write(&p.address);
            addresses.push((since, pc, s));
        }
    }
    tags.sort_unstable();
    Recorded {
        family_kanji,
        given_kanji,
        family_kana,
        given_kana,
        one_field: habits.name_in_one_field,
        kana_missing,
        birth,
        sex: p.sex,
        phone,
        addresses,
        tags,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_vowels_and_small_kana() {
        assert_eq!(long_vowels("ユウコ"), "ユーコ");
        assert_eq!(long_vowels("サトウ"), "サトー");
        assert_eq!(long_vowels("ウエダ"), "ウエダ");
        assert_eq!(replace_chars("ショウタ", SMALL_KANA), "シヨウタ");
    }
}
