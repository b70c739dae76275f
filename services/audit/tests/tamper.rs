//! The log detects events modified, deleted or reordered in the database or on disk, naming them;
//! checkpoints carry real RFC 3161 tokens from `openssl ts` that both Rust and `openssl ts -verify` accept.

use ed25519_dalek::SigningKey;
use kizuna_audit::event::{ActiveParticipant, AuditSourceIdentification, ParticipantObject};
use kizuna_audit::lab_tsa::LabTsa;
use kizuna_audit::log::{AuditLog, LogSettings};
use kizuna_audit::tsa::TsaTrust;
use kizuna_audit::verify::{Finding, VerifyOptions, VerifyReport, verify};
use kizuna_audit::{AuditEvent, EventId, EventKind};
use std::path::Path;

fn event(i: u64) -> AuditEvent {
    let kind = if i.is_multiple_of(5) { EventKind::Query } else { EventKind::PatientRecordRead };
    let mut e = AuditEvent::new(
        kind,
        AuditSourceIdentification::new("viewer@centre", Some(&format!("F{:04}", i % 3))),
    )
    .with_id(EventId::try_from(format!("ev-{i:04}")).unwrap())
    .at(jiff::Timestamp::from_second(1_790_000_000 + i as i64 * 60).unwrap())
    .participant(ActiveParticipant::requestor(&format!("pw-user{}", i % 4)))
    .object(ParticipantObject::patient(&format!("CHID-{:06}", i % 10)));
    if kind == EventKind::Query {
        e = e.object(ParticipantObject::query(&format!("name=sato&i={i}")));
    }
    e
}

struct Fixture {
    _dir: tempfile::TempDir,
    _tsa: LabTsa,
    db_url: String,
    data_dir: std::path::PathBuf,
    key: SigningKey,
    tsa_ca: std::path::PathBuf,
    tsa_cert: std::path::PathBuf,
}

/// A new SQLite log under `dir` with a fresh signing key, time-stamped by `tsa_url` if given;
/// returns it, its database URL, data folder and key.
async fn open_log(
    dir: &std::path::Path,
    tsa_url: Option<String>,
) -> (AuditLog, String, std::path::PathBuf, SigningKey) {
    let key = SigningKey::from_bytes(&rand::random::<[u8; 32]>());
    let db_url = format!("sqlite://{}", dir.join("audit.sqlite").display());
    let data_dir = dir.join("data");
    let log = AuditLog::open(LogSettings {
        database_url: db_url.clone(),
        data_dir: data_dir.clone(),
        signing_key: key.clone(),
        tsa_url,
    })
    .await
    .unwrap();
    (log, db_url, data_dir, key)
}

/// Verifies the log at `db_url` / `data_dir` against `key`, trusting `tsa_trust`.
async fn verify_log(
    db_url: &str,
    data_dir: &std::path::Path,
    key: &SigningKey,
    tsa_trust: Option<TsaTrust>,
    max_inclusion_proofs: u64,
) -> VerifyReport {
    verify(&VerifyOptions {
        database_url: db_url.to_owned(),
        data_dir: data_dir.to_owned(),
        public_key: key.verifying_key(),
        tsa_trust,
        max_inclusion_proofs,
    })
    .await
    .unwrap()
}

/// A log of 50 events with checkpoints at 20 and 50, stamped by a real `openssl ts` TSA.
async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let tsa = LabTsa::start(&dir.path().join("tsa")).await.unwrap();
    let (mut log, db_url, data_dir, key) = open_log(dir.path(), Some(tsa.url.clone())).await;
    let first: Vec<_> = (0..20).map(event).collect();
    log.append(&first).await.unwrap();
    let cp = log.checkpoint().await.unwrap();
    assert!(cp.tst.is_some(), "the TSA answered");
    let rest: Vec<_> = (20..50).map(event).collect();
    log.append(&rest).await.unwrap();
    log.checkpoint().await.unwrap();
    log.db.pool.close().await;
    Fixture {
        tsa_ca: tsa.ca_cert.clone(),
        tsa_cert: tsa.tsa_cert.clone(),
        _tsa: tsa,
        _dir: dir,
        db_url,
        data_dir,
        key,
    }
}

