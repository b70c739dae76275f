//! The Kizuna upload agent: ships a facility's SS-MIX2 exports to the centre's store.
//!
//! Files written into the export folder are noticed (watcher plus periodic rescan), waited on until
//! complete, checked with `ssmix2`, and moved into a durable outbox — or into the quarantine with a
//! reason file. The outbox is uploaded in `kizuna-wire` batches with retries, an optional bandwidth
//! limit and an optional bound interface. The agent keeps its own log and reports the previous
//! day's summary and periodic heartbeats to the store.
//!
//! With `nsips` in the config it also converts a pharmacy's NSIPS exports (`kizuna-nsips`) into
//! SS-MIX2 prescriptions and ships them the same way.
//!
//! netd hosts the library: `Agent::new(config)?.run(shutdown).await`.

mod agent;
mod agent_log;
mod backoff;
mod bandwidth;
pub mod check;
pub mod config;
pub mod daily;
pub mod durable;
mod error;
mod intake;
mod lease;
mod nsips;
pub mod outbox;
pub mod quarantine;
mod report;
mod settle;
mod state;
pub mod state_lock;
mod store_client;
mod upload;
mod walk;

pub use agent::{Agent, Status, StatusHandle};
pub use config::{Config, DEFAULT_CONFIG, NsipsConfig};
pub use error::{AgentError, is_disk_full};
pub use intake::is_ignored;
pub use state::OfflineStatus;
pub use state_lock::StateDirLock;
