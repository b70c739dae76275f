//! Deterministic synthetic SS-MIX2 corpora for Kizuna's tests and benchmarks.
//!
//! [`generate`] writes, under one output folder:
//! - `<facility-id>/…`: one SS-MIX2 standardized-storage tree per hospital or clinic;
//! - `ground-truth.csv`: every (facility, local patient ID) with the true person behind it and the
//!   variants its record carries; `persons.csv`: the true demographics;
//! - `bad/…` and `bad-files.csv` (with `bad > 0`): files that each break exactly one rule, with the
//!   violation code a validator must raise;
//! - `nsips/<pharmacy-id>/*.csv` (with `pharmacies > 0`): NSIPS dispensing exports;
//! - `manifest.json`, written last: counts by facility, data type and condition flag.
//!
//! The same configuration always gives byte-identical output: every unit of work draws from its own
//! ChaCha stream derived from the seed, nothing reads the clock, and every listing is sorted.

pub mod bad;
mod calendar;
pub mod catalog;
pub mod charset;
mod enroll;
mod error;
pub mod event;
pub mod facility;
mod history;
pub mod message;
pub mod nsips;
pub mod people;
mod rng;
pub mod timeline;
mod write;

use std::collections::BTreeMap;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use jiff::civil::Date;
use rayon::prelude::*;
use serde::Serialize;
use ssmix2::{ConditionFlag, PatientId, StoragePath};

pub use error::SynthError;
pub use jiff::civil::Date as CivilDate;

/// What to generate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GenConfig {
    pub seed: u64,
    /// Hospitals and clinics (every third, from the first, is a hospital).
    pub facilities: u32,
    /// Distinct people; each is registered at one to five facilities.
    pub patients: u32,
    /// The period of care, inclusive.
    pub from: Date,
    pub to: Date,
    /// Known-bad files to add under `bad/`.
    pub bad: u32,
    /// Pharmacies exporting NSIPS.
    pub pharmacies: u32,
    /// Flush the whole corpus to disk (`syncfs`) before writing `manifest.json`. Every file appears
    /// atomically either way; without the flush a power loss may leave recent files empty, and on a
    /// slow virtual disk the flush takes longer than generating.
    pub sync: bool,
}

impl GenConfig {
    /// A configuration with no bad files, no pharmacies, and syncing on.
    pub fn new(seed: u64, facilities: u32, patients: u32, from: Date, to: Date) -> Self {
        Self { seed, facilities, patients, from, to, bad: 0, pharmacies: 0, sync: true }
    }

    fn check(&self) -> Result<(), SynthError> {
        if self.facilities == 0 {
            return Err(SynthError::Config("at least one facility is needed".into()));
        }
        if self.patients == 0 {
            return Err(SynthError::Config("at least one patient is needed".into()));
        }
        if self.from > self.to {
            return Err(SynthError::Config(format!("from {} is after to {}", self.from, self.to)));
        }
        if self.from.year() < 1900 || self.to.year() > 2999 {
            return Err(SynthError::Config("dates must lie between 1900 and 2999".into()));
        }
        if calendar::days_between(self.from, self.to) > 20 * 366 {
            return Err(SynthError::Config("the period may be at most 20 years".into()));
        }
        if self.facilities + self.pharmacies > 5000 {
            return Err(SynthError::Config("at most 5000 facilities and pharmacies".into()));
        }
        Ok(())
    }
}

/// Where the generator is, for a progress bar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    pub registrations_done: u64,
    pub registrations_total: u64,
    pub files_written: u64,
}

/// Counts for one facility.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct FacilitySummary {
    pub id: String,
    pub name: String,
    pub kind: &'static str,
    pub patients: u64,
    pub files: u64,
}

/// What was generated; also the body of `manifest.json`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct GenSummary {
    pub generator: &'static str,
    pub seed: u64,
    pub from: String,
    pub to: String,
    pub persons: u64,
    pub registrations: u64,
    /// Files in the clean facility trees.
    pub files: u64,
    pub bytes: u64,
    pub by_data_type: BTreeMap<String, u64>,
    /// Counts of flags `0`, `1` and `2`.
    pub by_flag: BTreeMap<String, u64>,
    pub facilities: Vec<FacilitySummary>,
    pub bad_files: u64,
    pub pharmacy_registrations: u64,
    pub nsips_files: u64,
}

