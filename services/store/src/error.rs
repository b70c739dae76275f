//! The crate's error type.

use std::path::{Path, PathBuf};

use thiserror::Error;

/// Everything that can go wrong in the store, with the file, site or key it concerns.
#[derive(Debug, Error)]
pub enum StoreError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error(
        "data_dir {dir} is in use by another store{} holding {lock_file}: two stores on one data_dir \
         corrupt its journal; stop the other one, or give this one its own data_dir",
        .holder.map(|p| format!(" (pid {p})")).unwrap_or_default()
    )]
    DataDirInUse { dir: PathBuf, lock_file: PathBuf, holder: Option<u32> },
    #[error("configuration: {0}")]
    Config(String),
    #[error("database: {}", kizuna_db::error_text(.0))]
    Db(#[from] sqlx::Error),
    #[error("database migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error(transparent)]
    Open(#[from] kizuna_db::DbError),
    #[error("journal {path}: {reason}")]
    Journal { path: PathBuf, reason: String },
    #[error("site {site:?}: {reason}")]
    Site { site: String, reason: String },
    #[error("facility ID {0:?} must be 1-10 ASCII letters or digits")]
    BadFacility(String),
    #[error("index write: {0}")]
    IndexWrite(String),
    #[error("recovery: {0}")]
    Recovery(String),
    #[error("validator tables: {0}")]
    Tables(#[from] ssmix2::validate::TableError),
}

impl StoreError {
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        Self::Io { path: path.to_owned(), source }
    }

    pub fn journal(path: &Path, reason: impl Into<String>) -> Self {
        Self::Journal { path: path.to_owned(), reason: reason.into() }
    }
}
