//! GET /authorize: validate the authorization request (client, exact redirect URI, PKCE S256),
//! answer from a live session or start a login flow.

use super::{AppState, FLOW_COOKIE, SESSION_COOKIE, pages};
use crate::grant::{CodeGrant, issue_code};
use crate::pairwise;
use crate::pkce;
use crate::session::{self, AuthRequest, Session};
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::cookie::CookieJar;
use std::collections::HashMap;

/// Redirect back to the client with an OAuth error (only after the redirect URI was verified).
pub fn error_redirect(
    st: &AppState,
    redirect_uri: &str,
    state: Option<&str>,
    error: &str,
    description: &str,
) -> Response {
    let mut u = match url::Url::parse(redirect_uri) {
        Ok(u) => u,
        Err(_) => return pages::error(StatusCode::BAD_REQUEST, "Invalid request", "invalid redirect_uri"),
    };
    {
        let mut q = u.query_pairs_mut();
        q.append_pair("error", error).append_pair("error_description", description);
        if let Some(s) = state {
            q.append_pair("state", s);
        }
        q.append_pair("iss", &st.issuer);
    }
    Redirect::to(u.as_str()).into_response()
}

fn internal(e: impl std::fmt::Display) -> Response {
    tracing::error!(error = %e, "authorize");
    pages::error(StatusCode::INTERNAL_SERVER_ERROR, "Server error", "The login service failed; try again.")
}

/// Issue a code for a logged-in user and redirect to the client (RFC 9207 `iss` included).
pub async fn issue_and_redirect(st: &AppState, req: &AuthRequest, s: &Session) -> Response {
    let client = match st.dir.client(&req.client_id).await {
        Ok(Some(c)) => c,
        Ok(None) => {
            return pages::error(
                StatusCode::BAD_REQUEST,
                "Unknown client",
                "The application is no longer registered.",
            );
        }
        Err(e) => return internal(e),
    };
    let subject = pairwise::pairwise_subject(&st.salt, &client.sector, &s.user_id);
    match pairwise::record(st.dir.db(), &s.user_id, &client.sector, &subject).await {
        Ok(true) => {
            if let Some(a) = &st.audit {
                a.wake_registrar();
            }
        }
        Ok(false) => {}
        Err(e) => return internal(e),
    }
    let grant = CodeGrant {
        client_id: req.client_id.clone(),
        user_id: s.user_id.clone(),
        redirect_uri: req.redirect_uri.clone(),
        scope: req.scope.clone(),
        nonce: req.nonce.clone(),
        code_challenge: req.code_challenge.clone(),
        auth_time: s.auth_time,
        amr: s.amr.clone(),
        session_hash: s.id_hash.clone(),
    };
    let code = match issue_code(st.dir.db(), &grant, st.cfg.code_lifetime_secs).await {
        Ok(c) => c,
        Err(e) => return internal(e),
    };
    let mut u = match url::Url::parse(&req.redirect_uri) {
        Ok(u) => u,
        Err(e) => return internal(e),
    };
    {
        let mut q = u.query_pairs_mut();
        q.append_pair("code", &code);
        if let Some(state) = &req.state {
            q.append_pair("state", state);
        }
        q.append_pair("iss", &st.issuer);
    }
    Redirect::to(u.as_str()).into_response()
}

/// GET /authorize
pub async fn authorize(
    State(st): State<AppState>,
    jar: CookieJar,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let get = |k: &str| q.get(k).map(String::as_str).filter(|v| !v.is_empty());
    // Until the client and its redirect URI are verified, errors are shown here, never redirected
    // (an open redirector would hand codes or errors to an attacker's URL).
    let Some(client_id) = get("client_id") else {
        return pages::error(StatusCode::BAD_REQUEST, "Invalid request", "client_id is missing.");
    };
    let client = match st.dir.client(client_id).await {
        Ok(Some(c)) => c,
        Ok(None) => return pages::error(StatusCode::BAD_REQUEST, "Invalid request", "Unknown client_id."),
        Err(e) => return internal(e),
    };
    let Some(redirect_uri) = get("redirect_uri") else {
        return pages::error(StatusCode::BAD_REQUEST, "Invalid request", "redirect_uri is missing.");
    };
    if !client.redirect_uris.iter().any(|u| u == redirect_uri) {
        tracing::warn!(
            client_id,
            redirect_uri,
            "authorization request with an unregistered redirect_uri refused"
        );
        return pages::error(
            StatusCode::BAD_REQUEST,
            "Invalid request",
            "redirect_uri is not registered for this client (exact match required).",
        );
    }
    let state = get("state");
    let fail = |error: &str, description: &str| error_redirect(&st, redirect_uri, state, error, description);
    if get("request").is_some() || get("request_uri").is_some() {
        return fail("request_not_supported", "request objects are not supported");
    }
    if get("response_type") != Some("code") {
        return fail("unsupported_response_type", "only response_type=code is supported");
    }
    let scope = get("scope").unwrap_or_default();
    if !scope.split(' ').any(|s| s == "openid") {
        return fail("invalid_scope", "scope must include openid");
    }
    match get("code_challenge_method") {
        Some("S256") => {}
        Some(other) => {
            return fail(
                "invalid_request",
                &format!("code_challenge_method {other} is not supported; use S256"),
            );
        }
        None => return fail("invalid_request", "PKCE is required: code_challenge_method=S256"),
    }
    let Some(code_challenge) = get("code_challenge").filter(|c| pkce::is_valid_challenge(c)) else {
        return fail("invalid_request", "code_challenge must be a base64url SHA-256 (43 characters)");
    };
    let req = AuthRequest {
        client_id: client.client_id.clone(),
        redirect_uri: redirect_uri.to_string(),
        scope: scope.to_string(),
        state: state.map(str::to_string),
        nonce: get("nonce").map(str::to_string),
        code_challenge: code_challenge.to_string(),
    };
    let prompt: Vec<&str> = get("prompt").map(|p| p.split(' ').collect()).unwrap_or_default();
    let max_age: Option<i64> = get("max_age").and_then(|m| m.parse().ok());
    let live = match jar.get(&st.cookie_name(SESSION_COOKIE)) {
        Some(c) => match session::session(st.dir.db(), c.value(), st.cfg.session_idle_secs).await {
            Ok(s) => s,
            Err(e) => return internal(e),
        },
        None => None,
    };
    let live = live.filter(|s| max_age.is_none_or(|m| crate::db::now() - s.auth_time <= m));
    if let Some(s) = &live
        && !prompt.contains(&"login")
    {
        return issue_and_redirect(&st, &req, s).await;
    }
    if prompt.contains(&"none") {
        return fail("login_required", "no session");
    }
    let (cookie, flow) = match session::create_flow(st.dir.db(), &req, st.cfg.login_flow_lifetime_secs).await
    {
        Ok(f) => f,
        Err(e) => return internal(e),
    };
    (jar.add(st.cookie(FLOW_COOKIE, cookie)), pages::login(StatusCode::OK, &client.name, &flow.csrf, None))
        .into_response()
}
