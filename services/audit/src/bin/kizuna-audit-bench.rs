//! Benchmarks of the audit log (see README "Benchmarks"):
//!
//! ```text
//! cargo run --release -p kizuna-audit --bin kizuna-audit-bench -- append --events 200000 --batch 2000
//! cargo run --release -p kizuna-audit --bin kizuna-audit-bench -- search --events 1000000 --dir /tmp/audit-bench
//! cargo run --release -p kizuna-audit --bin kizuna-audit-bench -- search --events 10000000 --bulk --dir /tmp/audit-bench10m
//! ```
//! `append` measures events/s through the real write path (database transaction, Merkle tree,
//! fsynced disk mirror) and, in the same run, a baseline: the same events' JSON bodies inserted
//! into a plain one-table SQLite database (no indexes, no tree) with the same batch and
//! durability; it reports the ratio. `search` fills a log (reused between runs), measures query
//! latency, and as its baseline times the "who viewed" query with the indexes switched off
//! (`NOT INDEXED`, a full scan of the same table).

use clap::{Parser, Subcommand};
use kizuna_audit::event::{ActiveParticipant, AuditSourceIdentification, ParticipantObject};
use kizuna_audit::log::{AuditLog, LogSettings};
use kizuna_audit::search::{CountBy, SearchFilter, count, search};
use kizuna_audit::{AuditEvent, EventId, EventKind};
use rand::{Rng, SeedableRng};
use std::path::PathBuf;
use std::time::Instant;

#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Append throughput with the tree maintained.
    Append {
        #[arg(long, default_value_t = 200_000)]
        events: u64,
        #[arg(long, default_value_t = 2000)]
        batch: usize,
        /// Directory for the log (default: a temp dir).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Search latency over a log of `events` events (filled on first run, reused after).
    Search {
        #[arg(long, default_value_t = 1_000_000)]
        events: u64,
        #[arg(long)]
        dir: PathBuf,
        #[arg(long, default_value_t = 400)]
        queries: usize,
        /// Fill fast: the same `AuditLog::append` (same rows, same Merkle leaves, same leaf
        /// mirror) in 50,000-event transactions, with SQLite `synchronous=OFF` and the six search
        /// indexes dropped during the fill and built once at the end.
        #[arg(long)]
        bulk: bool,
    },
}

const PATIENTS: u64 = 100_000;
const USERS: u64 = 5_000;
const FACILITIES: u64 = 500;
/// Events are spread over this many days.
const DAYS: i64 = 90;
const T0: i64 = 1_788_000_000;

fn synthetic(i: u64, rng: &mut rand_chacha::ChaCha8Rng) -> AuditEvent {
    let kind = match rng.random_range(0..20) {
        0 => EventKind::Login,
        1 => EventKind::Logout,
        2..=5 => EventKind::Query,
        6 => EventKind::Export,
        _ => EventKind::PatientRecordRead,
    };
    let t = T0 + (i as i64 * DAYS * 86_400) / 10_000_000 + rng.random_range(0..60);
    let mut e = AuditEvent::new(
        kind,
        AuditSourceIdentification::new(
            "viewer@centre",
            Some(&format!("F{:04}", rng.random_range(0..FACILITIES))),
        ),
    )
    .with_id(EventId::try_from(format!("bench-{i}")).expect("valid id"))
    .at(jiff::Timestamp::from_second(t).expect("valid time"))
    .participant(
        ActiveParticipant::requestor(&format!("pw-{:05}", rng.random_range(0..USERS))).with_ip("10.20.1.5"),
    )
    .participant(ActiveParticipant::application("kizuna-viewer"));
    if !matches!(kind, EventKind::Login | EventKind::Logout) {
        e = e.object(ParticipantObject::patient(&format!("CHID-{:07}", rng.random_range(0..PATIENTS))));
    }
    if kind == EventKind::Query {
        e = e.object(ParticipantObject::query("name=sato&birth=1950"));
    }
    e
}

async fn open(dir: &std::path::Path) -> AuditLog {
    let key_path = dir.join("bench.key");
    if !key_path.exists() {
        std::fs::create_dir_all(dir).expect("bench dir");
        kizuna_audit::checkpoint::generate_key(&key_path).expect("key");
    }
    AuditLog::open(LogSettings {
        database_url: format!("sqlite://{}", dir.join("audit.sqlite").display()),
        data_dir: dir.join("data"),
        signing_key: kizuna_audit::checkpoint::load_signing_key(&key_path).expect("key"),
        tsa_url: None,
    })
    .await
    .expect("open log")
}

