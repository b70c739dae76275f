//! Browser sessions: a random 256-bit ID in an `HttpOnly`, `SameSite=Lax` cookie (`Secure` unless
//! the screen is served over plain HTTP) naming a server-side record: the pending login (PKCE
//! verifier, nonce, state) and, once logged in, the user and a CSRF token for the forms that
//! change something. Kept in memory: a restart logs everyone out, which is acceptable for single
//! sign-on (the provider's own session logs them straight back in).

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rand::RngCore;

/// A login in progress: what the callback must check.
#[derive(Debug, Clone)]
pub struct PendingLogin {
    pub state: String,
    pub nonce: String,
    pub pkce_verifier: String,
    /// Where to go after login (a path on the screen itself).
    pub return_to: String,
    /// The `max_age` the authorization request carried (seconds): the ID token's `auth_time`
    /// must be at most this old. `None` = any login of the provider's is accepted.
    pub max_age_secs: Option<u64>,
}

/// One browser session; `U` is what the screen knows of its logged-in user.
#[derive(Debug, Clone)]
pub struct Session<U> {
    pub user: Option<U>,
    pub pending: Option<PendingLogin>,
    /// Must accompany every state-changing form.
    pub csrf: String,
    /// The login's ID token: the `id_token_hint` of the provider logout.
    pub id_token: Option<String>,
    /// The login's access token, for re-checking the user at the provider's userinfo.
    pub access_token: Option<String>,
    /// When the provider last confirmed the user (the login, or the last userinfo check).
    pub checked_at: Instant,
    expires: Instant,
    /// The last request naming this session (for the idle timeout).
    last_seen: Instant,
}

/// How long a session holding only a pending login lives: anyone can start one with `GET /login`.
/// (A screen that keeps its pending logins in a [`crate::LoginCookies`] cookie instead keeps no
/// state for them at all.)
pub const PENDING_LIFETIME: Duration = Duration::from_secs(600);
/// At most this many pending-login sessions; the oldest make room for new ones.
pub const MAX_PENDING: usize = 10_000;
/// Expired sessions are swept at most this often (a sweep walks the whole map).
const SWEEP_EVERY: Duration = Duration::from_secs(60);

/// All sessions of one screen, under its own cookie name.
pub struct Sessions<U: Clone> {
    map: Mutex<HashMap<String, Session<U>>>,
    /// IDs of pending-login sessions, oldest first, and the last sweep; locked only under `map`.
    pending: Mutex<(VecDeque<String>, Instant)>,
    lifetime: Duration,
    /// Sessions unused this long end; `None` = no idle timeout.
    idle: Option<Duration>,
    cookie_name: &'static str,
}

/// A random token, hex (256 bits).
pub fn random_token() -> String {
    let mut b = [0u8; 32];
    rand::rng().fill_bytes(&mut b);
    hex::encode(b)
}

/// The path to go to after login: only paths on the screen itself (no open redirect).
pub fn safe_return_path(p: Option<&str>) -> String {
    match p {
        Some(p) if p.starts_with('/') && !p.starts_with("//") && conservative(p) => p.to_owned(),
        _ => "/".to_owned(),
    }
}

/// Only printable ASCII path and query characters, and `%XX` escapes of such characters other
/// than `/` and `\`. Browsers drop tabs and newlines from URLs (`/\t/evil.example` becomes
/// `//evil.example`) and treat `\` like `/`, so anything outside this set is refused.
fn conservative(p: &str) -> bool {
    let ok = |b: u8| b.is_ascii_alphanumeric() || b"-._~/?=&+,;:@!$'()*".contains(&b);
    let b = p.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = b.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
            match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                Some(d) if d.is_ascii_graphic() && d != b'/' && d != b'\\' => i += 3,
                _ => return false,
            }
        } else if ok(b[i]) {
            i += 1;
        } else {
            return false;
        }
    }
    true
}

impl<U: Clone> Sessions<U> {
    /// Sessions living `lifetime`, their ID in the cookie `cookie_name`.
    pub fn new(cookie_name: &'static str, lifetime: Duration) -> Self {
        Self {
            map: Mutex::new(HashMap::new()),
            pending: Mutex::new((VecDeque::new(), Instant::now())),
            lifetime,
            idle: None,
            cookie_name,
        }
    }

