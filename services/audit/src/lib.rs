//! Kizuna audit trail: JAHIS 13-009 / DICOM PS3.15 A.5 audit events from every centre service,
//! collected over HTTP and IHE ITI-20 syslog (RFC 5424 over TLS/UDP), kept in an append-only log with
//! an RFC 6962 Merkle tree whose checkpoints are signed (ed25519) and time-stamped (RFC 3161), and
//! searchable by auditors (JSON, CSV, FHIR ITI-81, web UI). See README.md.

pub mod api;
pub mod appender;
pub mod auditors;
pub mod checkpoint;
pub mod config;
pub mod data_lock;
pub mod db;
pub mod db_lock;
pub mod durable;
pub mod emitter;
pub mod error;
pub mod event;
pub mod lab_tsa;
pub mod log;
pub mod merkle;
pub mod pseudonym;
pub mod search;
pub mod sender;
pub mod server;
pub mod syslog;
pub mod tsa;
pub mod verify;

pub use error::{AuditError, Result};
pub use event::{AuditEvent, EventId, EventKind};