impl Fixture {
    async fn verify(&self) -> VerifyReport {
        self.verify_with(Some(TsaTrust::from_pem_file(&self.tsa_ca).unwrap()), 1000).await
    }
    async fn verify_with(&self, tsa_trust: Option<TsaTrust>, max_inclusion_proofs: u64) -> VerifyReport {
        verify_log(&self.db_url, &self.data_dir, &self.key, tsa_trust, max_inclusion_proofs).await
    }
    async fn sql(&self, sql: &str) {
        let db = kizuna_audit::db::Db::open(&self.db_url).await.unwrap();
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_string())).execute(&db.pool).await.unwrap();
        db.pool.close().await;
    }
}

fn messages(r: &VerifyReport) -> String {
    r.findings.iter().map(|f| f.to_string()).collect::<Vec<_>>().join("\n")
}

#[tokio::test]
async fn untouched_log_verifies_with_proofs_and_time_stamps() {
    let f = fixture().await;
    let r = f.verify().await;
    assert!(r.ok(), "{}", messages(&r));
    assert_eq!(r.events, 50);
    assert_eq!(r.checkpoints, 2);
    assert_eq!(r.timestamps_verified, 2);
    assert_eq!(r.consistency_proofs, 1);
    assert_eq!(r.inclusion_proofs, 50);
    assert_eq!(r.uncovered_events, 0);
}

#[tokio::test]
async fn openssl_ts_verify_accepts_the_checkpoint_tokens() {
    let f = fixture().await;
    for cp in kizuna_audit::log::read_disk_checkpoints(&f.data_dir).unwrap() {
        let d = f.data_dir.join(format!("cp-{}", cp.tree_size));
        std::fs::write(d.with_extension("data"), cp.stamped_bytes()).unwrap();
        std::fs::write(d.with_extension("tst"), cp.tst.as_ref().unwrap()).unwrap();
        let ok = |data: &Path| {
            std::process::Command::new("openssl")
                .args(["ts", "-verify", "-token_in", "-in"])
                .arg(d.with_extension("tst"))
                .arg("-data")
                .arg(data)
                .arg("-CAfile")
                .arg(&f.tsa_ca)
                .arg("-untrusted")
                .arg(&f.tsa_cert)
                .output()
                .unwrap()
        };
        let out = ok(&d.with_extension("data"));
        assert!(out.status.success(), "openssl ts -verify: {}", String::from_utf8_lossy(&out.stderr));
        // And openssl rejects the token for any other checkpoint text.
        let mut other = cp.stamped_bytes();
        other[30] ^= 1;
        std::fs::write(d.with_extension("other"), other).unwrap();
        assert!(!ok(&d.with_extension("other")).status.success());
    }
}

#[tokio::test]
async fn editing_an_event_body_in_the_database_is_detected_naming_it() {
    let f = fixture().await;
    f.sql("UPDATE audit_event SET body = CAST(replace(CAST(body AS TEXT), 'CHID-000007', 'CHID-000008') AS BLOB), \
           patient_id = 'CHID-000008' WHERE seq = 7")
        .await;
    let r = f.verify().await;
    assert!(!r.ok());
    assert!(
        r.findings
            .iter()
            .any(|x| matches!(x, Finding::EventModified { seq: 7, event_id, .. } if event_id == "ev-0007")),
        "{}",
        messages(&r)
    );
    assert!(messages(&r).contains("event seq 7 (id ev-0007) was modified"), "{}", messages(&r));
}

