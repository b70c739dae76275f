//! Kizuna audit trail.

pub mod error;
pub mod event;
pub mod merkle;

pub use error::{AuditError, Result};
pub use event::{AuditEvent, EventId, EventKind};
