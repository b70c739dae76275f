//! Produces `src/matcher/builtin_model.json`, the built-in matcher used while a register is too
//! small to estimate its own: generates a corpus with `synth`, reads every patient as `kizuna index
//! link` would, trains with the ordinary unsupervised [`train`] and prints the result as JSON.
//!
//! ```text
//! cargo run --release -p kizuna-index --example builtin_model -- 3000 3 1 11 \
//!     > services/index/src/matcher/builtin_model.json
//! ```
//! Arguments: persons, hospitals/clinics, pharmacies, seed (these defaults); one year of care
//! (2024), the same corpus as the `linkage_quality` bench with those arguments.

use kizuna_index::matcher::builtin::BuiltinModel;
use kizuna_index::matcher::{Matcher, Prepared, Thresholds, TrainingConfig, train};
use kizuna_index::quality::read_corpus;

fn arg(n: usize, default: u64) -> u64 {
    std::env::args().skip(1).nth(n).and_then(|a| a.parse().ok()).unwrap_or(default)
}

fn main() {
    let (persons, facilities, pharmacies, seed) = (arg(0, 3000), arg(1, 3), arg(2, 1), arg(3, 11));
    // tmpfs when there is one: the corpus is tens of thousands of small files.
    let shm = std::path::Path::new("/dev/shm");
    let dir = if shm.is_dir() { tempfile::tempdir_in(shm) } else { tempfile::tempdir() }.expect("temp dir");
    let cfg = synth::GenConfig {
        seed,
        facilities: facilities as u32,
        patients: persons as u32,
        from: synth::CivilDate::constant(2024, 1, 1),
        to: synth::CivilDate::constant(2024, 12, 31),
        bad: 0,
        pharmacies: pharmacies as u32,
        sync: false,
    };
    synth::generate(&cfg, dir.path(), &|_| {}).expect("generate the corpus");
    let mut records = read_corpus(dir.path()).expect("read the corpus");
    records.sort_by(|a, b| a.0.cmp(&b.0));
    let prepared: Vec<Prepared> = records.iter().map(|(_, d)| Prepared::new(d)).collect();
    let (model, report) = train(&prepared, &TrainingConfig::default()).expect("train");
    let builtin = BuiltinModel {
        produced_by: format!(
            "cargo run --release -p kizuna-index --example builtin_model -- {persons} {facilities} {pharmacies} {seed}"
        ),
        corpus: format!(
            "synth seed {seed}: {persons} persons, {facilities} hospitals/clinics, {pharmacies} pharmacies, \
             care 2024-01-01..2024-12-31; {} records",
            records.len()
        ),
        matcher: Matcher { model, thresholds: Thresholds::default() },
        report,
    };
    println!("{}", serde_json::to_string_pretty(&builtin).expect("json"));
}
