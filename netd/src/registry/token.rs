//! Enrollment tokens: `kz1.` followed by base64url (no padding) of a small JSON object holding
//! the registry URL, the SHA-256 pin of the centre's TLS public key, the site the token is
//! bound to, its expiry and the one-time secret. The registry keeps only the secret's hash.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

use super::RegistryError;

const PREFIX: &str = "kz1.";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrollToken {
    /// Base URL of the registry on the underlay, e.g. `https://192.0.2.1:9443`.
    pub url: String,
    /// `sha256//BASE64` of the registry's TLS SubjectPublicKeyInfo (curl's `--pinnedpubkey` form).
    pub pin: String,
    /// The site this token enrolls.
    pub site: String,
    /// Expiry, seconds since the UNIX epoch (the registry enforces it; shown for messages).
    pub expires_unix: u64,
    /// One-time secret, base64url.
    pub secret: String,
}

impl EnrollToken {
    pub fn encode(&self) -> String {
        let json = serde_json::to_vec(self).expect("token serialises");
        format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(json))
    }

    pub fn decode(text: &str) -> Result<Self, RegistryError> {
        let text = text.trim();
        let body = text.strip_prefix(PREFIX).ok_or_else(|| {
            RegistryError::Token(format!(
                "does not start with {PREFIX:?}; copy the whole line `kizuna site provision` printed"
            ))
        })?;
        let json = URL_SAFE_NO_PAD
            .decode(body)
            .map_err(|e| RegistryError::Token(format!("not valid base64url ({e}); was it cut short?")))?;
        serde_json::from_slice(&json).map_err(|e| RegistryError::Token(format!("malformed ({e})")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_garbage() {
        let t = EnrollToken {
            url: "https://127.0.0.1:9443".into(),
            pin: "sha256//AAAA".into(),
            site: "kita-hospital".into(),
            expires_unix: 1,
            secret: "c2VjcmV0".into(),
        };
        assert_eq!(EnrollToken::decode(&format!(" {}\n", t.encode())).unwrap(), t);
        assert!(EnrollToken::decode("abc").unwrap_err().to_string().contains("kz1."));
        assert!(EnrollToken::decode("kz1.!!!").unwrap_err().to_string().contains("base64url"));
    }
}
