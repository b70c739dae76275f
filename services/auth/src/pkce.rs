//! PKCE (RFC 7636) with the S256 method only: `plain` and a missing challenge are refused at the
//! authorization endpoint, so every code is bound to a verifier only its client knows.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use sha2::Digest;

/// The S256 challenge of a verifier.
pub fn challenge_of(verifier: &str) -> String {
    B64.encode(sha2::Sha256::digest(verifier.as_bytes()))
}

/// Whether a challenge has the S256 shape (43 base64url characters: 32 bytes).
pub fn is_valid_challenge(challenge: &str) -> bool {
    challenge.len() == 43 && B64.decode(challenge).is_ok_and(|b| b.len() == 32)
}

/// RFC 7636 §4.1: 43-128 characters of [A-Z a-z 0-9 - . _ ~].
pub fn is_valid_verifier(verifier: &str) -> bool {
    (43..=128).contains(&verifier.len())
        && verifier.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

/// Whether `verifier` matches the stored S256 `challenge`.
pub fn verify(verifier: &str, challenge: &str) -> bool {
    is_valid_verifier(verifier)
        && crate::secret_token::constant_time_eq(challenge_of(verifier).as_bytes(), challenge.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7636 Appendix B.
    #[test]
    fn rfc7636_appendix_b_vector() {
        let v = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        assert_eq!(challenge_of(v), "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
        assert!(verify(v, "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"));
        assert!(!verify(
            "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXj",
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        ));
        assert!(!verify("short", &challenge_of("short")));
        assert!(is_valid_challenge("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"));
    }
}
