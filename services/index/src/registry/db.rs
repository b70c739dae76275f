//! The linkage database: SQLite (embedded default) or PostgreSQL through sqlx's `Any` driver, one set
//! of queries for both, a migrations folder per backend with the same schema (as `kizuna-store`).

use std::sync::Arc;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, Executor};

use crate::IndexError;

/// Which database the URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// An open, migrated linkage database.
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
    /// Connects (creating a SQLite file if needed, e.g. `sqlite:///var/lib/kizuna/index.db?mode=rwc`)
    /// and runs the migrations.
    pub async fn open(url: &str) -> Result<Self, IndexError> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Backend::Postgres
        } else {
            return Err(IndexError::Invalid {
                what: "database URL",
                value: url.split(':').next().unwrap_or("").to_owned(),
                reason: "must start with sqlite: or postgres:",
            });
        };
        let opts: AnyConnectOptions = url.parse().map_err(IndexError::db("parsing the database URL"))?;
        let pool = match backend {
            Backend::Sqlite => AnyPoolOptions::new()
                .max_connections(4)
                .after_connect(|conn, _| {
                    Box::pin(async move {
                        // Links are the record of who is whom: full durability.
                        conn.execute(
                            "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA busy_timeout = 30000; PRAGMA foreign_keys = ON;",
                        )
                        .await?;
                        Ok(())
                    })
                })
                .connect_with(opts)
                .await
                .map_err(IndexError::db("connecting to SQLite"))?,
            Backend::Postgres => AnyPoolOptions::new()
                .max_connections(8)
                .connect_with(opts)
                .await
                .map_err(IndexError::db("connecting to PostgreSQL"))?,
        };
        match backend {
            Backend::Sqlite => SQLITE_MIGRATIONS.run(&pool).await?,
            Backend::Postgres => POSTGRES_MIGRATIONS.run(&pool).await?,
        }
        Ok(Self { pool, backend, write_lock: Arc::new(tokio::sync::Mutex::new(())) })
    }

    /// Serialises write transactions on SQLite (no guard on PostgreSQL, whose transactions and
    /// primary keys keep concurrent enrollments consistent).
    pub async fn write_guard(&self) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        match self.backend {
            Backend::Sqlite => Some(self.write_lock.lock().await),
            Backend::Postgres => None,
        }
    }
}
