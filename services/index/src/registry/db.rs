//! The linkage database: SQLite (embedded default) or PostgreSQL through sqlx's `Any` driver, one set
//! of queries for both, a migrations folder per backend with the same schema (as `kizuna-store`).

pub use kizuna_db::Backend;

kizuna_db::service_db! {
    /// An open, migrated linkage database; opening and write transactions are `kizuna_db`'s.
    error: crate::IndexError,
    // Links are the record of who is whom: full durability.
    sqlite: "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA busy_timeout = 30000; PRAGMA foreign_keys = ON;",
    postgres: "",
}
