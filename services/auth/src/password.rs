//! argon2id password hashes (PHC strings), with the `argon2` crate's defaults (Argon2id v19,
//! m = 19 MiB, t = 2, p = 1: OWASP's recommended minimum).

use crate::error::{AuthError, Result};
use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use std::sync::LazyLock;

/// Shortest password accepted when a user is created.
pub const MIN_PASSWORD_LEN: usize = 10;

/// Hash a new password.
pub fn hash_password(password: &str) -> Result<String> {
    if password.chars().count() < MIN_PASSWORD_LEN {
        return Err(AuthError::invalid(
            "password",
            format!("must be at least {MIN_PASSWORD_LEN} characters"),
        ));
    }
    Ok(Argon2::default()
        .hash_password(password.as_bytes())
        .map_err(|e| AuthError::Password(e.to_string()))?
        .to_string())
}

/// A hash of a random password, verified against when the user does not exist, so that an unknown
/// username takes as long to refuse as a wrong password.
static DUMMY_HASH: LazyLock<String> = LazyLock::new(|| {
    let pw = hex::encode(rand::random::<[u8; 16]>());
    Argon2::default().hash_password(pw.as_bytes()).map(|h| h.to_string()).unwrap_or_default()
});

/// Check `password` against a stored hash (`None` = no such user: still spends the hashing time).
pub fn verify_password(password: &str, stored: Option<&str>) -> bool {
    let hash = stored.unwrap_or(DUMMY_HASH.as_str());
    let Ok(parsed) = PasswordHash::new(hash) else { return false };
    let ok = Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok();
    ok && stored.is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argon2id_hash_verifies_only_the_right_password() {
        let h = hash_password("correct horse battery").unwrap();
        assert!(h.starts_with("$argon2id$v=19$"), "{h}");
        assert!(verify_password("correct horse battery", Some(&h)));
        assert!(!verify_password("correct horse batterz", Some(&h)));
        assert!(!verify_password("correct horse battery", None));
        assert!(hash_password("short").is_err());
    }
}
