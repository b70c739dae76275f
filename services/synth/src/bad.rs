//! Known-bad files, each breaking exactly one rule, under `OUT/bad/` (an SS-MIX2 root of its own, so
//! the facility trees stay clean) and listed in `OUT/bad-files.csv` with the violation code a
//! validator must raise. The faults are the ones real exports have: a file in the wrong folder, a
//! Shift_JIS or UTF-8 file, an order entered the day before, a missing route, `<0.30` in a numeric
//! result, a misordered segment, a visit stored as an admission, a patient ID without its leading
//! zeros, wrong MSH-18/20/21, a `.hl7` extension, an empty file, two current versions of one key.

use std::collections::BTreeSet;
use std::path::Path;

use jiff::civil::Date;
use rand::Rng;
use ssmix2::validate::Code;
use ssmix2::{DataType, FileName, PatientId, StoragePath};

use crate::calendar::{Moment, add_days, days_between, ymd};
use crate::enroll::Enrolled;
use crate::event::{Action, Body, Encounter, Event, RxItem, Version};
use crate::facility::Facility;
use crate::message::{self, Ctx};
use crate::{GenConfig, SynthError, history, write};

/// One deliberately bad file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadFile {
    /// Relative to the output folder, e.g. `bad/000/123/0001234/20240105/OMP-01/…`.
    pub path: String,
    pub code: Code,
    pub what: &'static str,
}

/// The kinds, in the order `--bad N` cycles through them.
pub const KINDS: &[(Code, &str)] = &[
    (Code::PathMismatch, "file under another patient's ID prefix folder"),
    (Code::NotIso2022Jp, "message written in UTF-8 instead of ISO-2022-JP"),
    (Code::CareDateMismatch, "ORC-9 is the day before the date folder"),
    (Code::RequiredFieldMissing, "RXR-1 (route) empty in a prescription"),
    (Code::NotNumeric, "OBX-5 of an NM result holds <0.30"),
    (Code::SegmentOrder, "PV1 before PID in an outpatient visit"),
    (Code::DataTypeMismatch, "outpatient visit (ADT^A04) stored as ADT-22"),
    (Code::PatientIdMismatch, "PID-3 without the ID's leading zeros"),
    (Code::BadCharsetDeclaration, "MSH-18 declares UNICODE UTF-8"),
    (Code::BadEncodingDeclaration, "MSH-20 declares 2.3"),
    (Code::BadProfile, "MSH-21 missing"),
    (Code::FlagHistory, "two current (_1) versions of one data key"),
    (Code::BadFileName, "file name with a .hl7 extension"),
    (Code::NotHl7, "empty file"),
];

/// Sets field `n` of every `seg` segment in message text.
fn set_field(text: &str, seg: &str, n: usize, value: &str) -> String {
    text.split_inclusive('\r')
        .map(|line| {
            let body = line.trim_end_matches('\r');
            if !body.starts_with(seg) {
                return line.to_owned();
            }
            let mut fields: Vec<String> = body.split('|').map(str::to_owned).collect();
            // MSH-1 is the separator itself, so MSH-n sits at index n-1.
            let idx = if seg == "MSH" { n - 1 } else { n };
            if fields.len() <= idx {
                fields.resize(idx + 1, String::new());
            }
            fields[idx] = value.to_owned();
            if value.is_empty() {
                while fields.last().is_some_and(String::is_empty) {
                    fields.pop();
                }
            }
            format!("{}\r", fields.join("|"))
        })
        .collect()
}

fn swap_segments(text: &str, a: &str, b: &str) -> String {
    let mut lines: Vec<&str> = text.split_inclusive('\r').collect();
    let ia = lines.iter().position(|l| l.starts_with(a));
    let ib = lines.iter().position(|l| l.starts_with(b));
    if let (Some(ia), Some(ib)) = (ia, ib) {
        lines.swap(ia, ib);
    }
    lines.concat()
}

