//! Who may use the admin screen. With `oidc.issuer` set, every page but `/healthz` and the login
//! routes needs a session (cookie `kizuna_admin`) of a user whose verified ID token has the
//! `admin` role; anyone else logged in gets 403, anyone not logged in is sent to `/login`.
//! Sessions end after `oidc.session_idle_minutes` without a request, and every
//! `oidc.session_check_secs` the provider's userinfo endpoint is asked whether it still vouches
//! for the user (see [`gate`]).
//! Without an issuer there is no login and the screen serves loopback only (see
//! `Config::check`); its users are then recorded as [`LOOPBACK_USER`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};

use crate::{Monitor, MonitorError, audit, pages, server};

/// The admin screen's session cookie.
pub const COOKIE: &str = "kizuna_admin";
/// The role the screen requires (the `roles` claim of `kizuna-auth`'s ID tokens).
pub const ADMIN_ROLE: &str = "admin";
/// The audit user of requests when the screen runs without login (loopback only).
pub const LOOPBACK_USER: &str = "loopback";

/// A user who logged in: the provider's pairwise subject for this screen, a display name and
/// the roles of the ID token.
#[derive(Debug, Clone, PartialEq)]
pub struct Operator {
    pub subject: String,
    pub name: String,
    pub roles: Vec<String>,
}

impl Operator {
    /// From verified ID token claims: `roles` (a list) and/or `role` (a string); the name from
    /// `name`, else `preferred_username`, else the subject.
    pub fn from_claims(subject: &str, claims: &serde_json::Value) -> Self {
        let mut roles: Vec<String> = claims["roles"]
            .as_array()
            .map(|l| l.iter().filter_map(|r| r.as_str()).map(str::to_owned).collect())
            .unwrap_or_default();
        if let Some(r) = claims["role"].as_str() {
            roles.push(r.to_owned());
        }
        let name = claims["name"].as_str().or(claims["preferred_username"].as_str()).unwrap_or(subject);
        Self { subject: subject.to_owned(), name: name.to_owned(), roles }
    }

    /// Whether the token gave the admin role.
    pub fn is_admin(&self) -> bool {
        self.roles.iter().any(|r| r == ADMIN_ROLE)
    }
}

/// The screen's login sessions.
pub type Sessions = kizuna_oidc_rp::Sessions<Operator>;

/// Sessions under [`COOKIE`] living `lifetime` at most and ending after `idle` without a
/// request (`oidc.session_minutes`, `oidc.session_idle_minutes`).
pub fn sessions(lifetime: Duration, idle: Duration) -> Sessions {
    Sessions::new(COOKIE, lifetime).with_idle_timeout(idle)
}

/// Who makes a request, as the audit trail names them.
#[derive(Debug, Clone)]
pub struct Actor {
    /// The pairwise subject, or [`LOOPBACK_USER`].
    pub user: String,
    /// The client's address.
    pub ip: Option<String>,
}

/// What the gate hands the page handlers: the actor, and the logged-in name (none without login).
#[derive(Debug, Clone)]
pub struct Visitor {
    pub actor: Actor,
    pub name: Option<String>,
}

/// The session of a request, by its cookie.
pub fn session_of(
    m: &Monitor,
    headers: &axum::http::HeaderMap,
) -> Option<(String, kizuna_oidc_rp::Session<Operator>)> {
    m.sessions.from_cookie_headers(headers.get_all(header::COOKIE).iter().filter_map(|h| h.to_str().ok()))
}

/// The client's address, when the server was started with connection info.
pub fn client_ip(req_ext: &axum::http::Extensions) -> Option<String> {
    req_ext.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip().to_string())
}

/// The page for a logged-in user without the admin role.
pub fn not_an_admin(op: &Operator, headers: &axum::http::HeaderMap) -> Response {
    let (token, cookie) = server::with_csrf(headers);
    server::html(StatusCode::FORBIDDEN, cookie, pages::not_an_admin(&op.name, &op.roles, &token))
}