async fn fill(log: &mut AuditLog, upto: u64, batch: usize) -> (u64, f64) {
    let start_size = log.size();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(start_size);
    let t = Instant::now();
    let mut last_report = Instant::now();
    let mut i = start_size;
    while i < upto {
        let n = (batch as u64).min(upto - i);
        let events: Vec<AuditEvent> = (i..i + n).map(|k| synthetic(k, &mut rng)).collect();
        log.append(&events).await.expect("append");
        i += n;
        if last_report.elapsed().as_secs() >= 10 {
            eprintln!("  {i} events, {:.0} events/s", (i - start_size) as f64 / t.elapsed().as_secs_f64());
            last_report = Instant::now();
        }
    }
    (i - start_size, t.elapsed().as_secs_f64())
}

/// The six search indexes (migrations 0001 + 0002), dropped during a bulk fill and rebuilt after.
const SEARCH_INDEXES: &[(&str, &str)] = &[
    ("audit_event_time", "event_time"),
    ("audit_event_user", "user_id, event_time"),
    ("audit_event_patient", "patient_id, event_time"),
    ("audit_event_facility", "facility, event_time"),
    ("audit_event_code", "event_code, event_time"),
    ("audit_event_type", "event_type, event_time"),
];

/// Fill through the real `AuditLog::append` with durability relaxed and index builds deferred.
async fn bulk_fill(log: &mut AuditLog, upto: u64) -> (u64, f64) {
    use sqlx::Executor;
    let pool = log.db.pool.clone();
    // Every pooled connection gets the setting (a pool of 4: hold all four while setting it).
    let mut conns = Vec::new();
    for _ in 0..4 {
        let mut c = pool.acquire().await.expect("connection");
        c.execute("PRAGMA synchronous = OFF").await.expect("pragma");
        conns.push(c);
    }
    drop(conns);
    for (name, _) in SEARCH_INDEXES {
        pool.execute(sqlx::AssertSqlSafe(format!("DROP INDEX IF EXISTS {name}"))).await.expect("drop index");
    }
    let t = Instant::now();
    let (n, secs) = fill(log, upto, 50_000).await;
    eprintln!("  appended {n} events in {secs:.0} s; building the search indexes …");
    for (name, cols) in SEARCH_INDEXES {
        let ti = Instant::now();
        pool.execute(sqlx::AssertSqlSafe(format!("CREATE INDEX {name} ON audit_event ({cols})")))
            .await
            .expect("create index");
        eprintln!("  {name}: {:.0} s", ti.elapsed().as_secs_f64());
    }
    (n, t.elapsed().as_secs_f64())
}

