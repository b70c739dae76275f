//! Alert mail to a real SMTP server (aiosmtpd) started by the test: content, de-duplication across
//! checks and across a restart, and the recovery mail.

mod common;

use common::*;
use kizuna_monitor::{Monitor, alerts};
use kizuna_wire::{DailyLog, Heartbeat, LogLine};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_mail_per_incident_deduplicated_across_restarts_and_one_recovery_mail() {
    let dir = tempfile::tempdir().unwrap();
    let Some(smtp) = start_smtp(dir.path()) else { return };
    let s = start_store(dir.path()).await;
    let token = add_site(&s.store, "clinic-1", FACILITY).await;

    // Uploads: one good file, one with a bad name, one whose PID-3 names another patient.
    let report = upload(
        &s.base,
        &token,
        vec![
            (format!("999/901/9999013/-/ADT-00/{NAME}"), sample()),
            ("999/901/9999013/-/ADT-00/notes.txt".into(), sample()),
            (
                "999/901/9999013/-/ADT-00/9999013_-_ADT-00_999999999999999_20111220224447340_-_1".into(),
                bad_sample(),
            ),
        ],
    )
    .await;
    let st: Vec<_> = report.results.iter().map(|r| format!("{:?}", r.status)).collect();
    assert_eq!(st, ["Stored", "Rejected", "Rejected"], "{report:?}");
    // A heartbeat, and yesterday's daily log with an ERROR line.
    let hb = Heartbeat {
        agent_version: "0.1.0".into(),
        queue_depth: 0,
        quarantined: 2,
        last_upload: None,
        quarantine: None,
        rerequests_done: vec![],
    };
    let client = reqwest::Client::new();
    let post = |path: &str, body: serde_json::Value| {
        client.post(format!("{}{path}", s.base)).bearer_auth(&token).json(&body).send()
    };
    assert!(
        post("/api/v1/heartbeat", serde_json::to_value(&hb).unwrap()).await.unwrap().status().is_success()
    );
    let yesterday = jiff::Zoned::now().date().yesterday().unwrap().to_string();
    let log = DailyLog {
        date: yesterday.clone(),
        files_uploaded: 1,
        files_quarantined: 0,
        upload_errors: 1,
        nsips_converted: 0,
        lines: vec![LogLine {
            time: format!("{yesterday}T03:00:00+09:00"),
            level: "ERROR".into(),
            message: "upload failed (attempt 1): store answered 403: facility_not_allowed".into(),
        }],
        truncated: false,
    };
    assert!(
        post("/api/v1/daily-log", serde_json::to_value(&log).unwrap()).await.unwrap().status().is_success()
    );
    // A second site, added 2 h ago, that never reported: the dead-man rule (1 h here; a new
    // site gets that long to start reporting).
    add_site(&s.store, "clinic-2", "0411000018").await;
    let two_hours_ago = (jiff::Timestamp::now() - jiff::SignedDuration::from_hours(2)).to_string();
    sqlx::query("UPDATE sites SET created_at = $1 WHERE name = 'clinic-2'")
        .bind(&two_hours_ago)
        .execute(&s.store.db.pool)
        .await
        .unwrap();

    let mut cfg = monitor_config(&s.store_config, Some(smtp.port));
    cfg.rules.dead_man.hours = 1.0;
    let m = Monitor::open(cfg.clone()).await.unwrap();
    // Two checks at once (the admin screen's and an operator's `kizuna admin check`): one mail
    // per incident all the same, and one open incident per finding.
    let other = Monitor::open(cfg.clone()).await.unwrap();
    let (r, r_other) = tokio::join!(m.check_now(), other.check_now());
    let (r, r_other) = (r.unwrap(), r_other.unwrap());
    drop(other);
    assert!(r.mail_errors.is_empty() && r_other.mail_errors.is_empty(), "{r:?} {r_other:?}");
    let mut opened = [r.opened.clone(), r_other.opened.clone()].concat();
    opened.sort();
    assert_eq!(
        opened,
        [
            ("clinic-1".to_string(), "agent_errors".to_string()),
            ("clinic-1".to_string(), "rejects".to_string()),
            ("clinic-2".to_string(), "dead_man".to_string())
        ]
    );
    let mails = smtp.mails();
    assert_eq!(mails.len(), 3, "{mails:#?}");
    let open: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM alert_incidents WHERE closed_at IS NULL")
        .fetch_one(&s.store.db.pool)
        .await
        .unwrap();
    assert_eq!(open, 3, "one open incident per finding");
    let find = |needle: &str| {
        mails
            .iter()
            .find(|m| m.contains(needle))
            .unwrap_or_else(|| panic!("no mail with {needle:?}: {mails:#?}"))
            .clone()
    };

    let rejects = find("Subject: [kizuna] ALERT clinic-1: files rejected");
    for want in [
        "To: admin@centre.example, oncall@centre.example",
        "Site: clinic-1",
        "2 files rejected in the last 24 h",
        "999/901/9999013/-/ADT-00/notes.txt (rejected by the store: bad-file-name)",
        "20111220224447340_-_1 (rejected by the store: patient-id-mismatch)",
        "bad-file-name (file-name violation)",
        "patient-id-mismatch (message content violation)",
        "Site page: http://127.0.0.1:8441/sites/clinic-1",
    ] {
        assert!(rejects.contains(want), "{want:?} missing in:\n{rejects}");
    }
    let errors = find("Subject: [kizuna] ALERT clinic-1: the agent's log has errors");
    assert!(errors.contains(&format!("the agent's log of {yesterday} has 1 ERROR lines")), "{errors}");
    assert!(errors.contains("store answered 403: facility_not_allowed"), "{errors}");
    let dead = find("Subject: [kizuna] ALERT clinic-2: no upload and no heartbeat (dead-man)");
    assert!(dead.contains("no upload and no heartbeat received yet"), "{dead}");
    assert!(dead.contains("http://127.0.0.1:8441/sites/clinic-2"), "{dead}");

    // Nothing changed: no more mail, also after a restart of the monitor.
    let r = m.check_now().await.unwrap();
    assert!(r.opened.is_empty() && r.mails_sent == 0, "{r:?}");
    drop(m);
    let m = Monitor::open(cfg.clone()).await.unwrap();
    let r = m.check_now().await.unwrap();
    assert!(r.opened.is_empty() && r.mails_sent == 0, "{r:?}");
    assert_eq!(smtp.mails().len(), 3);

    // clinic-2 sends a heartbeat (with its own token): the dead-man incident recovers, one mail.
    let token2 = kizuna_store::sites::rotate_token(&s.store.db, "clinic-2").await.unwrap();
    let r2 = client
        .post(format!("{}/api/v1/heartbeat", s.base))
        .bearer_auth(&token2)
        .json(&hb)
        .send()
        .await
        .unwrap();
    assert!(r2.status().is_success());
    let r = m.check_now().await.unwrap();
    assert_eq!(r.closed, [("clinic-2".to_string(), "dead_man".to_string())], "{r:?}");
    let mails = smtp.mails();
    assert_eq!(mails.len(), 4);
    let rec =
        mails.iter().find(|m| m.contains("Subject: [kizuna] RECOVERED clinic-2")).expect("recovery mail");
    assert!(rec.contains("no upload and no heartbeat (dead-man)"), "{rec}");

    // 25 h later the rejects are out of the 24 h window: that incident recovers (one mail), and a
    // second check sends nothing more.
    let later = jiff::Timestamp::now() + jiff::SignedDuration::from_hours(25);
    let mut cfg2 = cfg.clone();
    cfg2.rules.dead_man.hours = 100.0;
    let r = alerts::check(&m.db, &cfg2, &m.mailer, later).await.unwrap();
    assert!(r.closed.contains(&("clinic-1".to_string(), "rejects".to_string())), "{r:?}");
    let r = alerts::check(&m.db, &cfg2, &m.mailer, later).await.unwrap();
    assert_eq!(r.mails_sent, 0, "{r:?}");
    let mails = smtp.mails();
    let rec: Vec<_> =
        mails.iter().filter(|m| m.contains("Subject: [kizuna] RECOVERED clinic-1: files rejected")).collect();
    assert_eq!(rec.len(), 1, "{mails:#?}");
    assert!(rec[0].contains("2 files rejected"), "{}", rec[0]);
    // The incidents are on record for the admin screen.
    let all = alerts::incidents(&m.db, None, 10).await.unwrap();
    assert_eq!(all.len(), 3);
    s.stop().await;
}
