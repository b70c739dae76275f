//! Linkage quality on the generator's corpus: three hospitals and clinics and a pharmacy, the same
//! people registered at several of them under different local IDs, with the name, address and
//! birth-date variants and typos the generator puts in (old kanji, large kana, long-vowel bars,
//! whole name in one field, four address styles, moves, marriages, twins, clerk typos).
//!
//! The matcher is trained without labels, every patient is enrolled through the registry (SQLite),
//! and the common IDs are scored against `ground-truth.csv`.

use kizuna_index::Registry;
use kizuna_index::matcher::{Thresholds, TrainingConfig};
use kizuna_index::quality::{errors, run};

/// Published HIE matchers reach a sensitivity of 0.64–0.94 at a PPV around 0.9995 (Grannis et al.).
const MIN_PRECISION: f64 = 0.999;
const MIN_RECALL: f64 = 0.95;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_links_reach_precision_0_999_and_recall_0_95_on_the_generated_corpus() {
    // tmpfs when there is one: the corpus is tens of thousands of small files, and on a disk
    // mounted with `discard` creating and deleting them takes minutes.
    let shm = std::path::Path::new("/dev/shm");
    let dir = if shm.is_dir() { tempfile::tempdir_in(shm) } else { tempfile::tempdir() }.expect("temp dir");
    let cfg = synth::GenConfig {
        seed: 20261125,
        facilities: 3,
        patients: 1200,
        from: synth::CivilDate::constant(2024, 1, 1),
        to: synth::CivilDate::constant(2024, 3, 31),
        bad: 0,
        pharmacies: 1,
        sync: false,
    };
    let summary = synth::generate(&cfg, dir.path(), &|_| {}).unwrap();
    assert!(summary.registrations + summary.pharmacy_registrations > 2000, "{summary:?}");
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("index.db").display());
    let registry = Registry::open(&url).await.unwrap();
    let training = TrainingConfig { u_sample_pairs: 300_000, ..TrainingConfig::default() };
    let (r, truth) = run(dir.path(), &registry, Thresholds::default(), &training).await.unwrap();
    eprintln!("{}", serde_json::to_string_pretty(&r).unwrap());

    let links = registry.all_links().await.unwrap();
    assert_eq!(links.len(), r.records);
    assert_eq!(
        r.records as u64,
        summary.registrations + summary.pharmacy_registrations,
        "every registration read"
    );
    let (false_links, missed) = errors(&links, &truth);
    for (a, b) in false_links.iter().take(10) {
        eprintln!("false link: {a} {:?} ~ {b} {:?}", truth.variants.get(a), truth.variants.get(b));
    }
    for (a, b) in missed.iter().take(10) {
        eprintln!("missed: {a} {:?} ~ {b} {:?}", truth.variants.get(a), truth.variants.get(b));
    }
    let q = r.at_auto_link;
    assert!(q.true_pairs > 1000, "the corpus has too few cross-facility patients to measure: {q:?}");
    assert!(q.precision >= MIN_PRECISION, "precision {} < {MIN_PRECISION}: {q:?}", q.precision);
    assert!(q.recall >= MIN_RECALL, "recall {} < {MIN_RECALL}: {q:?}", q.recall);
    // The review queue only adds links: accepting it all cannot lose recall.
    assert!(r.if_reviews_accepted.recall >= q.recall);

    // Twins (same family name, birth date and address, another given name) must stay apart.
    let persons = std::fs::read_to_string(dir.path().join("persons.csv")).unwrap();
    let header: Vec<&str> = persons.lines().next().unwrap().split(',').collect();
    let twin_col = header.iter().position(|h| *h == "twin_of").unwrap();
    let twins: Vec<(String, String)> = persons
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (!f[twin_col].is_empty()).then(|| (f[0].to_owned(), f[twin_col].to_owned()))
        })
        .collect();
    let id_of: std::collections::HashMap<_, _> = links.iter().cloned().collect();
    let mut twin_pairs_checked = 0;
    for (a, b) in &twins {
        let ids = |p: &str| -> Vec<_> {
            truth.person.iter().filter(|(_, q)| q.as_str() == p).map(|(k, _)| id_of[k].clone()).collect()
        };
        for x in ids(a) {
            for y in ids(b) {
                assert_ne!(x, y, "twins {a} and {b} were linked");
                twin_pairs_checked += 1;
            }
        }
    }
    eprintln!("{} twin pairs, {twin_pairs_checked} record pairs of twins kept apart", twins.len());
}
