//! The viewer as an OpenID Connect relying party of `kizuna-auth`: authorization code flow with
//! PKCE (S256), state and nonce, ID token verified by `openidconnect` (signature against the
//! provider's JWKS, issuer, audience, expiry, nonce). The user's facility and role come from the ID
//! token's claims; the subject is the provider's pairwise ID for the viewer.

use openidconnect::core::{CoreClient, CoreJwsSigningAlgorithm, CoreProviderMetadata, CoreResponseType};
use openidconnect::{
    AuthenticationFlow, AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndpointMaybeSet,
    EndpointNotSet, EndpointSet, IssuerUrl, Nonce, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, Scope,
    TokenResponse,
};

use crate::ViewerError;
use crate::access::{Role, User};
use crate::config::Config;
use crate::session::PendingLogin;

type Client = CoreClient<
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

/// The discovered provider and the viewer's registration at it.
pub struct RelyingParty {
    client: Client,
    http: openidconnect::reqwest::Client,
}

fn login_err(what: &str) -> impl FnOnce(String) -> ViewerError + '_ {
    move |e| ViewerError::Login(format!("{what}: {e}"))
}

impl RelyingParty {
    /// Fetches the provider's discovery document and JWKS.
    pub async fn discover(c: &Config) -> Result<Self, ViewerError> {
        let http = openidconnect::reqwest::ClientBuilder::new()
            // The token endpoint must answer directly; following redirects invites SSRF.
            .redirect(openidconnect::reqwest::redirect::Policy::none())
            .timeout(std::time::Duration::from_secs(15))
            .build()
            .map_err(|e| login_err("building the HTTP client")(e.to_string()))?;
        let issuer =
            IssuerUrl::new(c.oidc.issuer.clone()).map_err(|e| login_err("oidc.issuer")(e.to_string()))?;
        let meta = CoreProviderMetadata::discover_async(issuer, &http)
            .await
            .map_err(|e| login_err("discovery")(error_chain(&e)))?;
        let secret = if c.oidc.client_secret_file.as_os_str().is_empty() {
            None
        } else {
            let s = std::fs::read_to_string(&c.oidc.client_secret_file)
                .map_err(|e| ViewerError::io(&c.oidc.client_secret_file, e))?;
            Some(ClientSecret::new(s.trim().to_owned()))
        };
        let redirect =
            RedirectUrl::new(c.redirect_uri()).map_err(|e| login_err("public_url")(e.to_string()))?;
        let client =
            CoreClient::from_provider_metadata(meta, ClientId::new(c.oidc.client_id.clone()), secret)
                .set_redirect_uri(redirect);
        Ok(Self { client, http })
    }

    /// Starts a login: the provider URL to send the browser to, and what the callback must check.
    pub fn start(&self, return_to: &str) -> (String, PendingLogin) {
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let (url, state, nonce) = self
            .client
            .authorize_url(
                AuthenticationFlow::<CoreResponseType>::AuthorizationCode,
                CsrfToken::new_random,
                Nonce::new_random,
            )
            .add_scope(Scope::new("profile".into()))
            .set_pkce_challenge(challenge)
            .url();
        let pending = PendingLogin {
            state: state.secret().clone(),
            nonce: nonce.secret().clone(),
            pkce_verifier: verifier.secret().clone(),
            return_to: return_to.to_owned(),
        };
        (url.to_string(), pending)
    }

    /// Finishes a login: checks `state`, redeems `code` with the PKCE verifier, verifies the ID
    /// token and reads the user from it.
    pub async fn finish(&self, pending: &PendingLogin, code: &str, state: &str) -> Result<User, ViewerError> {
        if !constant_time_eq(state.as_bytes(), pending.state.as_bytes()) {
            return Err(ViewerError::Login("the state does not match this browser's login".into()));
        }
        let token = self
            .client
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .map_err(|e| login_err("token endpoint")(e.to_string()))?
            .set_pkce_verifier(PkceCodeVerifier::new(pending.pkce_verifier.clone()))
            .request_async(&self.http)
            .await
            .map_err(|e| login_err("redeeming the code")(error_chain(&e)))?;
        let id_token =
            token.id_token().ok_or_else(|| ViewerError::Login("no ID token in the answer".into()))?;
        let verifier = self.client.id_token_verifier().set_allowed_algs([
            CoreJwsSigningAlgorithm::EdDsa,
            CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
            CoreJwsSigningAlgorithm::EcdsaP256Sha256,
        ]);
        let claims = id_token
            .claims(&verifier, &Nonce::new(pending.nonce.clone()))
            .map_err(|e| login_err("ID token")(e.to_string()))?;
        let subject = claims.subject().as_str().to_owned();
        // The provider's own claims (facility, roles) are read from the payload of the same
        // compact token whose signature, issuer, audience, expiry and nonce were just verified;
        // declaring them as `AdditionalClaims` would need a custom client type for two fields.
        let extra = payload(&id_token.to_string())?;
        user_from_claims(&subject, &extra)
    }
}

/// The user described by verified ID token claims: `facility`, and `role` (a string) or `roles`
/// (a list, the first clinical role wins); the name from `name`, else `preferred_username`.
pub fn user_from_claims(subject: &str, claims: &serde_json::Value) -> Result<User, ViewerError> {
    let facility = claims["facility"]
        .as_str()
        .filter(|f| !f.is_empty())
        .ok_or_else(|| ViewerError::Login("the ID token has no facility claim".into()))?
        .to_owned();
    let mut roles: Vec<Role> = Vec::new();
    if let Some(r) = claims["role"].as_str().and_then(Role::parse) {
        roles.push(r);
    }
    if let Some(list) = claims["roles"].as_array() {
        roles.extend(list.iter().filter_map(|v| v.as_str()).filter_map(Role::parse));
    }
    let role = roles
        .iter()
        .copied()
        .find(|r| r.may_view_patients())
        .or(roles.first().copied())
        .ok_or_else(|| ViewerError::Login("the ID token has no role the viewer knows".into()))?;
    let name =
        claims["name"].as_str().or(claims["preferred_username"].as_str()).unwrap_or(subject).to_owned();
    Ok(User { subject: subject.to_owned(), name, facility, role })
}

fn payload(jwt: &str) -> Result<serde_json::Value, ViewerError> {
    use base64::Engine;
    let part = jwt.split('.').nth(1).ok_or_else(|| ViewerError::Login("malformed ID token".into()))?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part.trim_end_matches('='))
        .map_err(|e| ViewerError::Login(format!("ID token payload: {e}")))?;
    serde_json::from_slice(&bytes).map_err(|e| ViewerError::Login(format!("ID token payload: {e}")))
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn facility_and_a_clinical_role_come_from_the_claims() {
        let c = serde_json::json!({"facility": "0411000017", "roles": ["admin", "physician"], "name": "佐藤 太郎"});
        let u = user_from_claims("pw-1", &c).unwrap();
        assert_eq!(
            (u.facility.as_str(), u.role, u.name.as_str()),
            ("0411000017", Role::Physician, "佐藤 太郎")
        );
        assert!(user_from_claims("pw-1", &serde_json::json!({"roles": ["nurse"]})).is_err());
        assert!(
            user_from_claims("pw-1", &serde_json::json!({"facility": "F", "roles": ["janitor"]})).is_err()
        );
    }
}
