//! Files written into the primary's tree by others than the store reach the replicas through the
//! watcher; with a queue of one event almost every event overflows, and the bounded rescans still
//! find every file, changed file and removal.

mod centre;

use std::collections::BTreeMap;
use std::time::Duration;

use centre::*;
use kizuna_backup::client::ReplicaClient;
use kizuna_backup::primary::Primary;
use kizuna_backup::verify::{Options, verify};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_tiny_watch_queue_overflows_and_no_file_is_lost() {
    let _ = tracing_subscriber::fmt().with_env_filter("kizuna_backup=info").with_test_writer().try_init();
    let (_corpus, batches, _) = corpus_batches(5, 1, 6, 25);
    let fac = batches[0].0.clone();
    let centre = Centre::start(std::slice::from_ref(&fac)).await;
    let work = tempfile::tempdir().unwrap();
    let replica = ReplicaServer::start(&work.path().join("r")).await;
    let mut config = follow_config(&centre, &work.path().join("state"), &[("r", replica.url.clone())]);
    config.watch.queue = 1;
    config.watch.rescan_max_dirs = 2;
    config.watch.settle_ms = 100;
    let follower = FollowerTask::start(config.clone()).await;
    tokio::time::sleep(Duration::from_millis(500)).await;

    // Others write 300 files in 30 new folders while the store takes uploads.
    let extra = centre.tree().join(&fac).join("scanned-documents");
    let writer = {
        let extra = extra.clone();
        tokio::task::spawn_blocking(move || {
            for i in 0..300 {
                let d = extra.join(format!("batch-{:02}", i % 30));
                std::fs::create_dir_all(&d).unwrap();
                std::fs::write(d.join(format!("doc-{i:04}.pdf")), format!("document {i}").repeat(20))
                    .unwrap();
            }
        })
    };
    for (f, b) in &batches {
        centre.upload(f, b).await;
    }
    writer.await.unwrap();
    let same = || async { tree_digests(&replica.tree()) == tree_digests(&centre.tree()) };
    wait_until(60, "replica has every file, the store's and the others'", same).await;
    assert!(tree_digests(&replica.tree()).keys().filter(|p| p.contains("scanned-documents")).count() == 300);
    assert!(follower.metrics.watch_overflows.get() > 0, "the tiny queue overflowed");
    assert!(follower.metrics.rescans.get() > 0, "overflows led to rescans");

    // Changes and removals by others are followed too.
    for i in 0..10 {
        std::fs::remove_file(extra.join(format!("batch-{:02}", i % 30)).join(format!("doc-{i:04}.pdf")))
            .unwrap();
    }
    for i in 100..105 {
        std::fs::write(
            extra.join(format!("batch-{:02}", i % 30)).join(format!("doc-{i:04}.pdf")),
            b"rewritten",
        )
        .unwrap();
    }
    wait_same_trees(60, "replica follows removals and rewrites", &centre.tree(), &replica.tree()).await;
    follower.stop().await;
    let primary = std::sync::Arc::new(Primary::open(&config).await.unwrap());
    let client = ReplicaClient::new(&config.replicas[0], Duration::from_secs(30)).unwrap();
    let report = verify(&primary, &client, Options::default()).await.unwrap();
    assert!(report.clean(), "{report:?}");
    replica.stop().await;
    centre.stop().await;
}

/// Waits until the replica's tree holds `want` (the caller reads the primary's tree before the
/// follower runs, so that nothing but the follower touches it).
async fn wait_replica_has(secs: u64, what: &str, want: &BTreeMap<String, String>, replica: &std::path::Path) {
    wait_until(secs, what, || async { tree_digests(replica) == *want }).await;
}

