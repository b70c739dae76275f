//! Writes to the IndexDB: one row per stored file (the SSMIXIDX fields and Kizuna's own), the
//! viewer's search rows, rejections and per-site counters. Every write is idempotent, so recovery
//! can replay journal entries that may already be in the index.

use std::collections::BTreeMap;

use sqlx::any::Any;
use sqlx::{Row, Transaction};
use ssmix2::{ConditionFlag, FileName, StoragePath};

use crate::db::{Backend, Db};
use crate::extract::Extracted;
use crate::journal::{Change, Entry};
use crate::{FacilityId, StoreError};

/// What the index needs about a file that a journal entry writes.
#[derive(Debug, Clone)]
pub struct StoredFile {
    pub facility: FacilityId,
    /// The path it was written under (its flag may differ from the one it was sent with).
    pub path: StoragePath,
    pub sha256: String,
    pub size: u64,
    pub site: String,
    /// `INS` new data, `UPD` a new version of existing data, `DEL` a delete message.
    pub processing_type: &'static str,
    pub extracted: Extracted,
}

/// One refused file, for the `rejections` table.
#[derive(Debug, Clone)]
pub struct Rejection {
    pub facility: String,
    pub path: String,
    pub sha256: String,
    pub codes: Vec<String>,
    pub reason: String,
}

/// The outcome counts of one batch, for the per-site counters.
#[derive(Debug, Clone, Default)]
pub struct Tally {
    pub stored: u64,
    pub duplicate: u64,
    pub rejected: u64,
    pub bytes: u64,
    /// Rejected files per violation code.
    pub codes: BTreeMap<String, u64>,
    pub rejections: Vec<Rejection>,
}

/// Text as the database can hold it: PostgreSQL refuses NUL in text, so NUL (which can only come
/// from a hostile or broken sender) is written as `\0`.
pub fn db_text(s: &str) -> std::borrow::Cow<'_, str> {
    if s.contains('\0') {
        std::borrow::Cow::Owned(s.replace('\0', "\\0"))
    } else {
        std::borrow::Cow::Borrowed(s)
    }
}

/// The file name without its condition flag: the same for every version a rename makes.
pub fn version_key(name: &FileName) -> String {
    let s = name.to_string();
    s[..s.len() - 2].to_owned()
}

