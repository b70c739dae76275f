//! Re-requests: an operator asks a site's agent to release one quarantined file (after the facility
//! fixed it) for re-validation and upload. The store keeps the request, hands it to the agent in
//! every heartbeat answer until the agent reports what it did, and keeps that outcome.

use kizuna_wire::{Rerequest, RerequestOutcome};
use sqlx::Row;

use crate::StoreError;
use crate::db::Db;
use crate::index::db_text;

/// One re-request, as the admin screen lists it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RerequestRow {
    pub id: i64,
    pub site: String,
    pub file: String,
    pub sha256: String,
    pub requested_at: String,
    pub requested_by: String,
    /// `pending`, `released`, `missing` or `failed`.
    pub state: String,
    pub note: String,
    pub done_at: Option<String>,
}

/// Records a request to release `file` (a path below the site's agent quarantine). A pending
/// request for the same file is reused. Returns the request's id.
pub async fn request(db: &Db, site: &str, file: &str, sha256: &str, by: &str) -> Result<i64, StoreError> {
    let _w = db.write_guard().await;
    let mut tx = db.begin_write().await?;
    let known =
        sqlx::query("SELECT name FROM sites WHERE name = $1").bind(site).fetch_optional(&mut *tx).await?;
    if known.is_none() {
        return Err(StoreError::Site { site: site.into(), reason: "no such site".into() });
    }
    let file = db_text(file).into_owned();
    if db.backend == crate::db::Backend::Postgres {
        // PostgreSQL runs writers side by side (READ COMMITTED, no in-process write lock): two
        // requests for one file would both find none pending. This lock, held to the commit,
        // makes the second wait and then find the first's.
        sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1))::text")
            .bind(format!("kizuna-rerequest\n{site}\n{file}"))
            .fetch_one(&mut *tx)
            .await?;
    }
    let existing =
        sqlx::query("SELECT id FROM rerequests WHERE site = $1 AND file = $2 AND state = 'pending'")
            .bind(site)
            .bind(&file)
            .fetch_optional(&mut *tx)
            .await?;
    if let Some(r) = existing {
        return Ok(r.try_get("id")?);
    }
    let row = sqlx::query(
        "INSERT INTO rerequests (site, file, sha256, requested_at, requested_by, state, note) \
         VALUES ($1, $2, $3, $4, $5, 'pending', '') RETURNING id",
    )
    .bind(site)
    .bind(&file)
    .bind(sha256)
    .bind(jiff::Timestamp::now().to_string())
    .bind(db_text(by).into_owned())
    .fetch_one(&mut *tx)
    .await?;
    db.commit(tx).await?;
    Ok(row.try_get("id")?)
}

/// The site's pending requests, oldest first (what the next heartbeat answer carries).
pub async fn pending(db: &Db, site: &str) -> Result<Vec<Rerequest>, StoreError> {
    let rows =
        sqlx::query("SELECT id, file FROM rerequests WHERE site = $1 AND state = 'pending' ORDER BY id")
            .bind(site)
            .fetch_all(&db.pool)
            .await?;
    rows.iter().map(|r| Ok(Rerequest { id: r.try_get("id")?, file: r.try_get("file")? })).collect()
}

/// Stores what the agent did. Only the site's own pending requests are updated; unknown ids and
/// outcomes other than released/missing/failed are ignored.
pub async fn record_outcomes(db: &Db, site: &str, outcomes: &[RerequestOutcome]) -> Result<(), StoreError> {
    if outcomes.is_empty() {
        return Ok(());
    }
    let t = jiff::Timestamp::now().to_string();
    let _w = db.write_guard().await;
    let mut tx = db.begin_write().await?;
    for o in outcomes {
        if !matches!(o.outcome.as_str(), "released" | "missing" | "failed") {
            continue;
        }
        let note: String = o.message.chars().take(1000).collect();
        sqlx::query(
            "UPDATE rerequests SET state = $1, note = $2, done_at = $3 WHERE id = $4 AND site = $5 AND state = 'pending'",
        )
        .bind(&o.outcome)
        .bind(db_text(&note).into_owned())
        .bind(&t)
        .bind(o.id)
        .bind(site)
        .execute(&mut *tx)
        .await?;
    }
    db.commit(tx).await?;
    Ok(())
}

/// The site's requests, newest first (at most `limit`).
pub async fn list(db: &Db, site: &str, limit: i64) -> Result<Vec<RerequestRow>, StoreError> {
    let rows = sqlx::query(
        "SELECT id, site, file, sha256, requested_at, requested_by, state, note, done_at FROM rerequests \
         WHERE site = $1 ORDER BY id DESC LIMIT $2",
    )
    .bind(site)
    .bind(limit)
    .fetch_all(&db.pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(RerequestRow {
                id: r.try_get("id")?,
                site: r.try_get("site")?,
                file: r.try_get("file")?,
                sha256: r.try_get("sha256")?,
                requested_at: r.try_get("requested_at")?,
                requested_by: r.try_get("requested_by")?,
                state: r.try_get("state")?,
                note: r.try_get("note")?,
                done_at: r.try_get("done_at")?,
            })
        })
        .collect()
}
