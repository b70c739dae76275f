//! Linkage quality and speed on a generated corpus: `cargo bench -p kizuna-index --bench
//! linkage_quality -- [patients] [facilities] [pharmacies] [seed] [--builtin]`. Prints the training
//! report, precision and recall at both thresholds, and a sample of the errors with their variant
//! tags. With `--builtin` the built-in model scores the corpus instead of one trained on it.

use std::time::Instant;

use kizuna_index::Registry;
use kizuna_index::matcher::{Field, Thresholds, TrainingConfig};
use kizuna_index::quality::{errors, run_with};

fn arg(n: usize, default: u64) -> u64 {
    std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .nth(n)
        .and_then(|a| a.parse().ok())
        .unwrap_or(default)
}

#[tokio::main]
async fn main() {
    let (patients, facilities, pharmacies, seed) = (arg(0, 3000), arg(1, 3), arg(2, 1), arg(3, 20260401));
    // tmpfs when there is one: the corpus is tens of thousands of small files, and on a disk
    // mounted with `discard` creating and deleting them takes minutes.
    let shm = std::path::Path::new("/dev/shm");
    let dir = if shm.is_dir() { tempfile::tempdir_in(shm) } else { tempfile::tempdir() }.expect("temp dir");
    let cfg = synth::GenConfig {
        seed,
        facilities: facilities as u32,
        patients: patients as u32,
        from: synth::CivilDate::constant(2024, 1, 1),
        to: synth::CivilDate::constant(2024, 12, 31),
        bad: 0,
        pharmacies: pharmacies as u32,
        sync: false,
    };
    let t = Instant::now();
    let summary = synth::generate(&cfg, dir.path(), &|_| {}).expect("generate corpus");
    println!(
        "corpus: seed {seed}, {} persons, {} registrations (+{} at pharmacies), {} files, generated in {:.1} s",
        summary.persons,
        summary.registrations,
        summary.pharmacy_registrations,
        summary.files,
        t.elapsed().as_secs_f64()
    );
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("index.db").display());
    let registry = Registry::open(&url).await.expect("open registry");
    let builtin = std::env::args().any(|a| a == "--builtin");
    let training = TrainingConfig::default();
    let (r, truth) = run_with(dir.path(), &registry, Thresholds::default(), (!builtin).then_some(&training))
        .await
        .expect("run");
    println!("{}", serde_json::to_string_pretty(&r).expect("json"));
    if let Some((_, m)) = registry.matcher().await.expect("matcher") {
        println!("prior log2-odds {:.2}; field weights log2(m/u) by level 0..:", m.model.prior_log2_odds);
        for f in Field::ALL {
            let w: Vec<String> =
                (0..f.levels()).map(|l| format!("{:+.2}", m.model.field_weight(f, l as u8))).collect();
            println!("  {:<12} {}", f.name(), w.join("  "));
        }
    }
    let links = registry.all_links().await.expect("links");
    let (false_links, missed) = errors(&links, &truth);
    let tags = |k: &kizuna_index::RecordKey| truth.variants.get(k).map(|v| v.join(";")).unwrap_or_default();
    println!("false links: {}", false_links.len());
    for (a, b) in false_links.iter().take(20) {
        println!("  {a} [{}]  ~  {b} [{}]", tags(a), tags(b));
    }
    println!("missed links: {}", missed.len());
    for (a, b) in missed.iter().take(40) {
        println!("  {a} [{}]  ~  {b} [{}]", tags(a), tags(b));
    }
    println!(
        "precision {:.5} recall {:.5} at the auto-link threshold {}; with every review accepted: precision {:.5} recall {:.5}",
        r.at_auto_link.precision,
        r.at_auto_link.recall,
        r.thresholds.auto_link,
        r.if_reviews_accepted.precision,
        r.if_reviews_accepted.recall
    );
}
