//! What an operator's mistake must not do: a mistyped store data folder is refused (never created
//! as an empty store the screen would watch for ever), and alert checks that fail show on
//! `/healthz` instead of leaving it at 200 while no mail can go out.

mod common;

use std::time::Duration;

use common::*;
use kizuna_monitor::Monitor;

async fn refused(cfg: kizuna_monitor::Config) -> String {
    match Monitor::open(cfg).await {
        Ok(_) => panic!("the monitor opened a store that is not there"),
        Err(e) => e.to_string(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_data_folder_that_holds_no_store_is_refused_and_never_created() {
    let dir = tempfile::tempdir().unwrap();
    let store_yaml = dir.path().join("store.yaml");
    let cfg = monitor_config(&store_yaml, None);

    // A data_dir that does not exist (a typo): refused by name, nothing created.
    let typo = dir.path().join("typo-store");
    std::fs::write(&store_yaml, format!("data_dir: {}\n", typo.display())).unwrap();
    let e = refused(cfg.clone()).await;
    assert!(e.contains(&format!("store_config: {}", store_yaml.display())), "{e}");
    assert!(e.contains(&format!("data_dir: {} does not exist", typo.display())), "{e}");
    assert!(!typo.exists(), "the monitor created {}", typo.display());

    // A folder that exists but holds no store: refused, no empty IndexDB made in it.
    std::fs::create_dir(&typo).unwrap();
    let e = refused(cfg.clone()).await;
    assert!(e.contains("holds no store") && e.contains("index.sqlite"), "{e}");
    assert_eq!(std::fs::read_dir(&typo).unwrap().count(), 0, "the monitor wrote into {}", typo.display());

    // An explicit SQLite database_url naming a missing file: the same.
    let db = dir.path().join("nosuch/index.sqlite");
    std::fs::write(
        &store_yaml,
        format!("data_dir: {}\ndatabase_url: sqlite://{}\n", typo.display(), db.display()),
    )
    .unwrap();
    let e = refused(cfg.clone()).await;
    assert!(e.contains(&format!("database_url: {} does not exist", db.display())), "{e}");
    assert!(!db.parent().unwrap().exists());

    // The real store's folder opens.
    let s = start_store(dir.path()).await;
    let m = Monitor::open(monitor_config(&s.store_config, None)).await.unwrap();
    assert!(!m.check_now().await.unwrap().busy);
    s.stop().await;
}

async fn healthz(base: &str) -> (u16, String) {
    let r = reqwest::get(format!("{base}/healthz")).await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_answers_503_while_the_alert_checks_fail() {
    let dir = tempfile::tempdir().unwrap();
    let s = start_store(dir.path()).await;
    let mut cfg = monitor_config(&s.store_config, None);
    cfg.check_interval_secs = 1;
    let m = Monitor::open(cfg).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let running = serve_monitor(listener, m.clone());
    wait_for("the first check", 20, || async { healthz(&base).await == (200, "ok".into()) }).await;

    // The checks now fail (their IndexDB connection is gone): /healthz says so.
    m.db.pool.close().await;
    wait_for("/healthz to report the failing checks", 20, || async { healthz(&base).await.0 == 503 }).await;
    let (_, body) = healthz(&base).await;
    assert!(body.starts_with("alert checks failing since "), "{body}");
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let (status, later) = healthz(&base).await;
    assert_eq!(status, 503, "the checks go on (and keep failing): {later}");
    assert!(m.checks.lock().unwrap().failures >= 2, "{:?}", m.checks.lock().unwrap());
    assert!(m.checks.lock().unwrap().last_error.as_deref().is_some_and(|e| e.contains("IndexDB")));
    running.stop().await;
    s.stop().await;
}
