//! What an operator reads when PostgreSQL cannot be reached or refuses the login: the cause and
//! the server (host:port/database, user), at once, never the password and never a line of
//! PostgreSQL's C source.

use std::time::{Duration, Instant};

use kizuna_db::{Db, DbError, Migrations, Tuning};
use sqlx::postgres::PgConnectOptions;

static SQLITE: sqlx::migrate::Migrator = sqlx::migrate!("./tests/migrations/sqlite");
static POSTGRES: sqlx::migrate::Migrator = sqlx::migrate!("./tests/migrations/postgres");
const MIGRATIONS: Migrations = Migrations { sqlite: &SQLITE, postgres: &POSTGRES };
const TUNING: Tuning = Tuning { sqlite: "", postgres: "" };

/// Host, port and a user that may log in, from `KIZUNA_TEST_POSTGRES_URL` (the local test
/// server, `tests/pg-setup.sh`). `None` (skip) when unset outside CI, as `fresh_test_postgres`.
fn test_server() -> Option<(String, u16, String)> {
    match std::env::var("KIZUNA_TEST_POSTGRES_URL") {
        Ok(u) if !u.is_empty() => {
            let o: PgConnectOptions = u.parse().expect("KIZUNA_TEST_POSTGRES_URL parses");
            Some((o.get_host().to_owned(), o.get_port(), o.get_username().to_owned()))
        }
        _ if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("CI=true but KIZUNA_TEST_POSTGRES_URL is not set: run tests/pg-setup.sh")
        }
        _ => {
            eprintln!("skipping: KIZUNA_TEST_POSTGRES_URL is not set (tests/pg-setup.sh prints one)");
            None
        }
    }
}

/// Opens `url`, which must fail; returns the message and how long it took.
async fn open_fails(url: &str) -> (DbError, String, Duration) {
    let t = Instant::now();
    let Err(e) = Db::open(url, TUNING, MIGRATIONS).await else { panic!("{url} opened") };
    let text = e.to_string();
    eprintln!("{text}");
    (e, text, t.elapsed())
}

#[tokio::test]
async fn a_closed_port_is_reported_at_once_with_the_server_and_the_cause() {
    let Some((host, _, user)) = test_server() else { return };
    // Port 1: nothing listens there; the server itself is up on its own port.
    let (e, text, took) = open_fails(&format!("postgres://{user}:sekret@{host}:1/kizuna_db")).await;
    assert!(matches!(e, DbError::Connect { .. }), "{e:?}");
    assert!(took < Duration::from_secs(15), "took {took:?}: {text}");
    assert!(text.contains(&format!("{host}:1/kizuna_db")), "names host:port/database: {text}");
    assert!(text.contains(&format!("user {user}")), "names the user: {text}");
    assert!(text.to_lowercase().contains("refused"), "says why: {text}");
    assert!(!text.contains("sekret"), "never the password: {text}");
    assert!(!text.contains("pool timed out"), "{text}");
}

#[tokio::test]
async fn a_wrong_role_or_database_is_named_without_a_source_line() {
    let Some((host, port, user)) = test_server() else { return };
    let (_, text, _) = open_fails(&format!("postgres://nobody:sekret@{host}:{port}/postgres")).await;
    assert!(text.contains(r#"role "nobody" does not exist"#), "{text}");
    assert!(text.contains(&format!("{host}:{port}/postgres as user nobody")), "{text}");
    assert!(!text.contains("at line"), "a line of PostgreSQL's C source misleads: {text}");
    assert!(!text.contains("sekret"), "never the password: {text}");

    let (_, text, _) = open_fails(&format!("postgres://{user}@{host}:{port}/no_such_db")).await;
    assert!(text.contains(r#"database "no_such_db" does not exist"#), "{text}");
    assert!(text.contains(&format!("{host}:{port}/no_such_db")), "{text}");
    assert!(!text.contains("at line"), "{text}");
}

#[test]
fn urls_are_checked_without_connecting() {
    assert!(kizuna_db::check_url("sqlite:///tmp/x.sqlite?mode=rwc").is_ok());
    assert!(kizuna_db::check_url("postgres://u:p@127.0.0.1:1/db").is_ok());
    assert!(matches!(kizuna_db::check_url("mysql://x/y"), Err(DbError::Scheme { .. })));
    assert!(kizuna_db::check_url("postgres://u@127.0.0.1:notaport/db").is_err());
    assert_eq!(
        kizuna_db::postgres_server("postgres://u:secret@db.example:5433/kizuna"),
        "PostgreSQL db.example:5433/kizuna as user u"
    );
}
