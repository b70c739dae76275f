//! The pseudonym table is write-once and tamper-evident: a pairwise id keeps its first subject, a
//! re-mapping is refused (409) and logged as a security alert, every accepted change is an event in
//! the Merkle log, and `verify` reports a row changed, added or removed outside the service.

mod support;

use kizuna_audit::checkpoint::load_signing_key;
use kizuna_audit::event::{ActiveParticipant, AuditSourceIdentification};
use kizuna_audit::tsa::TsaTrust;
use kizuna_audit::verify::{VerifyOptions, verify};
use kizuna_audit::{AuditEvent, EventKind};
use serde_json::json;
use support::*;

const DOC_PW: &str = "Fuh4rEN9WPOcmXSoB5bEgwon1aBal_SdwOcw7_fKdHc";

async fn post_maps(base: &str, maps: serde_json::Value) -> (u16, String) {
    let r = reqwest::Client::new().post(format!("{base}/v1/pseudonyms")).json(&maps).send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

fn doctor(name: &str) -> serde_json::Value {
    json!([{"pairwise_id": DOC_PW, "sector": "viewer", "subject_id": "u-doctor", "display_name": name}])
}

fn nurse_over_doctor() -> serde_json::Value {
    json!([{"pairwise_id": DOC_PW, "sector": "viewer", "subject_id": "u-nurse", "display_name": "Nurse Abe"}])
}

/// Rows of a search (auditor token).
async fn rows(base: &str, query: &str) -> Vec<serde_json::Value> {
    let (s, body) = get(&format!("{base}/v1/events?{query}")).await;
    assert_eq!(s, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

#[tokio::test]
async fn a_registered_pairwise_id_is_never_remapped_and_the_attempt_is_a_logged_security_alert() {
    let svc = service(None, true).await;
    let base = svc.http();
    assert_eq!(post_maps(&base, doctor("Dr. Sato")).await.0, 204);
    assert_eq!(post_maps(&base, doctor("Dr. Sato")).await.0, 204, "a retry is accepted");
    let view =
        AuditEvent::new(EventKind::PatientRecordRead, AuditSourceIdentification::new("kizuna-viewer", None))
            .participant(ActiveParticipant::requestor(DOC_PW))
            .object(kizuna_audit::event::ParticipantObject::patient("KZ672115596492"));
    let r = reqwest::Client::new().post(format!("{base}/v1/events")).json(&view).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);

    // The reviewer's re-attribution of the doctor's reads to the nurse.
    let (status, reason) = post_maps(&base, nurse_over_doctor()).await;
    assert_eq!(status, 409, "{reason}");
    assert!(reason.contains(DOC_PW) && reason.contains("already registered"), "{reason}");
    let (_, m) = get(&format!("{base}/v1/pseudonyms/{DOC_PW}")).await;
    assert!(m.contains("u-doctor") && !m.contains("u-nurse"), "{m}");
    let mine = wait_for(&base, "user=u-doctor&event_type=110110", 1).await;
    assert_eq!(mine[0]["user_subject"], "u-doctor");
    assert!(rows(&base, "user=u-nurse&event_type=110110").await.is_empty());

    // A batch with one conflict writes nothing, not even its new mapping.
    let mixed = json!([
        {"pairwise_id": "pw-new", "sector": "viewer", "subject_id": "u-other"},
        {"pairwise_id": DOC_PW, "sector": "viewer", "subject_id": "u-nurse"},
    ]);
    assert_eq!(post_maps(&base, mixed).await.0, 409);
    assert_eq!(get(&format!("{base}/v1/pseudonyms/pw-new")).await.0, 404);

    // The same subject under a new display name (a name change) is accepted, and logged.
    assert_eq!(post_maps(&base, doctor("Dr. Sato-Kato")).await.0, 204);
    let (_, m) = get(&format!("{base}/v1/pseudonyms/{DOC_PW}")).await;
    assert!(m.contains("Dr. Sato-Kato") && m.contains("u-doctor"), "{m}");

    // In the log: the registration (C), the rename (U) and both refusals (outcome 8), by the
    // sender's credential and address.
    let alerts = wait_for(&base, "event_type=110137&limit=1000", 5).await;
    let of = |action: &str, outcome: i64| {
        alerts.iter().filter(|r| r["action"] == action && r["outcome"] == outcome).count()
    };
    assert_eq!(of("E", 0), 1, "the table adopted at the first start: {alerts:?}");
    assert_eq!(of("C", 0), 1, "the doctor's registration: {alerts:?}");
    assert_eq!(of("U", 0), 1, "{alerts:?}");
    assert_eq!(of("U", 8), 2, "{alerts:?}");
    assert!(alerts.iter().all(|r| r["source_id"] == "kizuna-audit" && r["event_code"] == "110113"));
    let refused = alerts.iter().find(|r| r["outcome"] == 8).unwrap();
    assert_eq!(refused["user_id"], "loopback-no-token");
    let (_, fhir) = get(&format!("{base}/fhir/AuditEvent/{}", refused["event_id"].as_str().unwrap())).await;
    for part in [DOC_PW, "u-nurse", "u-doctor", "registered_subject_id", "127.0.0.1"] {
        assert!(fhir.contains(part), "{part} missing in {fhir}");
    }
}

#[tokio::test]
async fn intake_refuses_events_that_claim_the_audit_services_own_source() {
    let svc = service(None, true).await;
    let forged = AuditEvent::new(EventKind::Query, AuditSourceIdentification::new("kizuna-audit", None))
        .participant(ActiveParticipant::requestor("upgrade"));
    let r =
        reqwest::Client::new().post(format!("{}/v1/events", svc.http())).json(&forged).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 400);
    assert!(r.text().await.unwrap().contains("reserved"));
}

#[tokio::test]
async fn verify_reports_pseudonym_rows_changed_added_or_removed_outside_the_service() {
    let mut svc = service(None, true).await;
    let base = svc.http();
    assert_eq!(post_maps(&base, doctor("Dr. Sato")).await.0, 204);
    let maps = json!([{"pairwise_id": "pw-nurse", "sector": "viewer", "subject_id": "u-nurse"}]);
    assert_eq!(post_maps(&base, maps).await.0, 204);
    svc.server.take().unwrap().shutdown().await.unwrap();
    let opts = VerifyOptions {
        database_url: svc.cfg.database_url(),
        data_dir: svc.cfg.data_dir.clone(),
        public_key: load_signing_key(&svc.cfg.signing_key_file).unwrap().verifying_key(),
        tsa_trust: Some(TsaTrust::from_pem_file(&svc.tsa.ca_cert).unwrap()),
        max_inclusion_proofs: 100,
    };
    let messages = |r: &kizuna_audit::verify::VerifyReport| {
        r.findings.iter().map(|f| f.to_string()).collect::<Vec<_>>().join("\n")
    };
    let r = verify(&opts).await.unwrap();
    assert!(r.ok(), "{}", messages(&r));

    // Someone with database access re-attributes the doctor, adds a mapping and drops one.
    let db = kizuna_audit::db::Db::open(&svc.cfg.database_url()).await.unwrap();
    for sql in [
        format!("UPDATE audit_pseudonym SET subject_id = 'u-nurse' WHERE pairwise_id = '{DOC_PW}'"),
        "INSERT INTO audit_pseudonym VALUES ('pw-ghost', 'viewer', 'u-ghost', NULL, 0)".into(),
        "DELETE FROM audit_pseudonym WHERE pairwise_id = 'pw-nurse'".into(),
    ] {
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).execute(&db.pool).await.unwrap();
    }
    db.pool.close().await;
    let r = verify(&opts).await.unwrap();
    let m = messages(&r);
    assert_eq!(r.findings.len(), 3, "{m}");
    assert!(m.contains(&format!("pseudonym {DOC_PW}: the table says subject u-nurse")), "{m}");
    assert!(m.contains("the log registered subject u-doctor") && m.contains("(subject_id changed"), "{m}");
    assert!(m.contains("pseudonym pw-ghost -> u-ghost is in the table but was never registered"), "{m}");
    assert!(m.contains("pseudonym pw-nurse -> u-nurse was registered in the log but its row is gone"), "{m}");

    // A restart does not adopt the slipped-in row: adoption happens once, at the upgrade.
    svc.server = Some(kizuna_audit::server::start(&svc.cfg).await.unwrap());
    svc.server.take().unwrap().shutdown().await.unwrap();
    let again = verify(&opts).await.unwrap();
    assert!(messages(&again).contains("pw-ghost"), "{}", messages(&again));
}
