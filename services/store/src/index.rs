//! Writes to the IndexDB: one row per stored file (the SSMIXIDX fields and Kizuna's own), the
//! viewer's search rows, rejections and per-site counters. Every write is idempotent, so recovery
//! can replay journal entries that may already be in the index.

use std::collections::BTreeMap;

use sqlx::any::Any;
use sqlx::{Row, Transaction};
use ssmix2::{ConditionFlag, FileName, StoragePath};

use crate::db::Db;
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
/// Returns true when a new record row was inserted.
pub async fn apply_entry(
    tx: &mut Transaction<'static, Any>,
    volume_label: &str,
    entry: &Entry,
    stored: Option<&StoredFile>,
) -> Result<bool, StoreError> {
    let mut inserted = false;
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
                inserted |= insert_record(tx, volume_label, entry, s).await?;
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

async fn insert_record(
    tx: &mut Transaction<'static, Any>,
    volume_label: &str,
    entry: &Entry,
    s: &StoredFile,
) -> Result<bool, StoreError> {
    let n = &s.path.name;
    let row = sqlx::query(
        "INSERT INTO records (volume_label, facility_id, patient_id, order_date, data_kind, order_no, processing_type, \
         enter_org_cd, transaction_datetime, out_rel_directory, file_name, update_datetime, version_key, condition_flag, \
         sha256, size, received_at, site, message_type, journal_seq) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20) \
         ON CONFLICT (facility_id, version_key) DO NOTHING RETURNING id",
    )
    .bind(volume_label)
    .bind(s.facility.as_str())
    .bind(n.patient.as_str())
    .bind(n.care_date.to_string())
    .bind(n.data_type.code())
    .bind(n.order_no.as_str())
    .bind(s.processing_type)
    .bind(n.department.to_string())
    .bind(n.timestamp.as_str())
    .bind(s.path.dir().to_string_lossy().into_owned())
    .bind(n.to_string())
    .bind(&entry.time)
    .bind(version_key(n))
    .bind(n.flag.to_string())
    .bind(&s.sha256)
    .bind(s.size as i64)
    .bind(&entry.time)
    .bind(&s.site)
    .bind(&s.extracted.message_type)
    .bind(entry.seq as i64)
    .fetch_optional(&mut **tx)
    .await?;
    let Some(row) = row else { return Ok(false) };
    let id: i64 = row.try_get("id")?;
    let (fac, pid, date) = (s.facility.as_str(), n.patient.as_str(), n.care_date.to_string());
    let x = &s.extracted;
    for (i, d) in x.drugs.iter().enumerate() {
        sqlx::query(
            "INSERT INTO drugs (record_id, facility_id, patient_id, order_date, item_no, source, code, name, coding_system, \
             dose, dose_unit, days, route, given_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
        )
        .bind(id)
        .bind(fac)
        .bind(pid)
        .bind(&date)
        .bind(i as i64 + 1)
        .bind(d.source)
        .bind(&d.code)
        .bind(&d.name)
        .bind(&d.coding_system)
        .bind(&d.dose)
        .bind(&d.dose_unit)
        .bind(&d.days)
        .bind(&d.route)
        .bind(&d.given_at)
        .execute(&mut **tx)
        .await?;
    }
    for (i, l) in x.labs.iter().enumerate() {
        // A NULL bound through the Any driver can make PostgreSQL prepare the statement with a type
        // that a later f64 does not fit; so a missing number is written as a literal NULL instead.
        const WITH_NUM: &str = "INSERT INTO labs (record_id, facility_id, patient_id, order_date, item_no, code, name, \
             coding_system, value_type, value, units, reference_range, abnormal_flags, result_status, observed_at, value_num) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)";
        const WITHOUT_NUM: &str = "INSERT INTO labs (record_id, facility_id, patient_id, order_date, item_no, code, name, \
             coding_system, value_type, value, units, reference_range, abnormal_flags, result_status, observed_at, value_num) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, NULL)";
        let q = sqlx::query(if l.value_num.is_some() { WITH_NUM } else { WITHOUT_NUM })
            .bind(id)
            .bind(fac)
            .bind(pid)
            .bind(&date)
            .bind(i as i64 + 1)
            .bind(&l.code)
            .bind(&l.name)
            .bind(&l.coding_system)
            .bind(&l.value_type)
            .bind(&l.value)
            .bind(&l.units)
            .bind(&l.reference_range)
            .bind(&l.abnormal_flags)
            .bind(&l.result_status)
            .bind(&l.observed_at);
        let q = match l.value_num {
            Some(v) => q.bind(v),
            None => q,
        };
        q.execute(&mut **tx).await?;
    }
    for (i, d) in x.diagnoses.iter().enumerate() {
        sqlx::query(
            "INSERT INTO diagnoses (record_id, facility_id, patient_id, item_no, source, code, name, coding_system, icd10, \
             onset_date, status) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(id)
        .bind(fac)
        .bind(pid)
        .bind(i as i64 + 1)
        .bind(d.source)
        .bind(&d.code)
        .bind(&d.name)
        .bind(&d.coding_system)
        .bind(&d.icd10)
        .bind(&d.onset_date)
        .bind(&d.status)
        .execute(&mut **tx)
        .await?;
    }
    for e in &x.encounters {
        sqlx::query(
            "INSERT INTO encounters (record_id, facility_id, patient_id, event, trigger_event, event_time, patient_class, ward) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(id)
        .bind(fac)
        .bind(pid)
        .bind(e.event)
        .bind(&e.trigger_event)
        .bind(&e.event_time)
        .bind(&e.patient_class)
        .bind(&e.ward)
        .execute(&mut **tx)
        .await?;
    }
    Ok(true)
}

/// Records a batch's counters, rejections and the site's last activity inside `tx`.
pub async fn record_tally(
    tx: &mut Transaction<'static, Any>,
    site: &str,
    tally: &Tally,
) -> Result<(), StoreError> {
    let now = jiff::Timestamp::now();
    let t = now.to_string();
    let day = now.to_zoned(jiff::tz::TimeZone::UTC).date().to_string();
    sqlx::query(
        "INSERT INTO site_daily (site, day, stored, duplicate, rejected, bytes) VALUES ($1, $2, $3, $4, $5, $6) \
         ON CONFLICT (site, day) DO UPDATE SET stored = site_daily.stored + excluded.stored, \
         duplicate = site_daily.duplicate + excluded.duplicate, rejected = site_daily.rejected + excluded.rejected, \
         bytes = site_daily.bytes + excluded.bytes",
    )
    .bind(site)
    .bind(&day)
    .bind(tally.stored as i64)
    .bind(tally.duplicate as i64)
    .bind(tally.rejected as i64)
    .bind(tally.bytes as i64)
    .execute(&mut **tx)
    .await?;
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

/// Raises the persisted applied watermark (never lowers it).
pub async fn set_applied(tx: &mut Transaction<'static, Any>, seq: u64) -> Result<(), StoreError> {
    sqlx::query("UPDATE store_state SET value = $1 WHERE key = 'applied_seq' AND value < $1")
        .bind(seq as i64)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// The persisted applied watermark.
pub async fn applied(db: &Db) -> Result<u64, StoreError> {
    let row =
        sqlx::query("SELECT value FROM store_state WHERE key = 'applied_seq'").fetch_one(&db.pool).await?;
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