/// Middleware in front of every page: lets admins (or, without login, everyone on loopback)
/// through with a [`Visitor`], sends others to login or answers 403; re-checks logins at the
/// provider every `oidc.session_check_secs` (503 while it cannot be asked).
pub async fn gate(State(m): State<Arc<Monitor>>, mut req: Request, next: Next) -> Response {
    let ip = client_ip(req.extensions());
    if !m.cfg.login_required() {
        // Loopback alone does not make a request the operator's: a page from anywhere whose
        // name an attacker rebinds to 127.0.0.1 would be same-origin with the screen (its own
        // CSRF token, a matching Origin). Its Host header still carries that name.
        let host = req.headers().get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or("");
        if !is_loopback_host(host) {
            return server::html(
                StatusCode::MISDIRECTED_REQUEST,
                None,
                pages::message(
                    "Not a loopback address",
                    "Without login the admin screen answers only requests addressed to localhost or a loopback address.",
                ),
            );
        }
        let actor = Actor { user: LOOPBACK_USER.into(), ip };
        req.extensions_mut().insert(Visitor { actor, name: None });
        return next.run(req).await;
    }
    let Some((id, session)) = session_of(&m, req.headers()) else {
        return to_login(&req);
    };
    let Some(op) = session.user else {
        return to_login(&req);
    };
    // Every `session_check_secs` the provider is asked (userinfo) whether it still vouches for
    // the user: one disabled there, logged out there (or whose password or TOTP was changed), or
    // whose admin role came or went loses the session at once, as at a logout. A provider that cannot be
    // asked gets a 503 and the session stays, to be checked again at the next request. Only
    // sessions made without the provider lack an access token; every login has one.
    if let Some(token) = session.access_token
        && session.checked_at.elapsed() >= Duration::from_secs(m.cfg.oidc.session_check_secs)
    {
        match still_vouched_for(&m, &op, &token).await {
            Ok(true) => {
                m.sessions.update(&id, |s| s.checked_at = Instant::now());
            }
            Ok(false) => {
                m.sessions.remove(&id);
                tracing::warn!(subject = %op.subject, "session ended: the provider no longer confirms this user");
                m.audit.emit(audit::logout(&op.subject, ip.as_deref())).await;
                return to_login(&req);
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not re-check a session's user at the provider");
                return server::html(
                    StatusCode::SERVICE_UNAVAILABLE,
                    None,
                    pages::message(
                        "Login cannot be confirmed",
                        "The login service cannot confirm your login just now; try again shortly.",
                    ),
                );
            }
        }
    }
    if !op.is_admin() {
        return not_an_admin(&op, req.headers());
    }
    let actor = Actor { user: op.subject, ip };
    req.extensions_mut().insert(Visitor { actor, name: Some(op.name) });
    next.run(req).await
}

/// The answer to a request without a (live) login: a page goes to `/login` (and back here after
/// it), an action gets 401.
fn to_login(req: &Request) -> Response {
    if req.method() == Method::GET || req.method() == Method::HEAD {
        let here = req.uri().path_and_query().map(|p| p.as_str()).unwrap_or("/");
        let q: String =
            url::form_urlencoded::Serializer::new(String::new()).append_pair("return_to", here).finish();
        return Redirect::to(&format!("/login?{q}")).into_response();
    }
    server::html(
        StatusCode::UNAUTHORIZED,
        None,
        pages::message("Log in first", "Your login has ended: log in again and repeat the action."),
    )
}

/// Whether the provider's userinfo still accepts the login's access token for the same subject,
/// with the admin role as at login (granted or not); `Err` if the provider cannot be asked.
async fn still_vouched_for(m: &Monitor, op: &Operator, token: &str) -> Result<bool, MonitorError> {
    let Some(claims) = m.relying_party().await?.userinfo(token).await? else {
        return Ok(false);
    };
    let now = Operator::from_claims(&op.subject, &claims);
    Ok(claims["sub"] == op.subject.as_str() && now.is_admin() == op.is_admin())
}

/// Whether a Host header names this machine: `localhost`, a loopback IPv4 address or `[::1]`,
/// with or without a port.
fn is_loopback_host(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(rest) => match rest.split_once(']') {
            Some((v6, port)) if port.is_empty() || port.starts_with(':') => {
                return v6.parse::<std::net::Ipv6Addr>().is_ok_and(|a| a.is_loopback());
            }
            _ => return false,
        },
        None => host.rsplit_once(':').map_or(host, |(name, _)| name),
    };
    name.eq_ignore_ascii_case("localhost")
        || name.parse::<std::net::Ipv4Addr>().is_ok_and(|a| a.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_names_count_as_loopback_hosts() {
        for ok in [
            "127.0.0.1",
            "127.0.0.1:8441",
            "localhost",
            "LOCALHOST:8441",
            "[::1]",
            "[::1]:8441",
            "127.1.2.3:80",
        ] {
            assert!(is_loopback_host(ok), "{ok}");
        }
        for bad in [
            "",
            "evil.example",
            "evil.example:8441",
            "10.0.0.1",
            "127.0.0.1.evil.example",
            "[::2]:80",
            "[::1]x",
            "localhost.evil",
        ] {
            assert!(!is_loopback_host(bad), "{bad}");
        }
    }

    #[test]
    fn only_the_admin_role_counts() {
        let a =
            Operator::from_claims("pw-1", &serde_json::json!({"roles": ["auditor", "admin"], "name": "Ito"}));
        assert!(a.is_admin());
        assert_eq!(a.name, "Ito");
        let d = Operator::from_claims("pw-2", &serde_json::json!({"roles": ["physician"]}));
        assert!(!d.is_admin());
        assert_eq!(d.name, "pw-2");
        assert!(Operator::from_claims("pw-3", &serde_json::json!({"role": "admin"})).is_admin());
        assert!(!Operator::from_claims("pw-4", &serde_json::json!({"roles": "admin"})).is_admin());
    }
}
