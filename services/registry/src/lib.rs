//! kizuna-registry: the centre's mesh registry. It holds the versioned mesh policy, the
//! enrolled sites with their per-segment WireGuard public keys and observed endpoints, and
//! serves each site its view of the mesh signed with the centre's ed25519 key, over TLS that
//! sites pin at enrollment. See README.md.

pub mod audit;
pub mod config;
pub mod db;
pub mod error;
pub mod keys;
pub mod number_reuse;
pub mod policies;
pub mod policy_check;
pub mod policy_diff;
pub mod refusals;
pub mod server;
pub mod sites;
pub mod views;

pub use config::RegistryConfig;
pub use db::Db;
pub use error::{RegistryError, Result};
