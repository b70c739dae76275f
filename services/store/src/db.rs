//! The IndexDB connection: SQLite (embedded default) or PostgreSQL, through sqlx's `Any` driver so
//! one set of queries serves both. Each backend has its own migrations folder with the same schema.

use std::sync::Arc;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, Executor};

use crate::StoreError;

/// Which database the URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// An open, migrated IndexDB.
#[derive(Clone)]
pub struct Db {
    pub pool: AnyPool,
    pub backend: Backend,
    /// SQLite allows one writer; writers queue here instead of failing with "database is locked".
    write_lock: Arc<tokio::sync::Mutex<()>>,
}

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

impl Db {
    /// Connects (creating a SQLite file if needed) and runs the migrations.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Backend::Postgres
        } else {
            return Err(StoreError::Config(format!(
                "database_url must start with sqlite: or postgres:, not {:?}",
                url.split(':').next().unwrap_or("")
            )));
        };
        if backend == Backend::Sqlite
            && let Some(path) = sqlite_file(url)
            && let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
        {
            crate::durable::create_dirs_synced(dir)?;
        }
        let opts: AnyConnectOptions = url.parse()?;
        let pool = match backend {
            Backend::Sqlite => {
                AnyPoolOptions::new()
                    .max_connections(4)
                    .after_connect(|conn, _| {
                        Box::pin(async move {
                            // WAL lets readers run beside the writer. synchronous=NORMAL is enough:
                            // the change journal is the commit record, and recovery replays into
                            // the index whatever a crash took from it.
                            conn.execute("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 30000; PRAGMA foreign_keys = ON;")
                                .await?;
                            Ok(())
                        })
                    })
                    .connect_with(opts)
                    .await?
            }
            Backend::Postgres => {
                AnyPoolOptions::new()
                    .max_connections(8)
                    .after_connect(|conn, _| {
                        Box::pin(async move {
                            // Same reasoning as SQLite's synchronous=NORMAL: the journal is durable first.
                            conn.execute("SET synchronous_commit = off").await?;
                            Ok(())
                        })
                    })
                    .connect_with(opts)
                    .await?
            }
        };
        match backend {
            Backend::Sqlite => SQLITE_MIGRATIONS.run(&pool).await?,
            Backend::Postgres => POSTGRES_MIGRATIONS.run(&pool).await?,
        }
        Ok(Self { pool, backend, write_lock: Arc::new(tokio::sync::Mutex::new(())) })
    }

    /// Serialises write transactions on SQLite (a no-op guard on PostgreSQL).
    pub async fn write_guard(&self) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        match self.backend {
            Backend::Sqlite => Some(self.write_lock.lock().await),
            Backend::Postgres => None,
        }
    }
}

/// The file a `sqlite:` URL names, if any.
fn sqlite_file(url: &str) -> Option<std::path::PathBuf> {
    let rest = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next()?;
    (!path.is_empty() && path != ":memory:").then(|| path.into())
}
