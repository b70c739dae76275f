//! The admin screen reads every site's facts with one query per table: each site gets its own
//! rows, its newest 60 days, its newest rejections and log lines, and the same as its own page
//! reads, on SQLite and on PostgreSQL.

mod common;

use kizuna_monitor::status::{self, SiteFacts};
use kizuna_store::{Config, Store};
use sqlx::Executor;

async fn sql(store: &Store, statements: &[String]) {
    let mut tx = store.db.pool.begin().await.unwrap();
    for s in statements {
        tx.execute(sqlx::AssertSqlSafe(s.clone())).await.unwrap_or_else(|e| panic!("{s}: {e}"));
    }
    tx.commit().await.unwrap();
}

fn day(n: u32) -> String {
    let d: jiff::civil::Date = "2026-09-01".parse().unwrap();
    d.checked_add(jiff::Span::new().days(i64::from(n))).unwrap().to_string()
}

async fn check(config: Config) {
    let store = Store::open(config).await.unwrap();
    common::add_site(&store, "alpha", "0101010001").await;
    common::add_site(&store, "beta", "0101010002").await;
    common::add_site(&store, "gamma", "0101010003").await;
    let mut s = vec![
        "INSERT INTO site_status (site, last_heartbeat_at, queue_depth) VALUES ('alpha', '2026-11-27T23:00:00Z', 3)"
            .to_owned(),
        "INSERT INTO site_status (site, last_batch_at, queue_depth) VALUES ('beta', '2026-11-27T22:00:00Z', 0)".to_owned(),
    ];
    // alpha: 65 days, so its oldest five fall out, with the codes counted on them.
    for n in 0..65 {
        s.push(format!(
            "INSERT INTO site_daily (site, day, stored, duplicate, rejected, bytes) VALUES ('alpha', '{}', {n}, 0, 0, 1)",
            day(n)
        ));
    }
    s.push(format!(
        "INSERT INTO site_reject_codes (site, day, code, files) VALUES ('alpha', '{}', 'x-code', 5)",
        day(4)
    ));
    s.push(format!(
        "INSERT INTO site_reject_codes (site, day, code, files) VALUES ('alpha', '{}', 'x-code', 2)",
        day(64)
    ));
    s.push(format!(
        "INSERT INTO site_reject_codes (site, day, code, files) VALUES ('alpha', '{}', 'y-code', 3)",
        day(5)
    ));
    // beta: two days; a code the day before them is outside its window.
    for n in [30, 31] {
        s.push(format!(
            "INSERT INTO site_daily (site, day, stored, duplicate, rejected, bytes) VALUES ('beta', '{}', 7, 1, 1, 9)",
            day(n)
        ));
    }
    s.push(format!(
        "INSERT INTO site_reject_codes (site, day, code, files) VALUES ('beta', '{}', 'x-code', 1)",
        day(29)
    ));
    s.push(format!(
        "INSERT INTO site_reject_codes (site, day, code, files) VALUES ('beta', '{}', 'z-code', 1)",
        day(30)
    ));
    // alpha: 205 rejected files (the overview reads 200, the site page all of them); beta: one.
    for n in 0..205 {
        s.push(format!(
            "INSERT INTO rejections (site, facility_id, path, sha256, codes, reason, first_at, last_at, times) \
             VALUES ('alpha', '0101010001', 'p{n:03}', 'h', 'x-code', 'r', 'a', '2026-11-{:02}T00:00:{:02}Z', 1)",
            1 + n / 60,
            n % 60
        ));
    }
    s.push(
        "INSERT INTO rejections (site, facility_id, path, sha256, codes, reason, first_at, last_at, times) \
         VALUES ('beta', '0101010002', 'b1', 'h', 'z-code,x-code', 'r', 'a', '2026-11-20T00:00:00Z', 2)"
            .to_owned(),
    );
    // beta's quarantine: local times with offsets, newest instant first.
    for (file, at) in [("q1", "2026-11-27T08:00:00+09:00"), ("q2", "2026-11-27T00:30:00Z")] {
        s.push(format!(
            "INSERT INTO agent_quarantine (site, file, origin, sha256, codes, reason, quarantined_at, reported_at) \
             VALUES ('beta', '{file}', 'agent', 'h', 'c', 'r', '{at}', '2026-11-27T01:00:00Z')"
        ));
    }
    // alpha's agent logs: the newest day counts; lines of both days, newest day first.
    for d in ["2026-11-26", "2026-11-27"] {
        s.push(format!(
            "INSERT INTO daily_logs (site, day, files_uploaded, files_quarantined, upload_errors, truncated, received_at) \
             VALUES ('alpha', '{d}', 10, 1, 0, 0, 'now')"
        ));
    }
    let lines = [
        ("2026-11-26", 1, "ERROR"),
        ("2026-11-26", 2, "ERROR"),
        ("2026-11-27", 1, "INFO"),
        ("2026-11-27", 2, "WARN"),
        ("2026-11-27", 3, "ERROR"),
        ("2026-11-27", 4, "ERROR"),
    ];
    for (d, no, level) in lines {
        s.push(format!(
            "INSERT INTO daily_log_lines (site, day, line_no, time, level, message) \
             VALUES ('alpha', '{d}', {no}, 't{no}', '{level}', 'm{no}')"
        ));
    }
    sql(&store, &s).await;

    let cfg = kizuna_monitor::Config::default();
    let all = status::all_sites(&store.db, &cfg).await.unwrap();
    let names: Vec<&str> = all.iter().map(|f| f.site.name.as_str()).collect();
    assert_eq!(names, ["alpha", "beta", "gamma"]);
    let (alpha, beta, gamma) = (&all[0], &all[1], &all[2]);

    assert_eq!(alpha.site.facilities, ["0101010001"]);
    assert_eq!(alpha.activity.queue_depth, Some(3));
    assert_eq!(alpha.daily.len(), 60, "the newest 60 days");
    assert_eq!(alpha.daily[0].day, day(64));
    assert_eq!(alpha.daily[59].day, day(5));
    assert_eq!(alpha.reject_codes, [("y-code".to_owned(), 3), ("x-code".to_owned(), 2)]);
    assert_eq!(alpha.rejected.len(), 200);
    assert_eq!(alpha.rejected[0].path, "p204", "newest first");
    assert!(alpha.quarantine.is_empty());
    let log = alpha.newest_log.as_ref().unwrap();
    assert_eq!((log.day.as_str(), log.errors, log.warnings), ("2026-11-27", 2, 1));
    let order: Vec<(&str, &str)> =
        alpha.log_lines.iter().map(|l| (l.day.as_str(), l.time.as_str())).collect();
    assert_eq!(
        order,
        [
            ("2026-11-27", "t2"),
            ("2026-11-27", "t3"),
            ("2026-11-27", "t4"),
            ("2026-11-26", "t1"),
            ("2026-11-26", "t2")
        ]
    );

    assert_eq!(beta.activity.last_batch_at.as_deref(), Some("2026-11-27T22:00:00Z"));
    assert_eq!(beta.daily.len(), 2);
    assert_eq!(beta.reject_codes, [("z-code".to_owned(), 1)]);
    assert_eq!(beta.rejected.len(), 1);
    assert_eq!(beta.rejected[0].codes, ["z-code", "x-code"]);
    let q: Vec<&str> = beta.quarantine.iter().map(|q| q.file.as_str()).collect();
    assert_eq!(q, ["q2", "q1"], "09:30 JST is later than 08:00 JST");
    assert!(beta.newest_log.is_none() && beta.log_lines.is_empty());

    assert_eq!(gamma.activity, Default::default());
    assert!(gamma.daily.is_empty() && gamma.reject_codes.is_empty() && gamma.rejected.is_empty());
    assert!(gamma.quarantine.is_empty() && gamma.newest_log.is_none() && gamma.queue_history.is_none());

    // A site's own page reads the same facts (and up to 500 rejected files).
    let one = |name: &'static str| {
        let (db, cfg) = (&store.db, &cfg);
        async move { status::one_site(db, name, cfg).await.unwrap().unwrap() }
    };
    assert_eq!(&one("beta").await, beta);
    assert_eq!(&one("gamma").await, gamma);
    let mut alpha_page: SiteFacts = one("alpha").await;
    assert_eq!(alpha_page.rejected.len(), 205);
    alpha_page.rejected.truncate(200);
    assert_eq!(&alpha_page, alpha);
    assert!(status::one_site(&store.db, "nobody", &cfg).await.unwrap().is_none());
}

#[tokio::test]
async fn every_sites_facts_are_read_per_table_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    check(Config { data_dir: dir.path().join("data"), ..Config::default() }).await;
}

#[tokio::test]
async fn every_sites_facts_are_read_per_table_on_postgres() {
    let Some(server) = kizuna_db::test_postgres_server() else { return };
    let dir = tempfile::tempdir().unwrap();
    let url = kizuna_db::create_test_database(&server, "kizuna_monitor_facts").await;
    check(Config { data_dir: dir.path().join("data"), database_url: url, ..Config::default() }).await;
}