fn file_part(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

fn flag_of(name: &str) -> String {
    name.rsplit('_').next().unwrap_or("").to_owned()
}

/// Applies one journal entry to the index inside `tx`. `stored` describes the entry's `Write`;
/// `None` means its record is known to be in the index already (recovery), and the write is skipped.
/// Writes the record only (its search rows are derived behind, see [`crate::search`]). Returns
/// the id of the record when a new one was inserted.
pub async fn apply_entry(
    tx: &mut Transaction<'static, Any>,
    backend: Backend,
    volume_label: &str,
    entry: &Entry,
    stored: Option<&StoredFile>,
) -> Result<Option<i64>, StoreError> {
    let mut inserted = None;
    for change in &entry.changes {
        match change {
            Change::Rename { from, to, .. } => {
                let to_name = file_part(to);
                sqlx::query(
                    "UPDATE records SET file_name = $1, condition_flag = $2, update_datetime = $3 WHERE facility_id = $4 AND file_name = $5",
                )
                .bind(to_name)
                .bind(flag_of(to_name))
                .bind(&entry.time)
                .bind(&entry.facility)
                .bind(file_part(from))
                .execute(&mut **tx)
                .await?;
            }
            Change::Write { path, .. } => {
                let Some(s) = stored else { continue };
                if s.path.to_string() != *path {
                    return Err(StoreError::Recovery(format!(
                        "entry {}: index data is for {}, not {path}",
                        entry.seq, s.path
                    )));
                }
                if let Some(id) =
                    crate::index_rows::insert_run(tx, backend, volume_label, &[(entry, s)]).await?[0]
                {
                    inserted = Some(id);
                }
            }
            Change::Delete { path, .. } => {
                let name = file_part(path);
                let id = sqlx::query("SELECT id FROM records WHERE facility_id = $1 AND file_name = $2")
                    .bind(&entry.facility)
                    .bind(name)
                    .fetch_optional(&mut **tx)
                    .await?;
                if let Some(row) = id {
                    let id: i64 = row.try_get("id")?;
                    for q in [
                        "DELETE FROM drugs WHERE record_id = $1",
                        "DELETE FROM labs WHERE record_id = $1",
                        "DELETE FROM diagnoses WHERE record_id = $1",
                        "DELETE FROM encounters WHERE record_id = $1",
                    ] {
                        sqlx::query(q).bind(id).execute(&mut **tx).await?;
                    }
                    sqlx::query("DELETE FROM records WHERE id = $1").bind(id).execute(&mut **tx).await?;
                }
            }
        }
    }
    Ok(inserted)
}

/// Records a batch's counters, rejections and the site's last activity inside `tx`.
pub async fn record_tally(
    tx: &mut Transaction<'static, Any>,
    site: &str,
    tally: &Tally,
) -> Result<(), StoreError> {
    let now = jiff::Timestamp::now();
    let t = now.to_string();
    let day = utc_day(now);
    add_site_daily(tx, site, &day, tally).await?;
    for (code, n) in &tally.codes {
        sqlx::query(
            "INSERT INTO site_reject_codes (site, day, code, files) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (site, day, code) DO UPDATE SET files = site_reject_codes.files + excluded.files",
        )
        .bind(site)
        .bind(&day)
        .bind(code)
        .bind(*n as i64)
        .execute(&mut **tx)
        .await?;
    }
    for r in &tally.rejections {
        sqlx::query(
            "INSERT INTO rejections (site, facility_id, path, sha256, codes, reason, first_at, last_at, times) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $7, 1) ON CONFLICT (facility_id, path, sha256) DO UPDATE SET \
             last_at = excluded.last_at, times = rejections.times + 1, site = excluded.site",
        )
        .bind(site)
        .bind(&r.facility)
        .bind(db_text(&r.path).into_owned())
        .bind(&r.sha256)
        .bind(r.codes.join(","))
        .bind(db_text(&r.reason).into_owned())
        .bind(&t)
        .execute(&mut **tx)
        .await?;
    }
    let stored_at = (tally.stored > 0).then(|| t.clone());
    sqlx::query(
        "INSERT INTO site_status (site, last_batch_at, last_stored_at) VALUES ($1, $2, $3) ON CONFLICT (site) DO UPDATE SET \
         last_batch_at = excluded.last_batch_at, last_stored_at = COALESCE(excluded.last_stored_at, site_status.last_stored_at)",
    )
    .bind(site)
    .bind(&t)
    .bind(stored_at)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Adds a tally's stored, duplicate, rejected and bytes counts to a site's counters of `day`.
pub(crate) async fn add_site_daily(
    tx: &mut Transaction<'static, Any>,
    site: &str,
    day: &str,
    tally: &Tally,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO site_daily (site, day, stored, duplicate, rejected, bytes) VALUES ($1, $2, $3, $4, $5, $6) \
         ON CONFLICT (site, day) DO UPDATE SET stored = site_daily.stored + excluded.stored, \
         duplicate = site_daily.duplicate + excluded.duplicate, rejected = site_daily.rejected + excluded.rejected, \
         bytes = site_daily.bytes + excluded.bytes",
    )
    .bind(site)
    .bind(day)
    .bind(tally.stored as i64)
    .bind(tally.duplicate as i64)
    .bind(tally.rejected as i64)
    .bind(tally.bytes as i64)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The UTC day (`YYYY-MM-DD`) of a time: the key of the per-site daily counters.
pub(crate) fn utc_day(t: jiff::Timestamp) -> String {
    t.to_zoned(jiff::tz::TimeZone::UTC).date().to_string()
}

/// Raises the persisted applied watermark (never lowers it).
pub async fn set_applied(tx: &mut Transaction<'static, Any>, seq: u64) -> Result<(), StoreError> {
    raise_watermark(tx, "applied_seq", seq).await
}

/// The persisted applied watermark.
pub async fn applied(db: &Db) -> Result<u64, StoreError> {
    watermark(db, "applied_seq").await
}

/// Raises the journal watermark `key` of `store_state` (`applied_seq`, `search_seq`) to `seq`;
/// never lowers it.
pub(crate) async fn raise_watermark(
    tx: &mut Transaction<'static, Any>,
    key: &str,
    seq: u64,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE store_state SET value = $1 WHERE key = $2 AND value < $1")
        .bind(seq as i64)
        .bind(key)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// The persisted journal watermark `key` of `store_state`.
pub(crate) async fn watermark(db: &Db, key: &str) -> Result<u64, StoreError> {
    let row =
        sqlx::query("SELECT value FROM store_state WHERE key = $1").bind(key).fetch_one(&db.pool).await?;
    Ok(row.try_get::<i64, _>("value")? as u64)
}

/// True if the index already has this version of a file (any flag).
pub async fn has_version(db: &Db, facility: &str, name: &FileName) -> Result<bool, StoreError> {
    let row = sqlx::query("SELECT id FROM records WHERE facility_id = $1 AND version_key = $2")
        .bind(facility)
        .bind(version_key(name))
        .fetch_optional(&db.pool)
        .await?;
    Ok(row.is_some())
}

/// `INS`, `UPD` or `DEL` for a write, from the name written and whether it superseded anything.
pub fn processing_type(written: &FileName, superseded_something: bool) -> &'static str {
    match written.flag {
        ConditionFlag::Deleted => "DEL",
        _ if superseded_something => "UPD",
        _ => "INS",
    }
}
