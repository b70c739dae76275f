//! Kill the follower (the primary's side), the replica or the network between them at random
//! points while a live store takes uploads: the replica converges exactly (tree, journal, and the
//! index a promotion rebuilds). Both sides run as real `kizuna-backup` processes, SIGKILLed; the
//! network is a TCP proxy the test cuts.

mod centre;

use std::time::Duration;

use centre::*;
use rand::Rng;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replica_converges_exactly_after_kills_of_either_side_and_network_cuts() {
    let (_corpus, batches, total) = corpus_batches(23, 2, 14, 20);
    let facilities: Vec<String> = batches
        .iter()
        .map(|(f, _)| f.clone())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let centre = std::sync::Arc::new(Centre::start(&facilities).await);
    let work = tempfile::tempdir().unwrap();
    let port = free_port();
    let rcfg = replica_config(&work.path().join("r"), port);
    let rconf = work.path().join("replica.yaml");
    write_config(&rconf, Some(&rcfg), None);
    let proxy = Proxy::start(format!("127.0.0.1:{port}").parse().unwrap()).await;
    let via_proxy = format!("http://{}", proxy.addr);
    let mut fcfg = follow_config(&centre, &work.path().join("state"), &[("r", via_proxy.clone())]);
    fcfg.batch_max_entries = 50;
    let fconf = work.path().join("follow.yaml");
    write_config(&fconf, None, Some(&fcfg));

    let mut replica = spawn_process("serve", &rconf);
    let mut follower = spawn_process("follow", &fconf);
    let uploader = {
        let c = centre.clone();
        tokio::spawn(async move {
            for (f, b) in &batches {
                c.upload(f, b).await;
                tokio::time::sleep(Duration::from_millis(40)).await;
            }
        })
    };
    let mut rng = rand::rng();
    let mut faults = [0usize; 3];
    let mut i = 0usize;
    while !uploader.is_finished() || i < 6 {
        tokio::time::sleep(Duration::from_millis(rng.random_range(150..600))).await;
        match i % 3 {
            0 => {
                replica.kill().unwrap();
                replica.wait().unwrap();
                tokio::time::sleep(Duration::from_millis(rng.random_range(50..400))).await;
                replica = spawn_process("serve", &rconf);
            }
            1 => {
                follower.kill().unwrap();
                follower.wait().unwrap();
                tokio::time::sleep(Duration::from_millis(rng.random_range(50..400))).await;
                follower = spawn_process("follow", &fconf);
            }
            _ => {
                proxy.cut();
                tokio::time::sleep(Duration::from_millis(rng.random_range(200..1200))).await;
                proxy.restore();
            }
        }
        faults[i % 3] += 1;
        i += 1;
    }
    uploader.await.unwrap();
    assert!(faults.iter().all(|n| *n >= 2), "every kind of fault happened: {faults:?}");
    let applied = centre.applied();
    wait_until(90, "replica converges after the faults", || async {
        replica_applied(&via_proxy).await == Some(applied)
    })
    .await;

    let primary_tree = tree_digests(&centre.tree());
    assert_eq!(primary_tree.len(), total, "the store took the whole corpus");
    assert_eq!(tree_digests(&rcfg.data_dir.join("tree")), primary_tree, "replica tree differs after faults");
    assert_eq!(
        journal_entries(&rcfg.data_dir.join("journal")),
        journal_entries(&centre.config.journal_dir()),
        "replica journal differs"
    );
    // No temp file left behind in the replica's staging.
    let left: Vec<_> =
        std::fs::read_dir(rcfg.data_dir.join("staging")).unwrap().flatten().map(|e| e.file_name()).collect();
    assert!(left.is_empty(), "staging not empty: {left:?}");
    // The persisted cursor caught up too.
    wait_until(10, "cursor file persisted", || async {
        std::fs::read_to_string(work.path().join("state/cursors/r"))
            .is_ok_and(|s| s.split_whitespace().next() == Some(&applied.to_string()))
    })
    .await;

    follower.kill().unwrap();
    follower.wait().unwrap();
    replica.kill().unwrap();
    replica.wait().unwrap();
    let promoted = kizuna_backup::promote::promote(&rcfg.data_dir, "").await.unwrap();
    assert_eq!(promoted.applied_seq, applied);
    let db = kizuna_store::Db::open(&promoted.database_url).await.unwrap();
    // The primary's search rows are written behind its answers: wait for them.
    centre.store.search_caught_up().await;
    assert_eq!(index_rows(&db.pool).await, index_rows(&centre.store.db.pool).await, "promoted index differs");
    for (i, log) in [("replica", rconf.with_extension("log")), ("follow", fconf.with_extension("log"))] {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        assert!(!text.contains("panicked"), "{i} panicked:\n{text}");
    }
    let follow_log = std::fs::read_to_string(fconf.with_extension("log")).unwrap();
    assert!(follow_log.contains("shipping failed"), "the faults hit batches in flight");
}
