//! The registry database: SQLite (default) or PostgreSQL through sqlx's `Any` driver, one set of
//! queries, one migrations folder per backend with the same schema (as the store and audit do).
//!
//! `registry_state.generation` is the registry's version: every change (policy, enrollment,
//! keys, revocation) increments it in the same transaction, as that transaction's first
//! statement, so writers serialise on it and the version only ever grows.

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, Executor, Row};

use crate::error::{RegistryError, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// An open, migrated registry database.
#[derive(Clone)]
pub struct Db {
    pub pool: AnyPool,
    pub backend: Backend,
}

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

impl Db {
    /// Connect (creating a SQLite file and its directory if needed) and run the migrations.
    pub async fn open(url: &str) -> Result<Self> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Backend::Postgres
        } else {
            return Err(RegistryError::Config {
                path: "database_url".into(),
                reason: format!("must start with sqlite: or postgres:, not {url:?}"),
            });
        };
        if backend == Backend::Sqlite {
            let file = url.trim_start_matches("sqlite:").trim_start_matches("//");
            let file = file.split('?').next().unwrap_or("");
            if let Some(dir) = std::path::Path::new(file).parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(|e| RegistryError::io(dir, e))?;
            }
        }
        let url = if backend == Backend::Sqlite && !url.contains("mode=") {
            format!("{url}{}mode=rwc", if url.contains('?') { '&' } else { '?' })
        } else {
            url.to_string()
        };
        let opts: AnyConnectOptions = url.parse()?;
        let pool = match backend {
            Backend::Sqlite => {
                AnyPoolOptions::new()
                    .max_connections(4)
                    .after_connect(|conn, _| {
                        Box::pin(async move {
                            // WAL: the server reads while `kizuna` commands write. FULL: an
                            // acknowledged enrollment survives a power cut.
                            conn.execute(
                                "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA busy_timeout = 30000; PRAGMA foreign_keys = ON;",
                            )
                            .await?;
                            Ok(())
                        })
                    })
                    .connect_with(opts)
                    .await?
            }
            Backend::Postgres => AnyPoolOptions::new().max_connections(8).connect_with(opts).await?,
        };
        match backend {
            Backend::Sqlite => SQLITE_MIGRATIONS.run(&pool).await?,
            Backend::Postgres => POSTGRES_MIGRATIONS.run(&pool).await?,
        }
        Ok(Db { pool, backend })
    }

    /// The current version.
    pub async fn generation(&self) -> Result<u64> {
        let row =
            sqlx::query("SELECT generation FROM registry_state WHERE id = 1").fetch_one(&self.pool).await?;
        Ok(row.try_get::<i64, _>("generation")? as u64)
    }
}

/// Increment the version inside `tx` and return the new value. Call it first in a write
/// transaction: it takes the write lock before anything is read.
pub async fn bump(tx: &mut sqlx::Transaction<'_, sqlx::Any>) -> Result<u64> {
    sqlx::query("UPDATE registry_state SET generation = generation + 1 WHERE id = 1")
        .execute(&mut **tx)
        .await?;
    let row = sqlx::query("SELECT generation FROM registry_state WHERE id = 1").fetch_one(&mut **tx).await?;
    Ok(row.try_get::<i64, _>("generation")? as u64)
}
