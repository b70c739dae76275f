//! People: the true identities behind the corpus, and how each facility records them.

pub mod address;
pub mod names;
pub mod recorded;

use jiff::civil::Date;
use rand::Rng;
use rand::seq::IndexedRandom;

use crate::calendar::{add_days, ymd};
use crate::catalog::CONDITIONS;
use address::{Address, BUILDINGS, TOWNS};
use names::{FAMILY, GIVEN_FEMALE, GIVEN_MALE, GivenName, TWINS_FEMALE, TWINS_MALE, TWINS_MIXED};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sex {
    Male,
    Female,
}

impl Sex {
    /// HL7 table 0001 code.
    pub fn code(self) -> &'static str {
        match self {
            Self::Male => "M",
            Self::Female => "F",
        }
    }
}

/// One real person: the ground truth that every facility's record is a (noisy) copy of.
#[derive(Debug, Clone)]
pub struct Person {
    /// Dense index, also the person ID `P0000001` form via [`Person::label`].
    pub index: u32,
    pub family: usize,
    pub given: &'static GivenName,
    pub sex: Sex,
    pub birth: Date,
    pub address: Address,
    /// A move: from this date the person lives at the second address.
    pub moved: Option<(Date, Address)>,
    /// A family-name change (marriage) on this date, to this family name.
    pub renamed: Option<(Date, usize)>,
    pub phone: String,
    /// Chronic conditions (indexes into [`CONDITIONS`]).
    pub chronic: Vec<usize>,
    /// Allergens (indexes into [`crate::catalog::ALLERGENS`]).
    pub allergies: Vec<usize>,
    /// Area of residence (index into [`address::AREAS`]).
    pub area: usize,
    /// The person generated just before, when the two are twins (a hard negative for linkage).
    pub twin_of: Option<u32>,
}

impl Person {
    pub fn label(&self) -> String {
        format!("P{:07}", self.index + 1)
    }

    pub fn family_at(&self, d: Date) -> usize {
        match self.renamed {
            Some((when, to)) if d >= when => to,
            _ => self.family,
        }
    }

    pub fn address_at(&self, d: Date) -> &Address {
        match &self.moved {
            Some((when, to)) if d >= *when => to,
            _ => &self.address,
        }
    }

    /// Age in whole years on `d`.
    pub fn age_on(&self, d: Date) -> i16 {
        let mut age = d.year() - self.birth.year();
        if (d.month(), d.day()) < (self.birth.month(), self.birth.day()) {
            age -= 1;
        }
        age
    }
}

fn weighted<'a, T>(rng: &mut impl Rng, items: &'a [T], w: impl Fn(&T) -> u32) -> &'a T {
    let total: u32 = items.iter().map(&w).sum();
    let mut x = rng.random_range(0..total);
    for it in items {
        let wi = w(it);
        if x < wi {
            return it;
        }
        x -= wi;
    }
    &items[items.len() - 1]
}

/// Index of a weighted choice.
pub(crate) fn weighted_index<T>(rng: &mut impl Rng, items: &[T], w: impl Fn(&T) -> u32) -> usize {
    let p = weighted(rng, items, w) as *const T;
    items.iter().position(|it| std::ptr::eq(it, p)).unwrap_or(0)
}

fn random_address(rng: &mut impl Rng, area: Option<usize>) -> Address {
    let candidates: Vec<usize> =
        (0..TOWNS.len()).filter(|&i| area.is_none_or(|a| TOWNS[i].area == a)).collect();
    let town = *candidates.choose(rng).unwrap_or(&0);
    Address {
        town,
        chome: if rng.random_bool(0.7) { rng.random_range(1..=6) } else { 0 },
        banchi: rng.random_range(1..=40),
        go: rng.random_range(1..=30),
        building: rng.random_bool(0.3).then(|| {
            (
                *BUILDINGS.choose(rng).unwrap_or(&BUILDINGS[0]),
                rng.random_range(1..=5) * 100 + rng.random_range(1..=12),
            )
        }),
    }
}

fn birth_date(rng: &mut impl Rng, today: Date) -> Date {
    // Patients skew old, as in any EHR: 0–14 8%, 15–39 15%, 40–64 30%, 65–79 30%, 80–99 17%.
    let band: &[(u32, i32, i32)] = &[(8, 0, 14), (15, 15, 39), (30, 40, 64), (30, 65, 79), (17, 80, 99)];
    let (_, lo, hi) = *weighted(rng, band, |b| b.0);
    let age = rng.random_range(lo..=hi);
    add_days(today, -(age * 365 + rng.random_range(0..365)))
}

fn pick_given(rng: &mut impl Rng, sex: Sex, birth: Date) -> &'static GivenName {
    let era = match birth.year() {
        ..1960 => 0,
        1960..1990 => 1,
        _ => 2,
    };
    let pool = if sex == Sex::Male { GIVEN_MALE } else { GIVEN_FEMALE };
    let same: Vec<&GivenName> = pool.iter().filter(|g| g.era == era).collect();
    if rng.random_bool(0.85) && !same.is_empty() {
        same[rng.random_range(0..same.len())]
    } else {
        pool.choose(rng).unwrap_or(&pool[0])
    }
}

