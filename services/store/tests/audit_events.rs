//! The store's audit events reach a real audit service (`kizuna_audit::server`, started here on
//! loopback): a refused upload is a Security Alert (110113 / 110126 Node Authentication, outcome 4)
//! naming the facility, the peer address and, when the token named one, the site; and events made
//! while the audit service is down wait in the spool and arrive once it is up.

mod common;

use common::{Backend, Harness, batch_files, corpus};
use kizuna_audit::emitter::SenderConfig;
use kizuna_wire::encode_batch;
use std::time::Duration;

/// A loopback port nothing listens on yet (bound, then released).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn spooled(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir)
        .map(|rd| rd.flatten().filter(|e| e.file_name().to_string_lossy().ends_with(".json")).count())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_uploads_become_security_alerts_even_while_the_audit_service_is_down() {
    let c = corpus(31, 2, 3, 0);
    let mut facs = c.facilities.iter();
    let (fa, files_a) = facs.next().unwrap();
    let (fb, _) = facs.next().unwrap();
    let audit_dir = tempfile::tempdir().unwrap();
    let spool = audit_dir.path().join("spool");
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}/v1/events");
    let h = Harness::start(&Backend::Sqlite, |cfg| {
        cfg.audit = SenderConfig { retry_secs: 1, ..SenderConfig::new(&url, &spool) };
    })
    .await;
    let _token_a = h.add_site("site-a", &[fa], &[]).await;
    let token_b = h.add_site("site-b", &[fb], &[]).await;
    let body = encode_batch(&batch_files(files_a)[..2]);

    // The audit service is down: both refusals are answered at once and wait in the spool.
    let (status, v) = h.post_raw("kzn_wrong-token", fa, body.clone()).await;
    assert_eq!((status, v["error"].as_str()), (401, Some("unauthorized")), "{v}");
    let (status, v) = h.post_raw(&token_b, fa, body).await;
    assert_eq!((status, v["error"].as_str()), (403, Some("facility_not_allowed")), "{v}");
    tokio::time::sleep(Duration::from_millis(1500)).await; // at least one failed delivery attempt
    assert_eq!(spooled(&spool), 2, "both events are spooled while the audit service is down");

    // The audit service comes up on the configured address; the spool drains into it.
    let cfg = kizuna_audit::server::local_config(
        &audit_dir.path().join("audit"),
        &format!("127.0.0.1:{port}"),
        None,
    )
    .unwrap();
    let server = kizuna_audit::server::start(&cfg).await.unwrap();
    let base = format!("http://{}", server.http_addr);
    let events = kizuna_audit::server::events_when(&base, "event_type=110126", 2).await.unwrap();
    assert_eq!(events.len(), 2, "{events:?}");
    for e in &events {
        assert_eq!(e["event_code"], "110113", "{e}");
        assert_eq!(e["outcome"], 4, "a failed authentication is a minor failure: {e}");
        assert_eq!(e["source_id"], "kizuna-store", "{e}");
        assert_eq!(e["facility"].as_str(), Some(fa.as_str()), "{e}");
    }
    let users: std::collections::BTreeSet<&str> =
        events.iter().map(|e| e["user_id"].as_str().unwrap()).collect();
    assert_eq!(users, ["site-b", "unknown-site"].into_iter().collect());
    for _ in 0..50 {
        if spooled(&spool) == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(spooled(&spool), 0, "delivered events leave the spool");

    // The stored body carries the peer address and the reason, for the auditor.
    let r = reqwest::get(format!("{base}/fhir/AuditEvent?subtype=110126")).await.unwrap();
    let text = r.text().await.unwrap();
    assert!(text.contains("127.0.0.1") && text.contains("the token is not valid for any site"), "{text}");

    // A second refusal while the service is up arrives too (live delivery, not only the retry).
    let (status, _) = h.post_raw("kzn_other-wrong-token", fa, Vec::new()).await;
    assert_eq!(status, 401);
    kizuna_audit::server::events_when(&base, "event_type=110126", 3).await.unwrap();
    h.stop().await;
    server.shutdown().await.unwrap();
}
