//! The crate's one error type.

use std::path::PathBuf;

/// Everything that can go wrong in the auth service, with the context an operator needs.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
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
    #[error("config {path}: {reason}")]
    Config { path: PathBuf, reason: String },
    #[error("signing key {path}: {reason}")]
    Key { path: PathBuf, reason: String },
    /// A secret file (signing key, pairwise salt, token) that cannot be used as it is, e.g.
    /// because group or others may read it.
    #[error("{what} {path}: {problem}")]
    Secret { what: &'static str, path: PathBuf, problem: String },
    #[error("invalid {field}: {reason}")]
    Invalid { field: String, reason: String },
    #[error("{0} already exists")]
    Exists(String),
    #[error("{0} not found")]
    NotFound(String),
    #[error("password hashing: {0}")]
    Password(String),
    #[error("TOTP: {0}")]
    Totp(String),
    #[error("audit: {0}")]
    Audit(#[from] kizuna_audit::AuditError),
}

impl AuthError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        AuthError::Io { path: path.into(), source }
    }
    pub(crate) fn invalid(field: &str, reason: impl Into<String>) -> Self {
        AuthError::Invalid { field: field.to_string(), reason: reason.into() }
    }
}

pub type Result<T, E = AuthError> = std::result::Result<T, E>;
