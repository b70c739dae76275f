//! The admin screen behind single sign-on, end to end on loopback: a real store, a real
//! `kizuna-auth` provider (the screen registered as client `kizuna-admin`, an admin and a
//! physician with TOTP), the real admin screen, and a real `kizuna-audit` service receiving its
//! events. Users log in through the provider's forms (password, then TOTP) over plain HTTP, with
//! a cookie jar per origin and redirects read one by one, as a browser would follow them.

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use kizuna_auth::{AuthConfig, NewClient, NewUser, Role, RunningServer, Server};
use kizuna_monitor::access::{Sessions, sessions};
use kizuna_monitor::{Config, Monitor};

const PASSWORD: &str = "correct horse battery staple";
const SITE: &str = "clinic-a";

/// A browser without JavaScript: cookies kept per origin (host and port), redirects not followed.
struct Browser {
    http: reqwest::Client,
    jars: HashMap<String, HashMap<String, String>>,
}

struct Answer {
    status: u16,
    location: Option<String>,
    body: String,
}

impl Answer {
    /// The value of the first hidden `csrf` field.
    fn csrf(&self) -> String {
        let key = r#"name="csrf" value=""#;
        let at = self.body.find(key).unwrap_or_else(|| panic!("no csrf field in {}", self.body)) + key.len();
        self.body[at..].split('"').next().unwrap().to_owned()
    }
}

fn origin(url: &str) -> String {
    let u = url::Url::parse(url).unwrap();
    format!("{}:{}", u.host_str().unwrap(), u.port_or_known_default().unwrap())
}

impl Browser {
    fn new() -> Self {
        let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        Browser { http, jars: HashMap::new() }
    }

