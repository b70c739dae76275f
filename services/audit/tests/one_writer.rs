//! One writer per audit data folder: a second `kizuna audit serve` (or `AuditLog::open`) on a
//! `data_dir` in use is refused at once, naming the folder, the lock file and the holder's pid;
//! `kizuna audit verify` (read only) still works while the service runs.

mod support;

use kizuna_audit::log::{AuditLog, LogSettings};
use kizuna_audit::server;
use kizuna_audit::verify::{VerifyOptions, verify};
use support::view;

#[tokio::test(flavor = "multi_thread")]
async fn a_second_audit_service_on_one_data_dir_is_refused_and_verify_still_works() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = server::local_config(dir.path(), "127.0.0.1:0", None).unwrap();
    let first = server::start(&cfg).await.unwrap();
    let events: Vec<_> = (0..10).map(|i| view(i, "pw-doc1", "CHID-000101")).collect();
    first.appender.submit(events).await.unwrap();
    first.appender.checkpoint().await.unwrap();
    let pid = std::process::id();

    // Another port, the same folder: both would append to leaves.bin and write checkpoints.
    let e = server::start(&cfg).await.err().expect("two audit services opened one data_dir").to_string();
    assert!(e.contains(&format!("data_dir {} is in use", cfg.data_dir.display())), "{e}");
    assert!(e.contains(&format!("(pid {pid})")) && e.contains("audit.lock"), "{e}");
    let e = AuditLog::open(LogSettings {
        database_url: cfg.database_url(),
        data_dir: cfg.data_dir.clone(),
        signing_key: kizuna_audit::checkpoint::load_signing_key(&cfg.signing_key_file).unwrap(),
        tsa_url: None,
    })
    .await
    .err()
    .expect("a second writer opened the log")
    .to_string();
    assert!(e.contains("audit.lock"), "{e}");

    // verify reads the database and the mirror, and takes no lock.
    let opts = VerifyOptions {
        database_url: cfg.database_url(),
        data_dir: cfg.data_dir.clone(),
        public_key: kizuna_audit::checkpoint::load_signing_key(&cfg.signing_key_file)
            .unwrap()
            .verifying_key(),
        tsa_trust: None,
        max_inclusion_proofs: 10,
    };
    let report = verify(&opts).await.expect("verify runs beside the service");
    assert!(report.ok(), "{:?}", report.findings);
    // 10 views and the pseudonym table's adoption, logged once at the first start.
    assert_eq!((report.events, report.disk_leaves), (11, 11));

    // The first service is untouched and keeps appending.
    let more: Vec<_> = (10..12).map(|i| view(i, "pw-doc1", "CHID-000101")).collect();
    first.appender.submit(more).await.unwrap();

    // Once it is shut down, the folder is free again.
    first.shutdown().await.unwrap();
    let again = server::start(&cfg).await.expect("free once the first service is gone");
    again.shutdown().await.unwrap();
    let report = verify(&opts).await.unwrap();
    assert!(report.ok(), "{:?}", report.findings);
    assert_eq!(report.events, 13);
}

/// The settings of a log in `data_dir` on `database_url`, with its own signing key.
fn settings(data_dir: &std::path::Path, database_url: &str) -> LogSettings {
    let key = data_dir.with_extension("key");
    if !key.exists() {
        kizuna_audit::checkpoint::generate_key(&key).unwrap();
    }
    LogSettings {
        database_url: database_url.into(),
        data_dir: data_dir.into(),
        signing_key: kizuna_audit::checkpoint::load_signing_key(&key).unwrap(),
        tsa_url: None,
    }
}

/// Two data folders, one database: the folders' locks do not meet, so the database is locked
/// too. The second writer is refused naming the database; once the first is gone it opens.
async fn a_second_writer_on_one_database_is_refused(database_url: &str, named: &str) {
    let dir = tempfile::tempdir().unwrap();
    let first = AuditLog::open(settings(&dir.path().join("a"), database_url)).await.unwrap();
    let e = AuditLog::open(settings(&dir.path().join("b"), database_url))
        .await
        .err()
        .expect("two audit logs with their own data folders wrote one database")
        .to_string();
    assert!(e.contains(&format!("audit database {named}")) && e.contains("another audit service"), "{e}");
    drop(first);
    AuditLog::open(settings(&dir.path().join("b"), database_url)).await.expect("free once the first is gone");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_writer_on_one_sqlite_database_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("shared").join("audit.sqlite");
    let url = format!("sqlite://{}?mode=rwc", file.display());
    a_second_writer_on_one_database_is_refused(&url, &file.display().to_string()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_writer_on_one_postgres_database_is_refused() {
    let Some(url) = kizuna_db::fresh_test_postgres("audit_one_writer").await else { return };
    a_second_writer_on_one_database_is_refused(&url, &kizuna_db::postgres_server(&url)).await;
}
