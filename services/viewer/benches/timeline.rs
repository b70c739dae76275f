//! A patient's time series on a big IndexDB: `cargo bench -p kizuna-viewer --bench timeline --
//! [RECORDS] [SAMPLES] [DIR]` (defaults 10 000 000, 1000, the system temp folder).
//!
//! Builds a scratch SQLite IndexDB with the store's migrations and RECORDS rows in `records`
//! (20 facilities × 50 000 local patients, each record with its search row: a drug, two labs, a
//! diagnosis or an encounter), generated inside SQLite by a recursive CTE so that the 10 million
//! rows take minutes, not hours. A patient's records are spread over the whole table, as
//! interleaved uploads leave them. It links SAMPLES patients, each known at three facilities, to
//! common health IDs (with consent for the viewing facility), then asks the real viewer over HTTP
//! for each patient's time series page and reports p50/p95/p99/max, beside two baselines measured
//! on the same database in the same run: `SELECT count(*) FROM records` (a full scan) and the
//! viewer's records query with the index switched off (`NOT INDEXED`). The scratch files are
//! deleted at the end.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use kizuna_index::{ConsentPolicy, Demographics, RecordKey, Registry, Sex};
use kizuna_viewer::access::{Role, User};
use kizuna_viewer::{Config, Viewer, audit::Audit};

const FACILITIES: u64 = 20;
const PATIENTS_PER_FACILITY: u64 = 50_000;

fn pct(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i].as_secs_f64() * 1000.0
}

fn facility(n: u64) -> String {
    format!("04110{n:05}")
}

async fn generate(pool: &sqlx::AnyPool, records: u64) {
    use sqlx::Executor;
    let mut conn = pool.acquire().await.unwrap();
    conn.execute("PRAGMA synchronous = OFF; PRAGMA cache_size = -1000000; PRAGMA temp_store = MEMORY;")
        .await
        .unwrap();
    let step = 1_000_000u64;
    let started = Instant::now();
    let mut from = 0;
    while from < records {
        let to = (from + step).min(records);
        // i -> facility i % 20, local patient (i / 20) % 50000, kind i % 5; dates over 2014-2024.
        let sql = format!(
            "WITH RECURSIVE n(i) AS (SELECT {from} UNION ALL SELECT i + 1 FROM n WHERE i + 1 < {to}) \
             INSERT INTO records (id, volume_label, facility_id, patient_id, order_date, data_kind, order_no, processing_type, \
             enter_org_cd, transaction_datetime, out_rel_directory, file_name, update_datetime, version_key, condition_flag, \
             sha256, size, received_at, site, message_type, journal_seq) \
             SELECT i + 1, 'KIZUNA', '04110' || printf('%05d', i % {FACILITIES}), printf('P%09d', (i / {FACILITIES}) % {PATIENTS_PER_FACILITY}), \
             strftime('%Y%m%d', '2014-01-01', '+' || ((i * 7919) % 3650) || ' days'), \
             CASE i % 5 WHEN 0 THEN 'OMP-01' WHEN 1 THEN 'OML-11' WHEN 2 THEN 'PPR-01' WHEN 3 THEN 'ADT-22' ELSE 'OMG-11' END, \
             printf('%08d', i), 'INS', '01', \
             strftime('%Y%m%d', '2014-01-01', '+' || ((i * 7919) % 3650) || ' days') || printf('%09d', i % 1000000000), \
             'dir', printf('f%012d_1', i), '20240101000000', printf('v%012d', i), '1', printf('%064d', i), 1000, \
             '2024-01-01T00:00:00Z', 'site', 'RDE^O11', i FROM n"
        );
        conn.execute(sqlx::AssertSqlSafe(sql)).await.unwrap();
        for (table, sql) in [
            (
                "drugs",
                "INSERT INTO drugs (record_id, facility_id, patient_id, order_date, item_no, source, code, name, coding_system, dose, dose_unit, days, route, given_at) \
                       SELECT id, facility_id, patient_id, order_date, 1, 'RXE', '620000001', 'ロキソニン錠60mg', 'HOT', '3', '錠', '7', 'PO', '' FROM records WHERE id > {from} AND id <= {to} AND data_kind = 'OMP-01'",
            ),
            (
                "labs",
                "INSERT INTO labs (record_id, facility_id, patient_id, order_date, item_no, code, name, coding_system, value_type, value, value_num, units, reference_range, abnormal_flags, result_status, observed_at) \
                      SELECT id, facility_id, patient_id, order_date, k, CASE k WHEN 1 THEN '3D010' ELSE '3C015' END, CASE k WHEN 1 THEN 'HbA1c' ELSE 'Cre' END, 'JLAC10', 'NM', '6.1', 6.1, '%', '4.6-6.2', 'N', 'F', order_date || '0900' \
                      FROM records, (SELECT 1 AS k UNION ALL SELECT 2) WHERE id > {from} AND id <= {to} AND data_kind = 'OML-11'",
            ),
            (
                "diagnoses",
                "INSERT INTO diagnoses (record_id, facility_id, patient_id, item_no, source, code, name, coding_system, icd10, onset_date, status) \
                           SELECT id, facility_id, patient_id, 1, 'PRB', '8830052', '2型糖尿病', 'MEDIS', 'E11', order_date, 'active' FROM records WHERE id > {from} AND id <= {to} AND data_kind = 'PPR-01'",
            ),
            (
                "encounters",
                "INSERT INTO encounters (record_id, facility_id, patient_id, event, trigger_event, event_time, patient_class, ward) \
                            SELECT id, facility_id, patient_id, 'admission', 'A01', order_date || '1000', 'I', '5W' FROM records WHERE id > {from} AND id <= {to} AND data_kind = 'ADT-22'",
            ),
        ] {
            let sql = sql.replace("{from}", &from.to_string()).replace("{to}", &to.to_string());
            conn.execute(sqlx::AssertSqlSafe(sql)).await.unwrap_or_else(|e| panic!("{table}: {e}"));
        }
        from = to;
        eprintln!("  {to} records ({:.0} s)", started.elapsed().as_secs_f64());
    }
}

