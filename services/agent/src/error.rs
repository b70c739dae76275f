//! The crate's error type.

use std::path::{Path, PathBuf};

/// Why the agent could not start or an operation failed.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("{file}: {message}")]
    Config { file: PathBuf, message: String },
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("token file {path}: {problem}")]
    Token { path: PathBuf, problem: String },
    #[error("HTTP client: {0}")]
    Http(String),
    #[error("filesystem watcher: {0}")]
    Watch(#[from] notify::Error),
}

impl AgentError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        Self::Io { path: path.to_owned(), source }
    }

    /// True when the error is a full disk (ENOSPC or EDQUOT), which the agent waits out.
    pub fn is_disk_full(&self) -> bool {
        matches!(self, Self::Io { source, .. } if is_disk_full(source))
    }
}

/// True for "no space left on device" and "quota exceeded".
pub fn is_disk_full(e: &std::io::Error) -> bool {
    matches!(e.kind(), std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded)
}
