//! The site API's answers to bad, empty or refused requests: the token is checked before
//! anything about the site is told; empty or unchanged key registrations change nothing; a
//! malformed request gets the `{"error": ...}` body; a revoked credential is audited under its
//! site's name; token lifetimes are bounded.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use kizuna_registry::sites;
use netd::registry::RegistryError as ClientError;
use netd::registry::client::Client;
use netd::registry::protocol::{EnrollRequest, ErrorBody, KeysRequest};
use netd::registry::watch::Polled;

mod support;
use support::*;

/// A real audit service on loopback and the registry's sender configuration for it.
async fn audit_service(
    dir: &Path,
) -> (kizuna_audit::server::RunningServer, String, kizuna_audit::emitter::SenderConfig) {
    let acfg = kizuna_audit::server::local_config(&dir.join("audit"), "127.0.0.1:0", None).unwrap();
    let audit = kizuna_audit::server::start(&acfg).await.unwrap();
    let base = format!("http://{}", audit.http_addr);
    let sender = kizuna_audit::emitter::SenderConfig::new(&format!("{base}/v1/events"), dir.join("spool"));
    (audit, base, sender)
}

/// The status and body of a raw request (what `netd` cannot send: malformed bodies).
async fn raw(c: &Centre, method: &str, path: &str, body: &str, bearer: Option<&str>) -> (u16, String) {
    let http = reqwest::Client::builder()
        .use_preconfigured_tls(netd::registry::tls::client_config(&c.pin()))
        .build()
        .unwrap();
    let url = format!("{}{path}", c.cfg.public_url);
    let mut req = match method {
        "GET" => http.get(url),
        _ => http.post(url).header("content-type", "application/json").body(body.to_string()),
    };
    if let Some(b) = bearer {
        req = req.bearer_auth(b);
    }
    let resp = req.send().await.unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

fn refused_status(e: &ClientError) -> u16 {
    match e {
        ClientError::Refused { status, .. } => *status,
        other => panic!("not a refusal: {other}"),
    }
}

/// An unauthenticated `POST /v1/enroll` told which sites exist and their segments (400/404,
/// unaudited) before it looked at the token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enrollment_checks_the_token_before_telling_anything_about_the_site() {
    let adir = tempfile::tempdir().unwrap();
    let (audit, base, sender) = audit_service(adir.path()).await;
    let c = Centre::start_with(None, sender).await;
    let client = Client::new(&c.cfg.public_url, &c.pin()).unwrap();
    for site in ["minami-hospital", "nosuch"] {
        let req = EnrollRequest { site: site.into(), secret: "bogus".into(), keys: BTreeMap::new() };
        let err = client.enroll(&req).await.err().expect("refused");
        let text = err.to_string();
        assert_eq!(refused_status(&err), 401, "{site}: {text}");
        assert!(text.contains("unknown enrollment token"), "{text}");
        assert!(!text.contains("radiology") && !text.contains("active policy"), "{text}");
    }
    let ev = kizuna_audit::server::events_when(&base, "user=site:minami-hospital&event_type=110126", 1)
        .await
        .unwrap();
    assert_eq!(ev[0]["outcome"], 4);
    // With a good token the key set is still checked, and the refusal leaves the token unused.
    let token = c.token("minami-hospital", 3600).await;
    let req = EnrollRequest { site: token.site.clone(), secret: token.secret.clone(), keys: BTreeMap::new() };
    let err = client.enroll(&req).await.err().expect("refused");
    assert_eq!(refused_status(&err), 400, "{err}");
    assert!(err.to_string().contains("needs keys for exactly"), "{err}");
    Site::new("minami-hospital").enroll(&token).await.unwrap();
    audit.shutdown().await.unwrap();
}