    fn cookie_header(&self, url: &str) -> String {
        let jar = self.jars.get(&origin(url));
        jar.map(|j| j.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; "))
            .unwrap_or_default()
    }

    async fn answer(&mut self, url: &str, r: reqwest::Response) -> Answer {
        let jar = self.jars.entry(origin(url)).or_default();
        for h in r.headers().get_all(reqwest::header::SET_COOKIE) {
            let line = h.to_str().unwrap();
            let (pair, attrs) = line.split_once(';').unwrap_or((line, ""));
            let (k, v) = pair.split_once('=').unwrap();
            if v.is_empty() || attrs.to_ascii_lowercase().contains("max-age=0") {
                jar.remove(k.trim());
            } else {
                jar.insert(k.trim().to_owned(), v.to_owned());
            }
        }
        let status = r.status().as_u16();
        let location = r.headers().get("location").map(|l| l.to_str().unwrap().to_owned());
        Answer { status, location, body: r.text().await.unwrap() }
    }

    async fn get(&mut self, url: &str) -> Answer {
        let r = self.http.get(url).header("cookie", self.cookie_header(url)).send().await.unwrap();
        self.answer(url, r).await
    }

    async fn post(&mut self, url: &str, form: &[(&str, &str)]) -> Answer {
        let r =
            self.http.post(url).header("cookie", self.cookie_header(url)).form(form).send().await.unwrap();
        self.answer(url, r).await
    }

    /// From a page of the admin screen that needs login, through the provider's password and
    /// TOTP forms, to the admin screen's callback; returns the callback's answer.
    async fn log_in(&mut self, base: &str, page: &str, issuer: &str, username: &str, totp: &str) -> Answer {
        let a = self.get(&format!("{base}{page}")).await;
        assert_eq!(a.status, 303, "{page} without login: {}", a.body);
        let to_login = a.location.unwrap();
        assert!(to_login.starts_with("/login?return_to="), "{to_login}");
        let a = self.get(&format!("{base}{to_login}")).await;
        assert_eq!(a.status, 303, "/login: {}", a.body);
        let authorize = a.location.unwrap();
        assert!(authorize.starts_with(&format!("{issuer}/authorize?")), "{authorize}");
        let form = self.get(&authorize).await;
        assert_eq!(form.status, 200, "{}", form.body);
        let csrf = form.csrf();
        let a = self
            .post(
                &format!("{issuer}/login"),
                &[("csrf", &csrf), ("username", username), ("password", PASSWORD)],
            )
            .await;
        assert_eq!(a.status, 200, "password step: {}", a.body);
        let code = kizuna_auth::totp::code_now(totp).unwrap();
        let a = self.post(&format!("{issuer}/login/totp"), &[("csrf", &csrf), ("code", &code)]).await;
        assert_eq!(a.status, 303, "TOTP step: {}", a.body);
        let callback = a.location.unwrap();
        assert!(callback.starts_with(&format!("{base}/auth/callback?")), "{callback}");
        self.get(&callback).await
    }
}

/// Whether the test site may upload (the store's own record).
async fn enabled(store: &kizuna_store::Store) -> bool {
    let sites = kizuna_store::sites::list_sites(&store.db).await.unwrap();
    sites.into_iter().find(|x| x.name == SITE).unwrap().enabled
}

/// What the audit service's search (`/v1/events?QUERY`) finds, once it finds at least `n` events
/// (the admin screen spools them and delivers in the background).
async fn audit_events(audit: &str, query: &str, n: usize) -> Vec<serde_json::Value> {
    let url = format!("{audit}/v1/events?{query}");
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let answer = reqwest::get(&url).await.unwrap();
        let found: Vec<serde_json::Value> = answer.json().await.unwrap();
        if found.len() >= n || Instant::now() > deadline {
            assert!(found.len() >= n, "{query}: {} audit events, not {n}: {found:?}", found.len());
            break found;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Everything running for a login test: the store with one site that had a file rejected, the
/// audit service, the provider (the screen registered as `kizuna-admin`; `ito` an admin, `sato` a
/// physician, both with TOTP) and the admin screen.
struct Env {
    store: RunningStore,
    base: String,
    issuer: String,
    totp: HashMap<&'static str, String>,
    m: Arc<Monitor>,
    screen: RunningMonitor,
    audit: kizuna_audit::server::RunningServer,
    audit_base: String,
    auth: RunningServer,
}

impl Env {
    /// Starts it all; `mutate` adjusts the screen's config, `sessions` replaces the sessions the
    /// config would make (for timeouts shorter than a minute).
    async fn start(dir: &Path, mutate: impl FnOnce(&mut Config), sessions: Option<Sessions>) -> Env {
        let s = start_store(dir).await;
        let site_token = add_site(&s.store, SITE, FACILITY).await;
        let report =
            upload(&s.base, &site_token, vec![(format!("999/901/9999013/-/ADT-00/{NAME}"), bad_sample())])
                .await;
        assert_eq!(report.results[0].status, kizuna_wire::FileStatus::Rejected);

        // The audit service.
        let acfg = kizuna_audit::server::local_config(&dir.join("audit"), "127.0.0.1:0", None).unwrap();
        let audit = kizuna_audit::server::start(&acfg).await.unwrap();
        let audit_base = format!("http://{}", audit.http_addr);

        // The admin screen's address first: the provider registers its redirect URI.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let auth = Server::start(AuthConfig::local(&dir.join("sso")).unwrap()).await.unwrap();
        let issuer = auth.issuer().to_owned();
        let creds = auth
            .directory()
            .add_client(&NewClient {
                client_id: "kizuna-admin".into(),
                name: "Kizuna admin screen".into(),
                redirect_uris: vec![format!("{base}/auth/callback")],
                post_logout_redirect_uris: vec![format!("{base}/")],
                sector: "admin".into(),
                confidential: true,
            })
            .await
            .unwrap();
        let secret_file = dir.join("admin-client-secret");
        std::fs::write(&secret_file, creds.client_secret.unwrap()).unwrap();
        let mut totp = HashMap::new();
        for (username, role) in [("ito", Role::Admin), ("sato", Role::Physician)] {
            auth.directory()
                .add_user(&NewUser {
                    username: username.into(),
                    display_name: format!("{username} (test)"),
                    facility: FACILITY.into(),
                    roles: vec![role],
                    password: PASSWORD.into(),
                })
                .await
                .unwrap();
            totp.insert(username, auth.directory().enroll_totp(username).await.unwrap());
        }

        let mut cfg = monitor_config(&s.store_config, None);
        cfg.public_url = base.clone();
        cfg.oidc.issuer = issuer.clone();
        cfg.oidc.client_secret_file = secret_file;
        cfg.audit = kizuna_audit::emitter::SenderConfig::new(
            &format!("{audit_base}/v1/events"),
            dir.join("audit-spool"),
        );
        mutate(&mut cfg);
        let m = match sessions {
            None => Monitor::open(cfg).await.unwrap(),
            Some(sessions) => Monitor::with_sessions(cfg, s.store.db.clone(), sessions).unwrap(),
        };
        let screen = serve_monitor(listener, Arc::clone(&m));
        Env { store: s, base, issuer, totp, m, screen, audit, audit_base, auth }
    }

    /// Logs the admin `ito` in from the site page; returns the session ID.
    async fn admin_logs_in(&self, b: &mut Browser) -> String {
        let page = format!("/sites/{SITE}");
        let a = b.log_in(&self.base, &page, &self.issuer, "ito", &self.totp["ito"]).await;
        assert_eq!((a.status, a.location.as_deref()), (303, Some(page.as_str())), "{}", a.body);
        b.jars[&origin(&self.base)]["kizuna_admin"].clone()
    }

    async fn stop(self) {
        self.screen.stop().await;
        self.auth.shutdown().await;
        self.audit.shutdown().await.unwrap();
        self.store.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_admins_log_in_by_single_sign_on_and_their_views_and_actions_are_audited() {
    let dir = tempfile::tempdir().unwrap();
    let Env { store: s, base, issuer, totp, m, screen, audit, audit_base, auth } =
        Env::start(dir.path(), |_| {}, None).await;
    let page = format!("/sites/{SITE}");

    // Health checks need no login; pages and actions do.
    let mut anon = Browser::new();
    assert_eq!(anon.get(&format!("{base}/healthz")).await.status, 200);
    let a = anon.get(&format!("{base}/")).await;
    assert_eq!((a.status, a.location.as_deref()), (303, Some("/login?return_to=%2F")));
    let a = anon.post(&format!("{base}{page}/rotate-token"), &[("csrf", "x")]).await;
    assert_eq!(a.status, 401, "an action without login: {}", a.body);

    // The physician authenticates but is no admin: 403 at the callback and on every page after.
    let mut doc = Browser::new();
    let a = doc.log_in(&base, &page, &issuer, "sato", &totp["sato"]).await;
    assert_eq!(a.status, 403, "{}", a.body);
    assert!(a.body.contains("Admins only") && a.body.contains("physician"), "{}", a.body);
    let a = doc.get(&format!("{base}{page}")).await;
    assert_eq!(a.status, 403, "{}", a.body);
    assert!(!a.body.contains(NAME), "no quarantined file names for a non-admin");
    let a = doc.post(&format!("{base}{page}/enabled"), &[("csrf", &a.csrf()), ("enabled", "0")]).await;
    assert_eq!(a.status, 403, "{}", a.body);

    // The admin logs in and comes back to the page they asked for.
    let mut admin = Browser::new();
    let a = admin.log_in(&base, &page, &issuer, "ito", &totp["ito"]).await;
    assert_eq!((a.status, a.location.as_deref()), (303, Some(page.as_str())), "{}", a.body);
    let session = admin.jars[&origin(&base)]["kizuna_admin"].clone();
    let subject = m.sessions.get(&session).unwrap().user.unwrap().subject;
    let a = admin.get(&format!("{base}{page}")).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert!(a.body.contains(&format!("Site {SITE}")) && a.body.contains(NAME), "{}", a.body);
    assert!(a.body.contains(r#"<b id="user">ito (test)</b>"#), "{}", a.body);
    let csrf = a.csrf();

    // An action with a wrong CSRF token is refused and changes nothing; with the right one it works.
    let wrong = "0".repeat(64);
    let a = admin.post(&format!("{base}{page}/enabled"), &[("csrf", &wrong), ("enabled", "0")]).await;
    assert_eq!(a.status, 403, "{}", a.body);
    assert!(enabled(&s.store).await);
    let a = admin.post(&format!("{base}{page}/enabled"), &[("csrf", &csrf), ("enabled", "0")]).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert!(a.body.contains("Site disabled"), "{}", a.body);
    assert!(!enabled(&s.store).await);

    // The audit service has the login, the site page viewed and the action, under the admin's
    // pairwise subject and the admin screen's source.
    let events = audit_events(&audit_base, &format!("user={subject}"), 3).await;
    let codes: Vec<(&str, &str)> = events
        .iter()
        .map(|e| (e["event_code"].as_str().unwrap(), e["event_type"].as_str().unwrap_or("")))
        .collect();
    assert!(codes.contains(&("110114", "110122")), "login: {events:?}");
    assert!(codes.iter().any(|c| c.0 == "110112"), "site page query: {events:?}");
    assert!(codes.contains(&("110113", "110129")), "security configuration change: {events:?}");
    assert!(events.iter().all(|e| e["source_id"] == "admin@centre" && e["user_id"] == subject.as_str()));
    let refused = audit_events(&audit_base, "event_type=110122&outcome=8", 1).await;
    assert_eq!(refused.len(), 1, "the physician's refused login: {refused:?}");
    assert_ne!(refused[0]["user_id"], subject.as_str());

    // Logout ends the session and sends the browser to end the provider's session too, which
    // then sends it back; the page asks for login again, and the provider asks for the password
    // (not the previous admin's single sign-on); the logout is audited.
    let a = admin.post(&format!("{base}/logout"), &[("csrf", &csrf)]).await;
    assert_eq!(a.status, 303, "{}", a.body);
    assert!(m.sessions.get(&session).is_none());
    let provider_logout = a.location.clone().unwrap();
    assert!(
        provider_logout.starts_with(&issuer) && provider_logout.contains("id_token_hint="),
        "{provider_logout}"
    );
    let a = admin.get(&provider_logout).await;
    assert_eq!((a.status, a.location.as_deref()), (303, Some(format!("{base}/").as_str())), "{}", a.body);
    let a = admin.get(&format!("{base}{page}")).await;
    assert_eq!(a.status, 303, "{}", a.body);
    let a = admin.get(&format!("{base}{}", a.location.unwrap())).await;
    assert_eq!(a.status, 303, "{}", a.body);
    let a = admin.get(&a.location.unwrap()).await;
    assert_eq!(a.status, 200, "the provider asks for the password again: {:?} {}", a.location, a.body);
    audit_events(&audit_base, &format!("user={subject}&event_type=110123"), 1).await;

    screen.stop().await;
    auth.shutdown().await;
    audit.shutdown().await.unwrap();
    s.stop().await;
}

/// The number of logouts (110123) of `subject` the audit service holds, once it holds `n`.
async fn logouts(audit_base: &str, subject: &str, n: usize) -> usize {
    audit_events(audit_base, &format!("user={subject}&event_type=110123"), n).await.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_disabled_at_the_provider_loses_the_admin_screen_within_one_check_interval() {
    let dir = tempfile::tempdir().unwrap();
    let env = Env::start(dir.path(), |c| c.oidc.session_check_secs = 1, None).await;
    let (base, page) = (env.base.clone(), format!("/sites/{SITE}"));
    let mut admin = Browser::new();
    let session = env.admin_logs_in(&mut admin).await;
    let subject = env.m.sessions.get(&session).unwrap().user.unwrap().subject;
    let a = admin.get(&format!("{base}{page}")).await;
    assert_eq!(a.status, 200, "{}", a.body);
    let csrf = a.csrf();

    // Re-checked at the provider after the interval: still an admin, still in.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let a = admin.get(&format!("{base}{page}")).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert!(a.body.contains(NAME));

    // The admin is disabled at the provider; nothing is done at the admin screen.
    env.auth.directory().set_disabled("ito", true).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let a = admin.get(&format!("{base}{page}")).await;
    assert_eq!(
        (a.status, a.location.as_deref()),
        (303, Some("/login?return_to=%2Fsites%2Fclinic-a")),
        "a disabled admin still sees the admin screen: {}",
        a.body
    );
    assert!(!a.body.contains(NAME));
    assert!(env.m.sessions.get(&session).is_none(), "the session ended");
    // The cookie names no session any more: an action is refused and changes nothing.
    let a = admin.post(&format!("{base}{page}/enabled"), &[("csrf", &csrf), ("enabled", "0")]).await;
    assert_eq!(a.status, 401, "{}", a.body);
    assert!(enabled(&env.store.store).await);
    // Ended like a logout, and audited as one.
    assert_eq!(logouts(&env.audit_base, &subject, 1).await, 1);
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_provider_gets_503_and_the_session_waits_for_the_next_check() {
    let dir = tempfile::tempdir().unwrap();
    let env = Env::start(dir.path(), |c| c.oidc.session_check_secs = 1, None).await;
    let (base, page) = (env.base.clone(), format!("/sites/{SITE}"));
    let mut admin = Browser::new();
    let session = env.admin_logs_in(&mut admin).await;
    let Env { store, m, screen, audit, auth, .. } = env;
    // Within the interval the provider is not asked.
    auth.shutdown().await;
    let a = admin.get(&format!("{base}{page}")).await;
    assert_eq!(a.status, 200, "{}", a.body);
    // After it, the provider cannot confirm the login: 503, nothing shown, the session kept.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    for _ in 0..2 {
        let a = admin.get(&format!("{base}{page}")).await;
        assert_eq!(a.status, 503, "{:?} {}", a.location, a.body);
        assert!(a.body.contains("cannot confirm your login") && !a.body.contains(NAME), "{}", a.body);
        assert!(m.sessions.get(&session).is_some(), "the session waits for the provider");
    }
    screen.stop().await;
    audit.shutdown().await.unwrap();
    store.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_admin_session_ends_and_use_keeps_it_alive() {
    let dir = tempfile::tempdir().unwrap();
    // As `oidc.session_idle_minutes` makes them, in seconds instead of minutes.
    let idle = Duration::from_secs(2);
    let env = Env::start(dir.path(), |_| {}, Some(sessions(Duration::from_secs(3600), idle))).await;
    let (base, page) = (env.base.clone(), format!("/sites/{SITE}"));
    let mut admin = Browser::new();
    let session = env.admin_logs_in(&mut admin).await;
    // Requests a second apart keep the session beyond the idle timeout.
    for _ in 0..3 {
        let a = admin.get(&format!("{base}{page}")).await;
        assert_eq!(a.status, 200, "{}", a.body);
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let a = admin.get(&format!("{base}{page}")).await;
    assert_eq!(a.status, 200, "{}", a.body);
    let csrf = a.csrf();
    // Then nothing for longer than the idle timeout: the session has ended.
    tokio::time::sleep(idle + Duration::from_millis(500)).await;
    let a = admin.post(&format!("{base}{page}/enabled"), &[("csrf", &csrf), ("enabled", "0")]).await;
    assert_eq!(a.status, 401, "an idle session still acts: {}", a.body);
    assert!(enabled(&env.store.store).await);
    let a = admin.get(&format!("{base}{page}")).await;
    assert_eq!(
        (a.status, a.location.as_deref()),
        (303, Some("/login?return_to=%2Fsites%2Fclinic-a")),
        "an idle session still sees the admin screen: {}",
        a.body
    );
    assert!(env.m.sessions.get(&session).is_none());
    env.stop().await;
}