#[tokio::test]
async fn rewriting_a_search_column_is_detected_naming_the_event_and_column() {
    let f = fixture().await;
    f.sql("UPDATE audit_event SET user_id = 'pw-someone-else' WHERE seq = 3").await;
    let r = f.verify().await;
    assert_eq!(
        r.findings,
        vec![Finding::ColumnsTampered {
            seq: 3,
            event_id: "ev-0003".into(),
            columns: vec!["user_id".into()]
        }]
    );
}

#[tokio::test]
async fn deleting_an_event_row_is_detected_naming_its_sequence_number() {
    let f = fixture().await;
    f.sql("DELETE FROM audit_event WHERE seq = 12").await;
    let r = f.verify().await;
    assert!(r.findings.contains(&Finding::EventDeleted { seq: 12 }), "{}", messages(&r));
}

#[tokio::test]
async fn deleting_the_newest_events_is_detected() {
    let f = fixture().await;
    f.sql("DELETE FROM audit_event WHERE seq >= 48").await;
    let r = f.verify().await;
    assert!(r.findings.contains(&Finding::EventDeleted { seq: 48 }), "{}", messages(&r));
    assert!(r.findings.contains(&Finding::EventDeleted { seq: 49 }), "{}", messages(&r));
    assert!(
        r.findings.contains(&Finding::CheckpointBeyondLog { tree_size: 50, log_size: 48 }),
        "{}",
        messages(&r)
    );
    // and the service refuses to start on such a database
    let err = AuditLog::open(LogSettings {
        database_url: f.db_url.clone(),
        data_dir: f.data_dir.clone(),
        signing_key: f.key.clone(),
        tsa_url: None,
    })
    .await
    .err()
    .expect("open must refuse");
    assert!(err.to_string().contains("deleted"), "{err}");
}

#[tokio::test]
async fn reordering_events_is_detected_naming_both() {
    let f = fixture().await;
    f.sql(
        "UPDATE audit_event SET seq = -1 WHERE seq = 5; UPDATE audit_event SET seq = 5 WHERE seq = 6; \
           UPDATE audit_event SET seq = 6 WHERE seq = -1;",
    )
    .await;
    let r = f.verify().await;
    assert!(
        r.findings.contains(&Finding::EventReordered { seq: 5, event_id: "ev-0006".into(), original_seq: 6 }),
        "{}",
        messages(&r)
    );
    assert!(
        r.findings.contains(&Finding::EventReordered { seq: 6, event_id: "ev-0005".into(), original_seq: 5 }),
        "{}",
        messages(&r)
    );
}

#[tokio::test]
async fn editing_a_leaf_on_disk_is_detected_naming_the_event() {
    let f = fixture().await;
    let p = kizuna_audit::log::leaves_path(&f.data_dir);
    let mut b = std::fs::read(&p).unwrap();
    b[9 * 32 + 4] ^= 0x40;
    std::fs::write(&p, b).unwrap();
    let r = f.verify().await;
    assert!(
        r.findings.contains(&Finding::DiskLeafModified { seq: 9, event_id: "ev-0009".into() }),
        "{}",
        messages(&r)
    );
}

#[tokio::test]
async fn a_consistent_rewrite_of_database_and_disk_breaks_the_signed_checkpoints() {
    let f = fixture().await;
    // The attacker edits event 25 and recomputes its leaf on disk too.
    f.sql(
        "UPDATE audit_event SET body = CAST(replace(CAST(body AS TEXT), 'pw-user1', 'pw-user2') AS BLOB), \
           user_id = 'pw-user2' WHERE seq = 25",
    )
    .await;
    let db = kizuna_audit::db::Db::open(&f.db_url).await.unwrap();
    let body: Vec<u8> = sqlx::Row::get(
        &sqlx::query("SELECT body FROM audit_event WHERE seq = 25").fetch_one(&db.pool).await.unwrap(),
        "body",
    );
    db.pool.close().await;
    let p = kizuna_audit::log::leaves_path(&f.data_dir);
    let mut b = std::fs::read(&p).unwrap();
    b[25 * 32..26 * 32].copy_from_slice(&kizuna_audit::merkle::leaf_hash(&body));
    std::fs::write(&p, b).unwrap();
    let r = f.verify().await;
    assert!(
        r.findings.contains(&Finding::CheckpointRootMismatch {
            tree_size: 50,
            which: "database",
            first_suspect_seq: 20
        }),
        "{}",
        messages(&r)
    );
    assert!(messages(&r).contains("seq 20..49"), "{}", messages(&r));
}

