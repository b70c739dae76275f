//! Alert mail that cannot be delivered: one refused recipient (`550` at `RCPT TO`) must not keep
//! the mail from the others, the refused one is retried, and mail that does not go out is an
//! operator-visible failure (`/healthz` 503 with the reason, a metric), also when the relay is down.

mod common;

use common::*;
use kizuna_monitor::Monitor;

async fn get(url: &str) -> (u16, String) {
    let r = reqwest::get(url).await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_recipient_or_a_relay_down_does_not_silence_alert_mail() {
    let dir = tempfile::tempdir().unwrap();
    let Some(smtp) = start_smtp_refusing(dir.path(), &["gone@centre.example"], None) else { return };
    let s = start_store(dir.path()).await;
    let token = add_site(&s.store, "clinic-1", FACILITY).await;
    // A rejected file: the rejects rule fires at the first check.
    upload(&s.base, &token, vec![("999/901/9999013/-/ADT-00/notes.txt".into(), sample())]).await;

    let mut cfg = monitor_config(&s.store_config, Some(smtp.port));
    cfg.mail.to = vec!["ops@centre.example".into(), "gone@centre.example".into()];
    cfg.check_interval_secs = 1;
    let m = Monitor::open(cfg.clone()).await.unwrap();

    // The valid recipient gets the alert although the relay refuses the other one.
    let r = m.check_now().await.unwrap();
    assert_eq!(r.opened, [("clinic-1".to_string(), "rejects".to_string())], "{r:?}");
    let mails = smtp.mails();
    assert_eq!(mails.len(), 1, "the alert reached nobody: {r:?}");
    assert!(mails[0].contains("Subject: [kizuna] ALERT clinic-1: files rejected"), "{}", mails[0]);
    assert!(r.mail_errors.iter().any(|e| e.contains("gone@centre.example") && e.contains("550")), "{r:?}");

    // Served: /healthz says the mail is failing and why; /metrics counts it.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let running = serve_monitor(listener, m.clone());
    wait_for("/healthz to report the refused recipient", 20, || async {
        let (status, body) = get(&format!("{base}/healthz")).await;
        status == 503 && body.contains("gone@centre.example") && body.contains("550")
    })
    .await;
    let (status, metrics) = get(&format!("{base}/metrics")).await;
    assert_eq!(status, 200, "{metrics}");
    let failures = metrics
        .lines()
        .find_map(|l| l.strip_prefix("kizuna_monitor_mail_failures_total "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .unwrap_or_else(|| panic!("no mail failure counter in:\n{metrics}"));
    assert!(failures >= 1.0, "{metrics}");
    assert!(metrics.contains("kizuna_monitor_mail_ok 0"), "{metrics}");

    // The relay goes down: still 503, naming the relay.
    let port = smtp.port;
    drop(smtp);
    wait_for("/healthz to report the relay down", 20, || async {
        let (status, body) = get(&format!("{base}/healthz")).await;
        status == 503 && body.contains(&format!("127.0.0.1:{port}"))
    })
    .await;

    // It comes back accepting everyone: the refused recipient gets the alert it missed (once),
    // and /healthz is ok again.
    let smtp = start_smtp_refusing(dir.path(), &[], Some(port)).unwrap();
    wait_for("/healthz ok once the mail goes out", 30, || async {
        get(&format!("{base}/healthz")).await == (200, "ok".into())
    })
    .await;
    let mails = smtp.mails();
    assert_eq!(mails.len(), 2, "{mails:#?}");
    assert!(mails[1].contains("Subject: [kizuna] ALERT clinic-1: files rejected"), "{}", mails[1]);
    let (_, metrics) = get(&format!("{base}/metrics")).await;
    assert!(metrics.contains("kizuna_monitor_mail_ok 1"), "{metrics}");
    running.stop().await;
    s.stop().await;
}
