//! Test databases on the PostgreSQL test server: each new one drops those older than
//! `TEST_DATABASE_MAX_AGE`, and only those, so a long-lived test cluster stays bounded.

use sqlx::{AnyConnection, Connection, Executor, Row};

async fn names(server: &str) -> Vec<String> {
    let mut conn = AnyConnection::connect(server).await.unwrap();
    let rows = conn.fetch_all("SELECT datname::text FROM pg_database").await.unwrap();
    rows.iter().map(|r| r.get::<String, _>(0)).collect()
}

#[tokio::test]
async fn a_new_test_database_drops_the_old_ones_and_keeps_the_recent() {
    let Some(server) = kizuna_db::test_postgres_server() else { return };
    sqlx::any::install_default_drivers();
    let now = std::time::UNIX_EPOCH.elapsed().unwrap().as_secs();
    let max = kizuna_db::TEST_DATABASE_MAX_AGE.as_secs();
    let recent = format!("kzt_{}_00000002_sweep_recent", now - max + 600);
    let other = format!("sweep_other_{now}");
    let mut conn = AnyConnection::connect(&server).await.unwrap();
    for name in [&recent, &other] {
        conn.execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).await.unwrap();
    }
    // A session left open on the old database (a test that died mid-way) does not keep it.
    // Other test processes sweep too and may drop the old database between its creation and
    // the connection, so a few tries with fresh names are allowed.
    let base = server.rsplit_once('/').unwrap().0;
    let mut left_open = None;
    for attempt in 0..20 {
        let old = format!("kzt_{}_{attempt:08x}_sweep_old", now - max - 60);
        conn.execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {old}"))).await.unwrap();
        if let Ok(session) = AnyConnection::connect(&format!("{base}/{old}")).await {
            left_open = Some((old, session));
            break;
        }
    }
    let (old, _session) = left_open.expect("an old database with a session open on it");

    let url = kizuna_db::create_test_database(&server, "sweep_new").await;
    let made = url.rsplit_once('/').unwrap().1.to_owned();
    let after = names(&server).await;
    assert!(!after.contains(&old), "the database older than the limit is dropped");
    assert!(after.contains(&recent), "a recent test database is kept");
    assert!(after.contains(&other), "a database not made by the tests is kept");
    assert!(after.contains(&made) && made.starts_with("kzt_") && made.ends_with("_sweep_new"), "{made}");
    AnyConnection::connect(&url).await.expect("the new database accepts connections");

    for name in [&recent, &other, &made] {
        conn.execute(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")))
            .await
            .unwrap();
    }
}
