//! The `openidconnect` crate, a mainstream Rust relying-party library, as the client: discovery,
//! authorization URL with PKCE, token exchange, ID-token signature/nonce/audience verification
//! against the JWKS, and userinfo with Kizuna's claims.

mod support;

use openidconnect::core::{CoreAuthenticationFlow, CoreClient, CoreGenderClaim, CoreProviderMetadata};
use openidconnect::{
    AdditionalClaims, AuthorizationCode, ClientId, ClientSecret, CsrfToken, IssuerUrl, Nonce,
    OAuth2TokenResponse, PkceCodeChallenge, RedirectUrl, Scope, TokenResponse, UserInfoClaims,
};
use serde::{Deserialize, Serialize};
use support::*;

/// Kizuna's extra claims, as a relying party declares them.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct KizunaClaims {
    facility: String,
    roles: Vec<String>,
}
impl AdditionalClaims for KizunaClaims {}

#[tokio::test]
async fn openidconnect_crate_as_relying_party_verifies_the_eddsa_id_token() {
    let p = provider().await;
    let secret = clinician(&p, "hayashi", "F0405").await;
    let http = openidconnect::reqwest::Client::builder()
        .redirect(openidconnect::reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let meta = CoreProviderMetadata::discover_async(IssuerUrl::new(p.issuer().to_string()).unwrap(), &http)
        .await
        .unwrap();
    let client = CoreClient::from_provider_metadata(
        meta,
        ClientId::new("viewer".into()),
        Some(ClientSecret::new(p.viewer_secret.clone())),
    )
    .set_redirect_uri(RedirectUrl::new(VIEWER_CB.into()).unwrap());
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (auth_url, csrf, nonce) = client
        .authorize_url(CoreAuthenticationFlow::AuthorizationCode, CsrfToken::new_random, Nonce::new_random)
        .add_scope(Scope::new("profile".into()))
        .set_pkce_challenge(challenge)
        .url();
    // The user logs in through the provider's forms.
    let mut b = Browser::new();
    let page = login(&mut b, p.issuer(), auth_url.as_str(), "hayashi", &secret).await;
    assert_eq!(page.location_param("state").as_deref(), Some(csrf.secret().as_str()));
    let code = page.location_param("code").unwrap();
    let token = client
        .exchange_code(AuthorizationCode::new(code))
        .unwrap()
        .set_pkce_verifier(verifier)
        .request_async(&http)
        .await
        .unwrap();
    let id_token = token.id_token().expect("an ID token");
    let claims = id_token
        .claims(&client.id_token_verifier(), &nonce)
        .expect("signature, issuer, audience, nonce verify");
    assert_eq!(claims.issuer().as_str(), p.issuer());
    assert_eq!(claims.name().and_then(|n| n.get(None)).map(|n| n.as_str()), Some("Dr. hayashi"));
    let sub = claims.subject().as_str().to_string();
    // A token whose signature was altered is rejected by the library.
    let raw = id_token.to_string();
    // Change a character in the middle of the signature: the last base64url character of a
    // 64-byte signature carries padding bits, so changing it may not change the signature at all.
    let sig_start = raw.rfind('.').unwrap() + 1;
    let at = sig_start + 20;
    let mut tampered = raw.clone();
    let old = tampered.as_bytes()[at];
    tampered.replace_range(at..at + 1, if old == b'A' { "B" } else { "A" });
    let forged: openidconnect::core::CoreIdToken =
        serde_json::from_value(serde_json::Value::String(tampered)).unwrap();
    assert!(forged.claims(&client.id_token_verifier(), &nonce).is_err());
    // A different nonce (a replayed ID token) is rejected.
    assert!(id_token.claims(&client.id_token_verifier(), &Nonce::new("other".into())).is_err());
    // Userinfo through the library, with Kizuna's claims.
    let info: UserInfoClaims<KizunaClaims, CoreGenderClaim> = client
        .user_info(token.access_token().clone(), Some(claims.subject().clone()))
        .unwrap()
        .request_async(&http)
        .await
        .unwrap();
    assert_eq!(info.subject().as_str(), sub);
    assert_eq!(info.additional_claims().facility, "F0405");
    assert_eq!(info.additional_claims().roles, vec!["physician".to_string()]);
}
