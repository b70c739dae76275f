//! The manifest: every file of a tree with the sha256 recorded when it was written, in SQLite
//! (`WITHOUT ROWID`, keyed by `(dkey, name)` so that a key-order scan walks the tree depth-first).
//! The primary's manifest is built from the store's journal (and from files others write into the
//! tree); each replica keeps its own, written in the same transaction that acknowledges a batch.
//! Verification streams both and never loads either.

use std::path::Path;
use std::str::FromStr;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Row, Sqlite, Transaction};

use crate::BackupError;
use crate::paths::{DKEY_SEP, TreePath};

/// Where a file in the manifest came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// Written by the store (a journal entry).
    Journal = 0,
    /// Written into the tree by someone else (seen by the watcher or a rescan), or by a repair.
    Foreign = 1,
}

/// One recorded file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    pub name: String,
    pub sha256: String,
    pub size: u64,
    /// Modification time (ns) of the file when it was recorded (replicas; 0 on the primary).
    pub mtime_ns: i64,
    pub origin: i64,
}

/// An open manifest.
#[derive(Clone)]
pub struct Manifest {
    pub pool: SqlitePool,
}

const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS files (dkey TEXT NOT NULL, name TEXT NOT NULL, sha256 TEXT NOT NULL, \
     size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL, origin INTEGER NOT NULL, PRIMARY KEY (dkey, name)) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS state (key TEXT PRIMARY KEY, value INTEGER NOT NULL)",
    // Changes to files others wrote into the primary's tree, in order, for the replicas' cursors.
    "CREATE TABLE IF NOT EXISTS foreign_log (id INTEGER PRIMARY KEY AUTOINCREMENT, path TEXT NOT NULL, \
     sha256 TEXT, size INTEGER)",
];

