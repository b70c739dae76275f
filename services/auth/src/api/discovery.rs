//! OpenID Connect Discovery 1.0 metadata and the JWKS.

use super::AppState;
use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

/// GET /.well-known/openid-configuration
pub async fn configuration(State(st): State<AppState>) -> Json<Value> {
    Json(json!({
        "issuer": st.issuer,
        "authorization_endpoint": st.endpoint("/authorize"),
        "token_endpoint": st.endpoint("/token"),
        "userinfo_endpoint": st.endpoint("/userinfo"),
        "jwks_uri": st.endpoint("/jwks.json"),
        "end_session_endpoint": st.endpoint("/logout"),
        "scopes_supported": ["openid", "profile"],
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["EdDSA"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "code_challenge_methods_supported": ["S256"],
        "claims_supported": ["iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "amr", "azp", "name", "facility", "roles"],
        "authorization_response_iss_parameter_supported": true,
        "claims_parameter_supported": false,
        "request_parameter_supported": false,
        "request_uri_parameter_supported": false,
    }))
}

/// GET /jwks.json
pub async fn jwks(State(st): State<AppState>) -> Json<Value> {
    Json(st.signer.jwks())
}
