//! For tests: throwaway databases on the PostgreSQL server that `KIZUNA_TEST_POSTGRES_URL` names
//! (`tests/pg-setup.sh` prints one).
//!
//! Every database made here is named `kzt_<unix seconds>_<unique>_<prefix>`. Tests cannot drop
//! their own reliably (a failing test panics, nextest runs each in its own process), so each new
//! one first drops those made more than [`MAX_AGE`] ago: a long-lived test cluster stays bounded
//! (it had grown to 9.5 GB) while no running test loses its database.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sqlx::{AnyConnection, Connection, Executor, Row};

/// Test databases older than this are dropped when the next one is made.
pub const MAX_AGE: Duration = Duration::from_secs(6 * 3600);

/// What every test database's name starts with.
const MARK: &str = "kzt_";

/// The server URL from `KIZUNA_TEST_POSTGRES_URL`. `None` (skip) when that is unset outside CI;
/// under `CI=true` an unset URL is a failure, never a skip.
pub fn test_postgres_server() -> Option<String> {
    match std::env::var("KIZUNA_TEST_POSTGRES_URL") {
        Ok(u) if !u.is_empty() => Some(u),
        _ if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!(
                "CI=true but KIZUNA_TEST_POSTGRES_URL is not set: run tests/pg-setup.sh (tests/run-all does)"
            )
        }
        _ => {
            eprintln!("skipping: KIZUNA_TEST_POSTGRES_URL is not set (tests/pg-setup.sh prints one)");
            None
        }
    }
}

/// The URL of a new, empty database on the test server (see [`test_postgres_server`]), or
/// `None` (skip). `prefix` ends the name, to tell whose it is (letters, digits, `_`).
pub async fn fresh_test_postgres(prefix: &str) -> Option<String> {
    let server = test_postgres_server()?;
    Some(create_test_database(&server, prefix).await)
}

/// Makes a new database on `server` (after dropping test databases older than [`MAX_AGE`]) and
/// returns its URL: `server` with its database part replaced, query kept.
pub async fn create_test_database(server: &str, prefix: &str) -> String {
    sqlx::any::install_default_drivers();
    let now = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock after 1970");
    let unique = (now.subsec_nanos() ^ std::process::id().rotate_left(20)) ^ rand_bits();
    let name = format!("{MARK}{}_{unique:08x}_{prefix}", now.as_secs());
    let mut conn = AnyConnection::connect(server).await.expect("connect to KIZUNA_TEST_POSTGRES_URL");
    drop_old(&mut conn, now.as_secs()).await;
    conn.execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).await.expect("create test database");
    conn.close().await.ok();
    with_database(server, &name)
}

/// Drops test databases made more than [`MAX_AGE`] before `now`; failures are only reported
/// (another test process may be dropping the same one).
async fn drop_old(conn: &mut AnyConnection, now: u64) {
    let rows =
        match conn.fetch_all("SELECT datname::text FROM pg_database WHERE datname LIKE 'kzt\\_%'").await {
            Ok(rows) => rows,
            Err(e) => return eprintln!("listing old test databases: {e}"),
        };
    for row in rows {
        let Ok(name) = row.try_get::<String, _>(0) else { continue };
        if !made_before(&name, now.saturating_sub(MAX_AGE.as_secs())) {
            continue;
        }
        let sql = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
        if let Err(e) = conn.execute(sqlx::AssertSqlSafe(sql)).await {
            eprintln!("dropping old test database {name}: {e}");
        }
    }
}

/// Whether the test database `name` was made before the unix second `cutoff`.
fn made_before(name: &str, cutoff: u64) -> bool {
    name.strip_prefix(MARK)
        .and_then(|rest| rest.split('_').next())
        .and_then(|secs| secs.parse::<u64>().ok())
        .is_some_and(|made| made < cutoff)
}

/// A few bits that differ between calls in one process within the same nanosecond.
fn rand_bits() -> u32 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    COUNTER.fetch_add(1, Ordering::Relaxed).wrapping_mul(0x9E37_79B9)
}

/// `server` with its database part (the path after host[:port]) replaced by `name`.
fn with_database(server: &str, name: &str) -> String {
    let (head, query) = match server.split_once('?') {
        Some((h, q)) => (h, format!("?{q}")),
        None => (server, String::new()),
    };
    let host_start = head.find("://").map_or(0, |i| i + 3);
    let base = match head[host_start..].find('/') {
        Some(i) => &head[..host_start + i],
        None => head,
    };
    format!("{base}/{name}{query}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_database_part_is_replaced_and_the_query_kept() {
        let s = "postgres://postgres@127.0.0.1:54329/postgres?sslmode=disable";
        assert_eq!(with_database(s, "x"), "postgres://postgres@127.0.0.1:54329/x?sslmode=disable");
        assert_eq!(with_database("postgres://u@h", "x"), "postgres://u@h/x");
    }

    #[test]
    fn only_test_databases_older_than_the_cutoff_are_old() {
        assert!(made_before("kzt_100_0000abcd_kizuna_test", 101));
        assert!(!made_before("kzt_100_0000abcd_kizuna_test", 100));
        assert!(!made_before("kizuna_test_0123456789ab", u64::MAX));
        assert!(!made_before("kzt_notanumber_x", u64::MAX));
        assert!(!made_before("postgres", u64::MAX));
    }
}