#[tokio::test]
async fn a_forged_checkpoint_is_rejected() {
    let f = fixture().await;
    f.sql("UPDATE audit_checkpoint SET root_hash = randomblob(32) WHERE tree_size = 20").await;
    let r = f.verify().await;
    assert!(r.findings.contains(&Finding::CheckpointSignatureInvalid { tree_size: 20 }), "{}", messages(&r));
}

#[tokio::test]
async fn retried_events_are_stored_once() {
    let f = fixture().await;
    let mut log = AuditLog::open(LogSettings {
        database_url: f.db_url.clone(),
        data_dir: f.data_dir.clone(),
        signing_key: f.key.clone(),
        tsa_url: None,
    })
    .await
    .unwrap();
    let out = log.append(&[event(3), event(50), event(50)]).await.unwrap();
    assert!(out[0].duplicate && out[0].seq == 3);
    assert!(!out[1].duplicate && out[1].seq == 50);
    assert!(out[2].duplicate && out[2].seq == 50);
    assert_eq!(log.size(), 51);
}

#[tokio::test]
async fn a_time_stamp_from_an_untrusted_tsa_is_rejected() {
    let f = fixture().await;
    let other = tempfile::tempdir().unwrap();
    kizuna_audit::lab_tsa::make_tsa_files(other.path()).unwrap();
    let r = f.verify_with(Some(TsaTrust::from_pem_file(&other.path().join("ca.crt")).unwrap()), 10).await;
    assert!(
        r.findings.iter().any(|x| matches!(x, Finding::TimeStampInvalid { tree_size: 20, reason } if reason.contains("not a trusted TSA"))),
        "{}",
        messages(&r)
    );
}

#[tokio::test]
async fn a_centre_without_a_tsa_verifies_and_a_trusted_tsa_makes_stamps_required() {
    // No TSA configured (the centre image's default): unstamped checkpoints are counted, not
    // findings, and the log verifies.
    let dir = tempfile::tempdir().unwrap();
    let (mut log, db_url, data_dir, key) = open_log(dir.path(), None).await;
    log.append(&(0..20).map(event).collect::<Vec<_>>()).await.unwrap();
    assert!(log.checkpoint().await.unwrap().tst.is_none());
    log.db.pool.close().await;
    let r = verify_log(&db_url, &data_dir, &key, None, 1000).await;
    assert!(r.ok(), "{}", messages(&r));
    assert_eq!((r.unstamped, r.timestamps_verified), (1, 0));
    // Once a TSA is trusted, the same unstamped checkpoint is a finding.
    let f = fixture().await;
    let r =
        verify_log(&db_url, &data_dir, &key, Some(TsaTrust::from_pem_file(&f.tsa_ca).unwrap()), 1000).await;
    assert!(messages(&r).contains("checkpoint 20: no RFC 3161 time stamp"), "{}", messages(&r));
    // And a stamped checkpoint cannot be passed off as checked when no TSA is trusted.
    let stamped = f.verify_with(None, 1000).await;
    assert!(!stamped.ok(), "stamped checkpoints verified without a trusted TSA");
}

