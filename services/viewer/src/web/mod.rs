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

use axum::Router;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
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
        .layer(axum::middleware::map_response(|r: Response| async move { harden(r) }))
        .with_state(v)
}

/// Headers every response gets (as `kizuna-auth` sends): patient pages are not kept in the
/// browser's cache (the back button after logout), framed, or named in a Referer.
fn harden(mut r: Response) -> Response {
    let h = r.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'"),
    );
    r
}

/// The session of a request, by its cookie.
fn session(v: &Viewer, headers: &HeaderMap) -> Option<(String, Session)> {
    v.sessions.from_cookie_headers(headers.get_all(header::COOKIE).iter().filter_map(|h| h.to_str().ok()))
}

/// A logged-in user with the session's CSRF token, or the response sending them to log in.
struct LoggedIn {
    user: User,
    csrf: String,
}

fn logged_in(v: &Viewer, headers: &HeaderMap, return_to: &str) -> Result<LoggedIn, Response> {
    match session(v, headers) {
        Some((_, Session { user: Some(user), csrf, .. })) => {
            if !user.role.may_view_patients() {
                return Err(problem(
                    StatusCode::FORBIDDEN,
                    Some(&user),
                    &format!("The {} role does not view patients.", user.role.as_str()),
                ));
            }
            Ok(LoggedIn { user, csrf })
        }
        _ => Err(Redirect::to(&format!("/login?return_to={}", encode(return_to))).into_response()),
    }
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

fn problem(status: StatusCode, user: Option<&User>, message: &str) -> Response {
    (status, html::page("Problem", user, None, html::problem(message))).into_response()
}

fn ip(addr: &SocketAddr) -> String {
    addr.ip().to_string()
}
