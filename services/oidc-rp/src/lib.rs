//! The centre's web screens (the viewer, the admin screen) as OpenID Connect relying parties of
//! `kizuna-auth`: [`RelyingParty`] runs the authorization code flow with PKCE, state and nonce and
//! verifies the ID token; [`Sessions`] keeps browser sessions server-side behind a random cookie,
//! generic over what each screen knows about its logged-in user. See README.md.

mod error;
pub mod relying_party;
pub mod session;

pub use error::RpError;
pub use relying_party::{Registration, RelyingParty, VerifiedLogin, constant_time_eq};
pub use session::{PendingLogin, Session, Sessions, random_token, safe_return_path};