fn prescription(day: Date, order_no: String, at: Moment) -> Event {
    Event {
        data_type: DataType::Omp01,
        care_date: Some(day),
        order_no: Some(order_no),
        dept: Some("01"),
        encounter: Encounter { inpatient: false, dept: "01", doctor: 0, bed: None },
        versions: vec![Version { sent: at.plus_ms(120_000), action: Action::New }],
        body: Body::Prescription {
            at,
            items: vec![vec![
                RxItem { drug: 0, per_dose: 1, days: 28 },
                RxItem { drug: 8, per_dose: 1, days: 28 },
            ]],
        },
    }
}

fn visit(day: Date, at: Moment) -> Event {
    Event {
        data_type: DataType::Adt12,
        care_date: Some(day),
        order_no: None,
        dept: Some("01"),
        encounter: Encounter { inpatient: false, dept: "01", doctor: 0, bed: None },
        versions: vec![Version { sent: at.plus_ms(60_000), action: Action::New }],
        body: Body::Visit { at },
    }
}

fn lab_result(day: Date, order_no: String, at: Moment) -> Event {
    Event {
        data_type: DataType::Oml11,
        care_date: Some(day),
        order_no: Some(order_no),
        dept: Some("01"),
        encounter: Encounter { inpatient: false, dept: "01", doctor: 0, bed: None },
        versions: vec![Version { sent: at.plus_ms(7_200_000), action: Action::New }],
        body: Body::LabResult {
            collected: at,
            reported: at.plus_ms(7_000_000),
            values: vec![vec![(0, 7.1), (8, 0.81), (19, 0.02)]],
        },
    }
}

fn place(out_root: &Path, rel: &str, bytes: &[u8]) -> Result<(), SynthError> {
    let path = out_root.join(rel);
    if let Some(dir) = path.parent() {
        write::ensure_dir(dir)?;
    }
    write::atomic(&path, bytes)
}

