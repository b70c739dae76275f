//! Shared pieces of the auth tests: a provider on loopback, a cookie-keeping browser that does not
//! follow redirects, PKCE values and the login steps.
#![allow(dead_code)]

use kizuna_auth::{AuthConfig, NewClient, NewUser, Role, RunningServer, Server};
use std::collections::HashMap;

/// Redirect URIs of the test clients. Nothing listens there: the tests read the Location header
/// and never follow it.
pub const VIEWER_CB: &str = "http://127.0.0.1:9/viewer/callback";
pub const VIEWER_CB2: &str = "http://127.0.0.1:9/viewer/other-callback";
pub const AUDIT_CB: &str = "http://127.0.0.1:9/audit/callback";
pub const PASSWORD: &str = "correct horse battery staple";

/// Write a secret file as an operator must: mode 0600 (the services refuse anything looser).
pub fn write_secret(path: &std::path::Path, contents: &str) {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path).unwrap();
    f.write_all(contents.as_bytes()).unwrap();
}

pub struct Provider {
    pub dir: tempfile::TempDir,
    pub server: RunningServer,
    pub viewer_secret: String,
}

impl Provider {
    pub fn issuer(&self) -> &str {
        self.server.issuer()
    }
}

/// A provider with a confidential `viewer` client (two redirect URIs, sector `viewer`) and a public
/// `audit-ui` client (sector `audit`).
pub async fn provider_with(mutate: impl FnOnce(&mut AuthConfig)) -> Provider {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = AuthConfig::local(dir.path()).unwrap();
    mutate(&mut cfg);
    let server = Server::start(cfg).await.unwrap();
    let creds = server
        .directory()
        .add_client(&NewClient {
            client_id: "viewer".into(),
            name: "Kizuna viewer".into(),
            redirect_uris: vec![VIEWER_CB.into(), VIEWER_CB2.into()],
            post_logout_redirect_uris: vec!["http://127.0.0.1:9/viewer/bye".into()],
            sector: "viewer".into(),
            confidential: true,
        })
        .await
        .unwrap();
    server
        .directory()
        .add_client(&NewClient {
            client_id: "audit-ui".into(),
            name: "Audit".into(),
            redirect_uris: vec![AUDIT_CB.into()],
            post_logout_redirect_uris: vec![],
            sector: "audit".into(),
            confidential: false,
        })
        .await
        .unwrap();
    Provider { dir, server, viewer_secret: creds.client_secret.unwrap() }
}

pub async fn provider() -> Provider {
    provider_with(|_| {}).await
}

/// Create a physician at `facility` with TOTP enrolled; returns the TOTP secret.
pub async fn clinician(p: &Provider, username: &str, facility: &str) -> String {
    p.server
        .directory()
        .add_user(&NewUser {
            username: username.into(),
            display_name: format!("Dr. {username}"),
            facility: facility.into(),
            roles: vec![Role::Physician],
            password: PASSWORD.into(),
        })
        .await
        .unwrap();
    p.server.directory().enroll_totp(username).await.unwrap()
}

/// PKCE verifier and its S256 challenge.
pub fn pkce_pair() -> (String, String) {
    let v = format!("{}{}", hex::encode(rand::random::<[u8; 20]>()), "-._~abc");
    let c = kizuna_auth::pkce::challenge_of(&v);
    (v, c)
}

/// A browser: keeps cookies per name, never follows redirects.
pub struct Browser {
    pub http: reqwest::Client,
    pub cookies: HashMap<String, String>,
    /// Every Set-Cookie header seen, verbatim.
    pub set_cookies: Vec<String>,
}

pub struct Page {
    pub status: u16,
    pub location: Option<String>,
    pub body: String,
}

