//! The crate's one error type.

use std::path::PathBuf;

/// Everything that can go wrong in the audit trail, with the context an operator needs.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("invalid audit event: field {field}: {reason}")]
    InvalidEvent { field: String, reason: String },
    #[error("DICOM audit XML, byte {position}: {reason}")]
    Xml { position: u64, reason: String },
    #[error("syslog frame: {0}")]
    Syslog(String),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("database migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error(transparent)]
    Open(#[from] kizuna_db::DbError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Another writer (this process or another, whose pid the lock file holds) has the log's
    /// data folder: see [`crate::data_lock`].
    #[error(
        "audit data_dir {dir} is in use by another audit service{} holding {lock_file}: two writers \
         on one data_dir corrupt its leaf mirror and checkpoints; stop the other one, or give this \
         one its own data_dir (`kizuna audit verify` needs no lock)",
        .holder.map(|p| format!(" (pid {p})")).unwrap_or_default()
    )]
    DataDirInUse { dir: PathBuf, lock_file: PathBuf, holder: Option<u32> },
    /// Another audit service writes to the same database (with another data folder): see
    /// [`crate::db_lock`].
    #[error(
        "audit database {database} is written by another audit service (it holds {lock}): two \
         writers on one database, each with its own data_dir, make verify report tampering nobody \
         did; stop the other one, or give this one its own database_url"
    )]
    DatabaseInUse { database: String, lock: String },
    #[error("time-stamp authority {url}: {reason}")]
    TimeStamp { url: String, reason: String },
    #[error("signing key {path}: {reason}")]
    Key { path: PathBuf, reason: String },
    /// A secret file (signing key, token, TLS key) that cannot be used as it is, e.g. because
    /// group or others may read it.
    #[error("{what} {path}: {problem}")]
    Secret { what: &'static str, path: PathBuf, problem: String },
    #[error("TLS: {0}")]
    Tls(String),
    #[error("config {path}: {reason}")]
    Config { path: PathBuf, reason: String },
    #[error("audit sender: {0}")]
    Send(String),
    #[error("not permitted: {0}")]
    Forbidden(String),
    #[error("audit search {url}: {reason}")]
    Search { url: String, reason: String },
}

impl AuditError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        AuditError::Io { path: path.into(), source }
    }
    pub(crate) fn invalid(field: &str, reason: impl Into<String>) -> Self {
        AuditError::InvalidEvent { field: field.to_string(), reason: reason.into() }
    }
}

pub type Result<T, E = AuditError> = std::result::Result<T, E>;