#[tokio::test]
async fn a_checkpoint_left_only_in_the_database_by_a_crash_is_copied_to_disk_at_open() {
    let f = fixture().await;
    // A crash after the database insert of checkpoint 50, before its disk copy was written.
    let copy = kizuna_audit::log::checkpoints_dir(&f.data_dir).join(format!("{:020}.json", 50));
    std::fs::remove_file(&copy).unwrap();
    let log = AuditLog::open(LogSettings {
        database_url: f.db_url.clone(),
        data_dir: f.data_dir.clone(),
        signing_key: f.key.clone(),
        tsa_url: None,
    })
    .await
    .unwrap();
    log.db.pool.close().await;
    assert!(copy.exists(), "the disk copy was written again");
    let r = f.verify().await;
    assert!(r.ok(), "{}", messages(&r));
    assert_eq!(r.checkpoints, 2);
    assert_eq!(r.timestamps_verified, 2);
}

/// The mirror write after a committed append fails (here leaves.bin is briefly a folder; a full
/// disk alike): the events are in the database and the tree. The next append writes the missing
/// leaves at their place, so the mirror stays the database's leaves in order, and the log
/// verifies and reopens. Before, the next append's leaves landed where the missing ones belonged.
#[tokio::test]
async fn a_mirror_write_that_fails_after_the_commit_is_made_good_by_the_next_append() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, db_url, data_dir, key) = open_log(dir.path(), None).await;
    let events: Vec<AuditEvent> = (0..30).map(event).collect();
    log.append(&events[..10]).await.unwrap();
    let leaves = data_dir.join("leaves.bin");
    let away = data_dir.join("leaves.away");
    std::fs::rename(&leaves, &away).unwrap();
    std::fs::create_dir(&leaves).unwrap();
    assert!(log.append(&events[10..20]).await.is_err(), "the mirror write must fail");
    std::fs::remove_dir(&leaves).unwrap();
    std::fs::rename(&away, &leaves).unwrap();
    log.append(&events[20..]).await.unwrap();
    log.checkpoint().await.unwrap();
    let root = log.tree().root();
    assert_eq!(std::fs::metadata(&leaves).unwrap().len(), 30 * 32);
    drop(log);
    let r = verify_log(&db_url, &data_dir, &key, None, 30).await;
    assert!(r.ok(), "{}", messages(&r));
    let log = reopen(&db_url, &data_dir, &key).await;
    assert_eq!((log.size(), log.tree().root()), (30, root));
}

/// An append torn inside a leaf (a crash or a full disk after the database commit) leaves a
/// mirror whose length is no multiple of 32: open cuts the partial leaf and catches up.
#[tokio::test]
async fn a_leaf_torn_after_the_commit_is_cut_and_caught_up_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, db_url, data_dir, key) = open_log(dir.path(), None).await;
    let events: Vec<AuditEvent> = (0..12).map(event).collect();
    log.append(&events).await.unwrap();
    let root = log.tree().root();
    drop(log);
    let leaves = data_dir.join("leaves.bin");
    let f = std::fs::OpenOptions::new().write(true).open(&leaves).unwrap();
    f.set_len(10 * 32 + 7).unwrap();
    let log = reopen(&db_url, &data_dir, &key).await;
    assert_eq!((log.size(), log.tree().root()), (12, root));
    assert_eq!(std::fs::metadata(&leaves).unwrap().len(), 12 * 32);
}

/// Opens the log at `db_url` / `data_dir` again.
async fn reopen(db_url: &str, data_dir: &Path, key: &SigningKey) -> AuditLog {
    AuditLog::open(LogSettings {
        database_url: db_url.to_owned(),
        data_dir: data_dir.to_owned(),
        signing_key: key.clone(),
        tsa_url: None,
    })
    .await
    .unwrap()
}

/// Where checkpoint `size`'s disk copy lives.
fn disk_copy(data_dir: &Path, size: u64) -> std::path::PathBuf {
    kizuna_audit::log::checkpoints_dir(data_dir).join(format!("{size:020}.json"))
}

