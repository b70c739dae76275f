//! The login forms: password, then TOTP (or TOTP enrollment on a first login). Each POST must carry
//! the flow's CSRF token; failures count toward the lockout; success starts a session and returns
//! the browser to the client with a code.

use super::authorize::issue_and_redirect;
use super::{AppState, FLOW_COOKIE, SESSION_COOKIE, pages};
use crate::audit::LoginOutcome;
use crate::directory::{PasswordCheck, TotpCheck};
use crate::secret_token::constant_time_eq;
use crate::session::{self, Flow, Stage};
use crate::totp;
use axum::Form;
use axum::extract::{ConnectInfo, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum_extra::extract::cookie::CookieJar;
use serde::Deserialize;
use std::net::SocketAddr;

/// Shown for every refused password, unknown user, locked or disabled account alike, so the page
/// does not reveal which usernames exist or are locked.
pub const REFUSED: &str = "Login refused: wrong user name or password, or the account is locked.";
pub const TOTP_REFUSED: &str = "Wrong or expired code.";

#[derive(Deserialize)]
pub struct PasswordForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
}

#[derive(Deserialize)]
pub struct CodeForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    code: String,
}

fn internal(e: impl std::fmt::Display) -> Response {
    tracing::error!(error = %e, "login");
    pages::error(StatusCode::INTERNAL_SERVER_ERROR, "Server error", "The login service failed; try again.")
}

/// The flow named by the cookie whose CSRF token matches the form's, or the page to show instead.
async fn checked_flow(st: &AppState, jar: &CookieJar, csrf: &str) -> Result<Flow, Response> {
    let expired = || {
        pages::error(
            StatusCode::BAD_REQUEST,
            "Login expired",
            "This login page has expired. Go back to the application and start again.",
        )
    };
    let Some(c) = jar.get(&st.cookie_name(FLOW_COOKIE)) else { return Err(expired()) };
    let flow = match session::flow(st.dir.db(), c.value()).await {
        Ok(Some(f)) => f,
        Ok(None) => return Err(expired()),
        Err(e) => return Err(internal(e)),
    };
    if !constant_time_eq(flow.csrf.as_bytes(), csrf.as_bytes()) {
        tracing::warn!("login form with a wrong CSRF token refused");
        return Err(pages::error(
            StatusCode::FORBIDDEN,
            "Forbidden",
            "The form's security token is invalid.",
        ));
    }
    Ok(flow)
}

async fn client_name(st: &AppState, client_id: &str) -> String {
    st.dir.client(client_id).await.ok().flatten().map(|c| c.name).unwrap_or_else(|| client_id.to_string())
}

/// POST /login (user name and password)
pub async fn password(
    State(st): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    jar: CookieJar,
    Form(f): Form<PasswordForm>,
) -> Response {
    let flow = match checked_flow(&st, &jar, &f.csrf).await {
        Ok(fl) => fl,
        Err(r) => return r,
    };
    let username = f.username.trim();
    let check = match st.dir.check_password(username, &f.password, st.lockout()).await {
        Ok(c) => c,
        Err(e) => return internal(e),
    };
    let user = match check {
        PasswordCheck::Ok(u) => u,
        PasswordCheck::Refused { user_id, now_locked } => {
            if let Some(a) = &st.audit {
                a.login(
                    LoginOutcome::Refused { username, user_id: user_id.as_deref(), locked: now_locked },
                    &peer,
                );
            }
            tracing::info!(username, now_locked, "password refused");
            let name = client_name(&st, &flow.request.client_id).await;
            return pages::login(StatusCode::UNAUTHORIZED, &name, &flow.csrf, Some(REFUSED));
        }
        PasswordCheck::Locked { user_id } => {
            if let Some(a) = &st.audit {
                a.login(LoginOutcome::Refused { username, user_id: Some(&user_id), locked: true }, &peer);
            }
            tracing::info!(username, "login to a locked or disabled account refused");
            let name = client_name(&st, &flow.request.client_id).await;
            return pages::login(StatusCode::UNAUTHORIZED, &name, &flow.csrf, Some(REFUSED));
        }
    };
    if user.totp_enrolled {
        if let Err(e) = session::advance_flow(st.dir.db(), &flow, Stage::Totp, &user.id, None).await {
            return internal(e);
        }
        return pages::totp(StatusCode::OK, &flow.csrf, None);
    }
    let secret = totp::new_secret();
    let uri = match totp::provisioning_uri(&secret, "Kizuna", &user.username) {
        Ok(u) => u,
        Err(e) => return internal(e),
    };
    if let Err(e) = session::advance_flow(st.dir.db(), &flow, Stage::Enroll, &user.id, Some(&secret)).await {
        return internal(e);
    }
    pages::enroll(StatusCode::OK, &flow.csrf, &secret, &uri, None)
}

