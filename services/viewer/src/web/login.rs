//! Login and logout: the OpenID Connect redirect, the callback, and logout with a CSRF token.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Form, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::{problem, session};
use crate::oidc::user_from_login;
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

pub async fn start(
    State(v): State<Arc<Viewer>>,
    headers: HeaderMap,
    Query(q): Query<StartQuery>,
) -> Response {
    let rp = match v.relying_party().await {
        Ok(rp) => rp,
        Err(e) => {
            tracing::warn!(error = %e, "the OpenID Connect provider is not reachable");
            return problem(StatusCode::SERVICE_UNAVAILABLE, None, &format!("Login is not available: {e}"));
        }
    };
    let (url, pending) = rp.start(&kizuna_oidc_rp::safe_return_path(q.return_to.as_deref()));
    let id = match session(&v, &headers) {
        Some((id, _)) => id,
        None => v.sessions.create(),
    };
    v.sessions.update(&id, |s| s.pending = Some(pending));
    with_cookie(Redirect::to(&url).into_response(), v.sessions.cookie(&id, v.config.secure_cookies))
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
    if let Some(e) = q.error {
        let d = q.error_description.unwrap_or_default();
        return problem(StatusCode::UNAUTHORIZED, None, &format!("The provider refused the login: {e} {d}"));
    }
    let Some((id, s)) = session(&v, &headers) else {
        return problem(
            StatusCode::BAD_REQUEST,
            None,
            "No login was started in this browser (cookie missing or expired).",
        );
    };
    let Some(pending) = s.pending else {
        return problem(StatusCode::BAD_REQUEST, None, "No login is in progress in this session.");
    };
    // One use only: a replayed callback finds nothing pending.
    v.sessions.update(&id, |s| s.pending = None);
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
    let new_id = v.sessions.log_in(&id, user);
    // Kept for the provider logout's `id_token_hint`, and for re-checking the user at userinfo.
    v.sessions.update(&new_id, |s| {
        s.id_token = Some(id_token);
        s.access_token = Some(access_token);
    });
    with_cookie(
        Redirect::to(&pending.return_to).into_response(),
        v.sessions.cookie(&new_id, v.config.secure_cookies),
    )
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
    let mut id_token = None;
    if let Some((id, s)) = session(&v, &headers) {
        if !kizuna_oidc_rp::constant_time_eq(s.csrf.as_bytes(), f.csrf.as_bytes()) {
            return problem(StatusCode::FORBIDDEN, s.user.as_ref(), "CSRF check failed.");
        }
        if let Some(u) = &s.user
            && let Err(e) = v.audit.logout(u, &addr.ip().to_string())
        {
            // Like every other page: what cannot be audited is not done.
            tracing::error!(error = %e, "could not record a logout");
            return problem(
                StatusCode::INTERNAL_SERVER_ERROR,
                Some(u),
                "The logout could not be recorded for audit; try again.",
            );
        }
        v.sessions.remove(&id);
        id_token = s.id_token;
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
    if let Some(url) = provider_logout {
        return with_cookie(Redirect::to(&url).into_response(), expired);
    }
    with_cookie(
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
    )
}
