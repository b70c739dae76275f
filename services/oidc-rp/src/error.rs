//! The crate's error type.

use std::path::PathBuf;

use thiserror::Error;

/// Why a login could not start or finish.
#[derive(Debug, Error)]
pub enum RpError {
    /// The provider, the callback or the ID token was not acceptable.
    #[error("login: {0}")]
    Login(String),
    /// The client secret file could not be read.
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
}
