//! The crate's error type.

use thiserror::Error;

/// Why linkage could not be done.
#[derive(Debug, Error)]
pub enum IndexError {
    #[error("{source_name}: not a readable HL7 message: {source}")]
    Hl7 { source_name: String, source: ssmix2::Hl7Error },
    #[error("{path}: {source}")]
    Io { path: std::path::PathBuf, source: std::io::Error },
    #[error("{source_name}: no PID segment")]
    NoPid { source_name: String },
    #[error("{source_name}: {field} {value:?} {reason}")]
    BadField { source_name: String, field: &'static str, value: String, reason: &'static str },
    #[error("{what} {value:?} is invalid: {reason}")]
    Invalid { what: &'static str, value: String, reason: &'static str },
    #[error("cannot train the matcher: {0}")]
    Training(String),
    #[error("common health ID {0} does not exist")]
    UnknownCommonId(String),
    #[error("patient ({facility}, {local_id}) is not enrolled")]
    NotEnrolled { facility: String, local_id: String },
    #[error("review item {0} does not exist or was already decided")]
    NoSuchReview(i64),
    #[error(
        "review item {id} is out of date: its candidate {candidate} is no longer on {suggested} (now {now}); reject it, or link by hand"
    )]
    StaleReview { id: i64, candidate: String, suggested: String, now: String },
    #[error("database: {context}: {source}")]
    Db { context: &'static str, source: sqlx::Error },
    #[error("database migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error(transparent)]
    Open(#[from] kizuna_db::DbError),
    #[error("stored matcher model is unreadable: {0}")]
    Model(#[from] serde_json::Error),
}

impl IndexError {
    pub(crate) fn db(context: &'static str) -> impl FnOnce(sqlx::Error) -> Self {
        move |source| Self::Db { context, source }
    }
}
