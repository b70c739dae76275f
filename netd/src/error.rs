//! The one error type of the netd library.

use std::path::PathBuf;

use crate::policy::PolicyIssue;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{}", .0.iter().map(|i| i.to_string()).collect::<Vec<_>>().join("\n"))]
    Policy(Vec<PolicyIssue>),
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}: {reason}")]
    SiteConfig { path: PathBuf, reason: String },
    #[error("site {site:?} is not in the policy ({policy})")]
    UnknownSite { site: String, policy: String },
    #[error("key for segment {segment:?}: {reason}")]
    Key { segment: String, reason: String },
    #[error("kernel ({object}): {reason}")]
    Kernel { object: String, reason: String },
    #[error("verification failed after apply: {0}")]
    Verify(String),
    #[error("injected failure after {0} kernel changes (NETD_INJECT_FAIL_AFTER)")]
    Injected(usize),
    #[error("registry: {0}")]
    Registry(String),
    /// Another pass held `<state_dir>/pass.lock` longer than a pass may wait (see
    /// [`crate::pass_lock`]).
    #[error(
        "{path}: another netd pass{} held it for {secs} s; gave up waiting for it (nothing was changed)",
        crate::pass_lock::holder_text(*.holder)
    )]
    PassBusy { path: PathBuf, holder: Option<u32>, secs: u64 },
    #[error("state file {path}: {reason}")]
    State { path: PathBuf, reason: String },
}

impl Error {
    pub fn kernel(object: impl Into<String>, reason: impl std::fmt::Display) -> Self {
        Error::Kernel { object: object.into(), reason: reason.to_string() }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
