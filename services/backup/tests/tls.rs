//! The replication link over HTTPS, on real servers over 127.0.0.1. A replica serving its own
//! certificate gets every batch from a follower that trusts that certificate (`ca_file`); a
//! client trusting only the public roots, or another certificate, is refused before it sends
//! anything; a plain-HTTP request to the HTTPS port is not answered. Bad TLS files are refused at
//! start, naming the file, before the replica's folder is made.

mod centre;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use centre::*;
use kizuna_backup::client::ReplicaClient;
use kizuna_backup::config::ReplicaTarget;

/// A self-signed certificate for 127.0.0.1 and localhost, as `kizuna backup cert` makes it:
/// (`NAME.pem`, `NAME.key` mode 0600).
fn self_signed(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let (c, k) = (dir.join(format!("{name}.pem")), dir.join(format!("{name}.key")));
    kizuna_backup::tls::write_self_signed(&["127.0.0.1".into(), "localhost".into()], &c, &k).unwrap();
    (c, k)
}

/// `GET /api/v1/state` through a client for `target`: the replica's position, or the error text.
async fn applied(target: &ReplicaTarget) -> Result<u64, String> {
    let client = ReplicaClient::new(target, Duration::from_secs(10)).map_err(|e| e.to_string())?;
    client.state().await.map(|a| a.applied_seq).map_err(|e| e.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_replica_serving_https_gets_every_batch_and_only_clients_trusting_its_certificate_reach_it() {
    let (_corpus, batches, _) = corpus_batches(7, 1, 4, 20);
    let facility = batches[0].0.clone();
    let centre = Centre::start(std::slice::from_ref(&facility)).await;
    for (f, b) in &batches {
        centre.upload(f, b).await;
    }
    let work = tempfile::tempdir().unwrap();
    let (cert, key) = self_signed(work.path(), "replica");
    let mut rc = replica_config(&work.path().join("r"), 0);
    (rc.tls_cert_file, rc.tls_key_file) = (cert.clone(), key);
    let replica = ReplicaServer::start_with(rc).await;
    assert!(replica.url.starts_with("https://127.0.0.1:"), "{}", replica.url);

    let mut config = follow_config(&centre, &work.path().join("state"), &[("r", replica.url.clone())]);
    config.replicas[0].ca_file = cert.clone();
    let target = config.replicas[0].clone();
    let follower = FollowerTask::start(config).await;
    let want = centre.applied();
    assert!(want > 0);
    wait_until(60, "the replica catches up over HTTPS", || async { applied(&target).await == Ok(want) })
        .await;
    assert_eq!(tree_digests(&replica.tree()), tree_digests(&centre.tree()), "replica tree differs");
    follower.stop().await;

    // Trusting the public roots only, or another certificate: refused at the handshake.
    let (other, _) = self_signed(work.path(), "other");
    for ca_file in [PathBuf::new(), other] {
        let t = ReplicaTarget { ca_file: ca_file.clone(), ..target.clone() };
        let e = applied(&t).await.expect_err("an untrusted certificate must be refused");
        assert!(e.to_lowercase().contains("certificate"), "ca_file {ca_file:?}: {e}");
    }
    // Plain HTTP to the HTTPS port: no HTTP answer.
    let plain = replica.url.replace("https://", "http://");
    let r =
        reqwest::Client::new().get(format!("{plain}/healthz")).timeout(Duration::from_secs(15)).send().await;
    assert!(r.is_err(), "plain HTTP was answered: {r:?}");

    replica.stop().await;
    centre.stop().await;
}

#[test]
fn a_certificate_is_made_once_with_a_private_key_and_never_replaces_a_file() {
    let work = tempfile::tempdir().unwrap();
    let (cert, key) = self_signed(work.path(), "replica");
    assert_eq!(std::fs::metadata(&key).unwrap().permissions().mode() & 0o777, 0o600);
    assert!(std::fs::read_to_string(&cert).unwrap().starts_with("-----BEGIN CERTIFICATE-----"));
    let before = std::fs::read(&key).unwrap();
    let e = kizuna_backup::tls::write_self_signed(&["127.0.0.1".into()], &work.path().join("new.pem"), &key)
        .expect_err("an existing key must not be replaced")
        .to_string();
    assert!(e.contains("replica.key") && e.contains("never replaced"), "{e}");
    assert_eq!(std::fs::read(&key).unwrap(), before);
    assert!(!work.path().join("new.pem").exists());
    let e =
        kizuna_backup::tls::write_self_signed(&[], &work.path().join("a.pem"), &work.path().join("a.key"))
            .expect_err("no name")
            .to_string();
    assert!(e.contains("--name"), "{e}");
    // The certificate cannot be written: the key made for it goes too, so a retry can succeed.
    let (lost, key) = (work.path().join("no-such-dir").join("c.pem"), work.path().join("k.key"));
    let e = kizuna_backup::tls::write_self_signed(&["127.0.0.1".into()], &lost, &key)
        .expect_err("the certificate's folder is missing")
        .to_string();
    assert!(e.contains("no-such-dir"), "{e}");
    assert!(!key.exists(), "a key without its certificate was left");
}

#[tokio::test]
async fn bad_tls_files_are_refused_at_start_naming_the_file_before_the_folder_is_made() {
    let work = tempfile::tempdir().unwrap();
    let (cert, key) = self_signed(work.path(), "replica");
    let (other_cert, _) = self_signed(work.path(), "other");
    let readable = work.path().join("readable.key");
    std::fs::copy(&key, &readable).unwrap();
    std::fs::set_permissions(&readable, std::fs::Permissions::from_mode(0o644)).unwrap();
    let not_pem = work.path().join("not.pem");
    std::fs::write(&not_pem, "hello\n").unwrap();
    let cases = [
        (cert.clone(), readable.clone(), "readable.key", "chmod 600"),
        (other_cert, key.clone(), "other.pem", "do not go together"),
        (not_pem, key.clone(), "not.pem", "no PEM certificate"),
        (cert.clone(), work.path().join("missing.key"), "missing.key", "No such file"),
    ];
    for (i, (c, k, names, says)) in cases.into_iter().enumerate() {
        let mut rc = replica_config(&work.path().join(format!("r{i}")), 0);
        (rc.tls_cert_file, rc.tls_key_file) = (c, k);
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let e =
            kizuna_backup::serve::serve_on(l, &rc, async {}).await.expect_err("bad TLS files").to_string();
        assert!(e.contains(names) && e.contains(says), "case {i}: {e}");
        assert!(!rc.data_dir.exists(), "case {i}: the replica's folder was made");
    }
}
