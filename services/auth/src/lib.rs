//! Kizuna single sign-on: an OpenID Connect provider for the centre's web apps (authorization code
//! with PKCE S256, discovery, JWKS, EdDSA ID tokens signed with the centre key, userinfo, logout).
//! Users belong to facilities and hold roles; they log in with an argon2id password and a TOTP code;
//! each relying service knows them by a pairwise subject id. See README.md.

pub mod api;
pub mod audit;
pub mod config;
pub mod db;
pub mod directory;
pub mod error;
pub mod grant;
pub mod jws;
pub mod keys;
pub mod pairwise;
pub mod password;
pub mod pkce;
pub mod role;
pub mod secret_token;
pub mod server;
pub mod session;
pub mod totp;

pub use config::AuthConfig;
pub use directory::{Client, ClientCredentials, Directory, NewClient, NewUser, User};
pub use error::{AuthError, Result};
pub use role::Role;
pub use server::{RunningServer, Server};
