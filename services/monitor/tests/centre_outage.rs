//! A centre-side outage is one centre incident, not one dead-man mail per site: many sites going
//! silent at once opens one `(centre)` incident, and a store that is down is noticed within a
//! check (its `/healthz`), shown on `/healthz` and the admin screen, and mailed once.

mod common;

use common::*;
use kizuna_monitor::{Monitor, alerts};

async fn get(url: &str) -> (u16, String) {
    let r = reqwest::get(url).await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_centre_outage_is_one_centre_alert_not_one_mail_per_site() {
    let dir = tempfile::tempdir().unwrap();
    let Some(smtp) = start_smtp(dir.path()) else { return };
    let s = start_store(dir.path()).await;
    let facilities = ["0411000017", "0411000018", "0411000019", "0411000020"];
    for (i, f) in facilities.iter().enumerate() {
        let token = add_site(&s.store, &format!("clinic-{i}"), f).await;
        heartbeat(&s.base, &token, 0).await;
    }
    let mut cfg = monitor_config(&s.store_config, Some(smtp.port));
    cfg.rules.dead_man.hours = 6.0;
    cfg.check_interval_secs = 1;
    let m = Monitor::open(cfg.clone()).await.unwrap();
    let now = jiff::Timestamp::now();
    assert!(m.check_now().await.unwrap().opened.is_empty());

    // Every site silent at once (7 h on): one centre incident naming them, not four mails.
    let later = now + jiff::SignedDuration::from_hours(7);
    let r = alerts::check(&m.db, &cfg, &m.mailer, later).await.unwrap();
    assert_eq!(r.opened, [(alerts::CENTRE.to_string(), "mass_silence".to_string())], "{r:?}");
    let mails = smtp.mails();
    assert_eq!(mails.len(), 1, "{mails:#?}");
    assert!(
        mails[0].contains("Subject: [kizuna] ALERT (centre): many sites went silent at once"),
        "{}",
        mails[0]
    );
    assert!(mails[0].contains("4 of 4 enabled sites went silent at once"), "{}", mails[0]);
    assert!(mails[0].contains("  - clinic-3"), "{}", mails[0]);
    // Still so at the next check: nothing more.
    let r = alerts::check(&m.db, &cfg, &m.mailer, later).await.unwrap();
    assert!(r.opened.is_empty() && r.mails_sent == 0, "{r:?}");
    // Back (the sites' heartbeats are fresh at `now`): one recovery mail, no per-site mail.
    let r = alerts::check(&m.db, &cfg, &m.mailer, now).await.unwrap();
    assert_eq!(r.closed, [(alerts::CENTRE.to_string(), "mass_silence".to_string())], "{r:?}");
    assert_eq!(smtp.mails().len(), 2);

    // The store goes down: the screen's checks notice it at once (one centre mail), /healthz and
    // the overview say so.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let running = serve_monitor(listener, m.clone());
    wait_for("a check with the store up", 20, || async { get(&format!("{base}/healthz")).await.0 == 200 })
        .await;
    let db = s.store.db.clone();
    s.stop().await;
    wait_for("/healthz to say the store is down", 20, || async {
        let (status, body) = get(&format!("{base}/healthz")).await;
        status == 503 && body.contains("store down since") && body.contains("/healthz")
    })
    .await;
    let (status, page) = get(&format!("{base}/")).await;
    assert_eq!(status, 200);
    assert!(page.contains("centre-problems") && page.contains("store down since"), "{page}");
    let mails = smtp.mails();
    assert_eq!(mails.len(), 3, "{mails:#?}");
    assert!(
        mails[2].contains("Subject: [kizuna] ALERT (centre): the store is down or unhealthy"),
        "{}",
        mails[2]
    );
    running.stop().await;

    // While it is down, 7 h without heartbeats send no per-site dead-man mail (nor a mass one).
    let r = alerts::check(&db, &cfg, &m.mailer, later).await.unwrap();
    assert!(r.store_error.is_some(), "{r:?}");
    assert!(!r.problems().is_empty(), "kizuna admin check exits 1: {r:?}");
    assert!(r.opened.is_empty() && r.mails_sent == 0, "{r:?}");
    assert_eq!(smtp.mails().len(), 3);
}
