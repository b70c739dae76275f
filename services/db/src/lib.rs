//! One way for every centre service to open its database: SQLite (the embedded default) or
//! PostgreSQL through sqlx's `Any` driver, so that one set of queries serves both. Each service
//! keeps its own migrations folder per backend and its own connection tuning; this crate holds what
//! they share.
//!
//! Write transactions go through [`Db::begin_write`]. On SQLite a plain `BEGIN` is deferred: it
//! reads from a snapshot and asks for the write lock only at its first write, and when another
//! connection has committed in between, SQLite cannot upgrade the stale snapshot and fails at once
//! with `SQLITE_BUSY_SNAPSHOT` ("database is locked", code 517) — the busy timeout does not help.
//! `BEGIN IMMEDIATE` takes the write lock first, waiting out the busy timeout, so a transaction that
//! reads and then writes never fails that way.
//!
//! A write transaction that fails can leave its connection unusable: after a failed SQLite
//! `COMMIT` (or a statement that made SQLite roll back by itself, e.g. `SQLITE_FULL`), sqlx 0.9
//! still counts the connection as inside a transaction, and every later `begin_write` on it fails
//! with "attempted to call begin_with at non-zero transaction depth". The pool therefore closes,
//! instead of reusing, every connection that comes back still inside a transaction (module
//! `hygiene`); and [`Db::commit`] with [`Db::write_failure`] keep the first error of a run of
//! failed writes, so a service can report the real cause (e.g. "database or disk is full").
//!
//! Opening PostgreSQL starts with one direct connection (at most [`CONNECT_TIMEOUT`]) before the
//! pool: a pool only says that it "timed out while waiting for an open connection" after 30 s,
//! whatever went wrong, while the direct attempt reports the cause (connection refused, role or
//! database does not exist, authentication failed) and names the server ([`DbError::Connect`]).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgDatabaseError};
use sqlx::{Any, AnyConnection, AnyPool, Connection, Executor, Transaction};

mod hygiene;
mod write_health;
use write_health::WriteHealth;

/// How long [`Db::open`]'s first, direct connection to PostgreSQL may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a database could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("database_url must start with sqlite: or postgres:, not {scheme:?}")]
    Scheme { scheme: String },
    #[error("creating the database directory {path}: {source}")]
    Directory { path: PathBuf, source: std::io::Error },
    #[error("database: {}", error_text(.0))]
    Sqlx(#[from] sqlx::Error),
    /// The first connection failed: `server` names host:port/database and user (never the
    /// password), `reason` the cause.
    #[error("database: cannot connect to {server}: {reason}")]
    Connect { server: String, reason: String },
    #[error("database migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("locking {path} for the migrations: {source}")]
    MigrationLock { path: PathBuf, source: std::io::Error },
}

/// Which database a URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// An error's text without what misleads an operator: a PostgreSQL server error is its message
/// and SQLSTATE, without the `at line N` sqlx appends (a line of PostgreSQL's C source, not of
/// anything the operator wrote). Other errors are their `Display`.
pub fn error_text(e: &sqlx::Error) -> String {
    match e.as_database_error().and_then(|d| d.try_downcast_ref::<PgDatabaseError>()) {
        Some(pg) => format!("{} (SQLSTATE {})", pg.message(), pg.code()),
        None => e.to_string(),
    }
}

/// Checks a database URL without connecting or creating anything: its scheme and its syntax.
pub fn check_url(url: &str) -> Result<Backend, DbError> {
    let backend = Backend::of_url(url)?;
    url.parse::<AnyConnectOptions>()?;
    if backend == Backend::Postgres {
        url.parse::<PgConnectOptions>()?;
    }
    Ok(backend)
}

/// Which PostgreSQL server, database and user `url` names, for messages: never the password.
pub fn postgres_server(url: &str) -> String {
    match url.parse::<PgConnectOptions>() {
        Ok(o) => {
            let at = match o.get_socket() {
                Some(dir) => format!("{} (socket in {})", o.get_port(), dir.display()),
                None => format!("{}:{}", o.get_host(), o.get_port()),
            };
            let db = o.get_database().unwrap_or(o.get_username());
            format!("PostgreSQL {at}/{db} as user {}", o.get_username())
        }
        Err(_) => "PostgreSQL (unparsable URL)".to_owned(),
    }
}

/// One direct connection to PostgreSQL, closed again: the real cause when it fails.
async fn try_postgres(url: &str, opts: &AnyConnectOptions) -> Result<(), DbError> {
    let fail = |reason: String| DbError::Connect { server: postgres_server(url), reason };
    match tokio::time::timeout(CONNECT_TIMEOUT, AnyConnection::connect_with(opts)).await {
        Ok(Ok(conn)) => {
            conn.close().await.ok();
            Ok(())
        }
        Ok(Err(e)) => Err(fail(error_text(&e))),
        Err(_) => Err(fail(format!("no answer within {} s", CONNECT_TIMEOUT.as_secs()))),
    }
}

