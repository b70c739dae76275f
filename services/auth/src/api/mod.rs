//! The HTTP API, split by audience: `discovery.rs` and `token.rs`/`userinfo.rs` for relying
//! parties, `authorize.rs`, `login.rs` and `logout.rs` for browsers, `pages.rs` the HTML they show.

pub mod authorize;
pub mod discovery;
pub mod login;
pub mod logout;
pub mod pages;
pub mod token;
pub mod userinfo;

use crate::audit::AuditHook;
use crate::config::AuthConfig;
use crate::directory::{Directory, Lockout};
use crate::jws::TokenSigner;
use axum::Router;
use axum::response::Response;
use axum::routing::{get, post};
use axum_extra::extract::cookie::{Cookie, SameSite};
use std::sync::Arc;

/// Everything a handler needs.
#[derive(Clone)]
pub struct AppState {
    pub dir: Directory,
    pub signer: TokenSigner,
    pub salt: [u8; 32],
    pub issuer: String,
    pub cfg: Arc<AuthConfig>,
    pub secure_cookies: bool,
    pub audit: Option<AuditHook>,
}

impl AppState {
    pub fn lockout(&self) -> Lockout {
        Lockout { threshold: self.cfg.lockout_threshold, lock_secs: self.cfg.lockout_secs }
    }

    /// Cookie names carry the `__Host-` prefix under TLS: the browser then insists on Secure,
    /// Path=/ and no Domain, so a sibling host cannot plant one.
    pub fn cookie_name(&self, base: &'static str) -> String {
        if self.secure_cookies { format!("__Host-{base}") } else { base.to_string() }
    }

    /// A cookie for `value`: HttpOnly, SameSite=Lax (the RP's top-level redirect to /authorize must
    /// carry the session; cross-site POSTs must not), Secure under TLS, Path=/.
    pub fn cookie(&self, base: &'static str, value: String) -> Cookie<'static> {
        Cookie::build((self.cookie_name(base), value))
            .http_only(true)
            .same_site(SameSite::Lax)
            .secure(self.secure_cookies)
            .path("/")
            .build()
    }

    pub fn removal(&self, base: &'static str) -> Cookie<'static> {
        Cookie::build((self.cookie_name(base), ""))
            .path("/")
            .http_only(true)
            .same_site(SameSite::Lax)
            .secure(self.secure_cookies)
            .build()
    }

    pub fn endpoint(&self, path: &str) -> String {
        format!("{}{path}", self.issuer.trim_end_matches('/'))
    }
}

pub const FLOW_COOKIE: &str = "kizuna_auth_flow";
pub const SESSION_COOKIE: &str = "kizuna_auth_session";

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/.well-known/openid-configuration", get(discovery::configuration))
        .route("/jwks.json", get(discovery::jwks))
        .route("/authorize", get(authorize::authorize))
        .route("/login", post(login::password))
        .route("/login/totp", post(login::totp))
        .route("/login/enroll", post(login::enroll))
        .route("/token", post(token::token))
        .route("/userinfo", get(userinfo::userinfo).post(userinfo::userinfo))
        .route("/logout", get(logout::confirm).post(logout::logout))
        .route("/healthz", get(|| async { "ok" }))
        .layer(axum::middleware::map_response(|r: Response| async move { kizuna_web_headers::harden(r) }))
        .with_state(state)
}