/// A restamp cut between its database update and its disk copy: checkpoint 20 is written while
/// the TSA is unreachable (unstamped in both copies); then, with the TSA back, checkpoint 50's
/// restamp of 20 updates the database but cannot rewrite the disk copy (it is briefly a folder,
/// so the rename fails, as a full disk or a crash would cut it), and the disk copy is put back as
/// it was before the restamp. Returns the log (still open, after the failed checkpoint), the
/// TSA, the folder, database URL, data folder and key.
async fn restamp_cut_after_its_database_update()
-> (AuditLog, LabTsa, tempfile::TempDir, String, std::path::PathBuf, SigningKey) {
    let dir = tempfile::tempdir().unwrap();
    let tsa = LabTsa::start(&dir.path().join("tsa")).await.unwrap();
    let (mut log, db_url, data_dir, key) = open_log(dir.path(), Some("http://127.0.0.1:1/tsa".into())).await;
    log.append(&(0..20).map(event).collect::<Vec<_>>()).await.unwrap();
    assert!(log.checkpoint().await.unwrap().tst.is_none(), "the TSA was down");
    log.db.pool.close().await;
    drop(log);
    let copy = disk_copy(&data_dir, 20);
    let before = std::fs::read(&copy).unwrap();
    std::fs::remove_file(&copy).unwrap();
    std::fs::create_dir(&copy).unwrap();
    let mut log = AuditLog::open(LogSettings {
        database_url: db_url.clone(),
        data_dir: data_dir.clone(),
        signing_key: key.clone(),
        tsa_url: Some(tsa.url.clone()),
    })
    .await
    .unwrap();
    log.append(&(20..50).map(event).collect::<Vec<_>>()).await.unwrap();
    assert!(log.checkpoint().await.is_err(), "the restamp's disk write must fail");
    std::fs::remove_dir(&copy).unwrap();
    std::fs::write(&copy, &before).unwrap();
    let db_cps = kizuna_audit::log::read_db_checkpoints(&log.db).await.unwrap();
    assert!(db_cps.iter().all(|c| c.tst.is_some()), "the database holds both time stamps");
    assert!(disk_tst(&data_dir, 20).is_none(), "the disk copy is as before the restamp");
    (log, tsa, dir, db_url, data_dir, key)
}

/// The time stamp of checkpoint `size`'s disk copy.
fn disk_tst(data_dir: &Path, size: u64) -> Option<Vec<u8>> {
    let cps = kizuna_audit::log::read_disk_checkpoints(data_dir).unwrap();
    cps.into_iter().find(|c| c.tree_size == size).expect("a disk copy").tst
}

/// The process dies after the restamp's database update: open copies the time stamp from the
/// database (the source of truth) into the disk copy, and the log verifies with both stamps.
#[tokio::test]
async fn a_restamp_cut_after_its_database_update_is_copied_to_disk_at_open() {
    let (log, tsa, _dir, db_url, data_dir, key) = restamp_cut_after_its_database_update().await;
    log.db.pool.close().await;
    drop(log);
    let log = reopen(&db_url, &data_dir, &key).await;
    let db_cps = kizuna_audit::log::read_db_checkpoints(&log.db).await.unwrap();
    log.db.pool.close().await;
    drop(log);
    let trust = || Some(TsaTrust::from_pem_file(&tsa.ca_cert).unwrap());
    let r = verify_log(&db_url, &data_dir, &key, trust(), 1000).await;
    assert!(r.ok(), "{}", messages(&r));
    assert_eq!((r.checkpoints, r.timestamps_verified), (2, 2));
    assert!(disk_tst(&data_dir, 20) == db_cps[0].tst, "the disk copy of 20 lacks the database's stamp");
    // Opening again changes nothing.
    reopen(&db_url, &data_dir, &key).await.db.pool.close().await;
    let r = verify_log(&db_url, &data_dir, &key, trust(), 1000).await;
    assert!(r.ok(), "{}", messages(&r));
}