impl Manifest {
    /// Opens (creating) the manifest at `path`. `durable` makes every commit fsync (a replica's
    /// acknowledgement depends on it); the primary's manifest can be rebuilt from the journal.
    pub async fn open(path: &Path, durable: bool) -> Result<Self, BackupError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| BackupError::io(dir, e))?;
        }
        let opts = SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(if durable { SqliteSynchronous::Full } else { SqliteSynchronous::Normal })
            .busy_timeout(std::time::Duration::from_secs(30))
            // A bounded page cache: verification of any size runs in constant memory.
            .pragma("cache_size", format!("-{CACHE_KIB}"));
        let pool = SqlitePoolOptions::new().max_connections(4).connect_with(opts).await?;
        for s in SCHEMA {
            sqlx::query(*s).execute(&pool).await?;
        }
        Ok(Self { pool })
    }

    /// A state value (0 when unset).
    pub async fn state(&self, key: &str) -> Result<u64, BackupError> {
        let row = sqlx::query("SELECT value FROM state WHERE key = ?1")
            .bind(key)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| r.get::<i64, _>(0) as u64).unwrap_or(0))
    }

    /// The recorded file at `path`.
    pub async fn get(&self, path: &TreePath) -> Result<Option<Recorded>, BackupError> {
        let (dkey, name) = path.key();
        let row = sqlx::query(
            "SELECT name, sha256, size, mtime_ns, origin FROM files WHERE dkey = ?1 AND name = ?2",
        )
        .bind(dkey)
        .bind(name)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| recorded(&r)))
    }

    /// Number of recorded files.
    pub async fn count(&self) -> Result<u64, BackupError> {
        let n: i64 = sqlx::query("SELECT count(*) FROM files").fetch_one(&self.pool).await?.get(0);
        Ok(n as u64)
    }

    /// Calls `each` with every directory at or below `prefix` (a directory key) that holds recorded
    /// files, in key order, with its files sorted by name. Rows are read in pages of
    /// [`WALK_PAGE`] (keyset pagination on the primary key): a page and one directory's files are
    /// in memory at a time, and SQLite hands rows over a page at a time instead of one by one
    /// (row-by-row streaming cost a thread wake-up per row, which dominated a verify's profile).
    pub async fn walk<F>(&self, prefix: &str, mut each: F) -> Result<(), BackupError>
    where
        F: FnMut(&str, Vec<Recorded>) -> Result<(), BackupError>,
    {
        const COLS: &str = "SELECT dkey, name, sha256, size, mtime_ns, origin FROM files";
        // The subtree below `prefix`: keys in [lo, hi) (hi = None: to the end).
        let (lo, hi) = if prefix.is_empty() {
            (String::new(), None)
        } else {
            (format!("{prefix}{DKEY_SEP}"), Some(format!("{prefix}\u{2}")))
        };
        let mut current: Option<(String, Vec<Recorded>)> = None;
        let mut group = |r: &sqlx::sqlite::SqliteRow| -> Result<(), BackupError> {
            let dkey: &str = r.get(0);
            match &mut current {
                Some((d, files)) if d == dkey => files.push(recorded_at(r, 1)),
                _ => {
                    if let Some((d, files)) = current.take() {
                        each(&d, files)?;
                    }
                    current = Some((dkey.to_owned(), vec![recorded_at(r, 1)]));
                }
            }
            Ok(())
        };
        // One connection for the whole walk: short queries on the pool would each take whichever
        // connection is free and open new ones, each with its own page cache.
        let mut conn = self.pool.acquire().await?;
        // A walk reads in key order, so a small page cache serves it as well as a big one; the
        // connection's normal size is restored when the walk ends.
        sqlx::query(sqlx::AssertSqlSafe(format!("PRAGMA cache_size = -{WALK_CACHE_KIB}")))
            .execute(&mut *conn)
            .await?;
        let own = sqlx::query(sqlx::AssertSqlSafe(format!("{COLS} WHERE dkey = ?1 ORDER BY name")))
            .bind(prefix)
            .fetch_all(&mut *conn)
            .await?;
        for r in &own {
            group(r)?;
        }
        // The first page starts at `lo` (the root's own files excluded: they were read above);
        // each later page strictly after the (dkey, name) of the last row read.
        let mut after: Option<(String, String)> = None;
        loop {
            let upper = if hi.is_some() { " AND dkey < ?3" } else { "" };
            let from = match &after {
                None if prefix.is_empty() => "dkey > ?1 AND ?2 = ''",
                None => "dkey >= ?1 AND ?2 = ''",
                Some(_) => "(dkey, name) > (?1, ?2)",
            };
            let sql = format!("{COLS} WHERE {from}{upper} ORDER BY dkey, name LIMIT {WALK_PAGE}");
            let (d, n) = after.clone().unwrap_or_else(|| (lo.clone(), String::new()));
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(d).bind(n);
            if let Some(h) = &hi {
                q = q.bind(h);
            }
            let rows = q.fetch_all(&mut *conn).await?;
            for r in &rows {
                group(r)?;
            }
            match rows.last() {
                Some(last) if rows.len() == WALK_PAGE => after = Some((last.get(0), last.get(1))),
                _ => break,
            }
        }
        sqlx::query(sqlx::AssertSqlSafe(format!("PRAGMA cache_size = -{CACHE_KIB}")))
            .execute(&mut *conn)
            .await?;
        if let Some((d, files)) = current.take() {
            each(&d, files)?;
        }
        Ok(())
    }
}

/// The manifest connections' SQLite page cache, in KiB.
const CACHE_KIB: u32 = 8192;
/// The page cache while a connection walks the manifest, in KiB.
const WALK_CACHE_KIB: u32 = 1024;

/// Rows per page of [`Manifest::walk`].
pub const WALK_PAGE: usize = 512;

fn recorded(r: &sqlx::sqlite::SqliteRow) -> Recorded {
    recorded_at(r, 0)
}

fn recorded_at(r: &sqlx::sqlite::SqliteRow, at: usize) -> Recorded {
    Recorded {
        name: r.get(at),
        sha256: r.get(at + 1),
        size: r.get::<i64, _>(at + 2) as u64,
        mtime_ns: r.get(at + 3),
        origin: r.get(at + 4),
    }
}