impl Page {
    /// The value of the hidden `csrf` field.
    pub fn csrf(&self) -> String {
        let i = self
            .body
            .find(r#"name="csrf" value=""#)
            .unwrap_or_else(|| panic!("no csrf field in {}", self.body));
        let rest = &self.body[i + r#"name="csrf" value=""#.len()..];
        rest[..rest.find('"').unwrap()].to_string()
    }

    /// A query parameter of the Location header.
    pub fn location_param(&self, name: &str) -> Option<String> {
        let u = url::Url::parse(self.location.as_deref()?).ok()?;
        u.query_pairs().find(|(k, _)| k == name).map(|(_, v)| v.into_owned())
    }
}

impl Default for Browser {
    fn default() -> Self {
        Self::new()
    }
}

impl Browser {
    pub fn new() -> Self {
        Browser {
            http: reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap(),
            cookies: HashMap::new(),
            set_cookies: Vec::new(),
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; ")
    }

    async fn finish(&mut self, r: reqwest::Response) -> Page {
        for h in r.headers().get_all(reqwest::header::SET_COOKIE) {
            let s = h.to_str().unwrap().to_string();
            let (kv, attrs) = s.split_once(';').unwrap_or((&s, ""));
            let (k, v) = kv.split_once('=').unwrap();
            let expired = attrs.to_ascii_lowercase().contains("max-age=0") || attrs.contains("1970");
            if v.is_empty() || expired {
                self.cookies.remove(k.trim());
            } else {
                self.cookies.insert(k.trim().to_string(), v.to_string());
            }
            self.set_cookies.push(s);
        }
        let status = r.status().as_u16();
        let location = r.headers().get("location").map(|l| l.to_str().unwrap().to_string());
        Page { status, location, body: r.text().await.unwrap() }
    }

    pub async fn get(&mut self, url: &str) -> Page {
        let r = self.http.get(url).header("cookie", self.cookie_header()).send().await.unwrap();
        self.finish(r).await
    }

    pub async fn post(&mut self, url: &str, form: &[(&str, &str)]) -> Page {
        let r = self.http.post(url).header("cookie", self.cookie_header()).form(form).send().await.unwrap();
        self.finish(r).await
    }
}

/// An authorization request URL for `client_id`.
pub fn authorize_url(
    issuer: &str,
    client_id: &str,
    redirect_uri: &str,
    challenge: &str,
    extra: &[(&str, &str)],
) -> String {
    let mut u = url::Url::parse(&format!("{issuer}/authorize")).unwrap();
    {
        let mut q = u.query_pairs_mut();
        q.append_pair("response_type", "code")
            .append_pair("client_id", client_id)
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("scope", "openid profile")
            .append_pair("state", "st-123")
            .append_pair("nonce", "n-456")
            .append_pair("code_challenge", challenge)
            .append_pair("code_challenge_method", "S256");
        for (k, v) in extra {
            q.append_pair(k, v);
        }
    }
    u.to_string()
}

/// Log in through the forms (password, then the current TOTP code); returns the final redirect.
pub async fn login(
    b: &mut Browser,
    issuer: &str,
    authorize: &str,
    username: &str,
    totp_secret: &str,
) -> Page {
    let page = b.get(authorize).await;
    assert_eq!(page.status, 200, "{}", page.body);
    let csrf = page.csrf();
    let page = b
        .post(&format!("{issuer}/login"), &[("csrf", &csrf), ("username", username), ("password", PASSWORD)])
        .await;
    assert_eq!(page.status, 200, "password step: {}", page.body);
    assert!(page.body.contains(r#"action="/login/totp""#), "{}", page.body);
    let code = kizuna_auth::totp::code_now(totp_secret).unwrap();
    let page = b.post(&format!("{issuer}/login/totp"), &[("csrf", &csrf), ("code", &code)]).await;
    assert_eq!(page.status, 303, "totp step: {}", page.body);
    page
}

/// Exchange a code at the token endpoint as the `viewer` client (client_secret_basic).
pub async fn exchange(
    p: &Provider,
    code: &str,
    redirect_uri: &str,
    verifier: &str,
) -> (u16, serde_json::Value) {
    let r = reqwest::Client::new()
        .post(format!("{}/token", p.issuer()))
        .basic_auth("viewer", Some(&p.viewer_secret))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", redirect_uri),
            ("code_verifier", verifier),
        ])
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

pub async fn userinfo(p: &Provider, access_token: &str) -> (u16, String) {
    let r = reqwest::Client::new()
        .get(format!("{}/userinfo", p.issuer()))
        .bearer_auth(access_token)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}