/// Finish a login: session cookie, flow gone, audit event, code to the client.
async fn complete(st: &AppState, jar: CookieJar, flow: &Flow, user_id: &str, peer: &SocketAddr) -> Response {
    if let Err(e) = st.dir.record_success(user_id).await {
        return internal(e);
    }
    let (cookie, s) =
        match session::create_session(st.dir.db(), user_id, "pwd otp", st.cfg.session_lifetime_secs).await {
            Ok(x) => x,
            Err(e) => return internal(e),
        };
    if let Err(e) = session::delete_flow(st.dir.db(), flow).await {
        return internal(e);
    }
    if let Some(a) = &st.audit
        && let Ok(Some(u)) = st.dir.user(user_id).await
    {
        a.login(LoginOutcome::Success { user: &u }, peer);
    }
    tracing::info!(user_id, client_id = flow.request.client_id, "login complete");
    let jar = jar.remove(st.removal(FLOW_COOKIE)).add(st.cookie(SESSION_COOKIE, cookie));
    (jar, issue_and_redirect(st, &flow.request, &s).await).into_response()
}

/// POST /login/totp
pub async fn totp(
    State(st): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    jar: CookieJar,
    Form(f): Form<CodeForm>,
) -> Response {
    let flow = match checked_flow(&st, &jar, &f.csrf).await {
        Ok(fl) => fl,
        Err(r) => return r,
    };
    let (Stage::Totp, Some(user_id)) = (flow.stage, flow.user_id.clone()) else {
        return pages::error(StatusCode::BAD_REQUEST, "Out of order", "Enter your password first.");
    };
    match st.dir.check_totp(&user_id, &f.code, st.cfg.totp_skew_steps, st.lockout()).await {
        Ok(TotpCheck::Ok) => complete(&st, jar, &flow, &user_id, &peer).await,
        Ok(TotpCheck::Refused { now_locked }) => {
            if let Some(a) = &st.audit {
                a.login(LoginOutcome::TotpRefused { user_id: &user_id, locked: now_locked }, &peer);
            }
            if now_locked {
                let _ = session::delete_flow(st.dir.db(), &flow).await;
                let name = client_name(&st, &flow.request.client_id).await;
                return pages::login(StatusCode::UNAUTHORIZED, &name, "", Some(REFUSED));
            }
            pages::totp(StatusCode::UNAUTHORIZED, &flow.csrf, Some(TOTP_REFUSED))
        }
        Ok(TotpCheck::Locked) => {
            let _ = session::delete_flow(st.dir.db(), &flow).await;
            let name = client_name(&st, &flow.request.client_id).await;
            pages::login(StatusCode::UNAUTHORIZED, &name, "", Some(REFUSED))
        }
        Err(e) => internal(e),
    }
}

/// POST /login/enroll (first code from a newly shown secret)
pub async fn enroll(
    State(st): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    jar: CookieJar,
    Form(f): Form<CodeForm>,
) -> Response {
    let flow = match checked_flow(&st, &jar, &f.csrf).await {
        Ok(fl) => fl,
        Err(r) => return r,
    };
    let (Stage::Enroll, Some(user_id), Some(secret)) =
        (flow.stage, flow.user_id.clone(), flow.enroll_secret.clone())
    else {
        return pages::error(StatusCode::BAD_REQUEST, "Out of order", "Enter your password first.");
    };
    let step = match totp::accept(&secret, &f.code, crate::db::now().max(0) as u64, st.cfg.totp_skew_steps, 0)
    {
        Ok(s) => s,
        Err(e) => return internal(e),
    };
    let Some(step) = step else {
        let account = st.dir.user(&user_id).await.ok().flatten().map(|u| u.username).unwrap_or_default();
        let uri = totp::provisioning_uri(&secret, "Kizuna", &account).unwrap_or_default();
        return pages::enroll(StatusCode::UNAUTHORIZED, &flow.csrf, &secret, &uri, Some(TOTP_REFUSED));
    };
    if let Err(e) = st.dir.set_totp_secret_at_step(&user_id, &secret, step).await {
        return internal(e);
    }
    complete(&st, jar, &flow, &user_id, &peer).await
}
