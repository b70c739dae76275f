//! Login and logout: the OpenID Connect redirect, the callback, and logout with a CSRF token.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, Form, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::{problem, session};
use crate::oidc::user_from_login;
use crate::session::LOGOUT_HINT_COOKIE;
use crate::{Viewer, ViewerError};

#[derive(Deserialize)]
pub struct StartQuery {
    return_to: Option<String>,
}

fn with_cookie(mut r: Response, cookie: String) -> Response {
    if let Ok(v) = cookie.parse() {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
    r
}

/// Starts a login. Nothing is kept on the server: the pending login (state, nonce, PKCE verifier,
/// return path) goes into a signed cookie of this browser, so a flood of anonymous `GET /login`
/// costs no memory and cannot push out the logins of others. The provider is asked for a login at
/// most `session_idle_minutes` old (`max_age`): after the viewer's session idled out, its own
/// (longer) session does not log the browser back in without the password.
pub async fn start(State(v): State<Arc<Viewer>>, Query(q): Query<StartQuery>) -> Response {
    let rp = match v.relying_party().await {
        Ok(rp) => rp,
        Err(e) => {
            tracing::warn!(error = %e, "the OpenID Connect provider is not reachable");
            return problem(StatusCode::SERVICE_UNAVAILABLE, None, &format!("Login is not available: {e}"));
        }
    };
    let max_age = Duration::from_secs(v.config.session_idle_minutes * 60);
    let (url, pending) =
        rp.start_with(&kizuna_oidc_rp::safe_return_path(q.return_to.as_deref()), Some(max_age));
    with_cookie(Redirect::to(&url).into_response(), v.login_cookies.cookie(&pending, v.config.secure_cookies))
}

#[derive(Deserialize)]
pub struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

pub async fn callback(
    State(v): State<Arc<Viewer>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Query(q): Query<CallbackQuery>,
) -> Response {
    // One use only: whatever happens, the pending login's cookie is cleared.
    let r = finish_login(&v, &addr, &headers, q).await;
    with_cookie(r, v.login_cookies.expired_cookie())
}

async fn finish_login(v: &Viewer, addr: &SocketAddr, headers: &HeaderMap, q: CallbackQuery) -> Response {
    if let Some(e) = q.error {
        let d = q.error_description.unwrap_or_default();
        return problem(StatusCode::UNAUTHORIZED, None, &format!("The provider refused the login: {e} {d}"));
    }
    let cookies = || headers.get_all(header::COOKIE).into_iter().filter_map(|h| h.to_str().ok());
    let Some(pending) = v.login_cookies.from_cookie_headers(cookies()) else {
        return problem(
            StatusCode::BAD_REQUEST,
            None,
            "No login was started in this browser in the last ten minutes (cookie missing or expired): log in again.",
        );
    };
    let (Some(code), Some(state)) = (q.code, q.state) else {
        return problem(StatusCode::BAD_REQUEST, None, "The callback lacks code or state.");
    };
    let rp = match v.relying_party().await {
        Ok(rp) => rp,
        Err(e) => {
            return problem(StatusCode::SERVICE_UNAVAILABLE, None, &format!("Login is not available: {e}"));
        }
    };
    let (user, id_token, access_token) = match rp
        .finish(&pending, &code, &state)
        .await
        .map_err(ViewerError::from)
        .and_then(|l| Ok((user_from_login(&l)?, l.id_token, l.access_token)))
    {
        Ok(u) => u,
        Err(e) => {
            tracing::warn!(error = %e, "login refused");
            return problem(StatusCode::UNAUTHORIZED, None, &format!("Login failed: {e}"));
        }
    };
    if let Err(e) = v.audit.login(&user, &addr.ip().to_string(), true) {
        tracing::error!(error = %e, "could not record a login");
        return problem(
            StatusCode::INTERNAL_SERVER_ERROR,
            None,
            "The login could not be recorded for audit.",
        );
    }
    tracing::info!(subject = %user.subject, facility = %user.facility, role = user.role.as_str(), "logged in");
    // A session this browser had before (ended or not) is replaced by a new ID (no fixation).
    let old = session_id(v, headers).unwrap_or_default();
    let new_id = v.sessions.log_in(&old, user);
    // Kept for the provider logout's `id_token_hint`, and for re-checking the user at userinfo.
    v.sessions.update(&new_id, |s| {
        s.id_token = Some(id_token.clone());
        s.access_token = Some(access_token);
    });
    let r = with_cookie(
        Redirect::to(&pending.return_to).into_response(),
        v.sessions.cookie(&new_id, v.config.secure_cookies),
    );
    with_cookie(r, hint_cookie(v, &id_token))
}

/// The session ID a request's cookie names, live or not.
fn session_id(v: &Viewer, headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .into_iter()
        .filter_map(|h| h.to_str().ok())
        .find_map(|h| v.sessions.id_in_cookie_header(h))
        .map(str::to_owned)
}

/// The cookie keeping the login's ID token for a logout after the session ended (idle timeout,
/// restart): sent only to `/logout`, `HttpOnly`, as long as a session may live.
fn hint_cookie(v: &Viewer, id_token: &str) -> String {
    format!(
        "{LOGOUT_HINT_COOKIE}={id_token}; Path=/logout; HttpOnly; SameSite=Lax; Max-Age={}{}",
        v.config.session_minutes * 60,
        if v.config.secure_cookies { "; Secure" } else { "" }
    )
}

/// The ID token kept by [`hint_cookie`], if the request carries one.
fn hinted_id_token(headers: &HeaderMap) -> Option<String> {
    headers.get_all(header::COOKIE).into_iter().filter_map(|h| h.to_str().ok()).find_map(|h| {
        h.split(';')
            .map(str::trim)
            .find_map(|kv| kv.strip_prefix(LOGOUT_HINT_COOKIE)?.strip_prefix('='))
            .filter(|t| !t.is_empty() && t.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)))
            .map(str::to_owned)
    })
}

