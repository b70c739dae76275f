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
    #[error("mail: {0}")]
    Mail(String),
    #[error("{what}: {source}")]
    Io { what: String, source: std::io::Error },
}
