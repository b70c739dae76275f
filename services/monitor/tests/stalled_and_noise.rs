//! A site that heart-beats but does not upload while its outbox fills is mailed (`stalled`); a
//! new site is not mailed as silent before its grace; disabling a site closes its incident
//! without a RECOVERED mail.

mod common;

use common::*;
use kizuna_monitor::{Monitor, alerts};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_site_that_heartbeats_but_never_uploads_while_its_outbox_grows_is_mailed() {
    let dir = tempfile::tempdir().unwrap();
    let Some(smtp) = start_smtp(dir.path()) else { return };
    let s = start_store(dir.path()).await;
    let now = jiff::Timestamp::now();
    // "stuck": added 7 h ago, heart-beats with 402 files waiting, no batch ever reached the store.
    let stuck = add_site(&s.store, "stuck", FACILITY).await;
    set_created(&s.store, "stuck", now - jiff::SignedDuration::from_hours(7)).await;
    heartbeat(&s.base, &stuck, 402).await;
    // "fresh": just added, never reported: within its grace, no mail.
    add_site(&s.store, "fresh", "0411000018").await;

    let cfg = monitor_config(&s.store_config, Some(smtp.port));
    let m = Monitor::open(cfg.clone()).await.unwrap();
    let r = m.check_now().await.unwrap();
    assert_eq!(r.opened, [("stuck".to_string(), "stalled".to_string())], "{r:?}");
    let mails = smtp.mails();
    assert_eq!(mails.len(), 1, "{mails:#?}");
    assert!(mails[0].contains("Subject: [kizuna] ALERT stuck: uploads stalled"), "{}", mails[0]);
    assert!(mails[0].contains("402 files wait in the agent's outbox"), "{}", mails[0]);
    let fresh = m.sites_now().await.unwrap().into_iter().find(|(f, _)| f.site.name == "fresh").unwrap().1;
    assert!(fresh.iter().any(|f| f.summary.starts_with("new site:") && f.rule.is_none()), "{fresh:?}");

    // The new site past its grace (7 h on, dead-man 100 h in these tests' config: use 6 h).
    let mut cfg6 = cfg.clone();
    cfg6.rules.dead_man.hours = 6.0;
    cfg6.rules.stalled.enabled = false;
    let later = now + jiff::SignedDuration::from_hours(7);
    let r = alerts::check(&m.db, &cfg6, &m.mailer, later).await.unwrap();
    assert!(r.opened.contains(&("fresh".to_string(), "dead_man".to_string())), "{r:?}");
    // The stalled rule switched off: its incident closes without a RECOVERED mail.
    assert!(r.closed.contains(&("stuck".to_string(), "stalled".to_string())), "{r:?}");
    let n = smtp.mails().len();

    // Disabling the silent site closes its incident without a RECOVERED mail.
    kizuna_store::sites::set_enabled(&m.db, "fresh", false).await.unwrap();
    let r = alerts::check(&m.db, &cfg6, &m.mailer, later).await.unwrap();
    assert_eq!(r.closed, [("fresh".to_string(), "dead_man".to_string())], "{r:?}");
    let mails = smtp.mails();
    assert!(!mails.iter().any(|m| m.contains("RECOVERED")), "{mails:#?}");
    assert_eq!(mails.len(), n);
    let inc = alerts::incidents(&m.db, Some("fresh"), 5).await.unwrap();
    assert!(inc[0].summary.contains("closed without recovery: site disabled"), "{inc:?}");
    s.stop().await;
}