fn person(n: u64) -> Demographics {
    Demographics {
        family_kanji: format!("姓{n}"),
        given_kanji: "名".into(),
        family_kana: "セイ".into(),
        given_kana: "メイ".into(),
        birth_date: Some("19600101".into()),
        sex: Some(Sex::Female),
        address: String::new(),
        phone: String::new(),
    }
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    let records: u64 = args.first().map(|s| s.parse().expect("RECORDS")).unwrap_or(10_000_000);
    let samples: u64 = args.get(1).map(|s| s.parse().expect("SAMPLES")).unwrap_or(1000);
    let base = args.get(2).map(std::path::PathBuf::from).unwrap_or_else(std::env::temp_dir);
    let dir = tempfile::tempdir_in(&base).expect("scratch folder");
    eprintln!("scratch IndexDB in {}", dir.path().display());

    let mut config =
        Config { store_data_dir: dir.path().to_owned(), secure_cookies: false, ..Default::default() };
    config.index_database_url = format!("sqlite://{}?mode=rwc", dir.path().join("linkage.sqlite").display());
    // A store's folder holds tree/ (the viewer refuses one without; no message is opened here).
    std::fs::create_dir_all(config.tree_dir()).unwrap();
    let t = Instant::now();
    {
        let store = kizuna_store::Db::open(&config.effective_store_database_url()).await.unwrap();
        generate(&store.pool, records).await;
        store.pool.close().await;
    }
    let gen_secs = t.elapsed().as_secs_f64();
    let db_bytes: u64 = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("index.sqlite"))
        .map(|e| e.metadata().unwrap().len())
        .sum();

    // SAMPLES patients, each known at three facilities under the same local ID.
    let reg = Registry::open(&config.index_database_url).await.unwrap();
    let viewer_facility = facility(FACILITIES - 1);
    let mut ids = Vec::new();
    for s in 0..samples {
        let local = format!("P{:09}", (s * 7_919) % PATIENTS_PER_FACILITY);
        let f = (s * 3) % (FACILITIES - 3);
        let mut cid = None;
        for k in 0..3 {
            let key = RecordKey::new(&facility(f + k), &local).unwrap();
            let e = reg.enroll(&key, &person(s)).await.unwrap();
            match &cid {
                None => cid = Some(e.common_id),
                Some(c) => reg.link(&key, c, "bench", "same person").await.unwrap(),
            }
        }
        let cid = cid.unwrap();
        reg.set_consent(&cid, &ConsentPolicy::All, "bench", "bench").await.unwrap();
        ids.push(cid);
    }
    reg.db().pool.close().await;

    let viewer = Viewer::open(config, Audit::log_only()).await.unwrap();
    let user = User {
        subject: "pw-bench".into(),
        name: "bench".into(),
        facility: viewer_facility,
        role: Role::Physician,
    };
    let sid = viewer.sessions.log_in(&viewer.sessions.create(), user);
    let pool = viewer.store.pool.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    tokio::spawn(kizuna_viewer::serve_on(listener, viewer, std::future::pending()));
    let http = reqwest::Client::new();
    let cookie = format!("{}={sid}", kizuna_viewer::session::COOKIE);

    // Baseline 1: a full scan of the same table.
    let t = Instant::now();
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM records").fetch_one(&pool).await.unwrap();
    let scan_ms = t.elapsed().as_secs_f64() * 1000.0;
    assert_eq!(n as u64, records);

    // Warm-up, then the measured requests.
    let mut times = Vec::new();
    let mut rows = 0usize;
    for (round, cid) in ids.iter().enumerate() {
        let t = Instant::now();
        let r =
            http.get(format!("http://{addr}/patients/{cid}")).header("cookie", &cookie).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 200);
        let body = r.text().await.unwrap();
        let elapsed = t.elapsed();
        if round >= 10 {
            times.push(elapsed);
        }
        rows += body.matches("<tr class=\"entry").count();
    }
    times.sort();

    // Baseline 2: the viewer's records query for one key without its index.
    let mut unindexed = Vec::new();
    for s in 0..3u64 {
        let local = format!("P{:09}", (s * 7_919) % PATIENTS_PER_FACILITY);
        let t = Instant::now();
        let _ = sqlx::query(
            "SELECT id, order_date, data_kind FROM records NOT INDEXED WHERE facility_id = $1 AND patient_id = $2 \
             AND condition_flag = '1' ORDER BY order_date DESC, transaction_datetime DESC",
        )
        .bind(facility(s * 3))
        .bind(&local)
        .fetch_all(&pool)
        .await
        .unwrap();
        unindexed.push(t.elapsed().as_secs_f64() * 1000.0);
    }

    println!(
        "IndexDB: {records} records (+ search rows), {:.1} GB, generated in {gen_secs:.0} s",
        db_bytes as f64 / 1e9
    );
    println!(
        "time series page over HTTP, {} patients x 3 facilities ({:.1} records each): p50 {:.1} ms  p95 {:.1} ms  p99 {:.1} ms  max {:.1} ms",
        times.len(),
        rows as f64 / ids.len() as f64,
        pct(&times, 0.50),
        pct(&times, 0.95),
        pct(&times, 0.99),
        pct(&times, 1.0)
    );
    println!("baseline: SELECT count(*) FROM records (full scan): {scan_ms:.0} ms");
    println!(
        "baseline: one facility's records query NOT INDEXED: {:.0} ms (mean of {})",
        unindexed.iter().sum::<f64>() / unindexed.len() as f64,
        unindexed.len()
    );
    drop(dir);
    eprintln!("scratch IndexDB deleted");
}