#[derive(Deserialize)]
pub struct LogoutForm {
    csrf: String,
}

pub async fn logout(
    State(v): State<Arc<Viewer>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(f): Form<LogoutForm>,
) -> Response {
    // After the session ended (idle timeout, restart), the ID token kept in its own cookie still
    // lets the provider end its session at once, without a confirmation page nobody answers.
    let mut id_token = hinted_id_token(&headers);
    if let Some((id, s)) = session(&v, &headers) {
        let me = s.user.clone().map(|user| super::LoggedIn { user, csrf: s.csrf.clone() });
        if !kizuna_oidc_rp::constant_time_eq(s.csrf.as_bytes(), f.csrf.as_bytes()) {
            return problem(StatusCode::FORBIDDEN, me.as_ref(), "CSRF check failed.");
        }
        if let Some(u) = &s.user
            && let Err(e) = v.audit.logout(u, &addr.ip().to_string())
        {
            // Like every other page: what cannot be audited is not done.
            tracing::error!(error = %e, "could not record a logout");
            return problem(
                StatusCode::INTERNAL_SERVER_ERROR,
                me.as_ref(),
                "The logout could not be recorded for audit; try again.",
            );
        }
        v.sessions.remove(&id);
        id_token = s.id_token.or(id_token);
    }
    let expired = v.sessions.expired_cookie();
    // The provider's session must end too: otherwise the next "log in" on a shared PC is
    // answered from it, as the previous user, without a password.
    let back = format!("{}/", v.config.base_url());
    let provider_logout = match v.relying_party().await {
        Ok(rp) => rp.logout_url(id_token.as_deref(), &back),
        Err(e) => {
            tracing::warn!(error = %e, "the OpenID Connect provider is not reachable for logout");
            None
        }
    };
    let no_hint = format!("{LOGOUT_HINT_COOKIE}=; Path=/logout; HttpOnly; SameSite=Lax; Max-Age=0");
    if let Some(url) = provider_logout {
        return with_cookie(with_cookie(Redirect::to(&url).into_response(), expired), no_hint);
    }
    let r = with_cookie(
        (
            StatusCode::OK,
            super::html::page(
                "Logged out",
                None,
                None,
                maud::html! {
                    p { "Logged out of the viewer. " a href="/" { "Log in again" } }
                    p { "The login service could not be asked to end the single sign-on session: close the browser." }
                },
            ),
        )
            .into_response(),
        expired,
    );
    with_cookie(r, no_hint)
}