/// Files others write or remove while the follower is down (or in its last `settle_ms` before a
/// kill) produce no watcher event; the follower finds them by rescanning the tree at every start.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn foreign_changes_made_while_the_follower_was_down_reach_the_replica() {
    let _ = tracing_subscriber::fmt().with_env_filter("kizuna_backup=info").with_test_writer().try_init();
    let centre = Centre::start(&[]).await;
    let work = tempfile::tempdir().unwrap();
    let replica = ReplicaServer::start(&work.path().join("r")).await;
    let mut config = follow_config(&centre, &work.path().join("state"), &[("r", replica.url.clone())]);
    config.watch.settle_ms = 100;
    let docs = centre.tree();
    std::fs::create_dir_all(&docs).unwrap();
    std::fs::write(docs.join("before-first-start.pdf"), b"scanned before the follower ever ran").unwrap();
    let want = tree_digests(&centre.tree());
    let follower = FollowerTask::start(config.clone()).await;
    wait_replica_has(20, "a file written before the first start", &want, &replica.tree()).await;
    std::fs::write(docs.join("while-running.pdf"), b"scanned while the follower ran").unwrap();
    let want = tree_digests(&centre.tree());
    wait_replica_has(20, "a file written while running", &want, &replica.tree()).await;
    follower.stop().await;

    // While it is down: one file written, one recorded file removed, one rewritten.
    std::fs::write(docs.join("while-down.pdf"), b"scanned while the follower was down").unwrap();
    std::fs::remove_file(docs.join("while-running.pdf")).unwrap();
    std::fs::write(docs.join("before-first-start.pdf"), b"rescanned while the follower was down").unwrap();
    let want = tree_digests(&centre.tree());
    let follower = FollowerTask::start(config.clone()).await;
    wait_replica_has(20, "changes made while the follower was down", &want, &replica.tree()).await;
    follower.stop().await;
    let primary = std::sync::Arc::new(Primary::open(&config).await.unwrap());
    let client = ReplicaClient::new(&config.replicas[0], Duration::from_secs(30)).unwrap();
    let report = verify(&primary, &client, Options::default()).await.unwrap();
    assert!(report.clean(), "{report:?}");
    replica.stop().await;
    centre.stop().await;
}

/// A foreign file removed and written again before the follower could ship (a network cut, the
/// follower down) gives a remove and a put for one path in one batch; the replica keeps the file.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_foreign_file_removed_and_written_again_in_one_batch_stays_on_the_replica() {
    let centre = Centre::start(&[]).await;
    let work = tempfile::tempdir().unwrap();
    let replica = ReplicaServer::start(&work.path().join("r")).await;
    let mut config = follow_config(&centre, &work.path().join("state"), &[("r", replica.url.clone())]);
    // The foreign log below is written as the watcher would have written it.
    config.watch.enabled = false;
    let primary = Primary::open(&config).await.unwrap();
    let path = kizuna_backup::paths::TreePath::parse("F0401/scanned-documents/consent.pdf").unwrap();
    let abs = path.under(&centre.tree());
    std::fs::create_dir_all(abs.parent().unwrap()).unwrap();
    for content in [&b"first scan"[..], b"second scan, after the first was removed"] {
        std::fs::write(&abs, content).unwrap();
        primary.record_foreign(&path, Some((&sha(content), content.len() as u64))).await.unwrap();
        if content == b"first scan" {
            std::fs::remove_file(&abs).unwrap();
            primary.record_foreign(&path, None).await.unwrap();
        }
    }
    primary.manifest.pool.close().await;
    let follower = FollowerTask::start(config.clone()).await;
    let client = ReplicaClient::new(&config.replicas[0], Duration::from_secs(30)).unwrap();
    let acked = || async { client.state().await.is_ok_and(|a| a.foreign_applied == 3) };
    wait_until(20, "the replica applied the three foreign changes", acked).await;
    assert_eq!(
        tree_digests(&replica.tree()),
        tree_digests(&centre.tree()),
        "the file written again is on the replica"
    );
    follower.stop().await;
    replica.stop().await;
    centre.stop().await;
}

