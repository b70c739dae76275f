//! The crate's error type.

use std::path::PathBuf;

use thiserror::Error;

/// Why the viewer could not do something.
#[derive(Debug, Error)]
pub enum ViewerError {
    #[error("{path}: {message}")]
    Config { path: PathBuf, message: String },
    /// The store's data folder or IndexDB is not there (a key and a path named).
    #[error("configuration: {0}")]
    NoStore(String),
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("IndexDB: {context}: {source}")]
    Db { context: &'static str, source: sqlx::Error },
    #[error(transparent)]
    Store(#[from] kizuna_store::StoreError),
    #[error(transparent)]
    Index(#[from] kizuna_index::IndexError),
    #[error("audit: {0}")]
    Audit(#[from] kizuna_audit::AuditError),
    #[error("{0}")]
    BadRequest(String),
    #[error("login: {0}")]
    Login(String),
    #[error(transparent)]
    Oidc(#[from] kizuna_oidc_rp::RpError),
}

impl ViewerError {
    pub(crate) fn io(path: &std::path::Path, source: std::io::Error) -> Self {
        Self::Io { path: path.to_owned(), source }
    }

    pub(crate) fn db(context: &'static str) -> impl FnOnce(sqlx::Error) -> Self {
        move |source| Self::Db { context, source }
    }
}
