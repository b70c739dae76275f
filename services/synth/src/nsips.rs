//! NSIPS dispensing exports from pharmacies, written to `OUT/nsips/<pharmacy-id>/`.
//!
//! The NSIPS specification is confidential to its member vendors. The layout below follows what is
//! public (see `reference/ssmix2.md`): comma-separated records, a `VERnnnnnn` header line, record types
//! 1–8, CP932 or UTF-8, CRLF or LF. The fields inside each record are this generator's choice and
//! are documented in [`LAYOUT`] and the crate README; nothing is quoted, and no value holds a comma.

use std::path::Path;

use jiff::civil::Date;
use rand::Rng;
use rand::seq::IndexedRandom;

use crate::calendar::{Moment, add_days, ymd};
use crate::catalog::{CONDITIONS, DRUGS};
use crate::enroll::Enrolled;
use crate::facility::{Facility, FacilityKind};
use crate::people::Person;
use crate::{GenConfig, SynthError, write};

/// The version written in the header.
pub const VERSION: &str = "VER010603";

/// Field names of each record type; a line has exactly these fields, the record type first.
pub const LAYOUT: &[(&str, &[&str])] = &[
    (
        "VER",
        &[
            "version",
            "sent_at",
            "terminal",
            "prefecture",
            "fee_table",
            "pharmacy_code",
            "pharmacy_name",
            "postcode",
            "address",
            "phone",
        ],
    ),
    (
        "1",
        &[
            "record",
            "patient_no",
            "name_kanji",
            "name_kana",
            "sex",
            "birth_date",
            "postcode",
            "address",
            "phone",
            "insurer_no",
        ],
    ),
    (
        "2",
        &[
            "record",
            "prescription_no",
            "issued_on",
            "institution_code",
            "institution_name",
            "department",
            "doctor",
            "dispensed_on",
        ],
    ),
    ("3", &["record", "rp_no", "usage_code", "usage", "days", "times_per_day"]),
    (
        "4",
        &[
            "record",
            "rp_no",
            "seq",
            "yj_code",
            "receipt_code",
            "hot_code",
            "drug_name",
            "amount_per_day",
            "unit",
        ],
    ),
    ("5", &["record", "dispensing_no", "dispensed_on", "pharmacist", "points"]),
    ("6", &["record", "dispensing_no", "rp_no", "points"]),
    ("7", &["record", "fee_code", "fee_name", "points"]),
    ("8", &["record", "noted_on", "note"]),
];

/// The text encoding and line ending of one file: files of a pharmacy alternate between them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileFormat {
    pub cp932: bool,
    pub crlf: bool,
}

const FORMATS: [FileFormat; 4] = [
    FileFormat { cp932: true, crlf: true },
    FileFormat { cp932: false, crlf: false },
    FileFormat { cp932: true, crlf: false },
    FileFormat { cp932: false, crlf: true },
];

/// A 9-digit receipt-computer (レセ電) code derived from the YJ code: plausible, not real.
fn receipt_code(yj: &str) -> String {
    let n: u64 = yj.bytes().fold(7u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)));
    format!("6{:08}", n % 100_000_000)
}

