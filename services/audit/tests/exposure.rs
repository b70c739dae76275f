//! What the service refuses to start with: an HTTP listener beyond loopback without the intake and
//! auditor tokens (the audit trail would be open to the network), and secret files (signing key,
//! token files, TLS key) that group or others may read.

mod support;

use kizuna_audit::config::AuditConfig;
use kizuna_audit::server;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use support::*;

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[tokio::test]
async fn a_listener_beyond_loopback_without_tokens_does_not_start_and_with_them_every_role_asks_for_its_token()
 {
    let dir = tempfile::tempdir().unwrap();
    // The reviewer's file: every address, no auditor token; `kizuna audit serve` loads it like this.
    let key = dir.path().join("audit.key");
    kizuna_audit::checkpoint::generate_key(&key).unwrap();
    let file = dir.path().join("audit.yaml");
    std::fs::write(
        &file,
        format!(
            "data_dir: {}/data\nsigning_key_file: {}\nhttp_listen: 0.0.0.0:17461\n",
            dir.path().display(),
            key.display()
        ),
    )
    .unwrap();
    let e = AuditConfig::load(&file).unwrap_err().to_string();
    assert!(
        e.contains(&file.display().to_string())
            && e.contains("http_listen")
            && e.contains("auditor_token_file")
            && e.contains("intake_token_file"),
        "{e}"
    );

    // A configuration built in code is checked by `start` too: nothing listens.
    let mut cfg = server::local_config(&dir.path().join("svc"), "0.0.0.0:0", None).unwrap();
    let e = server::start(&cfg).await.err().expect("must not start without tokens").to_string();
    assert!(e.contains("http_listen") && e.contains("auditor_token_file"), "{e}");

    // With both tokens the configuration passes; every role then asks for its token (shown on
    // loopback: the tests listen on nothing else).
    let (intake, auditor) = (dir.path().join("intake.token"), dir.path().join("auditor.token"));
    write_secret(&intake, "intake-secret\n");
    write_secret(&auditor, "auditor-secret\n");
    cfg.intake_token_file = Some(intake);
    cfg.auditor_token_file = Some(auditor);
    cfg.validate(Path::new("audit.yaml")).unwrap();
    cfg.http_listen = "127.0.0.1:0".into();
    let svc = server::start(&cfg).await.unwrap();
    let base = format!("http://127.0.0.1:{}", svc.http_addr.port());
    let http = reqwest::Client::new();
    for path in ["/v1/events", "/v1/counts?by=day", "/v1/export.csv", "/fhir/AuditEvent", "/ui"] {
        let s = http.get(format!("{base}{path}")).send().await.unwrap().status();
        assert_eq!(s, 401, "{path} without the auditor token");
    }
    let s =
        http.get(format!("{base}/v1/events")).bearer_auth("auditor-secret").send().await.unwrap().status();
    assert_eq!(s, 200);
    let ev = serde_json::to_string(&view(1, "pw-doc1", "CHID-1")).unwrap();
    let s =
        http.post(format!("{base}/v1/events")).body(ev.clone()).header("content-type", "application/json");
    assert_eq!(s.send().await.unwrap().status(), 401, "intake without the intake token");
    let s = http
        .post(format!("{base}/v1/events"))
        .bearer_auth("intake-secret")
        .header("content-type", "application/json")
        .body(ev);
    assert_eq!(s.send().await.unwrap().status(), 200);
    svc.shutdown().await.unwrap();
}

#[tokio::test]
async fn secret_files_readable_by_group_or_others_stop_the_service_naming_file_mode_and_chmod() {
    let mut svc = service(None, false).await;
    let intake = svc.dir.path().join("intake.token");
    write_secret(&intake, "intake-secret\n");
    svc.cfg.intake_token_file = Some(intake.clone());
    let files = [
        (svc.cfg.signing_key_file.clone(), 0o644),
        (svc.dir.path().join("auditor.token"), 0o640),
        (intake, 0o604),
        (svc.tls_dir().join("server.key"), 0o644),
    ];
    for (file, mode) in &files {
        assert_eq!(
            std::fs::metadata(file).unwrap().permissions().mode() & 0o777,
            0o600,
            "{}",
            file.display()
        );
        chmod(file, *mode);
        let e =
            server::start(&svc.cfg).await.err().expect("a readable secret must stop the service").to_string();
        let want = format!(
            "{}: mode is {mode:04o}; it must not be readable by group or others (chmod 600 {})",
            file.display(),
            file.display()
        );
        assert!(e.contains(&want), "{e}\nwanted: {want}");
        chmod(file, 0o600);
    }
    let running = server::start(&svc.cfg).await.unwrap();
    running.shutdown().await.unwrap();
}