/// Writes `cfg.bad` bad files for patients of the first facility and lists them in `bad-files.csv`.
pub fn generate(
    cfg: &GenConfig,
    out_root: &Path,
    facilities: &[Facility],
    enrolled: &[Enrolled],
) -> Result<Vec<BadFile>, SynthError> {
    let fac = &facilities[0];
    let regs: Vec<&Enrolled> = enrolled.iter().filter(|e| e.reg.facility == 0).collect();
    let span = days_between(cfg.from, cfg.to).max(0);
    let mut listed = Vec::new();
    // (patient, day): each bad file gets a key of its own, so no two make a flag history by accident.
    let mut used: BTreeSet<(String, Date)> = BTreeSet::new();
    for i in 0..cfg.bad {
        let (code, what) = KINDS[i as usize % KINDS.len()];
        let en = regs[i as usize % regs.len()];
        let mut rng = crate::rng::stream(cfg.seed, &["bad", &i.to_string()]);
        let mut day = add_days(cfg.from, rng.random_range(0..=span));
        while !used.insert((en.reg.patient_id.clone(), day)) {
            day = add_days(day, 1);
        }
        let at =
            Moment::at(day, rng.random_range(9..16), rng.random_range(0..60), rng.random_range(0..60), 0);
        let order_no = format!("{}{:07}", ymd(day), 9_000_000 + i);
        let ctx = Ctx { facility: fac, patient_id: &en.reg.patient_id, recorded: &en.recorded };
        let patient = PatientId::new(&en.reg.patient_id)
            .map_err(|source| SynthError::Name { name: en.reg.patient_id.clone(), source })?;
        let control = format!("{}{:03}", at.stamp17(), i % 1000);

        let event = match code {
            Code::SegmentOrder | Code::DataTypeMismatch => visit(day, at),
            Code::NotNumeric => lab_result(day, order_no, at),
            _ => prescription(day, order_no, at),
        };
        let mut name: FileName = history::sent_name(&patient, &event, 0)?;
        let mut text = message::render(&ctx, &event, 0, &control);
        let mut bytes: Option<Vec<u8>> = None;
        let mut rel_override: Option<String> = None;
        match code {
            Code::PathMismatch => {
                let sp = StoragePath::of(name.clone());
                let mut parts = sp.components();
                parts[0] = if parts[0] == "999" { "998".into() } else { "999".into() };
                rel_override = Some(parts.join("/"));
            }
            Code::NotIso2022Jp => bytes = Some(text.clone().into_bytes()),
            Code::CareDateMismatch => {
                text = set_field(&text, "ORC", 9, &Moment::at(add_days(day, -1), 17, 30, 0, 0).secs14())
            }
            Code::RequiredFieldMissing => text = set_field(&text, "RXR", 1, ""),
            Code::NotNumeric => {
                let mut lines: Vec<String> = text.split_inclusive('\r').map(str::to_owned).collect();
                if let Some(l) = lines.iter_mut().rev().find(|l| l.starts_with("OBX")) {
                    *l = set_field(l, "OBX", 5, "<0.30").replace("|L|", "|N|");
                }
                text = lines.concat();
            }
            Code::SegmentOrder => text = swap_segments(&text, "PID", "PV1"),
            Code::DataTypeMismatch => name.data_type = DataType::Adt22,
            Code::PatientIdMismatch => {
                let id = &en.reg.patient_id;
                let stripped = id.trim_start_matches('0');
                let other =
                    if stripped.len() < id.len() { stripped.to_owned() } else { format!("9{}", &id[1..]) };
                text = set_field(&text, "PID", 3, &format!("{other}^^^^PI"));
            }
            Code::BadCharsetDeclaration => text = set_field(&text, "MSH", 18, "UNICODE UTF-8"),
            Code::BadEncodingDeclaration => text = set_field(&text, "MSH", 20, "2.3"),
            Code::BadProfile => text = set_field(&text, "MSH", 21, ""),
            Code::FlagHistory => {
                // A second current version of the same key, one minute later, without the rename:
                // the older file is the one whose flag is wrong (it should have become _2), so it is
                // the one listed; the newer file is not bad by itself.
                let mut again = event.clone();
                again.versions[0].sent = again.versions[0].sent.plus_ms(60_000);
                let second = history::sent_name(&patient, &again, 0)?;
                let second_text = message::render(
                    &ctx,
                    &again,
                    0,
                    &format!("{}{:03}", again.versions[0].sent.stamp17(), i % 1000),
                );
                let msg = ssmix2::hl7::Message::parse(&second_text)
                    .map_err(|source| SynthError::Hl7 { file: second.to_string(), source })?;
                let b =
                    msg.encode().map_err(|source| SynthError::Hl7 { file: second.to_string(), source })?;
                let rel = format!("bad/{}", StoragePath::of(second).relative().to_string_lossy());
                place(out_root, &rel, &b)?;
            }
            Code::BadFileName => {
                rel_override =
                    Some(format!("{}.hl7", StoragePath::of(name.clone()).relative().to_string_lossy()))
            }
            Code::NotHl7 => bytes = Some(Vec::new()),
            // Codes added to ssmix2 later have no bad kind here yet.
            #[allow(unreachable_patterns)]
            _ => {}
        }
        let bytes = match bytes {
            Some(b) => b,
            None => ssmix2::hl7::encode_iso2022jp(&text)
                .map_err(|source| SynthError::Hl7 { file: name.to_string(), source })?,
        };
        let rel = format!(
            "bad/{}",
            rel_override.unwrap_or_else(|| StoragePath::of(name).relative().to_string_lossy().into_owned())
        );
        place(out_root, &rel, &bytes)?;
        listed.push(BadFile { path: rel, code, what });
    }
    listed.sort_by(|a, b| a.path.cmp(&b.path));
    let mut csv = String::from("path,code,what\n");
    for b in &listed {
        csv.push_str(&format!("{},{},{}\n", b.path, b.code, b.what));
    }
    write::atomic(&out_root.join("bad-files.csv"), csv.as_bytes())?;
    Ok(listed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_field_counts_msh_from_the_separator() {
        let t = "MSH|^~\\&|A|B\rPID|1||X^^^^PI\r";
        assert_eq!(set_field(t, "MSH", 4, "Z"), "MSH|^~\\&|A|Z\rPID|1||X^^^^PI\r");
        assert_eq!(set_field(t, "PID", 3, "Y"), "MSH|^~\\&|A|B\rPID|1||Y\r");
        assert_eq!(set_field(t, "PID", 3, ""), "MSH|^~\\&|A|B\rPID|1\r");
        assert_eq!(swap_segments(t, "MSH", "PID"), "PID|1||X^^^^PI\rMSH|^~\\&|A|B\r");
    }
}
