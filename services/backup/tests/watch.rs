//! Files written into the primary's tree by others than the store reach the replicas through the
//! watcher; with a queue of one event almost every event overflows, and the bounded rescans still
//! find every file, changed file and removal.

mod centre;

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