#[derive(Default)]
struct RegStats {
    files: u64,
    bytes: u64,
    by_type: BTreeMap<&'static str, u64>,
    by_flag: [u64; 3],
}

/// Generates a corpus into `out_root`, which must not exist or be empty.
pub fn generate(
    cfg: &GenConfig,
    out_root: &Path,
    progress: &(dyn Fn(Progress) + Sync),
) -> Result<GenSummary, SynthError> {
    cfg.check()?;
    if out_root.exists() {
        let mut entries = std::fs::read_dir(out_root).map_err(|e| SynthError::io(out_root, e))?;
        if entries.next().is_some() {
            return Err(SynthError::OutputNotEmpty(out_root.to_owned()));
        }
    }
    write::ensure_dir(out_root)?;

    let facilities = facility::generate(cfg.seed, cfg.facilities, cfg.pharmacies);
    let persons = people::generate(cfg.seed, cfg.patients, cfg.from, cfg.to);
    let (enrolled, pharmacy_enrolled) = enroll::enroll(cfg.seed, &persons, &facilities, cfg.from, cfg.to);
    tracing::info!(persons = persons.len(), registrations = enrolled.len(), "population ready");

    let total = enrolled.len() as u64;
    let done = AtomicU64::new(0);
    let files_written = AtomicU64::new(0);
    let stats: Vec<RegStats> = enrolled
        .par_iter()
        .map(|en| {
            let s = write_registration(cfg, out_root, &facilities, &persons, en)?;
            let d = done.fetch_add(1, Ordering::Relaxed) + 1;
            let f = files_written.fetch_add(s.files, Ordering::Relaxed) + s.files;
            if d.is_multiple_of(64) || d == total {
                progress(Progress { registrations_done: d, registrations_total: total, files_written: f });
            }
            Ok(s)
        })
        .collect::<Result<_, SynthError>>()?;

    let mut summary = GenSummary {
        generator: concat!("kizuna-synth ", env!("CARGO_PKG_VERSION")),
        seed: cfg.seed,
        from: cfg.from.to_string(),
        to: cfg.to.to_string(),
        persons: persons.len() as u64,
        registrations: enrolled.len() as u64,
        files: 0,
        bytes: 0,
        by_data_type: BTreeMap::new(),
        by_flag: BTreeMap::new(),
        facilities: Vec::new(),
        bad_files: 0,
        pharmacy_registrations: pharmacy_enrolled.len() as u64,
        nsips_files: 0,
    };
    let mut per_facility: Vec<(u64, u64)> = vec![(0, 0); facilities.len()];
    for (en, s) in enrolled.iter().zip(&stats) {
        summary.files += s.files;
        summary.bytes += s.bytes;
        for (t, n) in &s.by_type {
            *summary.by_data_type.entry((*t).to_owned()).or_default() += n;
        }
        for (flag, n) in s.by_flag.iter().enumerate() {
            *summary.by_flag.entry(flag.to_string()).or_default() += n;
        }
        per_facility[en.reg.facility].0 += 1;
        per_facility[en.reg.facility].1 += s.files;
    }
    for en in &pharmacy_enrolled {
        per_facility[en.reg.facility].0 += 1;
    }

    if cfg.bad > 0 {
        let listed = bad::generate(cfg, out_root, &facilities, &enrolled)?;
        summary.bad_files = listed.len() as u64;
    }
    if !pharmacy_enrolled.is_empty() {
        let nsips_counts =
            nsips::generate(cfg, out_root, &facilities, &persons, &enrolled, &pharmacy_enrolled)?;
        for (f, n) in nsips_counts {
            per_facility[f].1 += n;
            summary.nsips_files += n;
        }
    }
    summary.facilities = facilities
        .iter()
        .map(|f| FacilitySummary {
            id: f.id.clone(),
            name: f.name.clone(),
            kind: f.kind.as_str(),
            patients: per_facility[f.index].0,
            files: per_facility[f.index].1,
        })
        .collect();

    write_ground_truth(out_root, &facilities, &persons, enrolled.iter().chain(&pharmacy_enrolled))?;
    if cfg.sync {
        write::sync_filesystem(out_root)?;
    }
    let manifest = out_root.join("manifest.json");
    let json = serde_json::to_vec_pretty(&summary)
        .map_err(|e| SynthError::Json { path: manifest.clone(), source: e })?;
    write::durable(&manifest, &json)?;
    Ok(summary)
}

