//! What auditors get and what is recorded about them: a CSV export holds every matching event
//! (beyond the old silent 10,000-row cut) and says how many; each auditor search is recorded under
//! the name of the auditor whose token was used, with the patient searched for.

mod support;

use kizuna_audit::config::AuditConfig;
use std::collections::BTreeSet;
use support::*;

#[tokio::test]
async fn a_csv_export_beyond_ten_thousand_rows_holds_every_event_and_says_how_many() {
    let svc = service(None, true).await;
    let base = svc.http();
    let c = reqwest::Client::new();
    const N: u64 = 10_050;
    for chunk in (0..N).collect::<Vec<_>>().chunks(2_000) {
        let events: Vec<_> = chunk.iter().map(|i| view(*i, "pw-busy", "KZ123456789015")).collect();
        let r = c.post(format!("{base}/v1/events")).json(&events).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 200);
    }
    let r = c
        .get(format!("{base}/v1/export.csv?patient=KZ123456789015"))
        .bearer_auth(AUDITOR)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let total: usize =
        r.headers().get("x-total-count").expect("X-Total-Count header").to_str().unwrap().parse().unwrap();
    let csv = r.text().await.unwrap();
    let mut reader = csv::Reader::from_reader(csv.as_bytes());
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), total, "every matching event, as announced");
    let views = rows.iter().filter(|r| &r[12] == "viewer@centre").count();
    assert_eq!(views as u64, N, "none of the {N} views is cut");
    let seqs: BTreeSet<&str> = rows.iter().map(|r| &r[0]).collect();
    assert_eq!(seqs.len(), rows.len(), "no row twice across pages");
    // The export itself is recorded for the patient (and is in its own snapshot).
    assert_eq!(rows.iter().filter(|r| &r[12] == "kizuna-audit").count(), 1);

    // An explicit limit is honoured (and the header still tells the whole count).
    let r = c
        .get(format!("{base}/v1/export.csv?patient=KZ123456789015&limit=5&event_type=110110"))
        .bearer_auth(AUDITOR)
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-total-count"], N.to_string().as_str());
    assert_eq!(r.text().await.unwrap().lines().count(), 6);
}

#[tokio::test]
async fn each_auditor_search_is_recorded_under_the_auditors_name_with_the_patient_searched() {
    let svc = service(None, false).await;
    let tokens = svc.dir.path().join("auditors.tokens");
    write_secret(&tokens, "# name token\ntanaka tok-tanaka-0123456789\nsuzuki  tok-suzuki-0123456789\n");
    // The fixture's configuration (shared auditor_token_file) plus per-auditor tokens.
    let yaml = format!(
        "{}auditor_tokens_file: {}\n",
        serde_norway::to_string(&svc.cfg).unwrap().replace("auditor_tokens_file: null\n", ""),
        tokens.display()
    );
    let cfg = AuditConfig::parse(&yaml, std::path::Path::new("test.yaml")).unwrap();
    let server = kizuna_audit::server::start(&cfg).await.unwrap();
    let base = format!("http://{}", server.http_addr);
    let c = reqwest::Client::new();
    let as_auditor = |url: String, token: &'static str| {
        let c = c.clone();
        async move { c.get(url).bearer_auth(token).send().await.unwrap().status().as_u16() }
    };
    assert_eq!(as_auditor(format!("{base}/v1/events?patient=KZ1"), "tok-tanaka-0123456789").await, 200);
    assert_eq!(as_auditor(format!("{base}/v1/export.csv?patient=KZ1"), "tok-suzuki-0123456789").await, 200);
    assert_eq!(as_auditor(format!("{base}/fhir/AuditEvent?patient=KZ1"), "tok-suzuki-0123456789").await, 200);
    assert_eq!(as_auditor(format!("{base}/v1/counts?patient=KZ2"), AUDITOR).await, 200);
    assert_eq!(as_auditor(format!("{base}/v1/events?patient=KZ1"), "tok-nobody").await, 401);

    // "Who looked at KZ1" lists the auditors' searches and exports, by name.
    let rows = wait_for(&base, "patient=KZ1&limit=1000", 4).await;
    let who: BTreeSet<(&str, &str)> =
        rows.iter().map(|r| (r["user_id"].as_str().unwrap(), r["source_id"].as_str().unwrap())).collect();
    assert!(
        who.contains(&("tanaka", "kizuna-audit")) && who.contains(&("suzuki", "kizuna-audit")),
        "{who:?}"
    );
    assert!(rows.iter().all(|r| r["patient_id"] == "KZ1" && r["event_code"] == "110112"), "{rows:?}");
    // The single shared token keeps working, recorded as `auditor`.
    let kz2 = wait_for(&base, "patient=KZ2&user=auditor", 1).await;
    assert_eq!(kz2[0]["source_id"], "kizuna-audit");
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_backdated_event_shows_when_the_service_received_it() {
    let svc = service(None, true).await;
    let base = svc.http();
    let old = jiff::Timestamp::from_second(1_700_000_000).unwrap();
    let ev = view(1, "pw-late", "KZ9").at(old);
    let r = reqwest::Client::new().post(format!("{base}/v1/events")).json(&ev).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let rows = wait_for(&base, "user=pw-late", 1).await;
    assert_eq!(rows[0]["event_time"], old.to_string());
    let received: jiff::Timestamp = rows[0]["received_at"].as_str().unwrap().parse().unwrap();
    assert!(received > jiff::Timestamp::now() - jiff::SignedDuration::from_mins(5), "{received}");
    let (_, csv) = get(&format!("{base}/v1/export.csv?user=pw-late")).await;
    assert!(csv.lines().next().unwrap().ends_with(",received_at"), "{csv}");
}
