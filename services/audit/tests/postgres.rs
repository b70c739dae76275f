//! The same log, checkpoints, verification and search on a real PostgreSQL (a throw-away cluster
//! started by the test on 127.0.0.1). Skips only when PostgreSQL is not installed and CI is unset.

use ed25519_dalek::SigningKey;
use kizuna_audit::event::{ActiveParticipant, AuditSourceIdentification, ParticipantObject};
use kizuna_audit::lab_tsa::LabTsa;
use kizuna_audit::log::{AuditLog, LogSettings};
use kizuna_audit::search::{SearchFilter, search};
use kizuna_audit::tsa::TsaTrust;
use kizuna_audit::verify::{Finding, VerifyOptions, verify};
use kizuna_audit::{AuditEvent, EventId, EventKind};
use std::path::{Path, PathBuf};
use std::process::Command;

struct Pg {
    _dir: tempfile::TempDir,
    data: PathBuf,
    bin: PathBuf,
    port: u16,
}

fn as_postgres(cmd: &Path, args: &[&str]) -> std::process::Output {
    let root = rustix_uid_is_root();
    let mut c = if root {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(cmd);
        c
    } else {
        Command::new(cmd)
    };
    c.args(args).output().expect("run postgres tool")
}

fn rustix_uid_is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

impl Pg {
    fn start() -> Option<Pg> {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .flatten()
            .map(|e| e.path().join("bin"))
            .find(|b| b.join("initdb").exists());
        let Some(bin) = bin else {
            assert!(std::env::var("CI").is_err(), "PostgreSQL is required under CI (tests/apt-packages.txt)");
            eprintln!("SKIP: PostgreSQL not installed");
            return None;
        };
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("pgdata");
        std::fs::create_dir(&data).unwrap();
        if rustix_uid_is_root() {
            Command::new("chmod").arg("755").arg(dir.path()).status().unwrap();
            Command::new("chown").args(["-R", "postgres:postgres"]).arg(&data).status().unwrap();
        }
        let out = as_postgres(
            &bin.join("initdb"),
            &["-D", data.to_str().unwrap(), "-U", "postgres", "--auth=trust", "-E", "UTF8"],
        );
        assert!(out.status.success(), "initdb: {}", String::from_utf8_lossy(&out.stderr));
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let opts = format!("-c listen_addresses=127.0.0.1 -p {port} -k {}", data.display());
        let log = data.join("server.log");
        let out = as_postgres(
            &bin.join("pg_ctl"),
            &["-D", data.to_str().unwrap(), "-l", log.to_str().unwrap(), "-o", &opts, "-w", "start"],
        );
        assert!(out.status.success(), "pg_ctl start: {}", String::from_utf8_lossy(&out.stderr));
        Some(Pg { _dir: dir, data, bin, port })
    }
    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for Pg {
    fn drop(&mut self) {
        let _ = as_postgres(
            &self.bin.join("pg_ctl"),
            &["-D", self.data.to_str().unwrap(), "-m", "immediate", "stop"],
        );
    }
}

fn event(i: u64) -> AuditEvent {
    AuditEvent::new(
        EventKind::PatientRecordRead,
        AuditSourceIdentification::new("viewer@centre", Some("F0401")),
    )
    .with_id(EventId::try_from(format!("pg-{i}")).unwrap())
    .participant(ActiveParticipant::requestor(&format!("pw-user{}", i % 3)))
    .object(ParticipantObject::patient(&format!("CHID-{:06}", i % 5)))
}

#[tokio::test(flavor = "multi_thread")]
async fn log_verify_and_search_work_on_postgresql() {
    let Some(pg) = Pg::start() else { return };
    let dir = tempfile::tempdir().unwrap();
    let tsa = LabTsa::start(&dir.path().join("tsa")).await.unwrap();
    let key = SigningKey::from_bytes(&rand::random::<[u8; 32]>());
    let data_dir = dir.path().join("data");
    let mut log = AuditLog::open(LogSettings {
        database_url: pg.url(),
        data_dir: data_dir.clone(),
        signing_key: key.clone(),
        tsa_url: Some(tsa.url.clone()),
    })
    .await
    .unwrap();
    let ev: Vec<_> = (0..30).map(event).collect();
    log.append(&ev[..10]).await.unwrap();
    log.checkpoint().await.unwrap();
    log.append(&ev[10..]).await.unwrap();
    assert!(log.append(&ev[..3]).await.unwrap().iter().all(|a| a.duplicate));
    log.checkpoint().await.unwrap();
    let rows = search(&log.db, &SearchFilter { patient: Some("CHID-000002".into()), ..Default::default() })
        .await
        .unwrap();
    assert_eq!(rows.len(), 6);
    log.db.pool.close().await;

    let opts = VerifyOptions {
        database_url: pg.url(),
        data_dir: data_dir.clone(),
        public_key: key.verifying_key(),
        tsa_trust: Some(TsaTrust::from_pem_file(&tsa.ca_cert).unwrap()),
        max_inclusion_proofs: 100,
    };
    let r = verify(&opts).await.unwrap();
    assert!(r.ok(), "{:?}", r.findings);
    assert_eq!((r.events, r.checkpoints, r.timestamps_verified), (30, 2, 2));

    let db = kizuna_audit::db::Db::open(&pg.url()).await.unwrap();
    sqlx::query("UPDATE audit_event SET body = convert_to(replace(convert_from(body, 'UTF8'), 'pw-user1', 'pw-user0'), 'UTF8') WHERE seq = 4")
        .execute(&db.pool)
        .await
        .unwrap();
    sqlx::query("DELETE FROM audit_event WHERE seq = 20").execute(&db.pool).await.unwrap();
    db.pool.close().await;
    let r = verify(&opts).await.unwrap();
    assert!(
        r.findings.iter().any(|f| matches!(f, Finding::EventModified { seq: 4, .. })),
        "{:?}",
        r.findings
    );
    assert!(r.findings.contains(&Finding::EventDeleted { seq: 20 }), "{:?}", r.findings);
}
