//! What the provider refuses to start with: secret files (signing key, pairwise salt, audit token)
//! that group or others may read, and a listener beyond loopback without an explicit issuer.

mod support;

use kizuna_auth::{AuthConfig, Server};
use std::os::unix::fs::PermissionsExt;
use support::*;

#[tokio::test]
async fn secret_files_readable_by_group_or_others_stop_the_provider_naming_file_mode_and_chmod() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = AuthConfig::local(dir.path()).unwrap();
    let token = dir.path().join("audit.token");
    write_secret(&token, "intake-token\n");
    // Nothing listens there; the token is read at start, events wait in the spool.
    cfg.audit_url = Some("http://127.0.0.1:9".into());
    cfg.audit_token_file = Some(token.clone());
    let files =
        [(cfg.signing_key_file.clone(), 0o644), (cfg.pairwise_salt_file.clone(), 0o640), (token, 0o604)];
    for (file, mode) in &files {
        // What `AuthConfig::local` (and `kizuna auth keygen`) wrote is private.
        assert_eq!(
            std::fs::metadata(file).unwrap().permissions().mode() & 0o777,
            0o600,
            "{}",
            file.display()
        );
        std::fs::set_permissions(file, std::fs::Permissions::from_mode(*mode)).unwrap();
        let e = Server::start(cfg.clone()).await.err().expect("a readable secret must stop the provider");
        let want = format!(
            "{}: mode is {mode:04o}; it must not be readable by group or others (chmod 600 {})",
            file.display(),
            file.display()
        );
        assert!(e.to_string().contains(&want), "{e}\nwanted: {want}");
        std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    Server::start(cfg).await.unwrap().shutdown().await;
}

#[tokio::test]
async fn a_provider_beyond_loopback_without_an_issuer_does_not_start() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = AuthConfig::local(dir.path()).unwrap();
    cfg.http_listen = "0.0.0.0:0".into();
    // Before, this started and advertised issuer "http://0.0.0.0:PORT", which no browser can use.
    // (Refused before anything binds: the tests still listen on loopback only.)
    let e = Server::start(cfg.clone()).await.err().expect("no issuer, not loopback").to_string();
    assert!(e.contains("issuer") && e.contains("0.0.0.0:0"), "{e}");
}
