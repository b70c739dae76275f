//! The site side of the centre registry: enrollment tokens, TLS pinned to the centre's key,
//! signed per-site views (verified, never replayed or downgraded), enrollment and the
//! long-poll watch that feeds verified views into the ordinary reconcile path, and key rotation.
//!
//! The wire types and the signature check live here so that the registry (which depends on
//! this crate) signs exactly what netd verifies.

pub mod client;
pub mod enroll;
pub mod enrollment;
pub mod error;
pub mod protocol;
pub mod rotate;
pub mod tls;
pub mod token;
pub mod view;
pub mod watch;

pub use error::RegistryError;

/// Seconds since the UNIX epoch, now.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}