    /// Sessions also end after `idle` without a request.
    pub fn with_idle_timeout(mut self, idle: Duration) -> Self {
        self.idle = Some(idle);
        self
    }

    fn alive(&self, s: &Session<U>, now: Instant) -> bool {
        s.expires > now && self.idle.is_none_or(|i| s.last_seen + i > now)
    }

    /// The session cookie's name.
    pub fn cookie_name(&self) -> &'static str {
        self.cookie_name
    }

    fn fresh(&self, user: Option<U>, lifetime: Duration) -> Session<U> {
        let now = Instant::now();
        Session {
            user,
            pending: None,
            csrf: random_token(),
            id_token: None,
            access_token: None,
            checked_at: now,
            expires: now + lifetime,
            last_seen: now,
        }
    }

    /// Drops expired sessions, at most once per `SWEEP_EVERY` (not on every request).
    fn sweep(&self, m: &mut HashMap<String, Session<U>>, last: &mut Instant) {
        let now = Instant::now();
        if now.duration_since(*last) >= SWEEP_EVERY {
            m.retain(|_, s| self.alive(s, now));
            *last = now;
        }
    }

    /// A new, empty session for a pending login, living `PENDING_LIFETIME`; returns its ID. Beyond
    /// `MAX_PENDING` of them, the oldest still pending is dropped.
    pub fn create(&self) -> String {
        let id = random_token();
        let s = self.fresh(None, self.lifetime.min(PENDING_LIFETIME));
        let mut m = self.map.lock().expect("sessions");
        let mut p = self.pending.lock().expect("sessions");
        let (order, last_sweep) = &mut *p;
        self.sweep(&mut m, last_sweep);
        // IDs that logged in or ended since are skipped; the queue never exceeds the cap.
        while order.len() >= MAX_PENDING {
            if let Some(old) = order.pop_front()
                && m.get(&old).is_some_and(|s| s.user.is_none())
            {
                m.remove(&old);
            }
        }
        order.push_back(id.clone());
        m.insert(id.clone(), s);
        id
    }

    /// The session `id`, if it exists and has neither expired nor idled out; counts as use.
    pub fn get(&self, id: &str) -> Option<Session<U>> {
        let mut m = self.map.lock().expect("sessions");
        let now = Instant::now();
        let s = m.get_mut(id).filter(|s| self.alive(s, now))?;
        s.last_seen = now;
        Some(s.clone())
    }

    /// Changes session `id` (if alive).
    pub fn update(&self, id: &str, f: impl FnOnce(&mut Session<U>)) -> bool {
        let mut m = self.map.lock().expect("sessions");
        let now = Instant::now();
        match m.get_mut(id).filter(|s| self.alive(s, now)) {
            Some(s) => {
                f(s);
                true
            }
            None => false,
        }
    }

    /// Logs a user in: the session gets a fresh ID (no fixation) and a fresh CSRF token.
    pub fn log_in(&self, old_id: &str, user: U) -> String {
        let mut m = self.map.lock().expect("sessions");
        m.remove(old_id);
        let id = random_token();
        m.insert(id.clone(), self.fresh(Some(user), self.lifetime));
        id
    }

    /// Ends a session.
    pub fn remove(&self, id: &str) {
        self.map.lock().expect("sessions").remove(id);
    }

    /// The `Set-Cookie` value setting session `id`.
    pub fn cookie(&self, id: &str, secure: bool) -> String {
        format!(
            "{}={id}; Path=/; HttpOnly; SameSite=Lax; Max-Age={}{}",
            self.cookie_name,
            self.lifetime.as_secs(),
            if secure { "; Secure" } else { "" }
        )
    }

    /// The `Set-Cookie` value deleting the session cookie (logout).
    pub fn expired_cookie(&self) -> String {
        format!("{}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0", self.cookie_name)
    }

    /// The session ID in one `Cookie` header, if any.
    pub fn id_in_cookie_header<'h>(&self, header: &'h str) -> Option<&'h str> {
        header.split(';').map(str::trim).find_map(|kv| kv.strip_prefix(self.cookie_name)?.strip_prefix('='))
    }

    /// The live session named by any of a request's `Cookie` headers, with its ID.
    pub fn from_cookie_headers<'h>(
        &self,
        headers: impl IntoIterator<Item = &'h str>,
    ) -> Option<(String, Session<U>)> {
        let id = headers.into_iter().find_map(|h| self.id_in_cookie_header(h))?;
        Some((id.to_owned(), self.get(id)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn login_rotates_the_session_id_and_logout_forgets_it() {
        let s: Sessions<String> = Sessions::new("kizuna_test", Duration::from_secs(60));
        let id = s.create();
        assert!(s.get(&id).unwrap().user.is_none());
        let csrf_before = s.get(&id).unwrap().csrf;
        let new = s.log_in(&id, "pw-1".to_owned());
        assert_ne!(new, id);
        assert!(s.get(&id).is_none(), "the pre-login ID is dead");
        let after = s.get(&new).unwrap();
        assert_eq!(after.user.as_deref(), Some("pw-1"));
        assert_ne!(after.csrf, csrf_before, "a fresh CSRF token at login");
        let header = format!("a=b; kizuna_test={new}; c=d");
        assert_eq!(s.from_cookie_headers([header.as_str()]).unwrap().0, new);
        assert!(s.from_cookie_headers(["kizuna_testx=1; other=2"]).is_none());
        s.remove(&new);
        assert!(s.get(&new).is_none());
        assert!(s.cookie("x", true).contains("HttpOnly") && s.cookie("x", true).contains("Secure"));
        assert!(!s.cookie("x", false).contains("Secure"));
        assert!(s.expired_cookie().starts_with("kizuna_test=;") && s.expired_cookie().contains("Max-Age=0"));
    }

    #[test]
    fn sessions_expire() {
        let s: Sessions<u8> = Sessions::new("c", Duration::from_millis(1));
        let id = s.create();
        std::thread::sleep(Duration::from_millis(5));
        assert!(s.get(&id).is_none());
        assert!(!s.update(&id, |_| {}));
    }

    #[test]
    fn a_pending_login_lives_ten_minutes_and_their_number_is_capped() {
        let s: Sessions<u8> = Sessions::new("c", Duration::from_secs(8 * 3600));
        let first = s.create();
        let expires = s.map.lock().unwrap()[&first].expires;
        assert!(expires <= Instant::now() + Duration::from_secs(600), "not the 8 h of a login");
        // A login gets the full lifetime.
        let logged = s.log_in(&s.create(), 1);
        assert!(s.map.lock().unwrap()[&logged].expires > Instant::now() + Duration::from_secs(7 * 3600));
        let first = s.create();
        let ids: Vec<String> = (0..10_000).map(|_| s.create()).collect();
        let pending = s.map.lock().unwrap().values().filter(|x| x.user.is_none()).count();
        assert!(pending <= 10_000, "{pending} pending logins kept");
        assert!(s.get(&first).is_none(), "the oldest pending login made room");
        assert!(s.get(ids.last().unwrap()).is_some() && s.get(&logged).is_some(), "logins are never evicted");
    }

    #[test]
    fn idle_sessions_end_and_use_keeps_them_alive() {
        let s: Sessions<u8> =
            Sessions::new("c", Duration::from_secs(60)).with_idle_timeout(Duration::from_millis(200));
        let used = s.log_in(&s.create(), 1);
        let idle = s.log_in(&s.create(), 2);
        for _ in 0..4 {
            std::thread::sleep(Duration::from_millis(80));
            assert!(s.get(&used).is_some());
        }
        assert!(s.get(&idle).is_none(), "200 ms without a request");
        assert!(!s.update(&idle, |_| {}));
    }

    #[test]
    fn only_local_paths_are_return_targets() {
        assert_eq!(safe_return_path(Some("/sites/a?x=1")), "/sites/a?x=1");
        assert_eq!(safe_return_path(Some("/search?by=local&q=P%2D1")), "/search?by=local&q=P%2D1");
        for bad in [
            "//evil.example/",
            "https://evil.example/",
            "/\\evil",
            "",
            "/\t/evil.example",
            "/\n/evil.example",
            "/\r/evil.example",
            "/ /evil.example",
            "/%09/evil.example",
            "/%0a/evil.example",
            "/%2F/evil.example",
            "/%5c/evil.example",
            "/%",
            "/%zz",
            "/\u{7f}/x",
            "/\u{2028}/x",
        ] {
            assert_eq!(safe_return_path(Some(bad)), "/", "{bad}");
        }
        assert_eq!(safe_return_path(None), "/");
    }
}
