//! Single sign-on for the admin screen (`kizuna-oidc-rp` against `kizuna-auth`):
//!
//! | method | path | what |
//! |---|---|---|
//! | GET | `/login?return_to=` | starts the code flow (PKCE, state, nonce) at the provider |
//! | GET | `/auth/callback` | verifies the login; admins go on, others get 403 |
//! | POST | `/logout` | `csrf`: ends the session |
//!
//! Every login (refused ones too) and logout is an audit event.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Form, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};

use crate::access::{Operator, client_ip, not_an_admin, session_of};
use crate::{Monitor, audit, csrf, pages, server};

/// The login routes (not behind the gate).
pub fn routes() -> Router<Arc<Monitor>> {
    Router::new()
        .route("/auth/callback", get(callback))
        .route("/login", get(start))
        .route("/logout", post(logout))
}

/// Adds a `Set-Cookie` header to an answer.
fn set_cookie(mut r: Response, value: &str) -> Response {
    if let Ok(v) = HeaderValue::from_str(value) {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
    r
}

fn problem(status: StatusCode, title: &str, text: &str) -> Response {
    server::html(status, None, pages::message(title, text))
}

#[derive(serde::Deserialize)]
pub struct LoginQuery {
    return_to: Option<String>,
}

/// `GET /login`: to the provider, remembering where to come back to.
pub async fn start(
    State(m): State<Arc<Monitor>>,
    headers: HeaderMap,
    Query(q): Query<LoginQuery>,
) -> Response {
    if !m.cfg.login_required() {
        return Redirect::to("/").into_response();
    }
    let rp = match m.relying_party().await {
        Ok(rp) => rp,
        Err(e) => {
            tracing::warn!(error = %e, "the single sign-on provider is not reachable");
            return problem(StatusCode::SERVICE_UNAVAILABLE, "Login unavailable", &e.to_string());
        }
    };
    let (provider_url, pending) = rp.start(&kizuna_oidc_rp::safe_return_path(q.return_to.as_deref()));
    let id = session_of(&m, &headers).map(|(id, _)| id).unwrap_or_else(|| m.sessions.create());
    m.sessions.update(&id, |s| s.pending = Some(pending));
    set_cookie(Redirect::to(&provider_url).into_response(), &m.sessions.cookie(&id, m.cfg.secure_cookies()))
}

#[derive(serde::Deserialize)]
pub struct Callback {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

/// `GET /auth/callback`: the provider's answer.
pub async fn callback(State(m): State<Arc<Monitor>>, Query(q): Query<Callback>, req: Request) -> Response {
    let ip = client_ip(req.extensions());
    let headers = req.headers();
    if let Some(e) = &q.error {
        let why =
            format!("The provider refused the login: {e} {}", q.error_description.as_deref().unwrap_or(""));
        return problem(StatusCode::UNAUTHORIZED, "Login refused", &why);
    }
    // The pending login is taken out of the session at once: a replayed callback finds none.
    let Some((id, pending)) = session_of(&m, headers).and_then(|(id, s)| Some((id, s.pending?))) else {
        return problem(
            StatusCode::BAD_REQUEST,
            "No login in progress",
            "No login was started in this browser (cookie missing or expired): open the admin screen again.",
        );
    };
    m.sessions.update(&id, |s| s.pending = None);
    let (Some(code), Some(state)) = (q.code, q.state) else {
        return problem(StatusCode::BAD_REQUEST, "Bad callback", "The callback lacks code or state.");
    };
    let verified = match m.relying_party().await {
        Ok(rp) => rp.finish(&pending, &code, &state).await,
        Err(e) => return problem(StatusCode::SERVICE_UNAVAILABLE, "Login unavailable", &e.to_string()),
    };
    let login = match verified {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!(error = %e, "admin login refused");
            return problem(StatusCode::UNAUTHORIZED, "Login failed", &e.to_string());
        }
    };
    let op = Operator::from_claims(&login.subject, &login.claims);
    let admin = op.is_admin();
    m.audit.emit(audit::login(&op.subject, ip.as_deref(), admin)).await;
    // Non-admins keep a session too, so that every page answers them 403 (and they can log out)
    // instead of sending them round the provider again.
    let session = m.sessions.log_in(&id, op.clone());
    // Kept for the provider logout's `id_token_hint`, and for re-checking the user at userinfo.
    m.sessions.update(&session, |s| {
        s.id_token = Some(login.id_token.clone());
        s.access_token = Some(login.access_token.clone());
    });
    let cookie = m.sessions.cookie(&session, m.cfg.secure_cookies());
    if admin {
        tracing::info!(subject = %op.subject, "admin logged in");
        set_cookie(Redirect::to(&pending.return_to).into_response(), &cookie)
    } else {
        tracing::warn!(subject = %op.subject, roles = ?op.roles, "login refused: not an admin");
        set_cookie(not_an_admin(&op, headers), &cookie)
    }
}

#[derive(serde::Deserialize)]
pub struct LogoutForm {
    csrf: String,
}

/// `POST /logout`.
pub async fn logout(
    State(m): State<Arc<Monitor>>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    Form(f): Form<LogoutForm>,
) -> Response {
    let ip = peer.map(|Extension(ConnectInfo(a))| a.ip().to_string());
    if let Err(why) = csrf::check(&headers, &f.csrf) {
        return problem(StatusCode::FORBIDDEN, "Refused", why);
    }
    let mut id_token = None;
    if let Some((id, s)) = session_of(&m, &headers) {
        if let Some(op) = s.user {
            m.audit.emit(audit::logout(&op.subject, ip.as_deref())).await;
            tracing::info!(subject = %op.subject, "logged out");
        }
        m.sessions.remove(&id);
        id_token = s.id_token;
    }
    // The provider's session must end too: otherwise the next login on this browser is answered
    // from it, as the previous operator, without a password.
    let back = format!("{}/", m.cfg.base_url());
    let provider_logout = if !m.cfg.login_required() {
        None
    } else {
        match m.relying_party().await {
            Ok(rp) => rp.logout_url(id_token.as_deref(), &back),
            Err(e) => {
                tracing::warn!(error = %e, "the single sign-on provider is not reachable for logout");
                None
            }
        }
    };
    if let Some(url) = provider_logout {
        return set_cookie(Redirect::to(&url).into_response(), &m.sessions.expired_cookie());
    }
    let page = pages::message(
        "Logged out",
        "You are logged out of the admin screen. The login service could not be asked to end the single sign-on session: close the browser.",
    );
    set_cookie(server::html(StatusCode::OK, None, page), &m.sessions.expired_cookie())
}
