//! Errors of the registry client side.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("enrollment token: {0}")]
    Token(String),
    /// The registry answered with an error; `message` is its explanation.
    #[error("registry refused ({status}): {message}")]
    Refused { status: u16, message: String },
    #[error("cannot reach the registry at {url}: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("view rejected: {0}")]
    View(String),
    #[error("{path}: {reason}")]
    File { path: PathBuf, reason: String },
    #[error(transparent)]
    Netd(#[from] crate::error::Error),
}
