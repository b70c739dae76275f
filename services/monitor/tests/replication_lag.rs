//! The replication-lag rule against a Prometheus endpoint served by the test in the backup
//! follower's format (`kizuna_backup_lag_seconds{replica="…"}`): above the limit opens an incident,
//! back under it closes it, an unreadable endpoint alerts too.

mod common;

use std::sync::{Arc, Mutex};

use common::*;
use kizuna_monitor::{Monitor, alerts};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lag_above_the_limit_opens_and_below_closes_a_centre_incident() {
    let dir = tempfile::tempdir().unwrap();
    let s = start_store(dir.path()).await;
    let lag = Arc::new(Mutex::new(12.0f64));
    let served = lag.clone();
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let v = *served.lock().unwrap();
            async move {
                format!(
                    "# TYPE kizuna_backup_lag_seconds gauge\nkizuna_backup_lag_seconds{{replica=\"dr-1\"}} 3.0\nkizuna_backup_lag_seconds{{replica=\"dr-2\"}} {v}\n# EOF\n"
                )
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/metrics", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let mut cfg = monitor_config(&s.store_config, None);
    cfg.rules.replication_lag.enabled = true;
    cfg.rules.replication_lag.metrics_url = url;
    cfg.rules.replication_lag.max = 300.0;
    let m = Monitor::open(cfg.clone()).await.unwrap();
    assert!(m.check_now().await.unwrap().opened.is_empty());

    *lag.lock().unwrap() = 900.0;
    let r = m.check_now().await.unwrap();
    assert_eq!(r.opened, [(alerts::CENTRE.to_string(), "replication_lag".to_string())]);
    let inc = alerts::incidents(&m.db, None, 5).await.unwrap();
    assert!(inc[0].summary.contains("kizuna_backup_lag_seconds is 900, above the limit of 300"), "{inc:?}");
    assert!(m.check_now().await.unwrap().opened.is_empty(), "still the same incident");

    *lag.lock().unwrap() = 1.0;
    let r = m.check_now().await.unwrap();
    assert_eq!(r.closed, [(alerts::CENTRE.to_string(), "replication_lag".to_string())]);

    // A gauge that cannot be read is not "in step": it alerts.
    cfg.rules.replication_lag.metrics_url = "http://127.0.0.1:9/metrics".into();
    let r = alerts::check(&m.db, &cfg, &m.mailer, jiff::Timestamp::now()).await.unwrap();
    assert_eq!(r.opened.len(), 1);
    let inc = alerts::incidents(&m.db, None, 1).await.unwrap();
    assert!(inc[0].summary.contains("cannot read the replication lag gauge"), "{inc:?}");
    s.stop().await;
}
