//! The relying party: authorization code flow with PKCE (S256), state and nonce; the ID token is
//! verified by `openidconnect` (signature against the provider's JWKS, issuer, audience, expiry,
//! nonce). What the screen makes of the claims (roles, facility) is up to the screen.

use std::path::PathBuf;
use std::time::Duration;

use openidconnect::core::{CoreClient, CoreIdToken, CoreJwsSigningAlgorithm, CoreResponseType};
use openidconnect::{
    AuthenticationFlow, AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndSessionUrl,
    EndpointMaybeSet, EndpointNotSet, EndpointSet, IssuerUrl, LogoutRequest, Nonce, OAuth2TokenResponse,
    PkceCodeChallenge, PkceCodeVerifier, PostLogoutRedirectUrl, ProviderMetadataWithLogout, RedirectUrl,
    Scope, TokenResponse,
};

use crate::RpError;
use crate::session::PendingLogin;

type Client = CoreClient<
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

/// A screen's registration at the provider.
#[derive(Debug, Clone)]
pub struct Registration {
    /// The provider's issuer URL (its discovery document is `<issuer>/.well-known/openid-configuration`).
    pub issuer: String,
    pub client_id: String,
    /// File holding the client secret; empty = a public client.
    pub client_secret_file: PathBuf,
    /// Where the provider sends the browser back (`<public_url>/auth/callback`).
    pub redirect_uri: String,
    /// Network device (VRF) the connections to the provider go out through; empty = none. A
    /// provider listening in the centre's reference VRF is reachable only this way.
    pub bind_interface: String,
}

/// A finished login: the provider's (pairwise) subject and every claim of the verified ID token.
#[derive(Debug, Clone)]
pub struct VerifiedLogin {
    pub subject: String,
    pub claims: serde_json::Value,
    /// The compact ID token, kept for `id_token_hint` at logout.
    pub id_token: String,
    /// The access token, for re-checking the user at the provider's userinfo endpoint.
    pub access_token: String,
}

/// The discovered provider and the screen's registration at it.
pub struct RelyingParty {
    client: Client,
    http: openidconnect::reqwest::Client,
    /// The provider's RP-initiated logout endpoint, if it offers one.
    end_session: Option<EndSessionUrl>,
    /// The provider's userinfo endpoint, if it offers one.
    userinfo: Option<String>,
}

fn login_err(what: &str) -> impl FnOnce(String) -> RpError + '_ {
    move |e| RpError::Login(format!("{what}: {e}"))
}

impl RelyingParty {
    /// Fetches the provider's discovery document and JWKS.
    pub async fn discover(reg: &Registration) -> Result<Self, RpError> {
        let mut http = openidconnect::reqwest::ClientBuilder::new();
        if !reg.bind_interface.is_empty() {
            http = http.interface(&reg.bind_interface);
        }
        let http = http
            // The token endpoint must answer directly; following redirects invites SSRF.
            .redirect(openidconnect::reqwest::redirect::Policy::none())
            .timeout(std::time::Duration::from_secs(15))
            .build()
            .map_err(|e| login_err("building the HTTP client")(e.to_string()))?;
        let issuer =
            IssuerUrl::new(reg.issuer.clone()).map_err(|e| login_err("oidc.issuer")(e.to_string()))?;
        let meta = ProviderMetadataWithLogout::discover_async(issuer, &http)
            .await
            .map_err(|e| login_err("discovery")(error_chain(&e)))?;
        let secret = if reg.client_secret_file.as_os_str().is_empty() {
            None
        } else {
            let s = std::fs::read_to_string(&reg.client_secret_file)
                .map_err(|source| RpError::Io { path: reg.client_secret_file.clone(), source })?;
            Some(ClientSecret::new(s.trim().to_owned()))
        };
        let redirect = RedirectUrl::new(reg.redirect_uri.clone())
            .map_err(|e| login_err("redirect URI (public_url)")(e.to_string()))?;
        let end_session = meta.additional_metadata().end_session_endpoint.clone();
        let userinfo = meta.userinfo_endpoint().map(|u| u.url().to_string());
        let client = CoreClient::from_provider_metadata(meta, ClientId::new(reg.client_id.clone()), secret)
            .set_redirect_uri(redirect);
        Ok(Self { client, http, end_session, userinfo })
    }

