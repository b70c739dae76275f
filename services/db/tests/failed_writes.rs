//! A write transaction that fails because the database is full leaves no broken connection in
//! the pool: once there is room again, every following write succeeds, and the failure is
//! reported with its cause until then.

use kizuna_db::{Db, Migrations, Tuning};
use sqlx::{Connection, Executor};

static SQLITE: sqlx::migrate::Migrator = sqlx::migrate!("./tests/migrations/sqlite");
static POSTGRES: sqlx::migrate::Migrator = sqlx::migrate!("./tests/migrations/postgres");
const MIGRATIONS: Migrations = Migrations { sqlite: &SQLITE, postgres: &POSTGRES };
/// 64 pages of 4 KiB: "database or disk is full" (`SQLITE_FULL`) past 256 KiB, on every
/// connection, as on a full filesystem.
const SMALL: Tuning = Tuning {
    sqlite: "PRAGMA journal_mode = WAL; PRAGMA busy_timeout = 30000; PRAGMA max_page_count = 64;",
    postgres: "",
};

/// One write transaction through the pool: a 20 kB row.
async fn write_row(db: &Db) -> Result<(), sqlx::Error> {
    let mut tx = db.begin_write().await?;
    let inserted = sqlx::query("INSERT INTO blobs (b) VALUES (randomblob(20000))").execute(&mut *tx).await;
    if let Err(e) = inserted {
        db.note_write_failure(&kizuna_db::error_text(&e));
        return Err(e);
    }
    db.commit(tx).await
}

#[tokio::test]
async fn after_sqlite_full_the_next_writes_succeed_and_the_cause_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("t.db");
    let url = format!("sqlite://{}", file.display());
    let db = Db::open(&url, SMALL, MIGRATIONS).await.unwrap();
    sqlx::query("CREATE TABLE blobs (b BLOB)").execute(&db.pool).await.unwrap();

    let mut full = None;
    for _ in 0..64 {
        if let Err(e) = write_row(&db).await {
            full = Some(e);
            break;
        }
    }
    let full = full.expect("the database fills up");
    assert!(kizuna_db::error_text(&full).contains("database or disk is full"), "{full}");
    // While full, every attempt fails with the cause, never with a broken connection's error.
    for _ in 0..6 {
        let e = write_row(&db).await.expect_err("still full");
        assert!(kizuna_db::error_text(&e).contains("database or disk is full"), "{e}");
    }
    let reported = db.write_failure().expect("a write failure is reported");
    assert!(reported.contains("database or disk is full"), "{reported}");
    assert!(reported.contains(&file.display().to_string()), "names the file: {reported}");

    // Room again (rows deleted by another connection): every pooled connection writes at once.
    let mut other = sqlx::AnyConnection::connect(&url).await.unwrap();
    other.execute("DELETE FROM blobs").await.unwrap();
    other.close().await.unwrap();
    for i in 0..8 {
        write_row(&db).await.unwrap_or_else(|e| panic!("write {i} after space returned: {e}"));
    }
    assert_eq!(db.write_failure(), None, "a successful commit clears the failure");
    db.pool.close().await;
}
