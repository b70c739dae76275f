//! What the agents tell the store besides files: heartbeats and the daily summary of their own log.
//! Kept per site for the monitoring (admin screen, alert rules).

use kizuna_wire::{DailyLog, Heartbeat};

use crate::StoreError;
use crate::db::Db;
use crate::index::db_text;

/// Most log lines kept from one daily report.
pub const MAX_LOG_LINES: usize = 10_000;

/// Why a report was refused: the field and the problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadReport(pub String);

/// Checks a daily log before it is stored.
pub fn check_daily_log(log: &DailyLog) -> Result<(), BadReport> {
    if log.date.len() != 10 || log.date.parse::<jiff::civil::Date>().is_err() {
        return Err(BadReport(format!("date {:?} is not YYYY-MM-DD", log.date.escape_default().to_string())));
    }
    if log.lines.len() > MAX_LOG_LINES {
        return Err(BadReport(format!(
            "{} lines is more than the limit of {MAX_LOG_LINES}",
            log.lines.len()
        )));
    }
    for (i, l) in log.lines.iter().enumerate() {
        if !matches!(l.level.as_str(), "ERROR" | "WARN" | "INFO") {
            return Err(BadReport(format!("lines[{i}].level {:?} is not ERROR, WARN or INFO", l.level)));
        }
    }
    Ok(())
}