/// Once everything is shipped, the follower leaves the tree alone: reading a file or listing a
/// folder (its own checks and rescans included) is no change to follow. It used to react to
/// those opens, re-reading every checked file and rescanning every rescanned folder once per
/// `settle_ms`, for ever.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_shipped_tree_is_not_read_again_and_again() {
    let centre = Centre::start(&[]).await;
    let work = tempfile::tempdir().unwrap();
    let replica = ReplicaServer::start(&work.path().join("r")).await;
    let mut config = follow_config(&centre, &work.path().join("state"), &[("r", replica.url.clone())]);
    config.watch.settle_ms = 100;
    let docs = centre.tree().join("scanned").join("2026");
    std::fs::create_dir_all(&docs).unwrap();
    std::fs::write(docs.join("a.pdf"), b"scanned a").unwrap();
    let want = tree_digests(&centre.tree());
    let follower = FollowerTask::start(config.clone()).await;
    wait_replica_has(20, "the scanned file", &want, &replica.tree()).await;
    std::fs::write(docs.join("b.pdf"), b"scanned b").unwrap();
    let want = tree_digests(&centre.tree());
    wait_replica_has(20, "a file written while running", &want, &replica.tree()).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (rescans, foreign) = (follower.metrics.rescans.get(), follower.metrics.foreign_changes.get());
    // Twenty settle periods with nothing written.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(follower.metrics.rescans.get(), rescans, "folders rescanned with nothing written");
    assert_eq!(follower.metrics.foreign_changes.get(), foreign);
    follower.stop().await;
    replica.stop().await;
    centre.stop().await;
}

/// Files others write count against `batch_max_bytes`. After a network cut (here: written before
/// the follower starts) many of them, more than the replica takes in one batch, reach it in several
/// batches; one larger than `batch_max_bytes` goes in a batch of its own; one too large for any
/// batch the replica takes is skipped (ERROR, metric) and does not stop the store's entries. It
/// used to put them all in one batch, refused by the replica and retried for ever.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn foreign_files_count_against_the_batch_limit_and_one_too_large_does_not_stop_replication() {
    let (_corpus, batches, _) = corpus_batches(7, 1, 4, 25);
    let fac = batches[0].0.clone();
    let centre = Centre::start(std::slice::from_ref(&fac)).await;
    let work = tempfile::tempdir().unwrap();
    let mut replica_config = replica_config(&work.path().join("r"), 0);
    replica_config.max_batch_bytes = 256 << 10;
    let replica = ReplicaServer::start_with(replica_config).await;
    let mut config = follow_config(&centre, &work.path().join("state"), &[("r", replica.url.clone())]);
    config.watch.settle_ms = 100;
    config.batch_max_bytes = 64 << 10;
    config.replica_max_batch_bytes = 256 << 10;
    let docs = centre.tree().join(&fac).join("scanned-documents");
    std::fs::create_dir_all(&docs).unwrap();
    let content = |i: usize, len: usize| {
        format!("scan {i} ").into_bytes().into_iter().cycle().take(len).collect::<Vec<u8>>()
    };
    // 40 files of 8 KiB: 320 KiB, more than the replica takes in one batch.
    for i in 0..40 {
        std::fs::write(docs.join(format!("doc-{i:02}.pdf")), content(i, 8 << 10)).unwrap();
    }
    std::fs::write(docs.join("large.pdf"), content(100, 100 << 10)).unwrap();
    std::fs::write(docs.join("huge.pdf"), content(101, 300 << 10)).unwrap();
    let follower = FollowerTask::start(config.clone()).await;
    for (f, b) in &batches {
        centre.upload(f, b).await;
    }
    let mut want = tree_digests(&centre.tree());
    let huge = format!("{fac}/scanned-documents/huge.pdf");
    assert!(want.remove(&huge).is_some());
    wait_replica_has(30, "every file but the one too large for the replica", &want, &replica.tree()).await;
    let entries = || async { replica_applied(&replica.url).await == Some(centre.applied()) };
    wait_until(10, "every journal entry acknowledged", entries).await;
    let label = kizuna_backup::follow::metrics::Metrics::label("r");
    let skipped = || async { follower.metrics.foreign_skipped.get_or_create(&label).get() == 1 };
    wait_until(10, "the file too large counted once", skipped).await;
    follower.stop().await;
    replica.stop().await;
    centre.stop().await;
}
