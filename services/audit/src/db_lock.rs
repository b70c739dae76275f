//! One writer per audit database, beside one writer per data folder ([`crate::data_lock`]).
//!
//! `database_url` may point outside `data_dir`: two audit services with their own data folders
//! but one PostgreSQL database (or one SQLite file) both appended events and checkpoints, each
//! with its own leaf mirror, and verify then reported tampering nobody did. The data folder's
//! lock cannot see that. So the log also locks its database for its lifetime:
//!
//! - PostgreSQL: a session advisory lock (`pg_try_advisory_lock`, scoped to the database) on a
//!   connection of its own, outside the pool; the server drops it when that connection ends
//!   however the process ends;
//! - SQLite: `flock(2)` on `<database file>.writer.lock` beside the file (crate
//!   `kizuna-lockfile`), which also ends with the process.
//!
//! Readers (`kizuna audit verify`, `kizuna audit search`) take neither.

use sqlx::{AnyConnection, Connection, Row};

use crate::error::{AuditError, Result};

/// The advisory lock's key: "kizuna-audit-writer" as a fixed 64-bit number.
const PG_LOCK_KEY: i64 = 0x4b5a_4155_4449_5457;

/// Held while alive; dropping it (or the process ending) releases the database.
#[derive(Debug)]
pub enum DbWriterLock {
    /// The session holding the advisory lock.
    Postgres(Box<AnyConnection>),
    /// The lock file beside the SQLite database.
    Sqlite(kizuna_lockfile::DirLock),
    /// An in-memory SQLite database: nobody else can open it.
    Memory,
}

impl DbWriterLock {
    /// Locks the database `url` names, or fails at once with [`AuditError::DatabaseInUse`].
    pub async fn acquire(url: &str) -> Result<Self> {
        let named = kizuna_db::postgres_server(url);
        match kizuna_db::check_url(url).map_err(|e| AuditError::invalid("database_url", e.to_string()))? {
            kizuna_db::Backend::Postgres => {
                sqlx::any::install_default_drivers();
                let mut conn = AnyConnection::connect(url).await?;
                let got: bool = sqlx::query("SELECT pg_try_advisory_lock($1)")
                    .bind(PG_LOCK_KEY)
                    .fetch_one(&mut conn)
                    .await?
                    .try_get(0)?;
                if !got {
                    conn.close().await.ok();
                    return Err(AuditError::DatabaseInUse {
                        database: named,
                        lock: "a PostgreSQL advisory lock".into(),
                    });
                }
                Ok(Self::Postgres(Box::new(conn)))
            }
            kizuna_db::Backend::Sqlite => {
                let Some(file) = kizuna_db::sqlite_file(url) else { return Ok(Self::Memory) };
                let dir = match file.parent() {
                    Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
                    _ => std::path::PathBuf::from("."),
                };
                crate::durable::create_dir_all(&dir)?;
                let name = format!("{}.writer.lock", file.file_name().unwrap_or_default().to_string_lossy());
                match kizuna_lockfile::DirLock::try_acquire(&dir, &name) {
                    Ok(lock) => Ok(Self::Sqlite(lock)),
                    Err(kizuna_lockfile::LockError::Held { lock_file, holder, .. }) => {
                        let pid = holder.map(|p| format!(" (pid {p})")).unwrap_or_default();
                        Err(AuditError::DatabaseInUse {
                            database: file.display().to_string(),
                            lock: format!("{}{pid}", lock_file.display()),
                        })
                    }
                    Err(kizuna_lockfile::LockError::Io { path, source }) => {
                        Err(AuditError::io(&path, source))
                    }
                }
            }
        }
    }
}