/// Stores a heartbeat and updates the site's status; the site's history rows older than
/// `history_days` go (none kept at 0), so `heartbeats` stays bounded.
pub async fn record_heartbeat(
    db: &Db,
    site: &str,
    hb: &Heartbeat,
    peer: &str,
    history_days: u32,
) -> Result<(), StoreError> {
    let now = jiff::Timestamp::now();
    let t = now.to_string();
    let cutoff = now
        .checked_sub(jiff::SignedDuration::from_hours(24 * i64::from(history_days)))
        .unwrap_or(jiff::Timestamp::MIN);
    let _w = db.write_guard().await;
    let mut tx = db.begin_write().await?;
    if history_days > 0 {
        sqlx::query(
            "INSERT INTO heartbeats (site, received_at, agent_version, queue_depth, quarantined, agent_last_upload) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(site)
        .bind(&t)
        .bind(db_text(&hb.agent_version).into_owned())
        .bind(hb.queue_depth as i64)
        .bind(hb.quarantined as i64)
        .bind(hb.last_upload.as_deref().map(|t| db_text(t).into_owned()))
        .execute(&mut *tx)
        .await?;
    }
    // RFC 3339 UTC text compares in time order (to the second: fractions are printed shortest).
    sqlx::query("DELETE FROM heartbeats WHERE site = $1 AND received_at < $2")
        .bind(site)
        .bind(if history_days > 0 { cutoff.to_string() } else { "~".to_owned() })
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "INSERT INTO site_status (site, last_heartbeat_at, agent_version, queue_depth, quarantined, agent_last_upload, last_peer) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (site) DO UPDATE SET last_heartbeat_at = excluded.last_heartbeat_at, \
         agent_version = excluded.agent_version, queue_depth = excluded.queue_depth, quarantined = excluded.quarantined, \
         agent_last_upload = excluded.agent_last_upload, last_peer = excluded.last_peer",
    )
    .bind(site)
    .bind(&t)
    .bind(db_text(&hb.agent_version).into_owned())
    .bind(hb.queue_depth as i64)
    .bind(hb.quarantined as i64)
    .bind(hb.last_upload.as_deref().map(|t| db_text(t).into_owned()))
    .bind(peer)
    .execute(&mut *tx)
    .await?;
    if let Some(files) = &hb.quarantine {
        // The agent lists its newest quarantined files each time: the list replaces the last one.
        // `reported_at` is when the centre first saw a file (the monitor's rejects window runs on
        // the centre's clock, not the agent's): kept for a file and content listed before.
        let mut first_seen = std::collections::HashMap::new();
        for r in sqlx::query("SELECT file, sha256, reported_at FROM agent_quarantine WHERE site = $1")
            .bind(site)
            .fetch_all(&mut *tx)
            .await?
        {
            use sqlx::Row;
            let key: (String, String) = (r.try_get("file")?, r.try_get("sha256")?);
            first_seen.insert(key, r.try_get::<String, _>("reported_at")?);
        }
        sqlx::query("DELETE FROM agent_quarantine WHERE site = $1").bind(site).execute(&mut *tx).await?;
        let mut seen = std::collections::BTreeSet::new();
        for f in files.iter().take(kizuna_wire::MAX_QUARANTINE_REPORT) {
            if !seen.insert(f.file.as_str()) {
                continue;
            }
            sqlx::query(
                "INSERT INTO agent_quarantine (site, file, origin, sha256, codes, reason, quarantined_at, reported_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(site)
            .bind(db_text(&f.file).into_owned())
            .bind(if f.origin == "store" { "store" } else { "agent" })
            .bind(db_text(&f.sha256).into_owned())
            .bind(db_text(&f.codes.join(",")).into_owned())
            .bind(db_text(&f.reason).into_owned())
            .bind(db_text(&f.time).into_owned())
            .bind(
                first_seen
                    .get(&(db_text(&f.file).into_owned(), db_text(&f.sha256).into_owned()))
                    .unwrap_or(&t),
            )
            .execute(&mut *tx)
            .await?;
        }
    }
    db.commit(tx).await?;
    Ok(())
}

/// Checks a heartbeat's free-form parts before it is stored.
pub fn check_heartbeat(hb: &Heartbeat) -> Result<(), BadReport> {
    if let Some(q) = &hb.quarantine
        && q.len() > kizuna_wire::MAX_QUARANTINE_REPORT
    {
        return Err(BadReport(format!(
            "quarantine lists {} files, more than the limit of {}",
            q.len(),
            kizuna_wire::MAX_QUARANTINE_REPORT
        )));
    }
    if hb.rerequests_done.len() > 10_000 {
        return Err(BadReport("rerequests_done holds more than 10000 outcomes".into()));
    }
    Ok(())
}

/// Stores a daily log report; a second report for the same day replaces the first.
pub async fn record_daily_log(db: &Db, site: &str, log: &DailyLog) -> Result<(), StoreError> {
    let t = jiff::Timestamp::now().to_string();
    let _w = db.write_guard().await;
    let mut tx = db.begin_write().await?;
    sqlx::query(
        "INSERT INTO daily_logs (site, day, files_uploaded, files_quarantined, upload_errors, truncated, received_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (site, day) DO UPDATE SET files_uploaded = excluded.files_uploaded, \
         files_quarantined = excluded.files_quarantined, upload_errors = excluded.upload_errors, \
         truncated = excluded.truncated, received_at = excluded.received_at",
    )
    .bind(site)
    .bind(&log.date)
    .bind(log.files_uploaded as i64)
    .bind(log.files_quarantined as i64)
    .bind(log.upload_errors as i64)
    .bind(i64::from(log.truncated))
    .bind(&t)
    .execute(&mut *tx)
    .await?;
    sqlx::query("DELETE FROM daily_log_lines WHERE site = $1 AND day = $2")
        .bind(site)
        .bind(&log.date)
        .execute(&mut *tx)
        .await?;
    for (i, l) in log.lines.iter().enumerate() {
        sqlx::query(
            "INSERT INTO daily_log_lines (site, day, line_no, time, level, message) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(site)
        .bind(&log.date)
        .bind(i as i64 + 1)
        .bind(db_text(&l.time).into_owned())
        .bind(&l.level)
        .bind(db_text(&l.message).into_owned())
        .execute(&mut *tx)
        .await?;
    }
    db.commit(tx).await?;
    Ok(())
}
