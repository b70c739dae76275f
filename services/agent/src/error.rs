//! The crate's error type.

use std::path::{Path, PathBuf};

/// Why the agent could not start or an operation failed.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("{file}: {message}")]
    Config { file: PathBuf, message: String },
    /// An I/O error on `path`. The OS error is part of the message and deliberately not the
    /// `source()`: a report that prints the chain (`{:#}`) would name it twice.
    #[error("{path}: {error}")]
    Io { path: PathBuf, error: std::io::Error },
    /// An I/O error on a folder the config names (`export_dir`, `state_dir`, `nsips.dir`): the
    /// message starts with the key, e.g. `export_dir /srv/x: No such file or directory (os error 2)`.
    /// As with `Io`, the OS error is in the message, not the `source()`.
    #[error("{key} {path}: {error}")]
    Folder { key: &'static str, path: PathBuf, error: std::io::Error },
    /// Another agent (this process or another, whose pid the lock file holds) uses the state
    /// folder: see [`crate::state_lock`].
    #[error(
        "state_dir {dir} is in use by another agent{} holding {lock_file}: two agents on one state_dir \
         upload and delete the same outbox; stop the other one (a `kizuna-agent run` started by hand, \
         or the one netd hosts), or give this one its own state_dir",
        .holder.map(|p| format!(" (pid {p})")).unwrap_or_default()
    )]
    StateDirInUse { dir: PathBuf, lock_file: PathBuf, holder: Option<u32> },
    #[error("token file {path}: {problem}")]
    Token { path: PathBuf, problem: String },
    #[error("HTTP client: {0}")]
    Http(String),
    #[error("filesystem watcher: {0}")]
    Watch(#[from] notify::Error),
}

impl AgentError {
    pub(crate) fn io(path: &Path, error: std::io::Error) -> Self {
        Self::Io { path: path.to_owned(), error }
    }

    /// An I/O error on the folder the config key `key` names.
    pub(crate) fn folder(key: &'static str, path: &Path, error: std::io::Error) -> Self {
        Self::Folder { key, path: path.to_owned(), error }
    }

    /// True when the error is a full disk (ENOSPC or EDQUOT), which the agent waits out.
    pub fn is_disk_full(&self) -> bool {
        matches!(self, Self::Io { error, .. } | Self::Folder { error, .. } if is_disk_full(error))
    }
}

/// True for "no space left on device" and "quota exceeded".
pub fn is_disk_full(e: &std::io::Error) -> bool {
    matches!(e.kind(), std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded)
}
