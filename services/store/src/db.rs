//! The IndexDB connection: SQLite (embedded default) or PostgreSQL, through sqlx's `Any` driver so
//! one set of queries serves both. Each backend has its own migrations folder with the same schema.

pub use kizuna_db::Backend;

kizuna_db::service_db! {
    /// An open, migrated IndexDB; opening and write transactions are `kizuna_db`'s.
    error: crate::StoreError,
    // WAL lets readers run beside the writer. synchronous=NORMAL (and PostgreSQL's
    // synchronous_commit = off) is enough: the change journal is the commit record, and
    // recovery replays into the index whatever a crash took from it.
    sqlite: "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 30000; PRAGMA foreign_keys = ON;",
    postgres: "SET synchronous_commit = off",
}
