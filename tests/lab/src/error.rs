//! The lab's one error type.

use std::path::PathBuf;

/// Everything that can go wrong while building, booting or driving lab guests.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{step} failed ({status}): {stderr}")]
    Setup { step: String, status: String, stderr: String },
    #[error("guest {vm}: qemu exited early ({status}); console {log}:\n{console_tail}")]
    QemuExited { vm: String, status: String, log: PathBuf, console_tail: String },
    #[error("guest {vm}: timed out after {secs} s waiting for {what}; console {log}:\n{console_tail}")]
    Timeout { vm: String, what: String, secs: u64, log: PathBuf, console_tail: String },
    #[error("guest {vm}: command channel: {detail}")]
    Protocol { vm: String, detail: String },
    #[error("guest {vm}: `{script}` exited {code}\nstdout:\n{stdout}\nstderr:\n{stderr}")]
    CommandFailed { vm: String, script: String, code: i32, stdout: String, stderr: String },
    #[error("no guest named {0} in this lab")]
    NoSuchVm(String),
}

impl LabError {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        LabError::Io { context: context.into(), source }
    }
}

/// Result with [`LabError`].
pub type Result<T> = std::result::Result<T, LabError>;
