//! `kizuna audit verify` passes on an intact log and, after a manual edit to the database, fails
//! naming the event; `kizuna audit search` answers who viewed a patient.

use kizuna_audit::event::{ActiveParticipant, AuditSourceIdentification, ParticipantObject};
use kizuna_audit::lab_tsa::LabTsa;
use kizuna_audit::log::{AuditLog, LogSettings};
use kizuna_audit::{AuditEvent, EventId, EventKind};
use std::process::Command;

fn kizuna(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_kizuna")).args(args).output().expect("kizuna runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn verify_passes_then_names_the_event_edited_in_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let tsa = LabTsa::start(&dir.path().join("tsa")).await.unwrap();
    let key = dir.path().join("audit.key");
    let (code, out, err) = kizuna(&["audit", "keygen", "--out", key.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim().len(), 64, "public key in hex: {out}");
    let cfg = dir.path().join("audit.yaml");
    std::fs::write(
        &cfg,
        format!(
            "data_dir: {}/data\nsigning_key_file: {}\ntsa_url: {}\ntsa_ca_file: {}\n",
            dir.path().display(),
            key.display(),
            tsa.url,
            tsa.ca_cert.display()
        ),
    )
    .unwrap();
    let db_url = format!("sqlite://{}/data/audit.sqlite", dir.path().display());
    {
        let mut log = AuditLog::open(LogSettings {
            database_url: db_url.clone(),
            data_dir: dir.path().join("data"),
            signing_key: kizuna_audit::checkpoint::load_signing_key(&key).unwrap(),
            tsa_url: Some(tsa.url.clone()),
        })
        .await
        .unwrap();
        let events: Vec<AuditEvent> = (0..12)
            .map(|i| {
                AuditEvent::new(
                    EventKind::PatientRecordRead,
                    AuditSourceIdentification::new("viewer@centre", Some("F0401")),
                )
                .with_id(EventId::try_from(format!("demo-{i}")).unwrap())
                .participant(ActiveParticipant::requestor(&format!("pw-doc{}", i % 3)))
                .object(ParticipantObject::patient(if i % 2 == 0 {
                    "CHID-000042"
                } else {
                    "CHID-000043"
                }))
            })
            .collect();
        log.append(&events[..6]).await.unwrap();
        log.checkpoint().await.unwrap();
        log.append(&events[6..]).await.unwrap();
        log.checkpoint().await.unwrap();
        log.db.pool.close().await;
    }
    let (code, out, err) = kizuna(&["audit", "verify", "-c", cfg.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("OK: the audit log is intact") && out.contains("time stamps verified: 2"), "{out}");

    let (code, csv, err) =
        kizuna(&["audit", "search", "-c", cfg.to_str().unwrap(), "--patient", "CHID-000042"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(csv.lines().count(), 7, "header + 6 views: {csv}");
    assert!(csv.contains("pw-doc0") && csv.contains("pw-doc2"), "{csv}");

    // A manual edit: hide that pw-doc0 viewed CHID-000043 (event demo-3, seq 3).
    let db = kizuna_audit::db::Db::open(&db_url).await.unwrap();
    sqlx::query("UPDATE audit_event SET body = CAST(replace(CAST(body AS TEXT), 'pw-doc0', 'pw-doc2') AS BLOB), user_id = 'pw-doc2' WHERE event_id = 'demo-3'")
        .execute(&db.pool)
        .await
        .unwrap();
    db.pool.close().await;
    let (code, out, _) = kizuna(&["audit", "verify", "-c", cfg.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("FAIL: event seq 3 (id demo-3) was modified"), "{out}");
}
