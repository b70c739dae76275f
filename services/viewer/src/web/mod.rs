//! The clinician-facing web UI: routes, the logged-in user of each request, and error pages.
//!
//! | route | what |
//! |---|---|
//! | `GET /` | search form (login first) |
//! | `GET /login`, `GET /auth/callback`, `POST /logout` | OpenID Connect login and logout |
//! | `GET /search?by=common\|local&q=` | find a patient; redirects to the time series |
//! | `GET /patients/{id}?kind=&facility=` | time series |
//! | `GET /patients/{id}/calendar?month=YYYY-MM&kind=&facility=` | calendar |
//! | `GET /patients/{id}/records/{record}` | the original message |
//! | `POST /patients/{id}/break-glass` | emergency access (reason, CSRF token) |
//! | `GET /healthz` | liveness |

// Handlers short-circuit with a ready `Response` as the error; boxing it would buy nothing.
#![allow(clippy::result_large_err)]

mod html;
mod login;
mod pages;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};

use crate::Viewer;
use crate::access::User;
use crate::session::Session;

/// The router of the viewer.
pub fn router(v: Arc<Viewer>) -> Router {
    Router::new()
        .route("/", get(pages::home))
        .route("/healthz", get(|| async { "ok" }))
        .route("/login", get(login::start))
        .route("/auth/callback", get(login::callback))
        .route("/logout", post(login::logout))
        .route("/search", get(pages::search))
        .route("/patients/{id}", get(pages::timeline))
        .route("/patients/{id}/calendar", get(pages::calendar))
        .route("/patients/{id}/records/{record}", get(pages::original))
        .route("/patients/{id}/break-glass", post(pages::break_glass))
        .layer(axum::middleware::map_response(|r: Response| async move { kizuna_web_headers::harden(r) }))
        .with_state(v)
}

/// The session of a request, by its cookie.
fn session(v: &Viewer, headers: &HeaderMap) -> Option<(String, Session)> {
    v.sessions.from_cookie_headers(headers.get_all(header::COOKIE).iter().filter_map(|h| h.to_str().ok()))
}

/// A logged-in user with the session's CSRF token, or the response sending them to log in.
#[derive(Clone)]
struct LoggedIn {
    user: User,
    csrf: String,
}

/// Every `session_check_secs` the provider is asked (userinfo) whether it still vouches for the
/// session's user as logged in: a user disabled there, logged out there (or whose password or TOTP
/// was changed), or given another role or facility loses the session at once, as at a logout.
async fn logged_in(
    v: &Viewer,
    headers: &HeaderMap,
    addr: &SocketAddr,
    return_to: &str,
) -> Result<LoggedIn, Response> {
    let to_login = || Redirect::to(&format!("/login?return_to={}", encode(return_to))).into_response();
    let Some((id, Session { user: Some(user), csrf, access_token, checked_at, .. })) = session(v, headers)
    else {
        return Err(to_login());
    };
    // Only sessions made without the provider (tests) lack an access token; every login has one.
    if let Some(token) = access_token
        && checked_at.elapsed() >= Duration::from_secs(v.config.session_check_secs)
    {
        match still_vouched_for(v, &user, &token).await {
            Ok(true) => {
                v.sessions.update(&id, |s| s.checked_at = Instant::now());
            }
            Ok(false) => {
                v.sessions.remove(&id);
                tracing::warn!(subject = %user.subject, "session ended: the provider no longer confirms this user");
                // Audited as a logout; the session ends even if that cannot be recorded.
                if let Err(e) = v.audit.logout(&user, &ip(addr)) {
                    tracing::error!(error = %e, "could not record the end of a session");
                }
                return Err(to_login());
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not re-check a session's user at the provider");
                return Err(problem(
                    StatusCode::SERVICE_UNAVAILABLE,
                    Some(&LoggedIn { user, csrf }),
                    "The login service cannot confirm your login just now; try again shortly.",
                ));
            }
        }
    }
    let me = LoggedIn { user, csrf };
    if !me.user.role.may_view_patients() {
        // With the log-out button: an admin or auditor who signed in here must be able to leave.
        return Err(problem(
            StatusCode::FORBIDDEN,
            Some(&me),
            &format!("The {} role does not view patients.", me.user.role.as_str()),
        ));
    }
    Ok(me)
}

/// Whether the provider's userinfo still accepts the login's access token and names the same
/// subject, facility and role; `Err` if the provider cannot be asked.
async fn still_vouched_for(v: &Viewer, user: &User, token: &str) -> Result<bool, crate::ViewerError> {
    let Some(claims) = v.relying_party().await?.userinfo(token).await? else {
        return Ok(false);
    };
    let now = crate::oidc::user_from_claims(&user.subject, &claims);
    Ok(claims["sub"] == user.subject.as_str()
        && now.is_ok_and(|n| n.facility == user.facility && n.role == user.role))
}

/// Percent-encodes a path for a query parameter.
fn encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A problem page; for a logged-in user with the header's "Log out" (the session's CSRF token).
fn problem(status: StatusCode, me: Option<&LoggedIn>, message: &str) -> Response {
    let (user, csrf) = match me {
        Some(m) => (Some(&m.user), Some(m.csrf.as_str())),
        None => (None, None),
    };
    (status, html::page("Problem", user, csrf, html::problem(message))).into_response()
}

fn ip(addr: &SocketAddr) -> String {
    addr.ip().to_string()
}
