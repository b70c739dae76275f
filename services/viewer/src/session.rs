//! Browser sessions of the viewer (`kizuna_oidc_rp::Sessions` over the viewer's [`User`]): the
//! pending login and, once logged in, the user and a CSRF token for the forms that change
//! something (break glass, logout).

use crate::access::User;

/// The session cookie's name.
pub const COOKIE: &str = "kizuna_viewer";
/// The cookie holding a login in progress (signed, ten minutes; no state on the server).
pub const LOGIN_COOKIE: &str = "kizuna_viewer_login";
/// The cookie keeping the login's ID token for the provider logout's `id_token_hint` after the
/// session itself has ended (idle timeout, restart); sent only to `/logout`.
pub const LOGOUT_HINT_COOKIE: &str = "kizuna_viewer_logout";

pub use kizuna_oidc_rp::PendingLogin;
/// One browser session of the viewer.
pub type Session = kizuna_oidc_rp::Session<User>;
/// All sessions of the viewer.
pub type Sessions = kizuna_oidc_rp::Sessions<User>;

/// The viewer's sessions, living `lifetime`, or until `idle` passes without a request.
pub fn sessions(lifetime: std::time::Duration, idle: std::time::Duration) -> Sessions {
    Sessions::new(COOKIE, lifetime).with_idle_timeout(idle)
}
