//! The auth database: SQLite (embedded default) or PostgreSQL through sqlx's `Any` driver, one set of
//! queries, one migrations folder per backend with the same schema (the store's and audit's pattern).

pub use kizuna_db::Backend;

kizuna_db::service_db! {
    /// An open, migrated auth database; opening and write transactions are `kizuna_db`'s.
    error: crate::error::AuthError,
    // WAL: logins read while codes are redeemed. synchronous=FULL: a redeemed code or a
    // lockout counter must survive a power cut.
    sqlite: "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA busy_timeout = 30000; PRAGMA foreign_keys = ON;",
    postgres: "",
}

/// Seconds since the Unix epoch: every time column holds this.
pub fn now() -> i64 {
    jiff::Timestamp::now().as_second()
}
