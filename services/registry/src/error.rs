//! The registry's error type. Each variant maps to one HTTP status in the site API.

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("{path}: {reason}")]
    Io { path: PathBuf, reason: String },
    #[error("{path}: {reason}")]
    Config { path: PathBuf, reason: String },
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    #[error("database migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error(transparent)]
    Open(#[from] kizuna_db::DbError),
    /// A policy that fails validation: one line per problem, `file:line:column: field: reason`.
    #[error("{}", .0.join("\n"))]
    Policy(Vec<String>),
    /// The caller asked for something that does not exist.
    #[error("{0}")]
    NotFound(String),
    /// Bad credentials or token.
    #[error("{0}")]
    Unauthorized(String),
    /// Revoked site.
    #[error("{0}")]
    Forbidden(String),
    /// Used or expired token.
    #[error("{0}")]
    Gone(String),
    /// The request conflicts with the current state (duplicate key, view not ready yet).
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("TLS: {0}")]
    Tls(String),
    #[error("audit: {0}")]
    Audit(#[from] kizuna_audit::AuditError),
}

impl RegistryError {
    pub fn io(path: &Path, e: impl std::fmt::Display) -> Self {
        RegistryError::Io { path: path.to_path_buf(), reason: e.to_string() }
    }
}

pub type Result<T, E = RegistryError> = std::result::Result<T, E>;
