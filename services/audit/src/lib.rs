//! Kizuna audit trail.

pub mod error;
pub mod event;
pub mod merkle;
pub mod pseudonym;
pub mod search;
pub mod sender;
pub mod server;
pub mod syslog;
pub mod api;
pub mod appender;
pub mod checkpoint;
pub mod config;
pub mod db;
pub mod durable;
pub mod lab_tsa;
pub mod log;
pub mod tsa;
pub mod verify;

pub use error::{AuditError, Result};
pub use event::{AuditEvent, EventId, EventKind};