/// Baseline for `append`: the same events (same generator, same seed) as JSON bodies in a plain
/// SQLite table (`seq INTEGER PRIMARY KEY, body BLOB`), WAL with `synchronous=FULL`, one
/// transaction per batch, 100 rows per INSERT: what SQLite alone costs to keep these bytes.
async fn baseline_append(dir: &std::path::Path, events: u64, batch: usize) -> f64 {
    use sqlx::{Connection, Executor};
    let url = format!("sqlite://{}?mode=rwc", dir.join("baseline.sqlite").display());
    let mut c = sqlx::AnyConnection::connect(&url).await.expect("baseline db");
    c.execute("PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; CREATE TABLE plain (seq INTEGER PRIMARY KEY, body BLOB NOT NULL)")
        .await
        .expect("baseline schema");
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    let t = Instant::now();
    let mut i = 0u64;
    while i < events {
        let n = (batch as u64).min(events - i);
        let bodies: Vec<Vec<u8>> =
            (i..i + n).map(|k| serde_json::to_vec(&synthetic(k, &mut rng)).expect("json")).collect();
        let mut tx = c.begin().await.expect("begin");
        for chunk in bodies.chunks(100) {
            let sql = format!("INSERT INTO plain (body) VALUES {}", vec!["(?)"; chunk.len()].join(","));
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for b in chunk {
                q = q.bind(b.clone());
            }
            q.execute(&mut *tx).await.expect("baseline insert");
        }
        tx.commit().await.expect("commit");
        i += n;
    }
    events as f64 / t.elapsed().as_secs_f64()
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() as f64 * p).ceil() as usize).saturating_sub(1).min(v.len() - 1)]
}

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Append { events, batch, dir } => {
            let tmp = tempfile::tempdir().expect("tempdir");
            let dir = dir.unwrap_or_else(|| tmp.path().to_path_buf());
            let mut log = open(&dir).await;
            let base = log.size();
            let (n, secs) = fill(&mut log, base + events, batch).await;
            let t = Instant::now();
            let cp = log.checkpoint().await.expect("checkpoint");
            let rate = n as f64 / secs;
            println!(
                "append: {n} events in {secs:.2} s = {rate:.0} events/s (batch {batch}, SQLite synchronous=FULL, leaves fsynced per batch); \
                 checkpoint of tree size {} signed in {:.1} ms",
                cp.tree_size,
                t.elapsed().as_secs_f64() * 1000.0
            );
            let base = baseline_append(tmp.path(), n, batch).await;
            println!(
                "baseline: the same {n} events as JSON in a plain SQLite table (same batch, synchronous=FULL): {base:.0} events/s; \
                 audit log / baseline = {:.2}",
                rate / base
            );
        }
        Cmd::Search { events, dir, queries, bulk } => {
            let mut log = open(&dir).await;
            if log.size() < events {
                eprintln!("filling the log to {events} events (once; reused by later runs)");
                let (n, secs) =
                    if bulk { bulk_fill(&mut log, events).await } else { fill(&mut log, events, 5000).await };
                eprintln!("filled {n} events in {secs:.0} s ({:.0} events/s)", n as f64 / secs);
                log.checkpoint().await.expect("checkpoint");
            }
            let db = log.db.clone();
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(42);
            let span_end = T0 + (events as i64 * DAYS * 86_400) / 10_000_000;
            let mut lat: std::collections::BTreeMap<&str, Vec<f64>> = Default::default();
            for q in 0..queries {
                let day0 = rng.random_range(T0..span_end.max(T0 + 1));
                let ts = |s: i64| jiff::Timestamp::from_second(s).expect("time");
                let user = format!("pw-{:05}", rng.random_range(0..USERS));
                let facility = format!("F{:04}", rng.random_range(0..FACILITIES));
                let patient = format!("CHID-{:07}", rng.random_range(0..PATIENTS));
                let (name, f, count_by) = match q % 7 {
                    0 => (
                        "patient (who viewed)",
                        SearchFilter { patient: Some(patient), ..Default::default() },
                        None,
                    ),
                    1 => (
                        "user + 7 days",
                        SearchFilter {
                            user: Some(user),
                            from: Some(ts(day0)),
                            to: Some(ts(day0 + 7 * 86_400)),
                            ..Default::default()
                        },
                        None,
                    ),
                    2 => (
                        "facility + 1 day",
                        SearchFilter {
                            facility: Some(facility),
                            from: Some(ts(day0)),
                            to: Some(ts(day0 + 86_400)),
                            ..Default::default()
                        },
                        None,
                    ),
                    3 => (
                        "login (110122) + 1 day",
                        SearchFilter {
                            event_type: Some("110122".into()),
                            from: Some(ts(day0)),
                            to: Some(ts(day0 + 86_400)),
                            ..Default::default()
                        },
                        None,
                    ),
                    4 => (
                        "count/day: facility, 30 days",
                        SearchFilter {
                            facility: Some(facility),
                            from: Some(ts(day0)),
                            to: Some(ts(day0 + 30 * 86_400)),
                            ..Default::default()
                        },
                        Some(CountBy::Day),
                    ),
                    5 => (
                        "count/day: user, 30 days",
                        SearchFilter {
                            user: Some(user),
                            from: Some(ts(day0)),
                            to: Some(ts(day0 + 30 * 86_400)),
                            ..Default::default()
                        },
                        Some(CountBy::Day),
                    ),
                    _ => (
                        "count/user: patient",
                        SearchFilter { patient: Some(patient), ..Default::default() },
                        Some(CountBy::User),
                    ),
                };
                let t = Instant::now();
                match count_by {
                    None => {
                        std::hint::black_box(search(&db, &f).await.expect("search"));
                    }
                    Some(by) => {
                        std::hint::black_box(count(&db, &f, by).await.expect("count"));
                    }
                }
                lat.entry(name).or_default().push(t.elapsed().as_secs_f64() * 1000.0);
            }
            let mut all: Vec<f64> = lat.values().flatten().copied().collect();
            println!(
                "search over {} events, {queries} queries (searches LIMIT 100 newest first; counts grouped):",
                log.size()
            );
            for (name, v) in lat.iter_mut() {
                println!(
                    "  {name:32} p50 {:7.2} ms  p99 {:7.2} ms  max {:7.2} ms",
                    pct(v, 0.5),
                    pct(v, 0.99),
                    pct(v, 1.0)
                );
            }
            println!("  {:32} p50 {:7.2} ms  p99 {:7.2} ms", "all", pct(&mut all, 0.5), pct(&mut all, 0.99));
            // Baseline: the same "who viewed" query once, with the indexes switched off.
            use sqlx::Row;
            let t = Instant::now();
            let row = sqlx::query(
                "SELECT count(*) AS n FROM (SELECT seq FROM audit_event NOT INDEXED WHERE patient_id = ? \
                 ORDER BY event_time DESC, seq DESC LIMIT 100)",
            )
            .bind("CHID-0000042")
            .fetch_one(&db.pool)
            .await
            .expect("baseline query");
            let scan_ms = t.elapsed().as_secs_f64() * 1000.0;
            let n: i64 = row.get("n");
            let p99_patient = lat.get_mut("patient (who viewed)").map(|v| pct(v, 0.99)).unwrap_or(f64::NAN);
            println!(
                "baseline: \"who viewed\" with NOT INDEXED (full scan, {n} rows): {scan_ms:.0} ms; indexed p99 / scan = {:.5}",
                p99_patient / scan_ms
            );
        }
    }
}
