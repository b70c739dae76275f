//! Login and logout against the real provider (`kizuna-auth`, in-process) over plain HTTP: logging
//! out of the viewer ends the provider's session too, and a logout that cannot be audited is refused.

mod support;

use std::collections::HashMap;

use kizuna_auth::{AuthConfig, NewClient, NewUser, Role, RunningServer, Server};
use kizuna_viewer::Config;
use kizuna_viewer::audit::Audit;
use support::*;

const PASSWORD: &str = "correct horse battery";

/// A browser that keeps cookies by name (the viewer's and the provider's differ) and does not
/// follow redirects.
#[derive(Default)]
struct Browser {
    cookies: HashMap<String, String>,
}

struct Page {
    status: u16,
    location: Option<String>,
    body: String,
}

impl Page {
    fn csrf(&self) -> String {
        let rest =
            self.body.split(r#"name="csrf" value=""#).nth(1).unwrap_or_else(|| panic!("{}", self.body));
        rest[..rest.find('"').unwrap()].to_owned()
    }
}

impl Browser {
    async fn send(&mut self, r: reqwest::RequestBuilder) -> Page {
        let cookie = self.cookies.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; ");
        let r = r.header("cookie", cookie).send().await.unwrap();
        for h in r.headers().get_all(reqwest::header::SET_COOKIE) {
            let s = h.to_str().unwrap();
            let (kv, attrs) = s.split_once(';').unwrap_or((s, ""));
            let (k, v) = kv.split_once('=').unwrap();
            if v.is_empty() || attrs.to_ascii_lowercase().contains("max-age=0") {
                self.cookies.remove(k.trim());
            } else {
                self.cookies.insert(k.trim().to_owned(), v.to_owned());
            }
        }
        let status = r.status().as_u16();
        let location = r.headers().get("location").map(|l| l.to_str().unwrap().to_owned());
        Page { status, location, body: r.text().await.unwrap() }
    }

    fn http() -> reqwest::Client {
        reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
    }

    async fn get(&mut self, url: &str) -> Page {
        self.send(Self::http().get(url)).await
    }

    async fn post(&mut self, url: &str, form: &[(&str, &str)]) -> Page {
        self.send(Self::http().post(url).form(form)).await
    }

    /// Follows redirects (relative ones against `base`) until a page answers.
    async fn follow(&mut self, base: &str, mut page: Page) -> Page {
        while let Some(l) = page.location.take() {
            let url = if l.starts_with('/') { format!("{base}{l}") } else { l };
            page = self.get(&url).await;
        }
        page
    }
}

/// A viewer registered at a running provider, with one physician (TOTP enrolled).
async fn viewer_and_provider(dir: &std::path::Path, audit: Audit) -> (Running, RunningServer, String) {
    viewer_and_provider_with(dir, audit, |_| {}).await
}

async fn viewer_and_provider_with(
    dir: &std::path::Path,
    audit: Audit,
    mutate: impl FnOnce(&mut Config),
) -> (Running, RunningServer, String) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let auth = Server::start(AuthConfig::local(&dir.join("auth")).unwrap()).await.unwrap();
    let creds = auth
        .directory()
        .add_client(&NewClient {
            client_id: "kizuna-viewer".into(),
            name: "Kizuna viewer".into(),
            redirect_uris: vec![format!("{base}/auth/callback")],
            post_logout_redirect_uris: vec![format!("{base}/")],
            sector: "viewer".into(),
            confidential: true,
        })
        .await
        .unwrap();
    let secret_file = dir.join("viewer-client-secret");
    std::fs::write(&secret_file, creds.client_secret.unwrap()).unwrap();
    auth.directory()
        .add_user(&NewUser {
            username: "sato".into(),
            display_name: "Dr. sato".into(),
            facility: "0411000017".into(),
            roles: vec![Role::Physician],
            password: PASSWORD.into(),
        })
        .await
        .unwrap();
    let totp = auth.directory().enroll_totp("sato").await.unwrap();
    let mut config = Config {
        store_data_dir: dir.join("centre"),
        index_database_url: format!("sqlite://{}?mode=rwc", dir.join("linkage.sqlite").display()),
        secure_cookies: false,
        public_url: base,
        ..Default::default()
    };
    // An empty store (the viewer never makes one: it refuses a folder that holds no store).
    let store = kizuna_store::Config { data_dir: config.store_data_dir.clone(), ..Default::default() };
    drop(kizuna_store::Store::open(store).await.unwrap());
    config.oidc.issuer = auth.issuer().to_owned();
    config.oidc.client_id = "kizuna-viewer".into();
    config.oidc.client_secret_file = secret_file;
    mutate(&mut config);
    (serve_on(listener, config, audit).await, auth, totp)
}