/// Records (or replaces) a file.
pub async fn upsert(
    tx: &mut Transaction<'static, Sqlite>,
    path: &TreePath,
    sha256: &str,
    size: u64,
    mtime_ns: i64,
    origin: Origin,
) -> Result<(), BackupError> {
    let (dkey, name) = path.key();
    sqlx::query(
        "INSERT INTO files (dkey, name, sha256, size, mtime_ns, origin) VALUES (?1, ?2, ?3, ?4, ?5, ?6) \
         ON CONFLICT (dkey, name) DO UPDATE SET sha256 = excluded.sha256, size = excluded.size, \
         mtime_ns = excluded.mtime_ns, origin = excluded.origin",
    )
    .bind(dkey)
    .bind(name)
    .bind(sha256)
    .bind(size as i64)
    .bind(mtime_ns)
    .bind(origin as i64)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Forgets a file.
pub async fn remove(tx: &mut Transaction<'static, Sqlite>, path: &TreePath) -> Result<(), BackupError> {
    let (dkey, name) = path.key();
    sqlx::query("DELETE FROM files WHERE dkey = ?1 AND name = ?2")
        .bind(dkey)
        .bind(name)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Forgets every file at or below the directory `dkey`.
pub async fn remove_tree(tx: &mut Transaction<'static, Sqlite>, dkey: &str) -> Result<(), BackupError> {
    sqlx::query("DELETE FROM files WHERE dkey = ?1 OR (dkey >= ?2 AND dkey < ?3)")
        .bind(dkey)
        .bind(format!("{dkey}{DKEY_SEP}"))
        .bind(format!("{dkey}\u{2}"))
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Sets a state value.
pub async fn set_state(
    tx: &mut Transaction<'static, Sqlite>,
    key: &str,
    value: u64,
) -> Result<(), BackupError> {
    sqlx::query("INSERT INTO state (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO UPDATE SET value = excluded.value")
        .bind(key)
        .bind(value as i64)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn walk_streams_a_subtree_depth_first() {
        let dir = tempfile::tempdir().unwrap();
        let m = Manifest::open(&dir.path().join("m.sqlite"), false).await.unwrap();
        let mut tx = m.pool.begin().await.unwrap();
        for p in ["F/a/x", "F/a-b/y", "F/a/c/z", "F/top", "G/q"] {
            upsert(&mut tx, &TreePath::parse(p).unwrap(), "00", 1, 0, Origin::Journal).await.unwrap();
        }
        tx.commit().await.unwrap();
        let mut seen = Vec::new();
        m.walk("F", |d, files| {
            seen.push((crate::paths::dir_of_dkey(d), files.into_iter().map(|f| f.name).collect::<Vec<_>>()));
            Ok(())
        })
        .await
        .unwrap();
        let want: Vec<(String, Vec<String>)> = vec![
            ("F".into(), vec!["top".into()]),
            ("F/a".into(), vec!["x".into()]),
            ("F/a/c".into(), vec!["z".into()]),
            ("F/a-b".into(), vec!["y".into()]),
        ];
        assert_eq!(seen, want);
        let mut tx = m.pool.begin().await.unwrap();
        remove_tree(&mut tx, &crate::paths::dkey_of_dir("F/a")).await.unwrap();
        tx.commit().await.unwrap();
        assert_eq!(m.count().await.unwrap(), 3);
    }

    /// Directories larger than a page and page boundaries inside a directory: every file comes
    /// exactly once, each directory once with all its files, in key order, from the root too.
    #[tokio::test]
    async fn walk_pages_without_losing_or_repeating_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let m = Manifest::open(&dir.path().join("m.sqlite"), false).await.unwrap();
        let mut tx = m.pool.begin().await.unwrap();
        let mut paths = vec!["rootfile".to_owned()];
        paths.extend((0..WALK_PAGE + 300).map(|i| format!("F/big/{i:05}")));
        paths.extend((0..WALK_PAGE / 2).map(|i| format!("F/small{}/{i}", i % 3)));
        paths.extend((0..7).map(|i| format!("G/{i}")));
        for p in &paths {
            upsert(&mut tx, &TreePath::parse(p).unwrap(), "00", 1, 0, Origin::Journal).await.unwrap();
        }
        tx.commit().await.unwrap();
        for (prefix, want) in [("", paths.len()), ("F", paths.len() - 8), ("F/big", WALK_PAGE + 300)] {
            let mut seen: Vec<String> = Vec::new();
            let mut dirs: Vec<String> = Vec::new();
            m.walk(&crate::paths::dkey_of_dir(prefix), |d, files| {
                let d = crate::paths::dir_of_dkey(d);
                dirs.push(d.clone());
                seen.extend(
                    files.into_iter().map(|f| if d.is_empty() { f.name } else { format!("{d}/{}", f.name) }),
                );
                Ok(())
            })
            .await
            .unwrap();
            assert_eq!(seen.len(), want, "{prefix:?}");
            let unique: std::collections::BTreeSet<&String> = seen.iter().collect();
            assert_eq!(unique.len(), want, "{prefix:?}: a file came twice");
            let mut sorted_dirs = dirs.clone();
            sorted_dirs.dedup();
            assert_eq!(sorted_dirs, dirs, "{prefix:?}: a directory came twice");
        }
    }
}