impl Backend {
    /// The backend of `url`, by its scheme.
    pub fn of_url(url: &str) -> Result<Self, DbError> {
        if url.starts_with("sqlite:") {
            Ok(Backend::Sqlite)
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Ok(Backend::Postgres)
        } else {
            Err(DbError::Scheme { scheme: url.split(':').next().unwrap_or("").to_owned() })
        }
    }
}

/// A service's connection tuning: statements run on every new connection.
#[derive(Debug, Clone, Copy)]
pub struct Tuning {
    /// For SQLite, e.g. `PRAGMA journal_mode = WAL; PRAGMA busy_timeout = 30000; …`.
    pub sqlite: &'static str,
    /// For PostgreSQL, e.g. `SET synchronous_commit = off`; empty for none.
    pub postgres: &'static str,
}

/// A service's migrations, one folder per backend with the same schema.
#[derive(Clone, Copy)]
pub struct Migrations {
    pub sqlite: &'static Migrator,
    pub postgres: &'static Migrator,
}

/// An open, migrated database.
#[derive(Clone)]
pub struct Db {
    pub pool: AnyPool,
    pub backend: Backend,
    /// SQLite allows one writer; this process's writers queue here rather than in SQLite's
    /// busy-wait loop.
    write_lock: Arc<tokio::sync::Mutex<()>>,
    /// The first error since the last successful write transaction (see [`Db::write_failure`]).
    health: Arc<WriteHealth>,
    /// Where the database is, for messages: the SQLite file or the PostgreSQL server.
    location: Arc<str>,
}

impl Db {
    /// Connect (creating a SQLite file and its directory if needed) and run the migrations.
    pub async fn open(url: &str, tuning: Tuning, migrations: Migrations) -> Result<Self, DbError> {
        sqlx::any::install_default_drivers();
        let backend = Backend::of_url(url)?;
        let url = match backend {
            Backend::Sqlite => {
                if let Some(dir) = sqlite_file(url).as_deref().and_then(Path::parent) {
                    create_dirs_synced(dir)?;
                }
                if url.contains("mode=") {
                    url.to_owned()
                } else {
                    format!("{url}{}mode=rwc", if url.contains('?') { '&' } else { '?' })
                }
            }
            Backend::Postgres => url.to_owned(),
        };
        let opts: AnyConnectOptions = url.parse()?;
        if backend == Backend::Postgres {
            try_postgres(&url, &opts).await?;
        }
        let setup = match backend {
            Backend::Sqlite => tuning.sqlite,
            Backend::Postgres => tuning.postgres,
        };
        let pool = AnyPoolOptions::new()
            .max_connections(if backend == Backend::Sqlite { 4 } else { 8 })
            .after_release(|conn, _| Box::pin(hygiene::reusable_after_release(conn)))
            .before_acquire(|conn, _| Box::pin(async move { Ok(hygiene::reusable(conn)) }))
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if !setup.is_empty() {
                        conn.execute(setup).await?;
                    }
                    Ok(())
                })
            })
            .connect_with(opts)
            .await?;
        match backend {
            Backend::Sqlite => {
                // sqlx takes no lock around SQLite migrations (PostgreSQL's take an advisory
                // lock): two processes opening a new database at once (the store and the admin
                // screen at a centre's first boot) both applied them, and one failed with "table
                // already exists". An exclusive lock on a file beside the database orders them.
                let _lock = match sqlite_file(&url) {
                    Some(file) => Some(migration_lock(&file).await?),
                    None => None,
                };
                migrations.sqlite.run(&pool).await?
            }
            Backend::Postgres => migrations.postgres.run(&pool).await?,
        }
        let location = match backend {
            Backend::Sqlite => sqlite_file(&url).map_or_else(|| url.clone(), |f| f.display().to_string()),
            Backend::Postgres => postgres_server(&url),
        };
        Ok(Db {
            pool,
            backend,
            write_lock: Arc::new(tokio::sync::Mutex::new(())),
            health: Arc::default(),
            location: location.into(),
        })
    }

    /// Begin a transaction that will write: `BEGIN IMMEDIATE` on SQLite (see the crate doc),
    /// a plain `BEGIN` on PostgreSQL. A failure is noted for [`Db::write_failure`].
    pub async fn begin_write(&self) -> Result<Transaction<'static, Any>, sqlx::Error> {
        let begun = match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await,
            Backend::Postgres => self.pool.begin().await,
        };
        begun.inspect_err(|e| self.note_write_failure(&error_text(e)))
    }

    /// Commits a write transaction and notes the outcome for [`Db::write_failure`]: a success
    /// clears it. A connection the failed commit left unusable is closed when it comes back to
    /// the pool (see the crate doc), so the next [`Db::begin_write`] gets a working one.
    pub async fn commit(&self, tx: Transaction<'static, Any>) -> Result<(), sqlx::Error> {
        match tx.commit().await {
            Ok(()) => {
                self.health.clear();
                Ok(())
            }
            Err(e) => {
                self.note_write_failure(&error_text(&e));
                Err(e)
            }
        }
    }

    /// Notes a failed write (a statement inside a write transaction, or anything else the
    /// caller counts as one). Only the first failure since the last successful [`Db::commit`]
    /// is kept: it is the cause, what follows is usually its consequence.
    pub fn note_write_failure(&self, why: &str) {
        self.health.note(why);
    }

    /// The first write failure since the last successful [`Db::commit`], with the database's
    /// location: `None` while writes work. For health checks: a `SELECT 1` succeeds on a full
    /// disk.
    pub fn write_failure(&self) -> Option<String> {
        self.health.failure().map(|why| format!("{}: {why}", self.location))
    }

    /// The SQLite file, or the PostgreSQL server and database (never the password).
    pub fn location(&self) -> &str {
        &self.location
    }

    /// Serialises this process's write transactions on SQLite (no guard on PostgreSQL).
    pub async fn write_guard(&self) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        match self.backend {
            Backend::Sqlite => Some(self.write_lock.lock().await),
            Backend::Postgres => None,
        }
    }
}

