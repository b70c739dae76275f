//! The crate's error type.

use std::path::{Path, PathBuf};

use thiserror::Error;

/// Everything that can go wrong in the backup, with the file, replica or key it concerns.
#[derive(Debug, Error)]
pub enum BackupError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("configuration: {0}")]
    Config(String),
    #[error("manifest database: {0}")]
    Db(#[from] sqlx::Error),
    #[error("store: {0}")]
    Store(#[from] kizuna_store::StoreError),
    #[error("bad batch: {0}")]
    BadBatch(String),
    #[error("bad path {path:?}: {reason}")]
    BadPath { path: String, reason: String },
    #[error("replica {replica}: {reason}")]
    Replica { replica: String, reason: String },
    #[error("journal entry {seq} does not follow the replica's applied entry {applied}")]
    Gap { seq: u64, applied: u64 },
    #[error("this replica was promoted to a centre; it takes no more backup batches")]
    Promoted,
}

impl BackupError {
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        Self::Io { path: path.to_owned(), source }
    }

    pub fn replica(replica: &str, reason: impl std::fmt::Display) -> Self {
        Self::Replica { replica: replica.to_owned(), reason: reason.to_string() }
    }
}
