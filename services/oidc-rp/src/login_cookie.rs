//! A login in progress kept by the browser that started it, not by the screen: the state, nonce,
//! PKCE verifier, return path and `max_age` of a [`PendingLogin`] in a short-lived cookie signed
//! with HMAC-SHA256 under a key of the running process. Anyone may open `/login` as often as they
//! like: no memory is spent and nothing can be evicted, so a flood of anonymous requests cannot
//! cancel the logins of other browsers. The callback accepts the login only from the cookie of the
//! same browser (its `state` must match the one the provider sends back), and clears it (one use).
//!
//! The payload is signed, not encrypted: it holds nothing the browser does not already see or
//! own (the state and nonce travel through it in the URL; the PKCE verifier only proves that the
//! code is redeemed for the browser that started the login). A restart of the screen changes the
//! key: logins started before it must be started again.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

use crate::session::PendingLogin;

/// How long a started login may take (password, TOTP) before the callback refuses it.
pub const LOGIN_COOKIE_LIFETIME: Duration = Duration::from_secs(600);

/// Return paths longer than this are replaced by `/` (a cookie holds about 4 KB).
const MAX_RETURN_TO: usize = 1024;

/// Seals and opens pending-login cookies of one screen.
pub struct LoginCookies {
    key: [u8; 32],
    name: &'static str,
    lifetime: Duration,
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

impl LoginCookies {
    /// Cookies named `name`, signed with a fresh random key.
    pub fn new(name: &'static str) -> Self {
        let mut key = [0u8; 32];
        rand::rng().fill_bytes(&mut key);
        Self { key, name, lifetime: LOGIN_COOKIE_LIFETIME }
    }

    /// The cookie's name.
    pub fn cookie_name(&self) -> &'static str {
        self.name
    }

    fn mac(&self, payload: &str) -> Vec<u8> {
        let mut m = Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes any key length");
        m.update(self.name.as_bytes());
        m.update(b"\0");
        m.update(payload.as_bytes());
        m.finalize().into_bytes().to_vec()
    }

    /// The signed cookie value holding `pending`, valid for the cookie's lifetime from now.
    pub fn seal(&self, pending: &PendingLogin) -> String {
        self.seal_at(pending, now())
    }

    fn seal_at(&self, p: &PendingLogin, now: u64) -> String {
        let return_to = if p.return_to.len() > MAX_RETURN_TO { "/" } else { p.return_to.as_str() };
        let json = serde_json::json!({
            "s": p.state, "n": p.nonce, "v": p.pkce_verifier, "r": return_to,
            "m": p.max_age_secs, "e": now + self.lifetime.as_secs(),
        });
        let payload = B64.encode(json.to_string());
        let sig = B64.encode(self.mac(&payload));
        format!("{payload}.{sig}")
    }

    /// The pending login a cookie value holds, if its signature is ours and it has not expired.
    pub fn open(&self, value: &str) -> Option<PendingLogin> {
        self.open_at(value, now())
    }

    fn open_at(&self, value: &str, now: u64) -> Option<PendingLogin> {
        let (payload, sig) = value.split_once('.')?;
        if !crate::constant_time_eq(&B64.decode(sig).ok()?, &self.mac(payload)) {
            return None;
        }
        let j: serde_json::Value = serde_json::from_slice(&B64.decode(payload).ok()?).ok()?;
        if j["e"].as_u64()? < now {
            return None;
        }
        let s = |k: &str| j[k].as_str().map(str::to_owned);
        Some(PendingLogin {
            state: s("s")?,
            nonce: s("n")?,
            pkce_verifier: s("v")?,
            return_to: s("r")?,
            max_age_secs: j["m"].as_u64(),
        })
    }

    /// The `Set-Cookie` value storing `pending` in the browser (`HttpOnly`, `SameSite=Lax`: the
    /// provider's redirect back is a top-level GET, which carries it).
    pub fn cookie(&self, pending: &PendingLogin, secure: bool) -> String {
        format!(
            "{}={}; Path=/; HttpOnly; SameSite=Lax; Max-Age={}{}",
            self.name,
            self.seal(pending),
            self.lifetime.as_secs(),
            if secure { "; Secure" } else { "" }
        )
    }

    /// The `Set-Cookie` value deleting the cookie (the callback used it).
    pub fn expired_cookie(&self) -> String {
        format!("{}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0", self.name)
    }

    /// The valid pending login in any of a request's `Cookie` headers.
    pub fn from_cookie_headers<'h>(
        &self,
        headers: impl IntoIterator<Item = &'h str>,
    ) -> Option<PendingLogin> {
        headers.into_iter().find_map(|h| {
            h.split(';')
                .map(str::trim)
                .find_map(|kv| self.open(kv.strip_prefix(self.name)?.strip_prefix('=')?))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending() -> PendingLogin {
        PendingLogin {
            state: "st".into(),
            nonce: "no".into(),
            pkce_verifier: "ve".into(),
            return_to: "/patients/KZ1?x=1".into(),
            max_age_secs: Some(1800),
        }
    }

    #[test]
    fn a_sealed_login_opens_only_unaltered_unexpired_and_under_its_own_key() {
        let c = LoginCookies::new("kizuna_test_login");
        let v = c.seal_at(&pending(), 1000);
        let p = c.open_at(&v, 1000).unwrap();
        assert_eq!(
            (p.state, p.nonce, p.pkce_verifier, p.return_to, p.max_age_secs),
            ("st".into(), "no".into(), "ve".into(), "/patients/KZ1?x=1".into(), Some(1800))
        );
        assert!(c.open_at(&v, 1000 + 601).is_none(), "expired after ten minutes");
        let (payload, sig) = v.split_once('.').unwrap();
        let forged = B64.encode(
            B64.decode(payload)
                .unwrap()
                .iter()
                .map(|b| if *b == b'1' { b'9' } else { *b })
                .collect::<Vec<_>>(),
        );
        assert!(c.open_at(&format!("{forged}.{sig}"), 1000).is_none(), "altered payload");
        assert!(c.open_at(payload, 1000).is_none() && c.open_at("", 1000).is_none());
        assert!(LoginCookies::new("kizuna_test_login").open_at(&v, 1000).is_none(), "another key");
        let header = format!("a=b; kizuna_test_login={v}");
        assert!(c.from_cookie_headers([header.as_str()]).is_none(), "expired by now (sealed at t=1000)");
        let fresh = c.cookie(&pending(), false);
        let value = fresh.split(';').next().unwrap();
        assert_eq!(c.from_cookie_headers(["x=1", value]).unwrap().state, "st");
        assert!(c.cookie(&pending(), true).contains("; Secure") && fresh.contains("HttpOnly"));
        let long = PendingLogin { return_to: format!("/{}", "a".repeat(5000)), ..pending() };
        assert_eq!(c.open(&c.seal(&long)).unwrap().return_to, "/");
    }
}
