//! The centre's web screens (the viewer, the admin screen) as OpenID Connect relying parties of
//! `kizuna-auth`: [`RelyingParty`] runs the authorization code flow with PKCE, state and nonce and
//! verifies the ID token; [`Sessions`] keeps browser sessions server-side behind a random cookie,
//! generic over what each screen knows about its logged-in user; [`LoginCookies`] keeps a login in
//! progress in a signed cookie of the browser that started it, so that starting a login costs the
//! screen no memory. See README.md.

mod error;
pub mod login_cookie;
pub mod relying_party;
pub mod session;

pub use error::RpError;
pub use login_cookie::{LOGIN_COOKIE_LIFETIME, LoginCookies};
pub use relying_party::{
    AUTH_TIME_LEEWAY, Registration, RelyingParty, VerifiedLogin, check_auth_time, constant_time_eq,
};
pub use session::{PendingLogin, Session, Sessions, random_token, safe_return_path};
