//! An auditor finds who viewed a patient: JSON search with pairwise ids resolved, counts, CSV, the
//! ITI-81 FHIR Bundle, and the web UI driven by headless Chromium (screenshot kept under target/).

mod support;

use kizuna_audit::event::{ActiveParticipant, AuditSourceIdentification, ParticipantObject};
use kizuna_audit::{AuditEvent, EventKind};
use support::*;

async fn seed(base: &str) {
    let c = reqwest::Client::new();
    let maps = serde_json::json!([
        {"pairwise_id": "pw-doc1", "sector": "viewer", "subject_id": "sato.taro@hospital-a", "display_name": "佐藤 太郎"},
        {"pairwise_id": "pw-doc1-auth", "sector": "auth", "subject_id": "sato.taro@hospital-a", "display_name": "佐藤 太郎"},
    ]);
    let r = c.post(format!("{base}/v1/pseudonyms")).json(&maps).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 204);
    let login =
        AuditEvent::new(EventKind::Login, AuditSourceIdentification::new("auth@centre", Some("F0401")))
            .participant(ActiveParticipant::requestor("pw-doc1-auth"));
    let bg = AuditEvent::new(
        EventKind::PatientRecordRead,
        AuditSourceIdentification::new("viewer@centre", Some("F0777")),
    )
    .participant(ActiveParticipant::requestor("pw-nurse9"))
    .object(ParticipantObject::patient("CHID-000123"))
    .break_glass();
    let events = vec![
        login,
        view(1, "pw-doc1", "CHID-000123"),
        view(2, "pw-doc1", "CHID-000123"),
        view(3, "pw-doc2", "CHID-000999"),
        bg,
    ];
    let r = c.post(format!("{base}/v1/events")).json(&events).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200, "{}", r.text().await.unwrap());
}

#[tokio::test]
async fn auditor_finds_who_viewed_a_patient_in_json_csv_and_fhir() {
    let svc = service(None, true).await;
    let base = svc.http();
    seed(&base).await;

    // 110110: the auditor's own searches for the patient are recorded with it too (tests/auditor_access.rs).
    let rows = wait_for(&base, "patient=CHID-000123&event_type=110110", 3).await;
    assert_eq!(rows.len(), 3);
    let doc1: Vec<_> = rows.iter().filter(|r| r["user_id"] == "pw-doc1").collect();
    assert_eq!(doc1.len(), 2);
    assert_eq!(doc1[0]["user_subject"], "sato.taro@hospital-a");
    assert_eq!(doc1[0]["user_display"], "佐藤 太郎");
    assert!(rows.iter().any(|r| r["user_id"] == "pw-nurse9" && r["break_glass"] == true));

    // The real subject finds events under every pairwise id issued for them.
    let rows = wait_for(&base, "user=sato.taro@hospital-a", 3).await;
    assert_eq!(rows.len(), 3, "{rows:?}");
    let (_, body) = get(&format!("{base}/v1/events?user=sato.taro@hospital-a&event_type=110122")).await;
    assert_eq!(serde_json::from_str::<Vec<serde_json::Value>>(&body).unwrap().len(), 1, "one login");
    let (_, body) = get(&format!("{base}/v1/events?facility=F0777")).await;
    assert_eq!(serde_json::from_str::<Vec<serde_json::Value>>(&body).unwrap().len(), 1);

    let (s, counts) = get(&format!("{base}/v1/counts?by=user&patient=CHID-000123&event_type=110110")).await;
    assert_eq!(s, 200);
    let counts: serde_json::Value = serde_json::from_str(&counts).unwrap();
    assert_eq!(counts[0], serde_json::json!({"key": "pw-doc1", "count": 2}));
    let (_, by_day) = get(&format!("{base}/v1/counts?by=day&patient=CHID-000123")).await;
    let today = jiff::Timestamp::now().strftime("%Y-%m-%d").to_string();
    assert!(by_day.contains(&today), "{by_day}");

    let (s, csv) = get(&format!("{base}/v1/export.csv?patient=CHID-000123&event_type=110110")).await;
    assert_eq!(s, 200);
    let lines: Vec<&str> = csv.lines().collect();
    assert!(lines[0].starts_with("seq,event_id,event_time"));
    assert_eq!(lines.len(), 4);
    assert!(csv.contains("sato.taro@hospital-a"));

    let (s, bundle) = get(&format!(
        "{base}/fhir/AuditEvent?patient=urn:kizuna:common-health-id|CHID-000123&date=ge2020-01-01&type=110110"
    ))
    .await;
    assert_eq!(s, 200, "{bundle}");
    let b: serde_json::Value = serde_json::from_str(&bundle).unwrap();
    assert_eq!(b["resourceType"], "Bundle");
    assert_eq!(b["type"], "searchset");
    assert_eq!(b["total"], 3);
    let first = &b["entry"][0]["resource"];
    assert_eq!(first["resourceType"], "AuditEvent");
    assert_eq!(first["entity"][0]["what"]["identifier"]["value"], "CHID-000123");
    let (s, oo) = get(&format!("{base}/fhir/AuditEvent?bogus=1")).await;
    assert_eq!(s, 400);
    assert!(oo.contains("OperationOutcome") && oo.contains("bogus"));

    // Without the auditor token: refused.
    let r = reqwest::get(format!("{base}/v1/events?patient=CHID-000123")).await.unwrap();
    assert_eq!(r.status().as_u16(), 401);

    // Every auditor search was itself recorded as a Query event by the audit service.
    let (_, body) = get(&format!("{base}/v1/events?user=auditor&event_type=110112&limit=1000")).await;
    assert!(serde_json::from_str::<Vec<serde_json::Value>>(&body).unwrap().len() >= 5);
}

