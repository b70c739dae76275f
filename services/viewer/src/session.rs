//! Browser sessions: a random 256-bit ID in an `HttpOnly`, `SameSite=Lax` cookie (`Secure` unless
//! configured off) naming a server-side record: the pending login (PKCE verifier, nonce, state) and,
//! once logged in, the user and a CSRF token for the forms that change something (break glass,
//! logout). Kept in memory: a restart logs everyone out, which is acceptable for single sign-on
//! (the provider's own session logs them straight back in).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rand::RngCore;

use crate::access::User;

/// The session cookie's name.
pub const COOKIE: &str = "kizuna_viewer";

/// A login in progress: what the callback must check.
#[derive(Debug, Clone)]
pub struct PendingLogin {
    pub state: String,
    pub nonce: String,
    pub pkce_verifier: String,
    /// Where to go after login (a path on the viewer).
    pub return_to: String,
}

/// One browser session.
#[derive(Debug, Clone)]
pub struct Session {
    pub user: Option<User>,
    pub pending: Option<PendingLogin>,
    /// Must accompany every state-changing form.
    pub csrf: String,
    expires: Instant,
}

/// All sessions.
pub struct Sessions {
    map: Mutex<HashMap<String, Session>>,
    lifetime: Duration,
}

/// A random token, hex.
pub fn random_token() -> String {
    let mut b = [0u8; 32];
    rand::rng().fill_bytes(&mut b);
    hex::encode(b)
}

impl Sessions {
    pub fn new(lifetime: Duration) -> Self {
        Self { map: Mutex::new(HashMap::new()), lifetime }
    }

    /// A new, empty session; returns its ID.
    pub fn create(&self) -> String {
        let id = random_token();
        let s = Session {
            user: None,
            pending: None,
            csrf: random_token(),
            expires: Instant::now() + self.lifetime,
        };
        let mut m = self.map.lock().expect("sessions");
        let now = Instant::now();
        m.retain(|_, s| s.expires > now);
        m.insert(id.clone(), s);
        id
    }

    /// The session `id`, if it exists and has not expired.
    pub fn get(&self, id: &str) -> Option<Session> {
        let m = self.map.lock().expect("sessions");
        m.get(id).filter(|s| s.expires > Instant::now()).cloned()
    }

    /// Changes session `id` (if alive).
    pub fn update(&self, id: &str, f: impl FnOnce(&mut Session)) -> bool {
        let mut m = self.map.lock().expect("sessions");
        match m.get_mut(id).filter(|s| s.expires > Instant::now()) {
            Some(s) => {
                f(s);
                true
            }
            None => false,
        }
    }

    /// Logs a user in: the session gets a fresh ID (no fixation) and a fresh CSRF token.
    pub fn log_in(&self, old_id: &str, user: User) -> String {
        let mut m = self.map.lock().expect("sessions");
        m.remove(old_id);
        let id = random_token();
        m.insert(
            id.clone(),
            Session {
                user: Some(user),
                pending: None,
                csrf: random_token(),
                expires: Instant::now() + self.lifetime,
            },
        );
        id
    }

    /// Ends a session.
    pub fn remove(&self, id: &str) {
        self.map.lock().expect("sessions").remove(id);
    }

    /// The cookie header value setting session `id`.
    pub fn cookie(&self, id: &str, secure: bool) -> String {
        format!(
            "{COOKIE}={id}; Path=/; HttpOnly; SameSite=Lax; Max-Age={}{}",
            self.lifetime.as_secs(),
            if secure { "; Secure" } else { "" }
        )
    }
}

/// The session ID in a `Cookie` header, if any.
pub fn from_cookie_header(header: &str) -> Option<&str> {
    header.split(';').map(str::trim).find_map(|kv| kv.strip_prefix(COOKIE)?.strip_prefix('='))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access::Role;

    #[test]
    fn login_rotates_the_session_id_and_logout_forgets_it() {
        let s = Sessions::new(Duration::from_secs(60));
        let id = s.create();
        assert!(s.get(&id).unwrap().user.is_none());
        let user = User { subject: "pw".into(), name: "n".into(), facility: "F1".into(), role: Role::Nurse };
        let new = s.log_in(&id, user.clone());
        assert_ne!(new, id);
        assert!(s.get(&id).is_none(), "the pre-login ID is dead");
        assert_eq!(s.get(&new).unwrap().user, Some(user));
        s.remove(&new);
        assert!(s.get(&new).is_none());
        assert_eq!(from_cookie_header("a=b; kizuna_viewer=xyz; c=d"), Some("xyz"));
        assert!(s.cookie("x", true).contains("HttpOnly") && s.cookie("x", true).contains("Secure"));
    }
}
