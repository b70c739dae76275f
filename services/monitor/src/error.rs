use thiserror::Error;

/// Why the monitor could not do something.
#[derive(Debug, Error)]
pub enum MonitorError {
    #[error("configuration: {0}")]
    Config(String),
    #[error("IndexDB: {0}")]
    Db(#[from] sqlx::Error),
    #[error(transparent)]
    Store(#[from] kizuna_store::StoreError),
    #[error("alert check: {0}")]
    Check(String),
    #[error("mail: {0}")]
    Mail(String),
    #[error("audit: {0}")]
    Audit(#[from] kizuna_audit::AuditError),
    #[error(transparent)]
    Login(#[from] kizuna_oidc_rp::RpError),
    #[error("{what}: {source}")]
    Io { what: String, source: std::io::Error },
}
