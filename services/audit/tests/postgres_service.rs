//! The service on the PostgreSQL server `KIZUNA_TEST_POSTGRES_URL` names (`tests/pg-setup.sh`):
//! write-once pseudonyms, their check in verify, and a CSV export paged across several pages.

mod support;

use kizuna_audit::checkpoint::load_signing_key;
use kizuna_audit::tsa::TsaTrust;
use kizuna_audit::verify::{VerifyOptions, verify};
use serde_json::json;
use support::*;

#[tokio::test(flavor = "multi_thread")]
async fn pseudonyms_verify_and_a_paged_csv_export_work_on_postgresql() {
    let Some(url) = kizuna_db::fresh_test_postgres("audit_service").await else { return };
    let mut svc = service(None, false).await;
    svc.cfg.database_url = url.clone();
    svc.server = Some(kizuna_audit::server::start(&svc.cfg).await.unwrap());
    let base = svc.http();
    let c = reqwest::Client::new();
    let post = |maps: serde_json::Value| {
        let c = c.clone();
        let u = format!("{base}/v1/pseudonyms");
        async move { c.post(u).json(&maps).send().await.unwrap().status().as_u16() }
    };
    let doc = json!([{"pairwise_id": "pw-doc", "sector": "viewer", "subject_id": "u-doctor"}]);
    assert_eq!(post(doc.clone()).await, 204);
    assert_eq!(post(doc).await, 204);
    assert_eq!(
        post(json!([{"pairwise_id": "pw-doc", "sector": "viewer", "subject_id": "u-nurse"}])).await,
        409
    );

    let events: Vec<_> = (0..2_500).map(|i| view(i, "pw-doc", "KZ1")).collect();
    let r = c.post(format!("{base}/v1/events")).json(&events).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let r = c
        .get(format!("{base}/v1/export.csv?patient=KZ1&event_type=110110"))
        .bearer_auth(AUDITOR)
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-total-count"], "2500");
    let csv = r.text().await.unwrap();
    assert_eq!(csv.lines().count(), 2_501);
    assert_eq!(csv.matches(",u-doctor,").count(), 2_500, "resolved through the pseudonym table");
    svc.server.take().unwrap().shutdown().await.unwrap();

    let opts = VerifyOptions {
        database_url: url.clone(),
        data_dir: svc.cfg.data_dir.clone(),
        public_key: load_signing_key(&svc.cfg.signing_key_file).unwrap().verifying_key(),
        tsa_trust: Some(TsaTrust::from_pem_file(&svc.tsa.ca_cert).unwrap()),
        max_inclusion_proofs: 50,
    };
    let r = verify(&opts).await.unwrap();
    assert!(r.ok(), "{:?}", r.findings);
    let db = kizuna_audit::db::Db::open(&url).await.unwrap();
    sqlx::raw_sql("UPDATE audit_pseudonym SET subject_id = 'u-nurse' WHERE pairwise_id = 'pw-doc'")
        .execute(&db.pool)
        .await
        .unwrap();
    db.pool.close().await;
    let r = verify(&opts).await.unwrap();
    let m: Vec<String> = r.findings.iter().map(|f| f.to_string()).collect();
    assert_eq!(m.len(), 1, "{m:?}");
    assert!(m[0].contains("pseudonym pw-doc: the table says subject u-nurse"), "{m:?}");
}
