//! GET/POST /userinfo: the claims of the access token's user, under the client's pairwise subject.

use super::AppState;
use crate::grant::lookup_token;
use crate::pairwise::pairwise_subject;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

fn invalid_token() -> Response {
    let mut r = (StatusCode::UNAUTHORIZED, axum::Json(json!({"error": "invalid_token"}))).into_response();
    r.headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer error=\"invalid_token\""));
    r
}

/// GET or POST /userinfo with `Authorization: Bearer <access token>`.
pub async fn userinfo(State(st): State<AppState>, headers: HeaderMap) -> Response {
    let Some(token) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
    else {
        return invalid_token();
    };
    let info = match lookup_token(st.dir.db(), token.trim(), st.cfg.session_idle_secs).await {
        Ok(Some(i)) => i,
        Ok(None) => return invalid_token(),
        Err(e) => {
            tracing::error!(error = %e, "userinfo");
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        }
    };
    let (user, client) = match (st.dir.user(&info.user_id).await, st.dir.client(&info.client_id).await) {
        (Ok(Some(u)), Ok(Some(c))) if !u.disabled => (u, c),
        _ => return invalid_token(),
    };
    let mut claims = json!({
        "sub": pairwise_subject(&st.salt, &client.sector, &user.id),
        "facility": user.facility,
        "roles": user.roles.iter().map(|r| r.as_str()).collect::<Vec<_>>(),
    });
    if info.scope.split(' ').any(|s| s == "profile") {
        claims["name"] = Value::from(user.display_name);
    }
    axum::Json(claims).into_response()
}
