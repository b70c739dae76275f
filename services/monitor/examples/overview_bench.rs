//! How long the admin screen takes to read every site's facts, against reading them one site at
//! a time (the shape of the code before: each table queried per site), in the same run.
//!
//! `cargo run --release -p kizuna-monitor --example overview_bench -- [SITES] [ROUNDS] [DATA_DIR]`
//! (defaults 900 sites, 3 rounds). Each site gets 60 days of counts, 2–200 rejected files, four
//! quarantined files, and a daily log with 20 ERROR/WARN lines, in a SQLite IndexDB under a
//! temporary folder.

use std::time::Instant;

use kizuna_monitor::status;
use kizuna_store::{Config, Store};
use sqlx::Executor;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let sites: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(900);
    let rounds: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(3);
    let dir = tempfile::tempdir()?;
    // A third argument keeps the data folder there, for a look at the IndexDB afterwards.
    let data_dir = args.next().map_or_else(|| dir.path().join("data"), std::path::PathBuf::from);
    let store = Store::open(Config { data_dir, ..Config::default() }).await?;
    let t = Instant::now();
    for i in 0..sites {
        let name = format!("site-{i:04}");
        let facility_id = format!("04{:08}", 10_000 + i);
        let facility = kizuna_store::FacilityId::new(&facility_id).map_err(|e| anyhow::anyhow!("{e}"))?;
        kizuna_store::sites::add_site(&store.db, &name, &[facility], &[]).await?;
        let mut tx = store.db.pool.begin().await?;
        let mut s = vec![format!(
            "INSERT INTO site_status (site, last_batch_at, last_heartbeat_at, queue_depth) \
             VALUES ('{name}', '2026-11-27T23:00:00Z', '2026-11-27T23:30:00Z', {})",
            i % 7
        )];
        for d in 0..60 {
            let day = format!("2026-{:02}-{:02}", 9 + d / 30, 1 + d % 30);
            s.push(format!(
                "INSERT INTO site_daily (site, day, stored, duplicate, rejected, bytes) VALUES ('{name}', '{day}', 500, 3, 2, 900000)"
            ));
            s.push(format!(
                "INSERT INTO site_reject_codes (site, day, code, files) VALUES ('{name}', '{day}', 'required-field-missing', 2)"
            ));
        }
        for r in 0..(2 + (i * 37) % 199) {
            s.push(format!(
                "INSERT INTO rejections (site, facility_id, path, sha256, codes, reason, first_at, last_at, times) \
                 VALUES ('{name}', '{facility_id}', 'p{r}', 'h', 'required-field-missing', 'PID-5 is empty', \
                 '2026-11-20T00:00:00Z', '2026-11-{:02}T00:00:00Z', 1)",
                1 + r % 27
            ));
        }
        for q in 0..4 {
            s.push(format!(
                "INSERT INTO agent_quarantine (site, file, origin, sha256, codes, reason, quarantined_at, reported_at) \
                 VALUES ('{name}', 'q{q}', 'agent', 'h', 'not-hl7', 'r', '2026-11-27T08:00:00+09:00', '2026-11-27T00:00:00Z')"
            ));
        }
        s.push(format!(
            "INSERT INTO daily_logs (site, day, files_uploaded, files_quarantined, upload_errors, truncated, received_at) \
             VALUES ('{name}', '2026-11-27', 500, 2, 0, 0, '2026-11-28T00:00:00Z')"
        ));
        for l in 0..20 {
            let level = if l % 3 == 0 { "ERROR" } else { "WARN" };
            s.push(format!(
                "INSERT INTO daily_log_lines (site, day, line_no, time, level, message) \
                 VALUES ('{name}', '2026-11-27', {l}, '10:00:00', '{level}', 'upload failed: connection refused')"
            ));
        }
        for q in s {
            tx.execute(sqlx::AssertSqlSafe(q)).await?;
        }
        tx.commit().await?;
    }
    println!("{sites} sites written in {:.1} s", t.elapsed().as_secs_f64());

    let cfg = kizuna_monitor::Config::default();
    for round in 1..=rounds {
        let t = Instant::now();
        let all = status::all_sites(&store.db, &cfg).await?;
        let batched = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let mut one_by_one = Vec::with_capacity(all.len());
        for f in &all {
            one_by_one.push(status::one_site(&store.db, &f.site.name, &cfg).await?.expect("site"));
        }
        let per_site = t.elapsed().as_secs_f64();
        println!(
            "round {round}: every site at once {:.0} ms; one site at a time {:.0} ms; ratio {:.3}",
            batched * 1000.0,
            per_site * 1000.0,
            batched / per_site
        );
    }
    Ok(())
}