/// Generates `n` people living in Miyagi, as of the period `from..=to`.
pub fn generate(seed: u64, n: u32, from: Date, to: Date) -> Vec<Person> {
    let mut rng = crate::rng::stream(seed, &["people"]);
    let span = crate::calendar::days_between(from, to).max(1);
    let mut people: Vec<Person> = Vec::with_capacity(n as usize);
    for index in 0..n {
        // About one person in 100 is a twin of the previous one (over-sampled against real birth
        // rates so the quality bench sees enough): same family, birth date and address. Three
        // twins in four get related names, as parents choose them (one kanji shared, or one reading
        // in other kanji: see `names::TWINS_MALE`); the rest two names drawn at random.
        if let Some(prev) = people.last().filter(|p| p.twin_of.is_none() && rng.random_bool(0.01)).cloned() {
            let sex = if rng.random_bool(0.5) {
                prev.sex
            } else if prev.sex == Sex::Male {
                Sex::Female
            } else {
                Sex::Male
            };
            let given = if rng.random_bool(0.75) {
                let (table, prev_first) = match (prev.sex, sex) {
                    (Sex::Male, Sex::Male) => (TWINS_MALE, rng.random_bool(0.5)),
                    (Sex::Female, Sex::Female) => (TWINS_FEMALE, rng.random_bool(0.5)),
                    (Sex::Male, Sex::Female) => (TWINS_MIXED, true),
                    (Sex::Female, Sex::Male) => (TWINS_MIXED, false),
                };
                let (a, b) = table.choose(&mut rng).unwrap_or(&table[0]);
                let (theirs, mine) = if prev_first { (a, b) } else { (b, a) };
                if let Some(p) = people.last_mut() {
                    p.given = theirs;
                }
                mine
            } else {
                let mut given = pick_given(&mut rng, sex, prev.birth);
                while given.kanji == prev.given.kanji {
                    given = pick_given(&mut rng, sex, prev.birth);
                }
                given
            };
            people.push(Person { index, given, sex, twin_of: Some(prev.index), renamed: None, ..prev });
            continue;
        }
        let sex = if rng.random_bool(0.52) { Sex::Female } else { Sex::Male };
        let birth = birth_date(&mut rng, to);
        let area = weighted_index(&mut rng, &[45u32, 15, 8, 12, 12, 8], |w| *w);
        let address = random_address(&mut rng, Some(area));
        let moved = rng.random_bool(0.12).then(|| {
            let when = add_days(from, rng.random_range(0..span));
            let dest_area = if rng.random_bool(0.7) { Some(area) } else { None };
            (when, random_address(&mut rng, dest_area))
        });
        let age = crate::calendar::days_between(birth, to) / 365;
        let renamed = (sex == Sex::Female && (22..40).contains(&age) && rng.random_bool(0.04)).then(|| {
            (add_days(from, rng.random_range(0..span)), weighted_index(&mut rng, FAMILY, |f| f.weight))
        });
        let chronic_count = match age {
            ..15 => usize::from(rng.random_bool(0.1)),
            15..40 => rng.random_range(0..=1),
            40..65 => rng.random_range(0..=2),
            _ => rng.random_range(1..=4),
        };
        let chronic_pool: Vec<usize> = (0..CONDITIONS.len()).filter(|&i| CONDITIONS[i].chronic).collect();
        let mut chronic = Vec::new();
        for _ in 0..chronic_count {
            let c = chronic_pool[weighted_index(&mut rng, &chronic_pool, |&i| CONDITIONS[i].weight)];
            if !chronic.contains(&c) {
                chronic.push(c);
            }
        }
        chronic.sort_unstable();
        let mut allergies = Vec::new();
        if rng.random_bool(0.18) {
            allergies.push(rng.random_range(0..crate::catalog::ALLERGENS.len()));
            if rng.random_bool(0.3) {
                let b = rng.random_range(0..crate::catalog::ALLERGENS.len());
                if !allergies.contains(&b) {
                    allergies.push(b);
                }
            }
        }
        let phone = if rng.random_bool(0.6) {
            format!("090-{:04}-{:04}", rng.random_range(0..10000), rng.random_range(0..10000))
        } else {
            format!("022-{:03}-{:04}", rng.random_range(200..400), rng.random_range(0..10000))
        };
        people.push(Person {
            index,
            family: weighted_index(&mut rng, FAMILY, |f| f.weight),
            given: pick_given(&mut rng, sex, birth),
            sex,
            birth,
            address,
            moved,
            renamed,
            phone,
            chronic,
            allergies,
            area,
            twin_of: None,
        });
    }
    people
}

/// One line of `persons.csv`: the true demographics, for evaluating linkage.
pub fn csv_line(p: &Person) -> String {
    let f = &FAMILY[p.family];
    let a = &p.address;
    format!(
        "{},{},{},{},{},{},{},{},{},{},{}",
        p.label(),
        f.kanji,
        p.given.kanji,
        f.kana,
        p.given.kana,
        ymd(p.birth),
        p.sex.code(),
        a.town().postcode,
        a.render(address::AddressStyle::Hyphen, true, true),
        p.moved
            .as_ref()
            .map(|(d, a)| format!("{} {}", ymd(*d), a.render(address::AddressStyle::Hyphen, true, true)))
            .unwrap_or_default(),
        p.twin_of.map(|t| format!("P{:07}", t + 1)).unwrap_or_default(),
    )
}

pub const CSV_HEADER: &str = "person_id,family_kanji,given_kanji,family_kana,given_kana,birth_date,sex,postcode,address,moved_on_to,twin_of";
