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
    // temp_store = MEMORY also keeps statement journals in memory: a multi-row INSERT inside a
    // transaction journals the pages it changes, and past 64 KiB SQLite spilled that journal to a
    // file in /var/tmp (15 KB of writes per stored file, more than the WAL itself).
    sqlite: "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 30000; PRAGMA foreign_keys = ON; \
             PRAGMA cache_size = -65536; PRAGMA wal_autocheckpoint = 16384; PRAGMA temp_store = MEMORY;",
    postgres: "SET synchronous_commit = off",
}

#[cfg(test)]
mod tests {
    /// The connection's open temporary files (SQLite names them `etilqs_…` and unlinks them).
    fn sqlite_temp_files() -> Vec<String> {
        std::fs::read_dir("/proc/self/fd")
            .unwrap()
            .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
            .map(|p| p.display().to_string())
            .filter(|p| p.contains("etilqs_"))
            .collect()
    }

    /// A statement that changes many existing pages inside a transaction (as the records commit
    /// and the search writer do) keeps its statement journal in memory: no temp file is written
    /// and thrown away at every batch.
    #[tokio::test]
    async fn a_large_change_inside_a_transaction_writes_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("index.sqlite").display());
        let db = super::Db::open(&url).await.unwrap();
        let mut tx = db.pool.begin().await.unwrap();
        sqlx::query("CREATE TABLE spill (x INTEGER PRIMARY KEY, y TEXT NOT NULL UNIQUE)")
            .execute(&mut *tx)
            .await
            .unwrap();
        sqlx::query(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 4000) \
             INSERT INTO spill SELECT i, printf('%0200d', i) FROM n",
        )
        .execute(&mut *tx)
        .await
        .unwrap();
        // Changes every page the INSERT made (~2 MB): past 64 KiB a statement journal on a
        // file-backed temp store spills to /var/tmp.
        sqlx::query("UPDATE spill SET y = y || 'x'").execute(&mut *tx).await.unwrap();
        let temp = sqlite_temp_files();
        tx.rollback().await.unwrap();
        assert!(temp.is_empty(), "SQLite wrote temp files during the transaction: {temp:?}");
    }
}