/// The storage root of a facility's clean tree.
pub fn facility_root(out_root: &Path, facility_id: &str) -> PathBuf {
    out_root.join(facility_id)
}

/// Renders, encodes and writes every file of one registration.
fn write_registration(
    cfg: &GenConfig,
    out_root: &Path,
    facilities: &[facility::Facility],
    persons: &[people::Person],
    en: &enroll::Enrolled,
) -> Result<RegStats, SynthError> {
    let fac = &facilities[en.reg.facility];
    let person = &persons[en.reg.person as usize];
    let patient = PatientId::new(&en.reg.patient_id)
        .map_err(|source| SynthError::Name { name: en.reg.patient_id.clone(), source })?;
    let ctx = message::Ctx { facility: fac, patient_id: &en.reg.patient_id, recorded: &en.recorded };
    let root = facility_root(out_root, &fac.id);
    let mut made: BTreeSet<PathBuf> = BTreeSet::new();
    let mut stats = RegStats::default();
    let mut counter = 0u32;
    for mut event in timeline::events(cfg.seed, person, fac, &en.reg, cfg.to) {
        history::separate_versions(&mut event);
        for (v, name) in history::final_names(&patient, &event)? {
            counter += 1;
            let control = format!("{}{:03}", event.versions[v].sent.stamp17(), counter % 1000);
            let bytes = encode(&ctx, &event, v, &control, &name)?;
            let sp = StoragePath::of(name);
            let dir = root.join(sp.dir());
            if !made.contains(&dir) {
                write::ensure_dir(&dir)?;
                made.insert(dir.clone());
            }
            write::atomic(&dir.join(sp.name.to_string()), &bytes)?;
            stats.files += 1;
            stats.bytes += bytes.len() as u64;
            *stats.by_type.entry(sp.name.data_type.code()).or_default() += 1;
            stats.by_flag[match sp.name.flag {
                ConditionFlag::Deleted => 0,
                ConditionFlag::Current => 1,
                ConditionFlag::Superseded => 2,
            }] += 1;
        }
    }
    Ok(stats)
}

/// Renders one version and encodes it through the `ssmix2` message tree, which proves it parses.
pub(crate) fn encode(
    ctx: &message::Ctx,
    event: &event::Event,
    v: usize,
    control: &str,
    name: &ssmix2::FileName,
) -> Result<Vec<u8>, SynthError> {
    let text = message::render(ctx, event, v, control);
    let msg = ssmix2::hl7::Message::parse(&text)
        .map_err(|source| SynthError::Hl7 { file: name.to_string(), source })?;
    msg.encode().map_err(|source| SynthError::Hl7 { file: name.to_string(), source })
}

fn write_ground_truth<'a>(
    out_root: &Path,
    facilities: &[facility::Facility],
    persons: &[people::Person],
    all: impl Iterator<Item = &'a enroll::Enrolled>,
) -> Result<(), SynthError> {
    let mut rows: Vec<(String, String, String)> = all
        .map(|en| {
            let f = &facilities[en.reg.facility];
            let line = format!(
                "{},{},{},{},{},{}",
                persons[en.reg.person as usize].label(),
                f.id,
                f.kind.as_str(),
                en.reg.patient_id,
                calendar::ymd(en.reg.since),
                en.recorded.tags.join(";"),
            );
            (f.id.clone(), en.reg.patient_id.clone(), line)
        })
        .collect();
    rows.sort();
    let mut gt = String::from("person_id,facility_id,facility_kind,patient_id,registered_on,variants\n");
    for (_, _, line) in rows {
        gt.push_str(&line);
        gt.push('\n');
    }
    write::atomic(&out_root.join("ground-truth.csv"), gt.as_bytes())?;
    let mut pc = String::from(people::CSV_HEADER);
    pc.push('\n');
    for p in persons {
        pc.push_str(&people::csv_line(p));
        pc.push('\n');
    }
    write::atomic(&out_root.join("persons.csv"), pc.as_bytes())?;
    Ok(())
}
