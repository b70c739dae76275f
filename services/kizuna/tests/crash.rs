//! The whole upload path under SIGKILL: a synthetic corpus of 20,000 files is exported by three
//! facilities while the store (`kizuna serve`) and the upload agents (`kizuna-agent run`), each a
//! real process, are killed with SIGKILL at random points and restarted. Afterwards the centre's
//! tree is exactly the corpus (every file once, with the condition flags the generator's ground truth
//! says), the index agrees with the tree, and no temp or staged file is left at the centre or on a
//! site.
//!
//! The EHRs export each version as it was sent (an update as `_1`, a delete message as `_0`), so the
//! flags `_2`/`_0` in the final tree come from the store's condition-flag steps, replayed across
//! crashes.

mod crash_support;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use crash_support::*;
use rand::{Rng, SeedableRng};

/// Kill events (each kills the store, one agent, or all of them) while files are still in flight.
const KILLS: usize = 24;
/// The export happens in this many waves, one after each of the first kills.
const WAVES: usize = 10;

#[test]
fn sqlite() {
    run(None);
}

#[test]
fn postgres() {
    if let Some(server) = postgres_server() {
        run(Some(server));
    }
}

fn run(postgres: Option<String>) {
    let seed: u64 =
        std::env::var("KIZUNA_CRASH_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(rand::random);
    eprintln!("kill schedule seed {seed} (KIZUNA_CRASH_SEED={seed} repeats it)");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let agent_bin = agent_binary();
    // KIZUNA_CRASH_KEEP=1 keeps the folder (corpus, centre, sites, logs) for a look after a failure.
    let keep = std::env::var_os("KIZUNA_CRASH_KEEP").is_some();
    let dir = tempfile::Builder::new().prefix("kizuna-crash-").disable_cleanup(keep).tempdir().unwrap();
    eprintln!("working in {}", dir.path().display());
    let t0 = Instant::now();
    let corpus = Corpus::generate(&dir.path().join("corpus"));
    eprintln!(
        "corpus: {} files at {} facilities ({:.1} s)",
        corpus.total,
        corpus.facilities.len(),
        t0.elapsed().as_secs_f64()
    );
    assert!(corpus.total >= 20_000, "corpus has only {} files", corpus.total);

    let centre = Centre::new(dir.path(), postgres);
    let mut sites: Vec<Site> =
        corpus.facilities.keys().map(|f| Site::new(dir.path(), f, &centre, &corpus)).collect();
    // The files each EHR will export, oldest first, split into waves.
    let mut waves: Vec<Vec<(usize, String)>> = vec![Vec::new(); WAVES];
    for (i, site) in sites.iter().enumerate() {
        let mut pending = site.pending();
        pending.sort_by(|a, b| timestamp(a).cmp(timestamp(b)).then(a.cmp(b)));
        let per_wave = pending.len().div_ceil(WAVES);
        for (w, chunk) in pending.chunks(per_wave).enumerate() {
            waves[w].extend(chunk.iter().map(|p| (i, p.clone())));
        }
    }

    let mut store = centre.start(true);
    for s in &mut sites {
        s.start(&agent_bin);
    }
    let mut waves = waves.into_iter();
    let mut dropped = 0;
    let (mut kills, mut store_kills, mut agent_kills) = (0, 0, 0);
    let started = Instant::now();
    let deadline = started + Duration::from_secs(600);
    loop {
        if kills < WAVES
            && let Some(wave) = waves.next()
        {
            for (i, rel) in &wave {
                sites[*i].export(rel);
            }
            dropped += wave.len();
        }
        if kills >= KILLS {
            break;
        }
        std::thread::sleep(Duration::from_millis(rng.random_range(100..900)));
        assert!(
            !all_done(&sites) || dropped < corpus.total,
            "the upload finished after only {kills} kills: make them more frequent"
        );
        let roll: f64 = rng.random();
        if roll < 0.35 {
            store.kill();
            store = centre.start(rng.random_bool(0.8));
            store_kills += 1;
        } else if roll < 0.85 {
            let i = rng.random_range(0..sites.len());
            sites[i].kill();
            sites[i].start(&agent_bin);
            agent_kills += 1;
        } else {
            store.kill();
            for s in &mut sites {
                s.kill();
            }
            store = centre.start(rng.random_bool(0.8));
            for s in &mut sites {
                s.start(&agent_bin);
            }
            store_kills += 1;
            agent_kills += sites.len();
        }
        kills += 1;
    }
    assert_eq!(dropped, corpus.total, "not every file was exported");
    eprintln!(
        "{kills} kill events in {:.1} s: store killed {store_kills} times, agents {agent_kills} times",
        started.elapsed().as_secs_f64()
    );
    // Let the last processes finish the upload.
    while !all_done(&sites) {
        assert!(Instant::now() < deadline, "upload not finished after 600 s; {}", centre.logs_hint(&sites));
        std::thread::sleep(Duration::from_millis(250));
    }
    eprintln!("upload finished {:.1} s after the first start", started.elapsed().as_secs_f64());
    // One last kill each, with nothing in flight; the next start runs recovery.
    store.kill();
    for s in &mut sites {
        s.kill();
    }

    // The sites: nothing left to send, nothing refused, no temp files.
    for s in &sites {
        assert!(files_below(&s.export_dir).is_empty(), "{}: files left in the export folder", s.facility);
        let left = files_below(&s.state_dir.join("outbox"));
        assert!(left.is_empty(), "{}: files left in the outbox: {left:?}", s.facility);
        let quarantined = files_below(&s.state_dir.join("quarantine"));
        assert!(quarantined.is_empty(), "{}: files quarantined: {quarantined:?}", s.facility);
        let temps: Vec<_> = files_below(&s.state_dir).into_iter().filter(|p| is_temp(p)).collect();
        assert!(temps.is_empty(), "{}: temp files left: {temps:?}", s.facility);
    }

    // The centre: recovery, then the tree is exactly the corpus and the index agrees with it.
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let store =
            kizuna_store::Store::open(centre.config.clone()).await.expect("store opens after the kills");
        let mut flags = BTreeMap::<String, u64>::new();
        for (facility, files) in &corpus.facilities {
            let tree = read_tree(&centre.config.tree_dir().join(facility));
            let missing: Vec<_> = files.keys().filter(|p| !tree.contains_key(*p)).take(5).collect();
            let extra: Vec<_> = tree.keys().filter(|p| !files.contains_key(*p)).take(5).collect();
            assert!(
                missing.is_empty() && extra.is_empty(),
                "{facility}: missing {missing:?}, extra {extra:?}"
            );
            for (p, digest) in &tree {
                assert_eq!(Some(digest), files.get(p), "{facility}/{p}: content differs from the corpus");
                *flags.entry(p.rsplit('_').next().unwrap().to_owned()).or_default() += 1;
            }
            let rows = index_rows(&store, facility).await;
            let from_tree: BTreeMap<String, (String, String)> = tree
                .iter()
                .map(|(p, d)| (p.clone(), (d.clone(), p.rsplit('_').next().unwrap().to_owned())))
                .collect();
            assert!(
                rows == from_tree,
                "{facility}: the index disagrees with the tree ({} rows, {} files)",
                rows.len(),
                from_tree.len()
            );
        }
        assert_eq!(flags, corpus.by_flag, "condition flags in the tree vs the generator's manifest");
        let records: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM records").fetch_one(&store.db.pool).await.unwrap();
        assert_eq!(records as usize, corpus.total, "index rows");
        assert_eq!(
            store.journal.last_seq(),
            corpus.total as u64,
            "journal entries (a file journaled twice?)"
        );
        store.db.pool.close().await;
    });
    assert!(files_below(&centre.config.staging_dir()).is_empty(), "staged files left at the centre");
    let temps: Vec<_> = files_below(&centre.config.data_dir).into_iter().filter(|p| is_temp(p)).collect();
    assert!(temps.is_empty(), "temp files left at the centre: {temps:?}");
    eprintln!("{} files: tree = corpus, index = tree, flags {:?}", corpus.total, corpus.by_flag);
}

/// The 17-digit transaction timestamp in a storage path's file name.
fn timestamp(rel: &str) -> &str {
    Path::new(rel).file_name().and_then(|n| n.to_str()).and_then(|n| n.split('_').nth(4)).unwrap_or("")
}