/// The restamp's disk write fails and the service keeps running: the next checkpoint finishes it.
#[tokio::test]
async fn a_restamp_whose_disk_write_failed_is_finished_by_the_next_checkpoint() {
    let (mut log, tsa, _dir, db_url, data_dir, key) = restamp_cut_after_its_database_update().await;
    log.append(&(50..60).map(event).collect::<Vec<_>>()).await.unwrap();
    log.checkpoint().await.unwrap();
    let db_cps = kizuna_audit::log::read_db_checkpoints(&log.db).await.unwrap();
    log.db.pool.close().await;
    drop(log);
    assert!(disk_tst(&data_dir, 20) == db_cps[0].tst, "the disk copy of 20 lacks the database's stamp");
    let r = verify_log(&db_url, &data_dir, &key, Some(TsaTrust::from_pem_file(&tsa.ca_cert).unwrap()), 1000)
        .await;
    assert!(r.ok(), "{}", messages(&r));
    assert_eq!((r.checkpoints, r.timestamps_verified), (3, 3));
}

/// Finishing a cut restamp copies only a time stamp the disk copy lacks: a disk copy that was
/// edited meanwhile is left as it is, and verify still names it.
#[tokio::test]
async fn a_disk_copy_edited_after_a_cut_restamp_is_not_overwritten_and_still_detected() {
    let (log, tsa, _dir, db_url, data_dir, key) = restamp_cut_after_its_database_update().await;
    log.db.pool.close().await;
    drop(log);
    let copy = disk_copy(&data_dir, 20);
    let mut cp: serde_json::Value = serde_json::from_slice(&std::fs::read(&copy).unwrap()).unwrap();
    cp["root"] = serde_json::Value::String("00".repeat(32));
    let edited = serde_json::to_vec_pretty(&cp).unwrap();
    std::fs::write(&copy, &edited).unwrap();
    reopen(&db_url, &data_dir, &key).await.db.pool.close().await;
    assert_eq!(std::fs::read(&copy).unwrap(), edited, "the edited copy was left alone");
    let r = verify_log(&db_url, &data_dir, &key, Some(TsaTrust::from_pem_file(&tsa.ca_cert).unwrap()), 1000)
        .await;
    assert!(
        r.findings.iter().any(|x| matches!(x, Finding::CheckpointCopiesDiffer { tree_size: 20, .. })),
        "{}",
        messages(&r)
    );
}

/// A time stamp removed from the database copy is reported, even though the disk copy has it;
/// open does not copy stamps from disk into the database.
#[tokio::test]
async fn a_time_stamp_removed_from_the_database_is_reported() {
    let f = fixture().await;
    f.sql("UPDATE audit_checkpoint SET tst = NULL WHERE tree_size = 20").await;
    reopen(&f.db_url, &f.data_dir, &f.key).await.db.pool.close().await;
    let r = f.verify().await;
    assert!(messages(&r).contains("checkpoint 20: no RFC 3161 time stamp"), "{}", messages(&r));
    assert!(disk_tst(&f.data_dir, 20).is_some());
}

/// A second checkpoint with no events since the last one (an `Appender::checkpoint` call, a
/// restart that checkpoints at once) keeps the stored one: before, the database kept the first
/// (`ON CONFLICT DO NOTHING`) while the disk copy was overwritten with the new signature, and
/// verify then reported the two copies as different after nothing but normal operation.
#[tokio::test]
async fn a_checkpoint_with_no_new_events_returns_the_stored_one_and_leaves_its_copies_alike() {
    let f = fixture().await;
    let copy = disk_copy(&f.data_dir, 50);
    let before = std::fs::read(&copy).unwrap();
    let mut log = reopen(&f.db_url, &f.data_dir, &f.key).await;
    std::thread::sleep(std::time::Duration::from_millis(5));
    let cp = log.checkpoint().await.unwrap();
    log.db.pool.close().await;
    assert_eq!(cp.tree_size, 50);
    assert!(std::fs::read(&copy).unwrap() == before, "the disk copy was rewritten");
    let r = f.verify().await;
    assert!(r.ok(), "{}", messages(&r));
    assert_eq!(r.checkpoints, 2);
}
