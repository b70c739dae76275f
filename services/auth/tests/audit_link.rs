//! With an audit service configured: logins (refused and successful) and logouts become audit
//! events, and every pairwise id is registered so that auditors — only they — can resolve it.

mod support;

use kizuna_audit::config::AuditConfig;
use std::path::Path;
use support::*;

const AUDITOR: &str = "auditor-token-for-auth-tests";

async fn audit_service(dir: &Path) -> kizuna_audit::server::RunningServer {
    let key = dir.join("audit.key");
    kizuna_audit::checkpoint::generate_key(&key).unwrap();
    write_secret(&dir.join("auditor.token"), &format!("{AUDITOR}\n"));
    write_secret(&dir.join("intake.token"), "intake-token-for-auth-tests\n");
    let yaml = format!(
        "data_dir: {d}/data\nsigning_key_file: {k}\nhttp_listen: 127.0.0.1:0\ncheckpoint_interval_secs: 1\n\
         auditor_token_file: {d}/auditor.token\nintake_token_file: {d}/intake.token\n",
        d = dir.display(),
        k = key.display()
    );
    let cfg = AuditConfig::parse(&yaml, Path::new("audit-test.yaml")).unwrap();
    kizuna_audit::server::start(&cfg).await.unwrap()
}

/// An audit service in `dir` and a provider sending to it (with the intake token); the audit
/// service's base URL.
async fn provider_with_audit(dir: &Path) -> (kizuna_audit::server::RunningServer, String, Provider) {
    let audit = audit_service(dir).await;
    let audit_base = format!("http://{}", audit.http_addr);
    let token_file = dir.join("intake.token");
    let p = provider_with(|c| {
        c.audit_url = Some(audit_base.clone());
        c.audit_token_file = Some(token_file);
    })
    .await;
    (audit, audit_base, p)
}

async fn auditor_get(url: &str) -> (u16, serde_json::Value) {
    let r = reqwest::Client::new().get(url).bearer_auth(AUDITOR).send().await.unwrap();
    let s = r.status().as_u16();
    (s, r.json().await.unwrap_or(serde_json::Value::Null))
}

