//! The crate's error type.

use std::path::PathBuf;

use thiserror::Error;

/// Why a corpus could not be generated.
#[derive(Debug, Error)]
pub enum SynthError {
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error("output folder {0} exists and is not empty; refusing to mix corpora")]
    OutputNotEmpty(PathBuf),
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("generated message for {file} is not valid HL7: {source}")]
    Hl7 { file: String, source: ssmix2::Hl7Error },
    #[error("generated name {name:?} is not a valid SS-MIX2 name: {source}")]
    Name { name: String, source: ssmix2::NameError },
    #[error("writing {path}: {source}")]
    Json { path: PathBuf, source: serde_json::Error },
}

impl SynthError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io { path: path.into(), source }
    }
}