fn chromium() -> Option<std::path::PathBuf> {
    ["chromium", "chromium-browser", "google-chrome"].iter().find_map(|c| {
        std::env::split_paths(&std::env::var_os("PATH")?).map(|d| d.join(c)).find(|p| p.is_file())
    })
}

#[tokio::test]
async fn headless_chromium_shows_the_auditor_who_viewed_a_patient() {
    let Some(browser) = chromium() else {
        assert!(std::env::var("CI").is_err(), "chromium is required under CI (tests/apt-packages.txt)");
        eprintln!("SKIP: chromium not installed");
        return;
    };
    let svc = service(None, true).await;
    let base = svc.http();
    seed(&base).await;
    wait_for(&base, "patient=CHID-000123", 3).await;
    let url = format!("{base}/ui?token={AUDITOR}&patient=CHID-000123&event_type=110110");
    let profile = tempfile::tempdir().unwrap();
    let run = |extra: &[String]| {
        let url = url.clone();
        let browser = browser.clone();
        let mut args: Vec<String> = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--window-size=1400,900",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.push(format!("--user-data-dir={}", profile.path().display()));
        args.extend_from_slice(extra);
        args.push(url);
        async move { tokio::process::Command::new(browser).args(args).output().await.unwrap() }
    };
    let out = run(&["--dump-dom".to_string()]).await;
    let dom = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "chromium failed: {}", String::from_utf8_lossy(&out.stderr));
    assert!(dom.contains("<table id=\"results\">"), "{dom}");
    let rows = dom.matches("<tr class=\"event").count();
    assert_eq!(rows, 3, "{dom}");
    assert!(dom.contains("佐藤 太郎 (sato.taro@hospital-a)"), "{dom}");
    assert!(dom.contains("break-glass"), "{dom}");
    assert!(dom.contains("id=\"by-user\""), "{dom}");
    assert!(dom.contains("/v1/export.csv?patient=CHID-000123"), "{dom}");

    let shot = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("kizuna-audit-ui.png");
    let _ = std::fs::remove_file(&shot);
    let out = run(&[format!("--screenshot={}", shot.display())]).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let png = std::fs::read(&shot).unwrap();
    assert!(png.starts_with(b"\x89PNG") && png.len() > 10_000, "screenshot at {}", shot.display());
    eprintln!("screenshot: {}", shot.display());
}

/// Searching is access to personal data: when the auditor's own query cannot be recorded (here the
/// database refuses every insert, as a full disk would), every search route answers 503 without data.
#[tokio::test]
async fn a_search_that_cannot_be_recorded_answers_503_without_data() {
    let svc = service(None, true).await;
    let base = svc.http();
    seed(&base).await;
    wait_for(&base, "patient=CHID-000123", 3).await;
    let db = kizuna_audit::db::Db::open(&svc.cfg.database_url()).await.unwrap();
    sqlx::raw_sql("CREATE TRIGGER refuse_events BEFORE INSERT ON audit_event BEGIN SELECT RAISE(ABORT, 'disk full'); END")
        .execute(&db.pool)
        .await
        .unwrap();
    let routes = [
        "/v1/events?patient=CHID-000123",
        "/v1/counts?by=user&patient=CHID-000123",
        "/v1/export.csv?patient=CHID-000123",
        "/v1/pseudonyms/pw-doc1",
        "/fhir/AuditEvent?patient=urn:kizuna:common-health-id|CHID-000123",
        "/fhir/AuditEvent/view-pw-doc1-1",
        "/ui?patient=CHID-000123",
    ];
    for route in routes {
        let (s, body) = get(&format!("{base}{route}")).await;
        assert_eq!(s, 503, "{route}: {body}");
        for data in ["pw-doc1", "sato.taro", "佐藤", "F0401", "10.20.1.5"] {
            assert!(!body.contains(data), "{route} answered data ({data}) it could not record: {body}");
        }
    }
    // Once the trail can be written again, so are the answers.
    sqlx::raw_sql("DROP TRIGGER refuse_events").execute(&db.pool).await.unwrap();
    db.pool.close().await;
    for route in routes {
        let (s, body) = get(&format!("{base}{route}")).await;
        assert_eq!(s, 200, "{route}: {body}");
    }
}