    /// Where to send the browser at logout so that the provider's session ends too (OpenID Connect
    /// RP-Initiated Logout 1.0): the end-session endpoint with `client_id`, the login's ID token as
    /// `id_token_hint` (if still known) and `post_logout_redirect_uri` (which must be registered
    /// at the provider). `None` if the provider offers no end-session endpoint.
    pub fn logout_url(&self, id_token: Option<&str>, post_logout_redirect_uri: &str) -> Option<String> {
        let mut req =
            LogoutRequest::from(self.end_session.clone()?).set_client_id(self.client.client_id().clone());
        if let Some(t) = id_token.and_then(|t| t.parse::<CoreIdToken>().ok()) {
            req = req.set_id_token_hint(&t);
        }
        if let Ok(u) = PostLogoutRedirectUrl::new(post_logout_redirect_uri.to_owned()) {
            req = req.set_post_logout_redirect_uri(u);
        }
        Some(req.http_get_url().to_string())
    }

    /// Starts a login: the provider URL to send the browser to, and what the callback must check.
    /// The provider may answer from any live session of its own (single sign-on).
    pub fn start(&self, return_to: &str) -> (String, PendingLogin) {
        self.start_with(return_to, None)
    }

    /// Starts a login that accepts only an authentication at most `max_age` old (OpenID Connect
    /// Core §3.1.2.1 `max_age`): the provider asks for the password again when its session is
    /// older, and [`finish`](Self::finish) checks the ID token's `auth_time` against the same bound
    /// (with [`AUTH_TIME_LEEWAY`]), so a provider that ignored `max_age` is not trusted either.
    pub fn start_with(&self, return_to: &str, max_age: Option<Duration>) -> (String, PendingLogin) {
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let mut req = self
            .client
            .authorize_url(
                AuthenticationFlow::<CoreResponseType>::AuthorizationCode,
                CsrfToken::new_random,
                Nonce::new_random,
            )
            .add_scope(Scope::new("profile".into()))
            .set_pkce_challenge(challenge);
        if let Some(m) = max_age {
            req = req.set_max_age(m);
        }
        let (url, state, nonce) = req.url();
        let pending = PendingLogin {
            state: state.secret().clone(),
            nonce: nonce.secret().clone(),
            pkce_verifier: verifier.secret().clone(),
            return_to: return_to.to_owned(),
            max_age_secs: max_age.map(|m| m.as_secs()),
        };
        (url.to_string(), pending)
    }

    /// Finishes a login: checks `state`, redeems `code` with the PKCE verifier and verifies the
    /// ID token.
    pub async fn finish(
        &self,
        pending: &PendingLogin,
        code: &str,
        state: &str,
    ) -> Result<VerifiedLogin, RpError> {
        if !constant_time_eq(state.as_bytes(), pending.state.as_bytes()) {
            return Err(RpError::Login("the state does not match this browser's login".into()));
        }
        let token = self
            .client
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .map_err(|e| login_err("token endpoint")(e.to_string()))?
            .set_pkce_verifier(PkceCodeVerifier::new(pending.pkce_verifier.clone()))
            .request_async(&self.http)
            .await
            .map_err(|e| login_err("redeeming the code")(error_chain(&e)))?;
        let id_token = token.id_token().ok_or_else(|| RpError::Login("no ID token in the answer".into()))?;
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
        let id_token = id_token.to_string();
        let claims = payload(&id_token)?;
        if let Some(max_age) = pending.max_age_secs {
            check_auth_time(&claims, max_age, unix_now())?;
        }
        let access_token = token.access_token().secret().clone();
        Ok(VerifiedLogin { subject, claims, id_token, access_token })
    }

