//! TOTP second factor (RFC 6238: HMAC-SHA1, 6 digits, 30-second steps) through `totp-rs`. Each
//! step is accepted once per user (RFC 6238 §5.2): the caller stores the last accepted step.

use crate::error::{AuthError, Result};
use totp_rs::{Algorithm, Secret, Totp};

/// Seconds per TOTP step.
pub const STEP_SECS: u64 = 30;

fn totp(secret_base32: &str, skew: u16) -> Result<Totp> {
    let bytes =
        Secret::try_from_base32(secret_base32).map_err(|e| AuthError::Totp(format!("secret: {e}")))?;
    totp_rs::Builder::new()
        .with_algorithm(Algorithm::SHA1)
        .with_digits(6)
        .with_skew(skew)
        .with_step_duration(STEP_SECS)
        .with_secret(bytes)
        .build()
        .map_err(|e| AuthError::Totp(e.to_string()))
}

/// A fresh random secret (160 bits), base32 as authenticator apps expect.
pub fn new_secret() -> String {
    Secret::generate().to_base32()
}

/// The `otpauth://` URI an authenticator app imports (as a QR code or pasted).
pub fn provisioning_uri(secret_base32: &str, issuer: &str, account: &str) -> Result<String> {
    let bytes =
        Secret::try_from_base32(secret_base32).map_err(|e| AuthError::Totp(format!("secret: {e}")))?;
    totp_rs::Builder::new()
        .with_secret(bytes)
        .with_issuer(Some(issuer))
        .with_account_name(account)
        .build()
        .and_then(|t| t.to_url())
        .map_err(|e| AuthError::Totp(e.to_string()))
}

/// The code for `secret` at Unix time `unix_secs` (what an authenticator app shows then).
pub fn code_at(secret_base32: &str, unix_secs: u64) -> Result<String> {
    Ok(totp(secret_base32, 0)?.generate(unix_secs).to_string())
}

/// The code for `secret` now.
pub fn code_now(secret_base32: &str) -> Result<String> {
    code_at(secret_base32, jiff::Timestamp::now().as_second().max(0) as u64)
}

/// The step `code` belongs to if it is valid at `unix_secs` within `skew` steps and newer than
/// `last_step` (a code is accepted once); `None` otherwise.
pub fn accept(
    secret_base32: &str,
    code: &str,
    unix_secs: u64,
    skew: u8,
    last_step: u64,
) -> Result<Option<u64>> {
    let code = code.trim();
    if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(None);
    }
    let t = totp(secret_base32, u16::from(skew))?;
    let origin = unix_secs / STEP_SECS;
    // Newest first, so that with skew the step recorded is the latest one that matches.
    for step in (origin.saturating_sub(u64::from(skew))..=origin + u64::from(skew)).rev() {
        if step > last_step && t.generate(step * STEP_SECS).to_string() == code {
            return Ok(Some(step));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 Appendix B, SHA-1 secret "12345678901234567890" (8-digit vectors truncated to 6).
    #[test]
    fn rfc6238_vectors() {
        let secret = Secret::new(b"12345678901234567890".to_vec().into_boxed_slice()).to_base32();
        assert_eq!(code_at(&secret, 59).unwrap(), "287082");
        assert_eq!(code_at(&secret, 1111111109).unwrap(), "081804");
        assert_eq!(code_at(&secret, 1234567890).unwrap(), "005924");
    }

    #[test]
    fn codes_expire_after_the_skew_and_are_accepted_once() {
        let s = new_secret();
        let now = 1_800_000_000u64;
        let c = code_at(&s, now).unwrap();
        let step = accept(&s, &c, now, 1, 0).unwrap().unwrap();
        assert_eq!(step, now / 30);
        assert_eq!(accept(&s, &c, now, 1, step).unwrap(), None, "replayed code");
        assert!(accept(&s, &c, now + 30, 1, 0).unwrap().is_some(), "one step late is within skew");
        assert_eq!(accept(&s, &c, now + 90, 1, 0).unwrap(), None, "three steps late is expired");
        assert_eq!(accept(&s, "12345", now, 1, 0).unwrap(), None);
        assert!(provisioning_uri(&s, "Kizuna", "dr.sato").unwrap().starts_with("otpauth://totp/"));
    }
}
