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
    let audit = audit_service(adir.path()).await;
    let audit_base = format!("http://{}", audit.http_addr);
    let token_file = adir.path().join("intake.token");
    let p = provider_with(|c| {
        c.audit_url = Some(audit_base.clone());
        c.audit_token_file = Some(token_file.clone());
    })
    .await;
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
