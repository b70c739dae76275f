//! The replication-lag gauges while the replica cannot be reached: they must keep growing from the
//! last acknowledged position against the store's watermark (the admin's `replication_lag` alert
//! reads them). They used to be set only after the replica had answered, so a cut-off backup
//! centre stayed at the lag it had before the outage.

mod centre;

use std::collections::BTreeSet;
use std::time::Duration;

use centre::*;

/// One gauge's value for replica `r` from the follower's `/metrics` text.
async fn gauge(metrics_url: &str, name: &str) -> f64 {
    let text = reqwest::get(metrics_url).await.unwrap().text().await.unwrap();
    let prefix = format!("{name}{{replica=\"r\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("{name} not on /metrics:\n{text}"))
        .trim()
        .parse()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn lag_gauges_keep_growing_while_the_replica_is_down() {
    let _ = tracing_subscriber::fmt().with_env_filter("kizuna_backup=info").with_test_writer().try_init();
    let (_corpus, batches, _) = corpus_batches(31, 1, 30, 4);
    let facilities: Vec<String> =
        batches.iter().map(|(f, _)| f.clone()).collect::<BTreeSet<_>>().into_iter().collect();
    let centre = Centre::start(&facilities).await;
    let third = batches.len() / 3;
    for (f, b) in &batches[..third] {
        centre.upload(f, b).await;
    }
    let work = tempfile::tempdir().unwrap();
    let replica = ReplicaServer::start(&work.path().join("r")).await;
    let config = follow_config(&centre, &work.path().join("state"), &[("r", replica.url.clone())]);
    let follower = FollowerTask::start(config).await;
    let acked = centre.applied();
    wait_until(60, "replica catches up", || async { replica_applied(&replica.url).await == Some(acked) })
        .await;
    let m = follower.metrics_url.clone();
    wait_until(10, "lag 0 once caught up", || async { gauge(&m, "kizuna_backup_lag_entries").await == 0.0 })
        .await;

    // The replica goes away; uploads go on and the follower's every request fails.
    replica.stop().await;
    for (f, b) in &batches[third..2 * third] {
        centre.upload(f, b).await;
    }
    let errors = || async { gauge(&m, "kizuna_backup_ship_errors_total").await };
    let e0 = errors().await;
    wait_until(20, "shipping fails", || async { errors().await >= e0 + 2.0 }).await;
    let first = (gauge(&m, "kizuna_backup_lag_entries").await, gauge(&m, "kizuna_backup_lag_seconds").await);
    assert!(first.0 > 0.0 && first.1 > 0.0, "lag while the replica is down: {first:?}");

    // More uploads while it is still down: both gauges grow, from the acknowledged position.
    for (f, b) in &batches[2 * third..] {
        centre.upload(f, b).await;
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let applied = centre.applied();
    let want = (applied - acked) as f64;
    wait_until(20, "lag_entries = store watermark - acknowledged position", || async {
        gauge(&m, "kizuna_backup_lag_entries").await == want
    })
    .await;
    assert!(want > first.0, "entries grew: {} then {want}", first.0);
    wait_until(10, "lag_seconds grows with time", || async {
        gauge(&m, "kizuna_backup_lag_seconds").await >= first.1 + 1.0
    })
    .await;
    assert_eq!(gauge(&m, "kizuna_backup_acked_seq").await, acked as f64);
    // Read straight from the registry too.
    let label = kizuna_backup::follow::metrics::Metrics::label("r");
    assert_eq!(follower.metrics.lag_entries.get_or_create(&label).get() as f64, want);

    follower.stop().await;
    centre.stop().await;
}
