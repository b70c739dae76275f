//! `kizuna audit lab-tsa --dir D` (`LabTsa::start_on`): a restart reuses the CA and TSA certificate
//! in D, so checkpoints stamped by an earlier run still verify; a relative D answers requests.

use ed25519_dalek::SigningKey;
use kizuna_audit::event::{ActiveParticipant, AuditSourceIdentification};
use kizuna_audit::lab_tsa::LabTsa;
use kizuna_audit::log::{AuditLog, LogSettings};
use kizuna_audit::tsa::{self, TsaTrust};
use kizuna_audit::verify::{VerifyOptions, verify};
use kizuna_audit::{AuditEvent, EventKind};
use std::path::Path;

fn login() -> AuditEvent {
    AuditEvent::new(EventKind::Login, AuditSourceIdentification::new("auth@centre", None))
        .participant(ActiveParticipant::requestor("pw-1"))
}

/// Append `n` events to the log in `dir` and write a checkpoint stamped by `tsa_url`.
async fn append_and_stamp(dir: &Path, key: &SigningKey, tsa_url: &str, n: usize) {
    let mut log = AuditLog::open(LogSettings {
        database_url: format!("sqlite://{}", dir.join("audit.sqlite").display()),
        data_dir: dir.join("data"),
        signing_key: key.clone(),
        tsa_url: Some(tsa_url.into()),
    })
    .await
    .unwrap();
    log.append(&(0..n).map(|_| login()).collect::<Vec<_>>()).await.unwrap();
    assert!(log.checkpoint().await.unwrap().tst.is_some(), "the lab TSA answered");
    log.db.pool.close().await;
}

#[tokio::test]
async fn a_restarted_lab_tsa_keeps_its_ca_so_checkpoints_stamped_before_still_verify() {
    let dir = tempfile::tempdir().unwrap();
    let tsa_dir = dir.path().join("tsa");
    let key = SigningKey::from_bytes(&rand::random::<[u8; 32]>());
    let first = LabTsa::start_on(&tsa_dir, "127.0.0.1:0").await.unwrap();
    let ca = std::fs::read(&first.ca_cert).unwrap();
    append_and_stamp(dir.path(), &key, &first.url, 3).await;
    drop(first);

    // The demo's hint: `kizuna audit lab-tsa --dir <same folder>` serves again.
    let second = LabTsa::start_on(&tsa_dir, "127.0.0.1:0").await.unwrap();
    assert!(std::fs::read(&second.ca_cert).unwrap() == ca, "the CA was made again");
    append_and_stamp(dir.path(), &key, &second.url, 2).await;

    let rep = verify(&VerifyOptions {
        database_url: format!("sqlite://{}", dir.path().join("audit.sqlite").display()),
        data_dir: dir.path().join("data"),
        public_key: key.verifying_key(),
        tsa_trust: Some(TsaTrust::from_pem_file(&second.ca_cert).unwrap()),
        max_inclusion_proofs: 100,
    })
    .await
    .unwrap();
    let msgs: Vec<String> = rep.findings.iter().map(|f| f.to_string()).collect();
    assert!(rep.ok(), "{msgs:?}");
    assert_eq!(rep.timestamps_verified, 2);

    // A folder holding only part of the set is refused instead of getting a new CA.
    std::fs::remove_file(tsa_dir.join("tsa.key")).unwrap();
    drop(second);
    let e = LabTsa::start_on(&tsa_dir, "127.0.0.1:0").await.err().unwrap().to_string();
    assert!(e.contains(&tsa_dir.display().to_string()) && e.contains("tsa.key"), "{e}");
    assert!(std::fs::read(tsa_dir.join("ca.crt")).unwrap() == ca, "the CA was replaced");
}

#[tokio::test]
async fn a_lab_tsa_given_a_relative_dir_answers_time_stamp_requests() {
    // The only test here that depends on the working directory (the other uses absolute paths).
    let dir = tempfile::tempdir().unwrap();
    std::env::set_current_dir(dir.path()).unwrap();
    let tsa = LabTsa::start_on(Path::new("kd/audit/tsa"), "127.0.0.1:0").await.unwrap();
    let url = tsa.url.clone();
    let token =
        tokio::task::spawn_blocking(move || tsa::request_token(&url, b"checkpoint")).await.unwrap().unwrap();
    let trust = TsaTrust::from_pem_file(&tsa.ca_cert).unwrap();
    tsa::verify_token(&token, b"checkpoint", &trust).unwrap();
    assert!(dir.path().join("kd/audit/tsa/ca.crt").exists());
}