/// The file a `sqlite:` URL names, if any (not for `:memory:`).
pub fn sqlite_file(url: &str) -> Option<PathBuf> {
    let rest = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next()?;
    (!path.is_empty() && path != ":memory:").then(|| path.into())
}

/// Holds an exclusive `flock` on `<database>.migrate-lock` until dropped (waiting for another
/// process's migrations to finish first).
async fn migration_lock(db_file: &Path) -> Result<std::fs::File, DbError> {
    let mut name = db_file.as_os_str().to_owned();
    name.push(".migrate-lock");
    let path = PathBuf::from(name);
    let err = |source| DbError::MigrationLock { path: path.clone(), source };
    let file =
        std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(&path).map_err(err)?;
    tokio::task::spawn_blocking(move || file.lock().map(|()| file))
        .await
        .map_err(|e| err(std::io::Error::other(e)))?
        .map_err(err)
}

/// `mkdir -p` that also syncs each parent whose entry it added, so the new directory survives a
/// power cut.
fn create_dirs_synced(dir: &Path) -> Result<(), DbError> {
    if dir.as_os_str().is_empty() || dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent() {
        create_dirs_synced(parent)?;
    }
    let err = |source| DbError::Directory { path: dir.to_owned(), source };
    match std::fs::create_dir(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(()),
        Err(e) => return Err(err(e)),
    }
    let parent = dir.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::File::open(parent).and_then(|f| f.sync_all()).map_err(err)
}

/// Defines a service's `Db`: a newtype over [`Db`] (reached through `Deref`) whose `open(url)`
/// runs the calling crate's `migrations/sqlite` or `migrations/postgres` with the given tuning and
/// returns the crate's own error type (which must implement `From<DbError>`).
#[macro_export]
macro_rules! service_db {
    ($(#[$doc:meta])* error: $err:ty, sqlite: $sqlite:expr, postgres: $postgres:expr $(,)?) => {
        $(#[$doc])*
        #[derive(Clone)]
        pub struct Db($crate::Db);

        impl ::std::ops::Deref for Db {
            type Target = $crate::Db;
            fn deref(&self) -> &$crate::Db {
                &self.0
            }
        }

        impl Db {
            /// Connect (creating a SQLite file and its directories if needed) and run the migrations.
            pub async fn open(url: &str) -> ::std::result::Result<Self, $err> {
                static SQLITE: ::sqlx::migrate::Migrator = ::sqlx::migrate!("./migrations/sqlite");
                static POSTGRES: ::sqlx::migrate::Migrator = ::sqlx::migrate!("./migrations/postgres");
                let tuning = $crate::Tuning { sqlite: $sqlite, postgres: $postgres };
                let migrations = $crate::Migrations { sqlite: &SQLITE, postgres: &POSTGRES };
                Ok(Db($crate::Db::open(url, tuning, migrations).await?))
            }
        }
    };
}

mod test_postgres;
pub use test_postgres::{
    MAX_AGE as TEST_DATABASE_MAX_AGE, create_test_database, fresh_test_postgres, test_postgres_server,
};