/// `POST /v1/keys` without keys, or with the keys already registered, bumped the version (every
/// site's long-poll woke) and was audited as a change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_or_unchanged_key_registrations_change_nothing() {
    let adir = tempfile::tempdir().unwrap();
    let (audit, base, sender) = audit_service(adir.path()).await;
    let c = Centre::start_with(None, sender).await;
    let s = enroll_all(&c, &["centre", "kita-hospital"]).await;
    let kita = &s[1];
    let credential = kita.enrollment().credential;
    let changes = "user=site:kita-hospital&event_type=110129";
    assert_eq!(kizuna_audit::server::events_when(&base, changes, 1).await.unwrap().len(), 1);
    let before = c.db.generation().await.unwrap();

    let (status, body) = raw(&c, "POST", "/v1/keys", r#"{"keys":{}}"#, Some(&credential)).await;
    assert_eq!(status, 400, "{body}");
    assert!(serde_json::from_str::<ErrorBody>(&body).unwrap().error.contains("no keys"), "{body}");

    let (_, view) = kita.view();
    let me = view.sites.iter().find(|x| x.name.as_str() == "kita-hospital").unwrap();
    let req = KeysRequest { keys: me.keys.clone() };
    let r = kita.client().register_keys(&credential, &req).await.unwrap();
    assert_eq!((r.version, r.switch_unix), (before, None), "the same keys again change nothing");
    assert_eq!(c.db.generation().await.unwrap(), before);
    assert_eq!(kita.poll(Duration::ZERO).await.unwrap(), Polled::Nothing);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let ev = kizuna_audit::server::events_when(&base, changes, 1).await.unwrap();
    assert_eq!(ev.len(), 1, "an unchanged registration is no change to audit: {ev:?}");
    audit.shutdown().await.unwrap();
}

/// A body or query that does not parse was answered by axum in plain text (422), not with the
/// `{"error": ...}` the README and netd's client expect.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_get_a_json_error() {
    let c = Centre::start(None).await;
    let s = enroll_all(&c, &["centre"]).await;
    let credential = s[0].enrollment().credential;
    let bad_key = r#"{"site":"kita-hospital","secret":"x","keys":{"reference":"not-a-key"}}"#;
    let cases = [
        ("POST", "/v1/enroll", bad_key, None),
        ("POST", "/v1/enroll/preview", "{not json", None),
        ("POST", "/v1/keys", r#"{"keys":{"reference":"not-a-key"}}"#, Some(credential.as_str())),
        ("GET", "/v1/view?after=soon", "", Some(credential.as_str())),
    ];
    for (method, path, body, bearer) in cases {
        let (status, text) = raw(&c, method, path, body, bearer).await;
        assert_eq!(status, 400, "{method} {path}: {text}");
        let e: ErrorBody = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}: {text}"));
        assert!(!e.error.is_empty());
    }
    let (_, text) = raw(&c, "POST", "/v1/enroll", bad_key, None).await;
    assert!(text.contains("not-a-key"), "the error names the value: {text}");
    // Unauthenticated: the credential is checked before the body is looked at.
    let (status, _) = raw(&c, "POST", "/v1/keys", "{not json", Some("bogus")).await;
    assert_eq!(status, 401);
}

/// The README's audit table says a refused revoked credential names its site; the server passed
/// no name for credentials, so the event said `unknown`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_credential_is_audited_under_its_site_name() {
    let adir = tempfile::tempdir().unwrap();
    let (audit, base, sender) = audit_service(adir.path()).await;
    let c = Centre::start_with(None, sender).await;
    let s = enroll_all(&c, &["centre", "kita-hospital"]).await;
    sites::revoke(&c.db, "kita-hospital").await.unwrap();
    let err = s[1].poll(Duration::ZERO).await.unwrap_err();
    assert_eq!(refused_status(&err), 403, "{err}");
    let ev = kizuna_audit::server::events_when(&base, "user=site:kita-hospital&event_type=110126", 1)
        .await
        .unwrap();
    assert_eq!(ev[0]["outcome"], 4);
    audit.shutdown().await.unwrap();
}

/// `now + ttl` overflowed (a panic) or wrapped into a token expired on arrival.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_lifetimes_outside_the_bounds_are_refused() {
    let c = Centre::start(None).await;
    for ttl in [0, 59, 30 * 86_400 + 1, i64::MAX as u64, u64::MAX] {
        let err = sites::provision(&c.db, "kita-hospital", ttl, &c.cfg.public_url, &c.pin())
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("token lifetime") && err.contains("2592000"), "{ttl}: {err}");
    }
    assert!(sites::list(&c.db).await.unwrap().is_empty(), "nothing stored");
    for ttl in [60, 30 * 86_400] {
        let t = sites::provision(&c.db, "kita-hospital", ttl, &c.cfg.public_url, &c.pin()).await.unwrap();
        assert!(t.expires_unix > netd::registry::unix_now());
    }
}
