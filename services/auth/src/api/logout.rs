//! RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0): GET shows a confirmation form
//! (CSRF-protected), POST ends the session and returns to a registered post-logout URI. A GET
//! whose `id_token_hint` was issued to the session's own user ends the session without asking
//! (RP-Initiated Logout §2 requires the question only otherwise): a clinician who logs out of the
//! viewer on a shared PC and walks away must not leave the provider session behind.

use super::{AppState, SESSION_COOKIE, pages};
use crate::pairwise;
use crate::session::{self, Session};
use axum::Form;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::cookie::CookieJar;
use serde::Deserialize;
use std::net::SocketAddr;

#[derive(Deserialize, Default)]
pub struct LogoutParams {
    #[serde(default)]
    id_token_hint: Option<String>,
    #[serde(default)]
    client_id: Option<String>,
    #[serde(default)]
    post_logout_redirect_uri: Option<String>,
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    csrf: Option<String>,
}

/// The client the request names, directly or through the ID token it presents.
fn client_of(st: &AppState, p: &LogoutParams) -> Option<String> {
    p.client_id.clone().filter(|c| !c.is_empty()).or_else(|| {
        let claims = st.signer.verify(p.id_token_hint.as_deref()?)?;
        claims["aud"].as_str().map(str::to_string)
    })
}

/// Where to send the browser afterwards: only a URI registered for the client.
async fn return_uri(st: &AppState, p: &LogoutParams) -> Option<String> {
    let uri = p.post_logout_redirect_uri.as_deref().filter(|u| !u.is_empty())?;
    let client = st.dir.client(&client_of(st, p)?).await.ok()??;
    if !client.post_logout_redirect_uris.iter().any(|u| u == uri) {
        tracing::warn!(client_id = client.client_id, uri, "unregistered post_logout_redirect_uri ignored");
        return None;
    }
    let mut u = url::Url::parse(uri).ok()?;
    if let Some(s) = p.state.as_deref().filter(|s| !s.is_empty()) {
        u.query_pairs_mut().append_pair("state", s);
    }
    Some(u.to_string())
}

/// Whether `id_token_hint` is an ID token of this provider for the session's user (at the
/// client it names, which must agree with `client_id` if that is given too).
async fn hint_names_session_user(st: &AppState, p: &LogoutParams, s: &Session) -> bool {
    let Some(claims) = p.id_token_hint.as_deref().and_then(|t| st.signer.verify(t)) else {
        return false;
    };
    let (Some(aud), Some(sub)) = (claims["aud"].as_str(), claims["sub"].as_str()) else {
        return false;
    };
    if claims["iss"].as_str() != Some(st.issuer.as_str())
        || p.client_id.as_deref().is_some_and(|c| !c.is_empty() && c != aud)
    {
        return false;
    }
    match st.dir.client(aud).await {
        Ok(Some(c)) => pairwise::pairwise_subject(&st.salt, &c.sector, &s.user_id) == sub,
        _ => false,
    }
}

/// Ends session `s` and audits it; the error page if it could not be ended.
async fn end(st: &AppState, peer: &SocketAddr, s: &Session) -> Result<(), Response> {
    if let Err(e) = session::end_session(st.dir.db(), s).await {
        tracing::error!(error = %e, "logout");
        return Err(pages::error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Server error",
            "Logout failed; try again.",
        ));
    }
    if let Some(a) = &st.audit
        && let Ok(Some(u)) = st.dir.user(&s.user_id).await
    {
        a.logout(&u, peer);
    }
    tracing::info!(user_id = s.user_id, "logout");
    Ok(())
}

/// GET /logout
pub async fn confirm(
    State(st): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    jar: CookieJar,
    Query(p): Query<LogoutParams>,
) -> Response {
    let live = match jar.get(&st.cookie_name(SESSION_COOKIE)) {
        Some(c) => session::session(st.dir.db(), c.value(), st.cfg.session_idle_secs).await.ok().flatten(),
        None => None,
    };
    let Some(s) = live else {
        return match return_uri(&st, &p).await {
            Some(u) => Redirect::to(&u).into_response(),
            None => pages::logged_out(),
        };
    };
    if hint_names_session_user(&st, &p, &s).await {
        if let Err(r) = end(&st, &peer, &s).await {
            return r;
        }
        let jar = jar.remove(st.removal(SESSION_COOKIE));
        return match return_uri(&st, &p).await {
            Some(u) => (jar, Redirect::to(&u)).into_response(),
            None => (jar, pages::logged_out()).into_response(),
        };
    }
    let client_id = client_of(&st, &p).unwrap_or_default();
    let mut hidden = vec![("client_id", client_id.as_str())];
    if let Some(u) = p.post_logout_redirect_uri.as_deref() {
        hidden.push(("post_logout_redirect_uri", u));
    }
    if let Some(v) = p.state.as_deref() {
        hidden.push(("state", v));
    }
    pages::logout_confirm(&s.csrf, &hidden)
}

/// POST /logout
pub async fn logout(
    State(st): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    jar: CookieJar,
    Form(p): Form<LogoutParams>,
) -> Response {
    let live = match jar.get(&st.cookie_name(SESSION_COOKIE)) {
        Some(c) => session::session(st.dir.db(), c.value(), st.cfg.session_idle_secs).await.ok().flatten(),
        None => None,
    };
    if let Some(s) = live {
        let csrf = p.csrf.as_deref().unwrap_or_default();
        if !crate::secret_token::constant_time_eq(s.csrf.as_bytes(), csrf.as_bytes()) {
            return pages::error(StatusCode::FORBIDDEN, "Forbidden", "The form's security token is invalid.");
        }
        if let Err(r) = end(&st, &peer, &s).await {
            return r;
        }
    }
    let jar = jar.remove(st.removal(SESSION_COOKIE));
    match return_uri(&st, &p).await {
        Some(u) => (jar, Redirect::to(&u)).into_response(),
        None => (jar, pages::logged_out()).into_response(),
    }
}
