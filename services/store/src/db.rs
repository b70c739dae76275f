//! The IndexDB connection: SQLite (embedded default) or PostgreSQL, through sqlx's `Any` driver so
//! one set of queries serves both. Each backend has its own migrations folder with the same schema.

pub use kizuna_db::Backend;

kizuna_db::service_db! {
    /// An open, migrated IndexDB; opening and write transactions are `kizuna_db`'s.
    error: crate::StoreError,
    // WAL lets readers run beside the writer. synchronous=NORMAL (and PostgreSQL's
    // synchronous_commit = off) is enough: the change journal is the commit record, and
    // recovery replays into the index whatever a crash took from it.
    // A 64 MiB page cache per connection (allocated as used) keeps the indexes' inner pages in
    // memory as the index grows; a checkpoint every 16,384 WAL pages (64 MiB) instead of 1,000
    // lets a page changed by many commits be copied back once rather than at nearly every commit.
    sqlite: "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 30000; PRAGMA foreign_keys = ON; \
             PRAGMA cache_size = -65536; PRAGMA wal_autocheckpoint = 16384;",
    postgres: "SET synchronous_commit = off",
}
