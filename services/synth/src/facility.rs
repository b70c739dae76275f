//! Facilities: hospitals, clinics and pharmacies in Miyagi, each with a 10-digit medical-institution
//! code, departments, staff and the habits of its systems.

use rand::Rng;
use rand::seq::IndexedRandom;

use crate::people::address::{AREAS, AddressStyle, TOWNS};
use crate::people::names::{FAMILY, GIVEN_FEMALE, GIVEN_MALE};
use crate::people::recorded::RecordingHabits;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FacilityKind {
    Hospital,
    Clinic,
    Pharmacy,
}

impl FacilityKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hospital => "hospital",
            Self::Clinic => "clinic",
            Self::Pharmacy => "pharmacy",
        }
    }
}

/// A doctor or nurse as XCN components: ID, family, given.
#[derive(Debug, Clone)]
pub struct Staff {
    pub id: String,
    pub family: &'static str,
    pub given: &'static str,
}

impl Staff {
    /// XCN in the samples' layout: `ID^family^given^^^^^^^L^^^^^I`.
    pub fn xcn(&self) -> String {
        format!("{}^{}^{}^^^^^^^L^^^^^I", self.id, self.family, self.given)
    }
}

#[derive(Debug, Clone)]
pub struct Facility {
    pub index: usize,
    /// Prefecture 04 (Miyagi), point table (1 medical, 4 pharmacy), 7-digit code with check digit.
    pub id: String,
    pub name: String,
    pub kind: FacilityKind,
    pub area: usize,
    pub postcode: String,
    pub address: String,
    pub phone: String,
    /// Sending application in MSH-3.
    pub system: &'static str,
    /// Department codes it has (see [`crate::catalog::DEPARTMENTS`]).
    pub departments: Vec<&'static str>,
    pub doctors: Vec<Staff>,
    pub nurses: Vec<Staff>,
    pub habits: RecordingHabits,
    /// Local patient IDs: digits, zero-padded to this width, counting from `pid_base`.
    pub pid_width: usize,
    pub pid_base: u64,
    /// Hospital beds go in wards like `32` with rooms `302`.
    pub wards: Vec<&'static str>,
}

/// A medical-institution code's check digit (modulus 10, weights 2-1 from the right, digit sums).
fn check_digit(digits: &str) -> u32 {
    let mut sum = 0;
    for (i, c) in digits.chars().rev().enumerate() {
        let d = c.to_digit(10).unwrap_or(0) * if i % 2 == 0 { 2 } else { 1 };
        sum += d / 10 + d % 10;
    }
    (10 - sum % 10) % 10
}

/// `04` + point table + 2-digit city + 4-digit number + check digit.
pub fn institution_code(table: u8, city: u32, number: u32) -> String {
    let body = format!("{city:02}{number:04}");
    format!("04{table}{body}{}", check_digit(&body))
}

fn staff(rng: &mut impl Rng, prefix: &str, n: usize, female_share: f64) -> Vec<Staff> {
    (0..n)
        .map(|i| {
            let f = &FAMILY[rng.random_range(0..FAMILY.len())];
            let pool = if rng.random_bool(female_share) { GIVEN_FEMALE } else { GIVEN_MALE };
            let g = pool.choose(rng).unwrap_or(&pool[0]);
            Staff {
                id: format!("{prefix}{:04}", 100 + i * 7 + rng.random_range(0..7)),
                family: f.kanji,
                given: g.kanji,
            }
        })
        .collect()
}

const HOSPITAL_SUFFIX: &[&str] = &["総合病院", "中央病院", "市立病院", "記念病院"];
const CLINIC_NAMES: &[&str] =
    &["内科クリニック", "ファミリークリニック", "内科医院", "整形外科クリニック", "診療所", "内科・循環器科"];
const PHARMACY_NAMES: &[&str] = &["さくら薬局", "あおば調剤薬局", "みどり薬局", "ひかり薬局", "杜の都薬局"];
const SYSTEMS: &[&str] = &["HIS-MIYAGI", "EHR-SENDAI", "MEDICOM", "KARTE-NEO", "HOPE-EGMAIN"];

