//! The store's audit events reach a real audit service (`kizuna_audit::server`, started here on
//! loopback): a refused upload is a Security Alert (110113 / 110126 Node Authentication, outcome 4)
//! naming the facility, the peer address and, when the token named one, the site; and events made
//! while the audit service is down wait in the spool and arrive once it is up.

mod common;

use common::{Backend, Harness, batch_files, corpus};
use kizuna_audit::AuditEvent;
use kizuna_audit::emitter::SenderConfig;
use kizuna_wire::encode_batch;
use std::time::Duration;

/// A loopback port nothing listens on yet (bound, then released).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A client whose connections come from `ip` (any 127.x address works on loopback).
fn client_from(ip: &str) -> reqwest::Client {
    reqwest::Client::builder().local_address(ip.parse::<std::net::IpAddr>().unwrap()).build().unwrap()
}

/// The events waiting in a spool.
fn spooled_events(dir: &std::path::Path) -> Vec<AuditEvent> {
    let mut out: Vec<(std::path::PathBuf, AuditEvent)> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".json"))
        .map(|e| (e.path(), AuditEvent::from_json(&std::fs::read(e.path()).unwrap()).unwrap()))
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out.into_iter().map(|(_, e)| e).collect()
}

/// An event's peer address and the value of its object detail `kind`.
fn peer_and(e: &AuditEvent, kind: &str) -> (String, Option<String>) {
    let ip = e.participants.iter().find_map(|p| p.network_access_point.as_ref()).map(|n| n.id.clone());
    let v = e.objects.iter().flat_map(|o| &o.details).find(|(k, _)| k == kind).map(|(_, v)| v.clone());
    (ip.unwrap_or_default(), v)
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
    // From another address: another bad token from 127.0.0.1 now goes into a summary (below).
    let r = client_from("127.0.0.2")
        .post(format!("{}/api/v1/facilities/{fa}/batches", h.base))
        .bearer_auth("kzn_other-wrong-token")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    kizuna_audit::server::events_when(&base, "event_type=110126", 3).await.unwrap();
    h.stop().await;
    server.shutdown().await.unwrap();
}

/// A flood of refused requests from one address is one audit event at once, then summaries that
/// carry the count, at most one per `limits.refusal_audit_secs`; every request is still answered
/// 401; a refusal from a second address is audited at once, mid-flood. (Before, each of the 500
/// refusals was an audit event, spooled with an fsync.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_refusals_from_one_address_is_audited_once_then_summarised_with_its_count() {
    const FLOOD: usize = 500;
    const EVERY_SECS: u64 = 2;
    let audit_dir = tempfile::tempdir().unwrap();
    let spool = audit_dir.path().join("spool");
    // The audit service is down throughout: every event stays in the spool, where it is counted.
    let url = format!("http://127.0.0.1:{}/v1/events", free_port());
    let h = Harness::start(&Backend::Sqlite, |cfg| {
        cfg.audit = SenderConfig { retry_secs: 3600, ..SenderConfig::new(&url, &spool) };
        cfg.limits.refusal_audit_secs = EVERY_SECS;
    })
    .await;
    let heartbeat = |client: reqwest::Client, token: String| {
        let url = format!("{}/api/v1/heartbeat", h.base);
        async move { client.post(url).bearer_auth(token).body("{}").send().await.unwrap().status().as_u16() }
    };
    let started = std::time::Instant::now();
    let local = client_from("127.0.0.1");
    assert_eq!(heartbeat(local.clone(), "kzn_bad-0".into()).await, 401);
    assert_eq!(spooled(&spool), 1, "the first refusal is audited at once");

    let mut statuses = Vec::new();
    for chunk in (1..FLOOD).collect::<Vec<_>>().chunks(8) {
        let tasks: Vec<_> =
            chunk.iter().map(|i| tokio::spawn(heartbeat(local.clone(), format!("kzn_bad-{i}")))).collect();
        for t in tasks {
            statuses.push(t.await.unwrap());
        }
        if chunk[0] == 249 {
            // Mid-flood, another address: audited at once.
            let before = spooled(&spool);
            assert_eq!(heartbeat(client_from("127.0.0.2"), "kzn_bad-other".into()).await, 401);
            let events = spooled_events(&spool);
            assert_eq!(events.len(), before + 1, "a refusal from a second address is audited at once");
            assert!(events.iter().any(|e| peer_and(e, "reason").0 == "127.0.0.2"), "{events:?}");
        }
    }
    let flood_took = started.elapsed();
    assert!(statuses.iter().all(|s| *s == 401), "every refused request is answered 401: {statuses:?}");
    // The last summary is sent once its interval has passed, with no further refusal to trigger it.
    tokio::time::sleep(std::time::Duration::from_secs(EVERY_SECS * 2)).await;

    let events = spooled_events(&spool);
    let from_first: Vec<(String, Option<String>)> =
        events.iter().map(|e| peer_and(e, "refusals")).filter(|(ip, _)| ip == "127.0.0.1").collect();
    let summaries: Vec<u64> = from_first.iter().filter_map(|(_, n)| n.as_ref()?.parse().ok()).collect();
    eprintln!(
        "{FLOOD} refusals in {flood_took:?}: {} events from 127.0.0.1, summaries {summaries:?}",
        from_first.len()
    );
    assert_eq!(from_first.len() - summaries.len(), 1, "one refusal audited in full: {from_first:?}");
    assert_eq!(summaries.iter().sum::<u64>(), FLOOD as u64 - 1, "the summaries count every other refusal");
    let windows = flood_took.as_secs() / EVERY_SECS + 2;
    assert!(
        !summaries.is_empty() && summaries.len() as u64 <= windows && from_first.len() <= 8,
        "at most one summary per {EVERY_SECS} s ({flood_took:?} of flood): {summaries:?}"
    );
    let summary = events.iter().find(|e| peer_and(e, "refusals").1.is_some()).unwrap();
    let reason = peer_and(summary, "reason").1.unwrap();
    assert!(
        reason.contains("more refusals from 127.0.0.1 for 401 unauthorized")
            && reason.contains("the token is not valid for any site (heartbeat)"),
        "{reason}"
    );
    assert_eq!(events.len(), from_first.len() + 1, "and the one from 127.0.0.2: {events:?}");
    h.stop().await;
}
