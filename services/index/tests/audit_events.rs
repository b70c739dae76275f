//! The index's audit events reach a real audit service (`kizuna_audit::server`, started here on
//! loopback): an admin's link decision is a Patient Record update of the common health ID by that
//! admin, and a viewer's lookup through `resolve_as` is a Query about the patient by that user.

use kizuna_audit::emitter::{AuditEmitter, SenderConfig};
use kizuna_audit::server::events_when;
use kizuna_index::registry::Registry;
use kizuna_index::{Demographics, RecordKey, Sex};

fn person(family: &str, given: &str, dob: &str) -> Demographics {
    Demographics {
        family_kanji: family.into(),
        given_kanji: given.into(),
        family_kana: String::new(),
        given_kana: String::new(),
        birth_date: Some(dob.into()),
        sex: Some(Sex::Female),
        address: String::new(),
        phone: String::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn link_decisions_and_lookups_arrive_at_the_audit_service() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = kizuna_audit::server::local_config(&dir.path().join("audit"), "127.0.0.1:0", None).unwrap();
    let server = kizuna_audit::server::start(&cfg).await.unwrap();
    let base = format!("http://{}", server.http_addr);
    let emitter =
        AuditEmitter::from_config(&SenderConfig::new(&format!("{base}/v1/events"), dir.path().join("spool")))
            .unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("index.sqlite").display());
    let reg = Registry::open(&url).await.unwrap().with_audit(emitter);

    // No matcher installed: each patient gets their own common ID; an admin then links them.
    let a = RecordKey::new("0411000017", "P001").unwrap();
    let b = RecordKey::new("0411000025", "X-77").unwrap();
    let ida = reg.enroll(&a, &person("佐藤", "花子", "1950-01-02")).await.unwrap().common_id;
    reg.enroll(&b, &person("佐藤", "花子", "1950-01-02")).await.unwrap();
    reg.link(&b, &ida, "admin-tanaka", "same person: confirmed by phone").await.unwrap();
    let ev = events_when(&base, &format!("patient={ida}"), 1).await.unwrap();
    assert_eq!(ev.len(), 1, "{ev:?}");
    assert_eq!(ev[0]["event_code"], "110110");
    assert_eq!(ev[0]["action"], "U");
    assert_eq!(ev[0]["user_id"], "admin-tanaka");
    assert_eq!(ev[0]["source_id"], "kizuna-index");
    assert_eq!(ev[0]["facility"], "0411000025", "the facility of the record that was linked");

    // A clinician's lookup: who looked at this patient.
    let keys = reg.resolve_as(&ida, "pw-dr-suzuki", Some("0411000017")).await.unwrap();
    assert_eq!(keys, vec![a.clone(), b.clone()]);
    let ev = events_when(&base, &format!("patient={ida}&event_type=110112"), 1).await.unwrap();
    assert_eq!(ev[0]["user_id"], "pw-dr-suzuki");
    assert_eq!(ev[0]["outcome"], 0);

    // Unlinking is recorded with the ID the record leaves.
    reg.unlink(&b, "admin-tanaka", "linked by mistake").await.unwrap();
    let ev = events_when(&base, &format!("patient={ida}&event_type=110110"), 2).await.unwrap();
    assert_eq!(ev.len(), 2, "{ev:?}");
    server.shutdown().await.unwrap();
}
