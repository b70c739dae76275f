//! Shared fixtures: a running audit service with a real `openssl ts` TSA, TLS certificates made by
//! `openssl`, and synthetic events.
#![allow(dead_code)]

use kizuna_audit::config::AuditConfig;
use kizuna_audit::event::{ActiveParticipant, AuditSourceIdentification, ParticipantObject};
use kizuna_audit::lab_tsa::LabTsa;
use kizuna_audit::server::{self, RunningServer};
use kizuna_audit::{AuditEvent, EventId, EventKind};
use std::path::{Path, PathBuf};

pub fn openssl(dir: &Path, args: &[&str]) {
    let out =
        std::process::Command::new("openssl").args(args).current_dir(dir).output().expect("openssl runs");
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// A CA, a server certificate for 127.0.0.1 and a client certificate, for RFC 5425 mutual TLS.
pub fn make_tls(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(
        dir.join("server.ext"),
        "basicConstraints=CA:FALSE\nsubjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    std::fs::write(dir.join("client.ext"), "basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n")
        .unwrap();
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
            "-days",
            "30",
            "-subj",
            "/CN=Kizuna test syslog CA",
        ],
    );
    for who in ["server", "client"] {
        openssl(
            dir,
            &[
                "req",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-keyout",
                &format!("{who}.key"),
                "-out",
                &format!("{who}.csr"),
                "-subj",
                &format!("/CN=kizuna-{who}"),
            ],
        );
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                &format!("{who}.csr"),
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                &format!("{who}.crt"),
                "-days",
                "30",
                "-extfile",
                &format!("{who}.ext"),
            ],
        );
    }
}

/// Write a secret file as an operator must: mode 0600 (the service refuses anything looser).
pub fn write_secret(path: &Path, contents: &str) {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path).unwrap();
    f.write_all(contents.as_bytes()).unwrap();
}

pub struct Service {
    pub dir: tempfile::TempDir,
    pub tsa: LabTsa,
    pub cfg: AuditConfig,
    pub server: Option<RunningServer>,
}

impl Service {
    pub fn http(&self) -> String {
        format!("http://{}", self.server.as_ref().unwrap().http_addr)
    }
    pub fn tls_dir(&self) -> PathBuf {
        self.dir.path().join("tls")
    }
}

/// Configure (and unless `http_listen` is given, start) an audit service on loopback.
pub async fn service(http_listen: Option<String>, start: bool) -> Service {
    let dir = tempfile::tempdir().unwrap();
    let tsa = LabTsa::start(&dir.path().join("tsa")).await.unwrap();
    let key = dir.path().join("audit.key");
    kizuna_audit::checkpoint::generate_key(&key).unwrap();
    make_tls(&dir.path().join("tls"));
    let t = dir.path().join("tls");
    write_secret(&dir.path().join("auditor.token"), "auditor-secret-token\n");
    let yaml = format!(
        "data_dir: {d}/data\nsigning_key_file: {k}\ntsa_url: {u}\ntsa_ca_file: {ca}\nhttp_listen: {h}\n\
         syslog_tls_listen: 127.0.0.1:0\nsyslog_tls_cert_file: {t}/server.crt\nsyslog_tls_key_file: {t}/server.key\n\
         syslog_tls_client_ca_file: {t}/ca.crt\nsyslog_udp_listen: 127.0.0.1:0\ncheckpoint_every_events: 1000\n\
         checkpoint_interval_secs: 1\nauditor_token_file: {d}/auditor.token\n",
        d = dir.path().display(),
        k = key.display(),
        u = tsa.url,
        ca = tsa.ca_cert.display(),
        h = http_listen.unwrap_or_else(|| "127.0.0.1:0".into()),
        t = t.display(),
    );
    let cfg = AuditConfig::parse(&yaml, Path::new("test.yaml")).unwrap();
    let server = if start { Some(server::start(&cfg).await.unwrap()) } else { None };
    Service { dir, tsa, cfg, server }
}

/// A clinician viewing (or searching) a patient's record through the viewer.
pub fn view(i: u64, user: &str, patient: &str) -> AuditEvent {
    AuditEvent::new(
        EventKind::PatientRecordRead,
        AuditSourceIdentification::new("viewer@centre", Some("F0401")),
    )
    .with_id(EventId::try_from(format!("view-{user}-{i}")).unwrap())
    .participant(ActiveParticipant::requestor(user).with_ip("10.20.1.5"))
    .object(ParticipantObject::patient(patient))
}

pub const AUDITOR: &str = "auditor-secret-token";

/// GET with the auditor token; returns (status, body).
pub async fn get(url: &str) -> (u16, String) {
    let r = reqwest::Client::new().get(url).bearer_auth(AUDITOR).send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

/// Poll the JSON search API until `n` events match `query` (the writer commits asynchronously).
pub async fn wait_for(base: &str, query: &str, n: usize) -> Vec<serde_json::Value> {
    for _ in 0..100 {
        let (s, body) = get(&format!("{base}/v1/events?{query}")).await;
        assert_eq!(s, 200, "{body}");
        let v: Vec<serde_json::Value> = serde_json::from_str(&body).unwrap();
        if v.len() >= n {
            return v;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("{query}: fewer than {n} events arrived");
}
