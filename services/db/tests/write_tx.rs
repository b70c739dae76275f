//! Write transactions under concurrency: a read-then-write transaction on SQLite fails with a
//! stale snapshot when it begins deferred, and never when it begins through `begin_write`.

use kizuna_db::{Backend, Db, DbError, Migrations, Tuning};
use sqlx::Row;

static SQLITE: sqlx::migrate::Migrator = sqlx::migrate!("./tests/migrations/sqlite");
static POSTGRES: sqlx::migrate::Migrator = sqlx::migrate!("./tests/migrations/postgres");
const MIGRATIONS: Migrations = Migrations { sqlite: &SQLITE, postgres: &POSTGRES };
const TUNING: Tuning =
    Tuning { sqlite: "PRAGMA journal_mode = WAL; PRAGMA busy_timeout = 30000;", postgres: "" };

async fn read_n(tx: &mut sqlx::Transaction<'static, sqlx::Any>) -> i64 {
    sqlx::query("SELECT n FROM counter WHERE id = 1").fetch_one(&mut **tx).await.unwrap().get(0)
}

/// One read-then-write transaction that another connection's commit overtakes after its read.
async fn overtaken_increment(db: &Db, immediate: bool) -> Result<(), sqlx::Error> {
    let mut tx = if immediate { db.begin_write().await? } else { db.pool.begin().await? };
    let n = read_n(&mut tx).await;
    // Another writer commits between our read and our write; with BEGIN IMMEDIATE it has to
    // wait for our commit instead.
    let other = {
        let pool = db.pool.clone();
        tokio::spawn(async move {
            sqlx::query("UPDATE counter SET n = n + 100 WHERE id = 1").execute(&pool).await.map(|_| ())
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let mine = async {
        sqlx::query("UPDATE counter SET n = $1 WHERE id = 1").bind(n + 1).execute(&mut *tx).await?;
        tx.commit().await
    }
    .await;
    other.await.unwrap()?;
    mine
}

async fn counter(db: &Db) -> i64 {
    sqlx::query("SELECT n FROM counter WHERE id = 1").fetch_one(&db.pool).await.unwrap().get(0)
}

#[tokio::test]
async fn read_then_write_transactions_survive_a_concurrent_commit_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/new/dirs/t.db", dir.path().display());
    let db = Db::open(&url, TUNING, MIGRATIONS).await.unwrap();
    assert_eq!(db.backend, Backend::Sqlite);
    assert!(dir.path().join("new/dirs/t.db").is_file(), "the file and its directories are created");

    // The failure begin_write exists to prevent: a deferred transaction's stale snapshot.
    let e = overtaken_increment(&db, false).await.expect_err("a deferred read-then-write is overtaken");
    assert!(e.to_string().contains("517") || e.to_string().contains("locked"), "{e}");
    assert_eq!(counter(&db).await, 100, "only the other writer's change landed");

    overtaken_increment(&db, true).await.expect("BEGIN IMMEDIATE waits instead of failing");
    assert_eq!(counter(&db).await, 201, "both changes landed, in order: ours (101) then theirs (+100)");
}

#[tokio::test]
async fn write_transactions_work_on_postgres() {
    let Some(url) = kizuna_db::fresh_test_postgres("kizuna_db_test").await else { return };
    let db = Db::open(&url, TUNING, MIGRATIONS).await.unwrap();
    assert_eq!(db.backend, Backend::Postgres);
    let mut tx = db.begin_write().await.unwrap();
    sqlx::query("UPDATE counter SET n = n + 1 WHERE id = 1").execute(&mut *tx).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(counter(&db).await, 1);
}

#[tokio::test]
async fn an_unknown_scheme_is_named() {
    let Err(e) = Db::open("mysql://x/y", TUNING, MIGRATIONS).await else { panic!("mysql accepted") };
    assert!(matches!(e, DbError::Scheme { ref scheme } if scheme == "mysql"), "{e}");
    assert!(e.to_string().contains("database_url"), "{e}");
}

/// Several processes (here pools) opening a new SQLite database at once: each waits for the
/// others' migrations instead of applying them again ("table already exists").
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_opens_of_a_new_sqlite_database_all_succeed() {
    for round in 0..5 {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("new.sqlite").display());
        let opens: Vec<_> = (0..4)
            .map(|_| {
                let url = url.clone();
                tokio::spawn(async move { Db::open(&url, TUNING, MIGRATIONS).await })
            })
            .collect();
        for o in opens {
            let db = o.await.unwrap().unwrap_or_else(|e| panic!("round {round}: {e}"));
            assert_eq!(counter(&db).await, 0);
        }
    }
}
