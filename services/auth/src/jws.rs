//! ID tokens: compact JWS (RFC 7515) signed with EdDSA over Ed25519 (RFC 8037), and the JWKS that
//! publishes the public key. Hand-written because compact EdDSA JWS is three base64url segments and
//! one ed25519-dalek call; a JWT crate would add a second crypto stack beside the workspace's.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use ed25519_dalek::{Signer, SigningKey};
use serde_json::{Value, json};
use sha2::Digest;

/// The ID-token signer: the centre key and its key id.
#[derive(Clone)]
pub struct TokenSigner {
    key: SigningKey,
    kid: String,
}

impl TokenSigner {
    pub fn new(seed: &[u8; 32]) -> Self {
        let key = SigningKey::from_bytes(seed);
        // RFC 7638 JWK thumbprint: SHA-256 of the required members in lexicographic order.
        let x = B64.encode(key.verifying_key().as_bytes());
        let canonical = format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#);
        let kid = B64.encode(sha2::Sha256::digest(canonical.as_bytes()));
        TokenSigner { key, kid }
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// Sign `claims` as a compact JWS.
    pub fn sign(&self, claims: &Value) -> String {
        let header = json!({"alg": "EdDSA", "typ": "JWT", "kid": self.kid});
        let input = format!("{}.{}", B64.encode(header.to_string()), B64.encode(claims.to_string()));
        let sig = self.key.sign(input.as_bytes());
        format!("{input}.{}", B64.encode(sig.to_bytes()))
    }

    /// The JSON Web Key Set relying parties fetch from `jwks_uri`.
    pub fn jwks(&self) -> Value {
        json!({"keys": [{
            "kty": "OKP",
            "crv": "Ed25519",
            "x": B64.encode(self.key.verifying_key().as_bytes()),
            "kid": self.kid,
            "use": "sig",
            "alg": "EdDSA",
        }]})
    }

    /// Verify a compact JWS made by this signer and return its claims (for `id_token_hint`).
    pub fn verify(&self, jws: &str) -> Option<Value> {
        let (input, sig) = jws.rsplit_once('.')?;
        let sig: [u8; 64] = B64.decode(sig).ok()?.try_into().ok()?;
        self.key
            .verifying_key()
            .verify_strict(input.as_bytes(), &ed25519_dalek::Signature::from_bytes(&sig))
            .ok()?;
        let (header, payload) = input.split_once('.')?;
        let header: Value = serde_json::from_slice(&B64.decode(header).ok()?).ok()?;
        if header["alg"] != "EdDSA" {
            return None;
        }
        serde_json::from_slice(&B64.decode(payload).ok()?).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signed_token_verifies_and_a_changed_claim_does_not() {
        let s = TokenSigner::new(&[3u8; 32]);
        let t = s.sign(&json!({"sub": "a", "aud": "viewer"}));
        assert_eq!(s.verify(&t).unwrap()["sub"], "a");
        let (h, rest) = t.split_once('.').unwrap();
        let (_, sig) = rest.split_once('.').unwrap();
        let forged = format!("{h}.{}.{sig}", B64.encode(json!({"sub": "b", "aud": "viewer"}).to_string()));
        assert!(s.verify(&forged).is_none());
        assert!(TokenSigner::new(&[4u8; 32]).verify(&t).is_none());
        assert_eq!(s.jwks()["keys"][0]["kid"], s.kid());
    }
}
