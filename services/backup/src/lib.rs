//! Kizuna's backup: real-time replication of the centre's SS-MIX2 tree and change journal to
//! remote replicas, verification by a Merkle tree of per-directory digests, and promotion of a
//! replica to a working centre. See README.md.
//!
//! - [`replica`] and [`serve`]: the replica side (`kizuna backup serve`).
//! - [`follow`]: the primary side (`kizuna backup follow`): journal tailing, shipping, watching.
//! - [`verify`]: Merkle comparison and repair; [`merkle`] is the pure digest computation.
//! - [`linkage`]: the linkage database's snapshots on the replicas.
//! - [`manifest`]: recorded sha256 of every file, streamed in depth-first order.
//! - [`promote`]: a replica to a centre.
//! - [`tls`]: HTTPS on the replication link (the replica's certificate, what the follower trusts).

pub mod batch;
pub mod config;
pub mod durable;
mod error;
pub mod linkage;
pub mod manifest;
pub mod merkle;
pub mod paths;
pub mod replica;
pub mod serve;
pub mod tls;

pub use config::Config;
pub use error::BackupError;
pub mod client;
pub mod follow;
pub mod primary;
pub mod promote;
pub mod verify;
