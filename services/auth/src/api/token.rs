//! POST /token: the authorization-code grant. Authenticates the client (client_secret_basic,
//! client_secret_post, or none for public clients), redeems the code, signs the ID token.

use super::AppState;
use crate::directory::Client;
use crate::grant::{RedeemError, redeem};
use crate::pairwise::pairwise_subject;
use axum::Form;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde::Deserialize;
use serde_json::{Value, json};

#[derive(Deserialize)]
pub struct TokenForm {
    #[serde(default)]
    grant_type: String,
    #[serde(default)]
    code: String,
    #[serde(default)]
    redirect_uri: String,
    #[serde(default)]
    code_verifier: String,
    #[serde(default)]
    client_id: String,
    #[serde(default)]
    client_secret: String,
}

/// An RFC 6749 §5.2 error response.
fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    let mut r =
        (status, axum::Json(json!({"error": error, "error_description": description}))).into_response();
    if status == StatusCode::UNAUTHORIZED {
        r.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"kizuna\""));
    }
    r
}

fn internal(e: impl std::fmt::Display) -> Response {
    tracing::error!(error = %e, "token endpoint");
    oauth_error(StatusCode::INTERNAL_SERVER_ERROR, "server_error", "internal error")
}

/// RFC 6749 §2.3.1: Basic credentials are form-urlencoded before base64.
fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let b64 = v.strip_prefix("Basic ").or_else(|| v.strip_prefix("basic "))?;
    let raw = String::from_utf8(base64::engine::general_purpose::STANDARD.decode(b64.trim()).ok()?).ok()?;
    let (id, secret) = raw.split_once(':')?;
    let dec = |s: &str| {
        url::form_urlencoded::parse(format!("x={s}").as_bytes()).next().map(|(_, v)| v.into_owned())
    };
    Some((dec(id)?, dec(secret)?))
}

/// Authenticate the calling client, or the error response.
async fn authenticate(st: &AppState, headers: &HeaderMap, f: &TokenForm) -> Result<Client, Response> {
    let bad = || oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", "client authentication failed");
    let (client_id, secret) = match basic_credentials(headers) {
        Some((id, s)) => (id, Some(s)),
        None if !f.client_secret.is_empty() => (f.client_id.clone(), Some(f.client_secret.clone())),
        None => (f.client_id.clone(), None),
    };
    if !f.client_id.is_empty() && f.client_id != client_id {
        return Err(bad());
    }
    let client = match st.dir.client(&client_id).await {
        Ok(Some(c)) => c,
        Ok(None) => return Err(bad()),
        Err(e) => return Err(internal(e)),
    };
    match (client.confidential, secret) {
        (true, Some(s)) => match st.dir.check_client_secret(&client_id, &s).await {
            Ok(true) => Ok(client),
            Ok(false) => Err(bad()),
            Err(e) => Err(internal(e)),
        },
        (false, None) => Ok(client),
        _ => Err(bad()),
    }
}

/// POST /token
pub async fn token(State(st): State<AppState>, headers: HeaderMap, Form(f): Form<TokenForm>) -> Response {
    let client = match authenticate(&st, &headers, &f).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    if f.grant_type != "authorization_code" {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "only authorization_code is supported",
        );
    }
    if f.code.is_empty() || f.redirect_uri.is_empty() || f.code_verifier.is_empty() {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "code, redirect_uri and code_verifier are required",
        );
    }
    let redeemed =
        match redeem(st.dir.db(), &f.code, &client.client_id, &f.redirect_uri, &f.code_verifier).await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => {
                match &e {
                    RedeemError::Replayed { revoked_tokens } => {
                        tracing::warn!(
                            client_id = client.client_id,
                            revoked_tokens,
                            "authorization code replayed; tokens revoked"
                        )
                    }
                    other => tracing::warn!(
                        client_id = client.client_id,
                        reason = other.description(),
                        "code exchange refused"
                    ),
                }
                return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", &e.description());
            }
            Err(e) => return internal(e),
        };
    let g = &redeemed.grant;
    let user = match st.dir.user(&g.user_id).await {
        Ok(Some(u)) if !u.disabled => u,
        Ok(_) => return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", "the user is disabled"),
        Err(e) => return internal(e),
    };
    let now = crate::db::now();
    let mut claims = json!({
        "iss": st.issuer,
        "sub": pairwise_subject(&st.salt, &client.sector, &user.id),
        "aud": client.client_id,
        "azp": client.client_id,
        "exp": now + st.cfg.token_lifetime_secs,
        "iat": now,
        "auth_time": g.auth_time,
        "amr": g.amr.split(' ').collect::<Vec<_>>(),
        "facility": user.facility,
        "roles": user.roles.iter().map(|r| r.as_str()).collect::<Vec<_>>(),
    });
    if let Some(n) = &g.nonce {
        claims["nonce"] = Value::from(n.clone());
    }
    if g.scope.split(' ').any(|s| s == "profile") {
        claims["name"] = Value::from(user.display_name.clone());
    }
    axum::Json(json!({
        "access_token": redeemed.access_token,
        "token_type": "Bearer",
        "expires_in": redeemed.expires_in,
        "id_token": st.signer.sign(&claims),
        "scope": g.scope,
    }))
    .into_response()
}
