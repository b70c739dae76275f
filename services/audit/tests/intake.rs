//! Intake: the spooling sender survives the audit service being down and delivers exactly once;
//! syslog over TLS (RFC 5425, mutual TLS) and UDP (RFC 5426) carrying DICOM XML is accepted.

mod support;

use kizuna_audit::event::dicom_xml::to_xml;
use kizuna_audit::sender::AuditSender;
use kizuna_audit::syslog::{format_rfc5424, frame_octet_counted};
use std::sync::Arc;
use support::*;
use tokio::io::AsyncWriteExt;

#[tokio::test]
async fn spooled_events_survive_the_audit_service_being_down_and_arrive_exactly_once() {
    // A port nobody listens on yet: the audit service is "down".
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut svc = service(Some(format!("127.0.0.1:{port}")), false).await;
    let spool = svc.dir.path().join("viewer-spool");
    let url = format!("http://127.0.0.1:{port}/v1/events");
    {
        let sender = AuditSender::new(&spool, &url).unwrap();
        for i in 0..25 {
            sender.send(&view(i, "pw-doc1", "CHID-000777")).unwrap();
        }
        assert!(sender.flush().await.is_err(), "nobody listens yet");
        assert_eq!(sender.pending().unwrap().len(), 25);
    } // the emitting service "crashes" here; only the spool remains
    svc.server = Some(kizuna_audit::server::start(&svc.cfg).await.unwrap());
    let sender = AuditSender::new(&spool, &url).unwrap();
    assert_eq!(sender.flush().await.unwrap(), 25);
    assert!(sender.pending().unwrap().is_empty());
    let base = svc.http();
    assert_eq!(wait_for(&base, "patient=CHID-000777&event_type=110110", 25).await.len(), 25);

    // The service committed but the sender crashed before deleting its spool files: redelivery
    // must not duplicate anything.
    for i in 0..25 {
        sender.send(&view(i, "pw-doc1", "CHID-000777")).unwrap();
    }
    assert_eq!(sender.flush().await.unwrap(), 25);
    let (_, body) = get(&format!("{base}/v1/events?patient=CHID-000777&event_type=110110&limit=1000")).await;
    let rows: Vec<serde_json::Value> = serde_json::from_str(&body).unwrap();
    assert_eq!(rows.len(), 25, "exactly once");

    // Background delivery picks up new events by itself.
    let task = sender.spawn_delivery(std::time::Duration::from_millis(200));
    sender.send(&view(99, "pw-doc2", "CHID-000777")).unwrap();
    assert_eq!(wait_for(&base, "patient=CHID-000777&event_type=110110&limit=1000", 26).await.len(), 26);
    task.abort();
    svc.server.take().unwrap().shutdown().await.unwrap();
}

fn client_config(tls: &std::path::Path, with_client_cert: bool) -> rustls::ClientConfig {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from_pem_file(tls.join("ca.crt")).unwrap()).unwrap();
    let b = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    if with_client_cert {
        let certs = vec![CertificateDer::from_pem_file(tls.join("client.crt")).unwrap()];
        b.with_client_auth_cert(certs, PrivateKeyDer::from_pem_file(tls.join("client.key")).unwrap()).unwrap()
    } else {
        b.with_no_client_auth()
    }
}

#[tokio::test]
async fn syslog_over_tls_with_octet_counting_is_accepted_from_a_certified_sender_only() {
    let svc = service(None, true).await;
    let addr = svc.server.as_ref().unwrap().syslog_tls_addr.unwrap();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(client_config(&svc.tls_dir(), true)));
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = rustls_pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let mut tls = connector.connect(name, tcp).await.unwrap();
    for i in 0..3 {
        let msg = format_rfc5424("viewer01", "kizuna-viewer", &to_xml(&view(i, "pw-tls", "CHID-000555")));
        tls.write_all(&frame_octet_counted(&msg)).await.unwrap();
    }
    tls.flush().await.unwrap();
    tls.shutdown().await.unwrap();
    let rows = wait_for(&svc.http(), "user=pw-tls", 3).await;
    assert!(rows.iter().all(|r| r["patient_id"] == "CHID-000555" && r["event_code"] == "110110"));

    // Without a client certificate the handshake (or the first read) fails and nothing is stored.
    let connector = tokio_rustls::TlsConnector::from(Arc::new(client_config(&svc.tls_dir(), false)));
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = rustls_pki_types::ServerName::try_from("127.0.0.1").unwrap();
    if let Ok(mut tls) = connector.connect(name, tcp).await {
        let msg = format_rfc5424("rogue", "rogue", &to_xml(&view(0, "pw-rogue", "CHID-000555")));
        let _ = tls.write_all(&frame_octet_counted(&msg)).await;
        let _ = tls.shutdown().await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let (_, body) = get(&format!("{}/v1/events?user=pw-rogue", svc.http())).await;
    assert_eq!(body, "[]");
}

#[tokio::test]
async fn openssl_s_client_can_send_rfc5425_frames() {
    let svc = service(None, true).await;
    let addr = svc.server.as_ref().unwrap().syslog_tls_addr.unwrap();
    let t = svc.tls_dir();
    let msg = format_rfc5424("viewer02", "kizuna-viewer", &to_xml(&view(1, "pw-openssl", "CHID-000556")));
    let mut child = std::process::Command::new("openssl")
        .args(["s_client", "-quiet", "-connect", &addr.to_string()])
        .arg("-CAfile")
        .arg(t.join("ca.crt"))
        .arg("-cert")
        .arg(t.join("client.crt"))
        .arg("-key")
        .arg(t.join("client.key"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        child.stdin.as_mut().unwrap().write_all(&frame_octet_counted(&msg)).unwrap();
    }
    let rows = wait_for(&svc.http(), "user=pw-openssl", 1).await;
    assert_eq!(rows[0]["patient_id"], "CHID-000556");
    drop(child.stdin.take());
    let _ = child.kill();
    let _ = child.wait();
}

#[tokio::test]
async fn syslog_over_udp_is_accepted() {
    let svc = service(None, true).await;
    let addr = svc.server.as_ref().unwrap().syslog_udp_addr.unwrap();
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let msg = format_rfc5424("viewer03", "kizuna-viewer", &to_xml(&view(1, "pw-udp", "CHID-000557")));
    sock.send_to(&msg, addr).await.unwrap();
    let rows = wait_for(&svc.http(), "user=pw-udp", 1).await;
    assert_eq!(rows[0]["facility"], "F0401");
}

#[tokio::test]
async fn malformed_events_are_refused_naming_the_problem() {
    let svc = service(None, true).await;
    let c = reqwest::Client::new();
    let r = c
        .post(format!("{}/v1/events", svc.http()))
        .header("content-type", "application/json")
        .body("{\"id\": \"x\"}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    assert!(r.text().await.unwrap().contains("line 1"));
    let r = c
        .post(format!("{}/v1/events", svc.http()))
        .header("content-type", "application/xml")
        .body("<Foo/>")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    assert!(r.text().await.unwrap().contains("<Foo>"));
}