/// Logs in from the viewer's `/login` through the provider's forms; ends on the viewer's home page.
async fn log_in(b: &mut Browser, v: &Running, issuer: &str, totp: &str) -> Page {
    let page = b.get(&format!("{}/login", v.base)).await;
    let page = b.follow(&v.base, page).await;
    assert!(page.body.contains(r#"action="/login""#), "the provider asks for the password: {}", page.body);
    let csrf = page.csrf();
    let page = b
        .post(&format!("{issuer}/login"), &[("csrf", &csrf), ("username", "sato"), ("password", PASSWORD)])
        .await;
    assert_eq!(page.status, 200, "{}", page.body);
    let code = kizuna_auth::totp::code_now(totp).unwrap();
    let page = b.post(&format!("{issuer}/login/totp"), &[("csrf", &csrf), ("code", &code)]).await;
    assert_eq!(page.status, 303, "{}", page.body);
    let page = b.follow(&v.base, page).await;
    assert!(page.body.contains("Dr. sato"), "{}", page.body);
    page
}

#[tokio::test]
async fn logging_out_of_the_viewer_ends_the_provider_session_too() {
    let dir = tempfile::tempdir().unwrap();
    let (v, auth, totp) = viewer_and_provider(dir.path(), Audit::log_only()).await;
    let mut b = Browser::default();
    let home = log_in(&mut b, &v, auth.issuer(), &totp).await;
    let page = b.post(&format!("{}/logout", v.base), &[("csrf", &home.csrf())]).await;
    if let Some(l) = &page.location {
        assert!(l.starts_with(&format!("{}/logout?", auth.issuer())), "{l}");
        assert!(l.contains("id_token_hint="), "{l}");
    }
    b.follow(&v.base, page).await;
    // The next clinician at this PC clicks "log in": the provider must ask for a password, not
    // answer from the previous user's session.
    let page = b.get(&format!("{}/login", v.base)).await;
    let authorize = b.get(page.location.as_deref().unwrap()).await;
    assert_eq!(authorize.status, 200, "logged straight back in: {:?}", authorize.location);
    assert!(authorize.body.contains(r#"action="/login""#), "{}", authorize.body);
    auth.shutdown().await;
}

#[tokio::test]
async fn a_logout_that_cannot_be_audited_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("spool");
    let sender = kizuna_audit::sender::AuditSender::new(&spool, "http://127.0.0.1:9/v1/events").unwrap();
    let (v, auth, _) = viewer_and_provider(dir.path(), Audit::with_sender(sender)).await;
    let cookie = v.session(user("0411000017", "pw-1", kizuna_viewer::access::Role::Physician));
    let csrf = v.csrf(&cookie);
    // The spool cannot be written any more.
    std::fs::remove_dir_all(&spool).unwrap();
    std::fs::write(&spool, b"not a folder").unwrap();
    let (s, _) = v.post(&cookie, "/logout", &[("csrf", &csrf)]).await;
    assert_eq!(s, 500, "a logout that cannot be audited is refused like any other page");
    let id = cookie.split_once('=').unwrap().1;
    assert!(v.viewer.sessions.get(id).is_some());
    let (s, _) = v.post(&cookie, "/logout", &[("csrf", "forged")]).await;
    assert_eq!(s, 403);
    auth.shutdown().await;
}

#[tokio::test]
async fn a_user_disabled_at_the_provider_is_thrown_out_at_the_next_check() {
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("spool");
    // Nothing listens on port 9: events stay spooled, where the test reads them.
    let sender = kizuna_audit::sender::AuditSender::new(&spool, "http://127.0.0.1:9/v1/events").unwrap();
    let (v, auth, totp) = viewer_and_provider_with(dir.path(), Audit::with_sender(sender.clone()), |c| {
        c.session_check_secs = 1
    })
    .await;
    let mut b = Browser::default();
    log_in(&mut b, &v, auth.issuer(), &totp).await;
    // Re-checked at the provider, still good.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let page = b.get(&format!("{}/", v.base)).await;
    assert_eq!(page.status, 200, "{}", page.body);
    // The clinician is dismissed: disabled at the provider, nothing done at the viewer.
    auth.directory().set_disabled("sato", true).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    let page = b.get(&format!("{}/search?by=common&q=KZ123456789012", v.base)).await;
    assert!(
        page.status == 401
            || page.status == 403
            || page.location.as_deref().is_some_and(|l| l.starts_with("/login")),
        "still let in after being disabled: {} {:?}",
        page.status,
        page.location
    );
    let page = b.get(&format!("{}/", v.base)).await;
    assert!(page.location.as_deref().is_some_and(|l| l.starts_with("/login")), "the session is gone");
    // Ended like a logout, and audited as one.
    let logouts = sender
        .pending()
        .unwrap()
        .iter()
        .map(|p| kizuna_audit::AuditEvent::from_json(&std::fs::read(p).unwrap()).unwrap())
        .filter(|e| e.event.types.iter().any(|t| t.code == "110123"))
        .count();
    assert_eq!(logouts, 1);
    auth.shutdown().await;
}

/// The shared ward PC: a clinician walks away; after `session_idle_minutes` the viewer session has
/// ended, and whoever presses reload must be asked for the password, not be logged back in from
/// the provider's (8-hour) session as the absent clinician. The viewer asks for a login at most
/// `session_idle_minutes` old (`max_age`), so the provider's session no longer answers.
#[tokio::test]
async fn an_idled_out_session_needs_the_password_again() {
    let dir = tempfile::tempdir().unwrap();
    let (v, auth, totp) = viewer_and_provider_with(dir.path(), Audit::log_only(), |c| {
        c.session_idle_minutes = 1;
    })
    .await;
    let mut b = Browser::default();
    log_in(&mut b, &v, auth.issuer(), &totp).await;
    tokio::time::sleep(std::time::Duration::from_secs(62)).await;
    let page = b.get(&format!("{}/patients/KZ123456789015", v.base)).await;
    assert_eq!(page.location.as_deref(), Some("/login?return_to=/patients/KZ123456789015"));
    let page = b.get(&format!("{}/login?return_to=/patients/KZ123456789015", v.base)).await;
    let authorize = page.location.clone().unwrap();
    assert!(authorize.contains("max_age=60"), "{authorize}");
    let page = b.follow(&v.base, page).await;
    assert!(
        page.body.contains(r#"action="/login""#) && !page.body.contains("Dr. sato"),
        "logged back in without a password after the idle timeout: {}",
        page.body
    );
    auth.shutdown().await;
}

/// "Log out" pressed on a page left open after the viewer session ended (idle timeout, restart):
/// the provider's session must still end at once (the ID token is kept in a cookie for the
/// `id_token_hint`), not wait behind a confirmation page nobody answers.
#[tokio::test]
async fn a_logout_after_the_session_ended_still_ends_the_provider_session() {
    let dir = tempfile::tempdir().unwrap();
    let (v, auth, totp) = viewer_and_provider(dir.path(), Audit::log_only()).await;
    let mut b = Browser::default();
    let home = log_in(&mut b, &v, auth.issuer(), &totp).await;
    // The viewer forgets the session, as after an idle timeout or a restart.
    let id = b.cookies[kizuna_viewer::session::COOKIE].clone();
    v.viewer.sessions.remove(&id);
    let page = b.post(&format!("{}/logout", v.base), &[("csrf", &home.csrf())]).await;
    let l = page.location.clone().unwrap();
    assert!(l.starts_with(&format!("{}/logout?", auth.issuer())), "{l}");
    assert!(l.contains("id_token_hint="), "the hint was lost with the session: {l}");
    let page = b.follow(&v.base, page).await;
    assert!(!page.body.contains("Log out of every"), "the provider asks instead of ending: {}", page.body);
    let page = b.get(&format!("{}/login", v.base)).await;
    let authorize = b.get(page.location.as_deref().unwrap()).await;
    assert_eq!(authorize.status, 200, "logged straight back in: {:?}", authorize.location);
    assert!(authorize.body.contains(r#"action="/login""#), "{}", authorize.body);
    auth.shutdown().await;
}

/// Anyone on the reference segment may open `/login` as often as they like: more than 10,000
/// anonymous starts must not cancel a clinician's login in progress.
#[tokio::test]
async fn a_flood_of_anonymous_logins_does_not_cancel_a_login_in_progress() {
    let dir = tempfile::tempdir().unwrap();
    let (v, auth, totp) = viewer_and_provider(dir.path(), Audit::log_only()).await;
    let issuer = auth.issuer().to_owned();
    let mut b = Browser::default();
    let page = b.get(&format!("{}/login?return_to=/", v.base)).await;
    let page = b.follow(&v.base, page).await;
    let csrf = page.csrf();
    let page = b
        .post(&format!("{issuer}/login"), &[("csrf", &csrf), ("username", "sato"), ("password", PASSWORD)])
        .await;
    assert_eq!(page.status, 200, "{}", page.body);
    // The flood: 10,200 cookie-less starts, from 8 connections at once.
    let flood: Vec<_> = (0..8)
        .map(|_| {
            let url = format!("{}/login", v.base);
            tokio::spawn(async move {
                let c = Browser::http();
                for _ in 0..1275 {
                    let r = c.get(&url).send().await.unwrap();
                    assert_eq!(r.status().as_u16(), 303);
                }
            })
        })
        .collect();
    for f in flood {
        f.await.unwrap();
    }
    let code = kizuna_auth::totp::code_now(&totp).unwrap();
    let page = b.post(&format!("{issuer}/login/totp"), &[("csrf", &csrf), ("code", &code)]).await;
    assert_eq!(page.status, 303, "{}", page.body);
    let page = b.follow(&v.base, page).await;
    assert!(page.body.contains("Dr. sato"), "the login in progress was cancelled: {}", page.body);
    auth.shutdown().await;
}

/// A user whose facility code the patient index would refuse (created before the provider
/// checked it) is refused at login with a page saying why, not in the middle of an emergency.
#[tokio::test]
async fn a_login_with_an_invalid_facility_claim_is_refused_with_a_clear_page() {
    let dir = tempfile::tempdir().unwrap();
    let (v, auth, totp) = viewer_and_provider(dir.path(), Audit::log_only()).await;
    sqlx::query("UPDATE auth_user SET facility = '0411-010156' WHERE username = 'sato'")
        .execute(&auth.directory().db().pool)
        .await
        .unwrap();
    let mut b = Browser::default();
    let page = b.get(&format!("{}/login", v.base)).await;
    let page = b.follow(&v.base, page).await;
    let csrf = page.csrf();
    b.post(
        &format!("{}/login", auth.issuer()),
        &[("csrf", &csrf), ("username", "sato"), ("password", PASSWORD)],
    )
    .await;
    let code = kizuna_auth::totp::code_now(&totp).unwrap();
    let page = b.post(&format!("{}/login/totp", auth.issuer()), &[("csrf", &csrf), ("code", &code)]).await;
    let cb = b.get(page.location.as_deref().unwrap()).await;
    assert_eq!(cb.status, 401, "{}", cb.body);
    assert!(cb.body.contains("0411-010156") && cb.body.contains("facility code"), "{}", cb.body);
    assert!(
        !b.cookies.contains_key(kizuna_viewer::session::COOKIE) || {
            let id = &b.cookies[kizuna_viewer::session::COOKIE];
            v.viewer.sessions.get(id).is_none_or(|s| s.user.is_none())
        }
    );
    auth.shutdown().await;
}

/// Problem pages (403 for an admin, 404, 400) keep a working "Log out": an admin who signed in to
/// the viewer by mistake can end both sessions from there.
#[tokio::test]
async fn problem_pages_keep_a_working_log_out_button() {
    let dir = tempfile::tempdir().unwrap();
    let (v, auth, _) = viewer_and_provider(dir.path(), Audit::log_only()).await;
    let admin = v.session(user("0411000017", "pw-adm", kizuna_viewer::access::Role::Admin));
    let doc = v.session(user("0411000017", "pw-doc", kizuna_viewer::access::Role::Physician));
    let unknown = kizuna_index::CommonId::random();
    for (cookie, path, status) in [
        (&admin, "/".to_owned(), 403),
        (&doc, format!("/patients/{unknown}"), 404),
        (&doc, "/patients/not-an-id".to_owned(), 404),
        (&doc, format!("/patients/{unknown}/calendar?month=2024-13"), 404),
    ] {
        let (s, page) = v.get(cookie, &path).await;
        assert_eq!(s, status, "{path}: {page}");
        assert!(page.contains(r#"action="/logout""#), "{path}: no log-out button: {page}");
        let csrf = page.split(r#"name="csrf" value=""#).nth(1).unwrap().split('"').next().unwrap().to_owned();
        assert_eq!(csrf, v.csrf(cookie));
    }
    let csrf = v.csrf(&admin);
    let (s, _) = v.post(&admin, "/logout", &[("csrf", &csrf)]).await;
    assert_eq!(s, 303);
    let id = admin.split_once('=').unwrap().1;
    assert!(v.viewer.sessions.get(id).is_none(), "the admin's session ended");
    auth.shutdown().await;
}