/// One dispensing event for a patient: the lines from record type 1 to 8.
fn dispensing(
    rng: &mut impl Rng,
    pharmacy: &Facility,
    person: &Person,
    en: &Enrolled,
    prescriber: &Facility,
    day: Date,
    no: u32,
) -> Vec<String> {
    let r = &en.recorded;
    let (postcode, address) = r.address_on(day);
    let sex = if person.sex == crate::people::Sex::Male { "1" } else { "2" };
    let mut lines = vec![format!(
        "1,{},{}　{},{}　{},{sex},{},{postcode},{address},{},{}",
        en.reg.patient_id,
        r.family_kanji,
        r.given_kanji,
        r.family_kana,
        r.given_kana,
        ymd(r.birth),
        r.phone.clone().unwrap_or_default(),
        format!("0604{:04}", person.index % 10_000),
    )];
    let doctor =
        prescriber.doctors.choose(rng).map(|d| format!("{}　{}", d.family, d.given)).unwrap_or_default();
    let issued = add_days(day, -i32::from(rng.random_bool(0.2)));
    lines.push(format!(
        "2,{}{:05},{},{},{},{},{doctor},{}",
        ymd(day),
        no,
        ymd(issued),
        prescriber.id,
        prescriber.name,
        crate::message::dept_name(prescriber.departments.first().copied().unwrap_or("01")),
        ymd(day)
    ));
    let drugs: Vec<usize> =
        person.chronic.iter().flat_map(|&c| CONDITIONS[c].drugs.iter().copied().take(2)).collect();
    let days = [14, 28, 28, 30, 56][rng.random_range(0..5)];
    let mut points = 0;
    for (i, &d) in drugs.iter().enumerate() {
        let drug = &DRUGS[d];
        let (code, usage) = drug.usage.code();
        let rp = i + 1;
        let per_day = drug.per_dose * drug.usage.times_per_day();
        lines.push(format!("3,{rp},{code},{usage},{days},{}", drug.usage.times_per_day()));
        lines.push(format!(
            "4,{rp},1,{},{},{},{},{per_day},{}",
            drug.yj,
            receipt_code(drug.yj),
            drug.hot9,
            drug.name,
            drug.unit.1
        ));
        points += 30 + rng.random_range(0..40);
    }
    let pharmacist =
        pharmacy.doctors.choose(rng).map(|d| format!("{}　{}", d.family, d.given)).unwrap_or_default();
    lines.push(format!("5,{}{:05},{},{pharmacist},{}", ymd(day), no, ymd(day), points + 45));
    for i in 0..drugs.len() {
        lines.push(format!("6,{}{:05},{},{}", ymd(day), no, i + 1, 30 + (i as u32 * 7) % 40));
    }
    lines.push("7,00001,調剤基本料１,45".to_owned());
    lines.push(format!("7,00040,薬剤調製料,{}", 24 * drugs.len().max(1)));
    lines.push(format!("8,{},お薬手帳に記載済み", ymd(day)));
    lines
}

/// Writes each pharmacy's exports: one file per dispensing day. Returns (facility index, files).
pub fn generate(
    cfg: &GenConfig,
    out_root: &Path,
    facilities: &[Facility],
    persons: &[Person],
    enrolled: &[Enrolled],
    pharmacy_enrolled: &[Enrolled],
) -> Result<Vec<(usize, u64)>, SynthError> {
    let mut out = Vec::new();
    for pharmacy in facilities.iter().filter(|f| f.kind == FacilityKind::Pharmacy) {
        let mut rng = crate::rng::stream(cfg.seed, &["nsips", &pharmacy.id]);
        // (day, lines) for every dispensing at this pharmacy.
        let mut by_day: std::collections::BTreeMap<Date, Vec<String>> = std::collections::BTreeMap::new();
        let mut no = 0u32;
        for en in pharmacy_enrolled.iter().filter(|e| e.reg.facility == pharmacy.index) {
            let person = &persons[en.reg.person as usize];
            // The prescriber is one of the person's hospitals or clinics.
            let prescribers: Vec<&Facility> = enrolled
                .iter()
                .filter(|e| e.reg.person == en.reg.person)
                .map(|e| &facilities[e.reg.facility])
                .collect();
            let Some(&prescriber) = prescribers.choose(&mut rng) else { continue };
            let mut day = en.reg.since;
            while day <= cfg.to {
                no += 1;
                let lines = dispensing(&mut rng, pharmacy, person, en, prescriber, day, no);
                by_day.entry(day).or_default().extend(lines);
                day = add_days(day, [14, 28, 28, 30][rng.random_range(0..4)]);
            }
        }
        let dir = out_root.join("nsips").join(&pharmacy.id);
        write::ensure_dir(&dir)?;
        let mut files = 0u64;
        for (i, (day, lines)) in by_day.into_iter().enumerate() {
            let fmt = FORMATS[i % FORMATS.len()];
            let sent = Moment::at(day, 19, 0, 0, 0);
            let header = format!(
                "{VERSION},{},T01,04,4,{},{},{},{},{}",
                sent.secs14(),
                &pharmacy.id[3..],
                pharmacy.name,
                pharmacy.postcode,
                pharmacy.address,
                pharmacy.phone
            );
            let eol = if fmt.crlf { "\r\n" } else { "\n" };
            let mut text = String::new();
            for l in std::iter::once(&header).chain(lines.iter()) {
                text.push_str(l);
                text.push_str(eol);
            }
            let bytes = if fmt.cp932 {
                let (b, _, unmappable) = encoding_rs::SHIFT_JIS.encode(&text);
                if unmappable {
                    return Err(SynthError::Config(format!(
                        "NSIPS text for {} is not CP932-encodable",
                        pharmacy.id
                    )));
                }
                b.into_owned()
            } else {
                text.into_bytes()
            };
            let name = format!("NSIPS_{}_{}.csv", &pharmacy.id[3..], ymd(day));
            write::atomic(&dir.join(name), &bytes)?;
            files += 1;
        }
        out.push((pharmacy.index, files));
    }
    Ok(out)
}