/// Poll the audit search until `n` events match.
async fn events(base: &str, query: &str, n: usize) -> Vec<serde_json::Value> {
    for _ in 0..150 {
        let (s, v) = auditor_get(&format!("{base}/v1/events?{query}")).await;
        assert_eq!(s, 200, "{v}");
        if v.as_array().unwrap().len() >= n {
            return v.as_array().unwrap().clone();
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("{query}: fewer than {n} audit events arrived");
}

#[tokio::test]
async fn logins_and_logouts_are_audited_and_pairwise_ids_resolve_for_auditors() {
    let adir = tempfile::tempdir().unwrap();
    let (audit, audit_base, p) = provider_with_audit(adir.path()).await;
    let secret = clinician(&p, "mori", "F0406").await;
    let user = p.server.directory().user_by_username("mori").await.unwrap().unwrap();
    let mut b = Browser::new();
    let (verifier, challenge) = pkce_pair();
    let authorize = authorize_url(p.issuer(), "viewer", VIEWER_CB, &challenge, &[]);
    // One wrong password first.
    let page = b.get(&authorize).await;
    let csrf = page.csrf();
    let page = b
        .post(
            &format!("{}/login", p.issuer()),
            &[("csrf", &csrf), ("username", "mori"), ("password", "not the password")],
        )
        .await;
    assert_eq!(page.status, 401);
    let page = login(&mut b, p.issuer(), &authorize, "mori", &secret).await;
    let (_, tok) = exchange(&p, &page.location_param("code").unwrap(), VIEWER_CB, &verifier).await;
    let id_token = tok["id_token"].as_str().unwrap().to_string();
    let sub = {
        use base64::Engine;
        let c: serde_json::Value = serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(id_token.split('.').nth(1).unwrap())
                .unwrap(),
        )
        .unwrap();
        c["sub"].as_str().unwrap().to_string()
    };
    // Logout.
    let page = b.get(&format!("{}/logout?client_id=viewer", p.issuer())).await;
    let csrf = page.csrf();
    let page = b.post(&format!("{}/logout", p.issuer()), &[("csrf", &csrf), ("client_id", "viewer")]).await;
    assert_eq!(page.status, 200);

    // Login events: one refused (outcome 4), one successful (outcome 0), both for this user.
    let logins = events(&audit_base, &format!("user={}&event_type=110122", user.id), 2).await;
    let mut outcomes: Vec<i64> = logins.iter().map(|e| e["outcome"].as_i64().unwrap()).collect();
    outcomes.sort();
    assert_eq!(outcomes, vec![0, 4], "{logins:?}");
    let logouts = events(&audit_base, &format!("user={}&event_type=110123", user.id), 1).await;
    assert_eq!(logouts.len(), 1);
    // The viewer's pairwise id resolves to the user, for an auditor only.
    let mut resolved = None;
    for _ in 0..100 {
        p.server.register_pseudonyms().await.ok();
        let (s, v) = auditor_get(&format!("{audit_base}/v1/pseudonyms/{sub}")).await;
        if s == 200 {
            resolved = Some(v);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let m = resolved.expect("pairwise id registered with the audit service");
    assert_eq!(m["subject_id"], user.id.as_str());
    assert_eq!(m["sector"], "viewer");
    let anonymous = reqwest::get(format!("{audit_base}/v1/pseudonyms/{sub}")).await.unwrap();
    assert_eq!(anonymous.status(), 401, "resolution needs the auditor token");
    p.server.shutdown().await;
    audit.shutdown().await.unwrap();
}

/// A pairwise id the audit service already holds for another subject is refused there (409) for
/// good: the sign-on marks it refused and stops sending it (each attempt would be another security
/// alert), and the other ids still register. Before, the whole batch failed and was retried
/// every 30 s forever.
#[tokio::test]
async fn a_pairwise_id_the_audit_service_refuses_is_not_retried_and_the_others_register() {
    use sqlx::Row;
    let adir = tempfile::tempdir().unwrap();
    let (audit, audit_base, p) = provider_with_audit(adir.path()).await;
    clinician(&p, "mori", "F0406").await;
    clinician(&p, "abe", "F0407").await;
    let mori = p.server.directory().user_by_username("mori").await.unwrap().unwrap();
    let abe = p.server.directory().user_by_username("abe").await.unwrap().unwrap();
    // The audit service already holds "taken-sub" for someone else.
    let taken =
        serde_json::json!([{"pairwise_id": "taken-sub", "sector": "s1", "subject_id": "someone-else"}]);
    let r = reqwest::Client::new()
        .post(format!("{audit_base}/v1/pseudonyms"))
        .bearer_auth("intake-token-for-auth-tests")
        .json(&taken)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let db = p.server.directory().db();
    for (user, sector, sub) in [(&mori.id, "s1", "taken-sub"), (&abe.id, "s2", "free-sub")] {
        sqlx::query(
            "INSERT INTO auth_pairwise (user_id, sector, subject, registered) VALUES ($1, $2, $3, 0)",
        )
        .bind(user)
        .bind(sector)
        .bind(sub)
        .execute(&db.pool)
        .await
        .unwrap();
    }
    let pool = db.pool.clone();
    let state = |sub: &'static str| {
        let pool = pool.clone();
        async move {
            sqlx::query("SELECT registered FROM auth_pairwise WHERE subject = $1")
                .bind(sub)
                .fetch_one(&pool)
                .await
                .unwrap()
                .get::<i64, _>(0)
        }
    };
    p.server.register_pseudonyms().await.unwrap();
    assert_eq!(state("taken-sub").await, 2, "refused for good");
    assert_eq!(state("free-sub").await, 1, "the other id registered all the same");
    let (s, v) = auditor_get(&format!("{audit_base}/v1/pseudonyms/free-sub")).await;
    assert_eq!((s, v["subject_id"].as_str()), (200, Some(abe.id.as_str())));
    let (_, v) = auditor_get(&format!("{audit_base}/v1/pseudonyms/taken-sub")).await;
    assert_eq!(v["subject_id"], "someone-else", "the first mapping stands");

    // No retry: another round sends nothing, so no second security alert.
    let alerts = || async {
        let (_, v) = auditor_get(&format!("{audit_base}/v1/events?event_type=110113&limit=1000")).await;
        v.as_array().unwrap().len()
    };
    let before = alerts().await;
    assert!(before >= 1, "the refused attempt is a security alert");
    assert_eq!(p.server.register_pseudonyms().await.unwrap(), 0);
    assert_eq!(alerts().await, before);
    p.server.shutdown().await;
    audit.shutdown().await.unwrap();
}