    /// The user's current claims from the provider's userinfo endpoint: `Ok(None)` when the
    /// provider refuses the access token (401: the user was disabled or their provider session
    /// ended), `Err` when it cannot be asked.
    pub async fn userinfo(&self, access_token: &str) -> Result<Option<serde_json::Value>, RpError> {
        let url = self
            .userinfo
            .as_deref()
            .ok_or_else(|| RpError::Login("the provider has no userinfo endpoint".into()))?;
        let r = self
            .http
            .get(url)
            .bearer_auth(access_token)
            .send()
            .await
            .map_err(|e| login_err("userinfo")(error_chain(&e)))?;
        match r.status().as_u16() {
            200 => {}
            401 | 403 => return Ok(None),
            s => return Err(RpError::Login(format!("userinfo: HTTP {s}"))),
        }
        let body = r.bytes().await.map_err(|e| login_err("userinfo")(error_chain(&e)))?;
        serde_json::from_slice(&body).map(Some).map_err(|e| login_err("userinfo")(e.to_string()))
    }
}

/// Seconds `auth_time` may exceed a login's `max_age` by: the provider checks `max_age` at
/// `/authorize`, the relying party here after the code was redeemed (seconds later), and the two
/// clocks may differ a little.
pub const AUTH_TIME_LEEWAY: u64 = 30;

/// Refuses ID token claims whose `auth_time` is missing, in the future or older than `max_age`
/// seconds (plus [`AUTH_TIME_LEEWAY`]) at `now` (Unix seconds).
pub fn check_auth_time(claims: &serde_json::Value, max_age: u64, now: u64) -> Result<(), RpError> {
    let Some(auth_time) = claims["auth_time"].as_u64() else {
        return Err(RpError::Login("the ID token has no auth_time, but max_age was requested".into()));
    };
    if auth_time > now + AUTH_TIME_LEEWAY {
        return Err(RpError::Login(format!("the ID token's auth_time {auth_time} is in the future")));
    }
    let age = now.saturating_sub(auth_time);
    if age > max_age + AUTH_TIME_LEEWAY {
        return Err(RpError::Login(format!(
            "the provider answered from a login {age} s old; at most {max_age} s was asked for (max_age)"
        )));
    }
    Ok(())
}

fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

fn payload(jwt: &str) -> Result<serde_json::Value, RpError> {
    use base64::Engine;
    let part = jwt.split('.').nth(1).ok_or_else(|| RpError::Login("malformed ID token".into()))?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part.trim_end_matches('='))
        .map_err(|e| RpError::Login(format!("ID token payload: {e}")))?;
    serde_json::from_slice(&bytes).map_err(|e| RpError::Login(format!("ID token payload: {e}")))
}

/// Equality whose time does not depend on where the inputs differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// An error and its causes on one line (reqwest's own text is only "error sending request").
pub fn error_chain(e: &dyn std::error::Error) -> String {
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
    fn the_payload_of_a_compact_token_is_read_and_garbage_refused() {
        use base64::Engine;
        let enc = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        let jwt = format!("{}.{}.sig", enc(r#"{"alg":"EdDSA"}"#), enc(r#"{"roles":["admin"]}"#));
        assert_eq!(payload(&jwt).unwrap()["roles"][0], "admin");
        assert!(payload("no-dots").is_err());
        assert!(payload("a.!!!.c").is_err());
        assert!(constant_time_eq(b"abc", b"abc") && !constant_time_eq(b"abc", b"abd"));
    }

    /// A provider answering a `max_age` request from an older login (it ignored `max_age`) is
    /// refused; so is a token without `auth_time`.
    #[test]
    fn auth_time_older_than_max_age_is_refused() {
        let now = 1_800_000_000;
        let at = |t: u64| serde_json::json!({ "auth_time": t });
        assert!(check_auth_time(&at(now - 10), 60, now).is_ok());
        assert!(check_auth_time(&at(now - 60 - AUTH_TIME_LEEWAY), 60, now).is_ok());
        let e = check_auth_time(&at(now - 61 - AUTH_TIME_LEEWAY), 60, now).unwrap_err().to_string();
        assert!(e.contains("max_age"), "{e}");
        assert!(check_auth_time(&at(now - 8 * 3600), 1800, now).is_err());
        assert!(check_auth_time(&serde_json::json!({}), 60, now).is_err());
        assert!(check_auth_time(&at(now + 3600), 60, now).is_err());
    }
}