/// The facilities of a corpus: every third one (from the first) is a hospital, the rest clinics,
/// followed by `pharmacies` pharmacies.
pub fn generate(seed: u64, facilities: u32, pharmacies: u32) -> Vec<Facility> {
    let mut out = Vec::new();
    let total = facilities + pharmacies;
    for i in 0..total {
        let mut rng = crate::rng::stream(seed, &["facility", &i.to_string()]);
        let kind = if i >= facilities {
            FacilityKind::Pharmacy
        } else if i % 3 == 0 {
            FacilityKind::Hospital
        } else {
            FacilityKind::Clinic
        };
        // Spread over areas: the first few cover Sendai, Ishinomaki and Kesennuma, as in the paper.
        let area = if (i as usize) < AREAS.len() { i as usize } else { rng.random_range(0..AREAS.len()) };
        let towns: Vec<usize> = (0..TOWNS.len()).filter(|&t| TOWNS[t].area == area).collect();
        let town = &TOWNS[*towns.choose(&mut rng).unwrap_or(&0)];
        let table = if kind == FacilityKind::Pharmacy { 4 } else { 1 };
        let id = institution_code(
            table,
            10 + area as u32 * 7 + rng.random_range(0..5),
            1000 + i * 37 + rng.random_range(0..30),
        );
        let place = town.town.trim_end_matches("通");
        let name = match kind {
            FacilityKind::Hospital => {
                format!("{}{}", place, HOSPITAL_SUFFIX.choose(&mut rng).unwrap_or(&"病院"))
            }
            FacilityKind::Clinic => format!("{}{}", place, CLINIC_NAMES.choose(&mut rng).unwrap_or(&"医院")),
            FacilityKind::Pharmacy => {
                format!("{}{}店", PHARMACY_NAMES.choose(&mut rng).unwrap_or(&"薬局"), place)
            }
        };
        let departments: Vec<&'static str> = match kind {
            FacilityKind::Hospital => vec!["01", "02", "03", "04", "10", "12", "20", "32", "50"],
            FacilityKind::Clinic if name.contains("整形") => vec!["12"],
            FacilityKind::Clinic => vec!["01"],
            FacilityKind::Pharmacy => vec![],
        };
        let habits = RecordingHabits {
            large_kana_only: rng.random_bool(0.25),
            name_in_one_field: rng.random_bool(0.15),
            long_vowel_bar: rng.random_bool(0.1),
            address_style: AddressStyle::ALL[rng.random_range(0..AddressStyle::ALL.len())],
            with_prefecture: rng.random_bool(0.6),
            with_building: rng.random_bool(0.7),
            keeps_old_forms: rng.random_bool(0.5),
        };
        let (n_doc, n_nurse) = match kind {
            FacilityKind::Hospital => (24, 30),
            FacilityKind::Clinic => (2, 4),
            FacilityKind::Pharmacy => (3, 0),
        };
        out.push(Facility {
            index: i as usize,
            id,
            name,
            kind,
            area,
            postcode: format!("{}-{}", &town.postcode[..3], &town.postcode[3..]),
            address: format!(
                "宮城県{}{}{}-{}",
                town.city,
                town.town,
                rng.random_range(1..9),
                rng.random_range(1..30)
            ),
            phone: format!("022-{:03}-{:04}", rng.random_range(200..400), rng.random_range(0..10000)),
            system: SYSTEMS[rng.random_range(0..SYSTEMS.len())],
            departments,
            doctors: staff(&mut rng, "D", n_doc, 0.3),
            nurses: staff(&mut rng, "N", n_nurse, 0.85),
            habits,
            pid_width: [7usize, 8, 10][rng.random_range(0..3)],
            pid_base: rng.random_range(1..50) * 10_000,
            wards: if kind == FacilityKind::Hospital { vec!["31", "32", "41", "42", "51"] } else { vec![] },
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn institution_codes_are_ten_digits_with_a_check_digit() {
        let c = institution_code(1, 10, 1234);
        assert_eq!(c.len(), 10);
        assert!(c.starts_with("041"));
        assert_eq!(check_digit("101234"), c[9..].parse::<u32>().unwrap());
        let fs = generate(7, 4, 1);
        assert_eq!(fs.iter().filter(|f| f.kind == FacilityKind::Hospital).count(), 2);
        assert_eq!(fs[4].kind, FacilityKind::Pharmacy);
        assert!(fs[4].id.starts_with("044"));
    }
}
