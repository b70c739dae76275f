//! The ingest path's index writes in multi-row statements: a run of journal entries that each
//! write one new file becomes one `INSERT … RETURNING` per chunk of records, and a set of new
//! records becomes one `INSERT` per chunk of each search table, instead of one statement per record
//! and per search row. Each statement is a hand-off to the database driver's thread; a profile of
//! the upload benchmark showed those hand-offs, not SQLite's own work, filling the single writer's
//! time.
//!
//! Records are written before the answer ([`apply_entries`]); their search rows are written
//! behind it by [`crate::search`] ([`insert_search_rows`]).
//!
//! Same result as [`crate::index::apply_entry`] entry by entry (which writes its one record
//! through [`insert_run`] too): entries with other changes (renames, deletes) are applied one by
//! one, in order, between runs; a run never holds two files with the same version key, so
//! `ON CONFLICT DO NOTHING` decides each one as it would alone.

use std::collections::{HashMap, HashSet};

use sqlx::any::{Any, AnyRow};
use sqlx::{Row, Transaction};

use crate::StoreError;
use crate::db::Backend;
use crate::index::{StoredFile, apply_entry, db_text, version_key};
use crate::journal::{Change, Entry};

/// Bound values per statement, well under SQLite's and PostgreSQL's limits.
const MAX_PARAMS: usize = 900;
/// Longest value kept in an indexed search column (codes, ICD-10, event times). Real codes are a
/// few dozen characters; PostgreSQL refuses a B-tree key over ~2.7 KB, which would stop the
/// search writer on one odd file. The file itself keeps the whole value.
const MAX_KEY_BYTES: usize = 512;

/// `s` cut to at most [`MAX_KEY_BYTES`], at a character boundary.
fn key_text(s: &str) -> &str {
    if s.len() <= MAX_KEY_BYTES {
        return s;
    }
    let mut end = MAX_KEY_BYTES;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// One value of a row; for PostgreSQL `Null` is written as a literal (a NULL bound through the Any
/// driver can make PostgreSQL prepare a statement with a type a later value does not fit).
enum Val<'a> {
    Text(&'a str),
    Owned(String),
    Int(i64),
    Real(f64),
    Null,
}

/// Applies `items` (each a journal entry and what the index needs about the file it writes) in
/// order, batching runs of entries that only write one file. Writes the records only; returns,
/// in the order of `items`, the id of each record that was new (its search rows are still to
/// be written).
pub async fn apply_entries(
    tx: &mut Transaction<'static, Any>,
    backend: Backend,
    volume_label: &str,
    items: &[(&Entry, &StoredFile)],
) -> Result<Vec<Option<i64>>, StoreError> {
    let mut out = Vec::with_capacity(items.len());
    let mut run: Vec<(&Entry, &StoredFile)> = Vec::new();
    let mut keys: HashSet<(String, String)> = HashSet::new();
    for &(e, s) in items {
        let writes_it =
            matches!(e.changes.as_slice(), [Change::Write { path, .. }] if *path == s.path.to_string());
        if !writes_it {
            out.extend(insert_run(tx, backend, volume_label, &run).await?);
            run.clear();
            keys.clear();
            out.push(apply_entry(tx, backend, volume_label, e, Some(s)).await?);
            continue;
        }
        let key = (s.facility.as_str().to_owned(), version_key(&s.path.name));
        if keys.contains(&key) {
            out.extend(insert_run(tx, backend, volume_label, &run).await?);
            run.clear();
            keys.clear();
        }
        keys.insert(key);
        run.push((e, s));
    }
    out.extend(insert_run(tx, backend, volume_label, &run).await?);
    Ok(out)
}

/// The records of a run (entries each writing the file described beside it); returns, in the
/// order of `run`, the id of each record that was new (`None`: that version was indexed already).
pub(crate) async fn insert_run(
    tx: &mut Transaction<'static, Any>,
    backend: Backend,
    volume_label: &str,
    run: &[(&Entry, &StoredFile)],
) -> Result<Vec<Option<i64>>, StoreError> {
    if run.is_empty() {
        return Ok(Vec::new());
    }
    let records: Vec<Vec<Val>> = run
        .iter()
        .map(|(e, s)| {
            let n = &s.path.name;
            vec![
                Val::Text(volume_label),
                Val::Text(s.facility.as_str()),
                Val::Text(n.patient.as_str()),
                Val::Owned(n.care_date.to_string()),
                Val::Text(n.data_type.code()),
                Val::Text(n.order_no.as_str()),
                Val::Text(s.processing_type),
                Val::Owned(n.department.to_string()),
                Val::Text(n.timestamp.as_str()),
                Val::Owned(s.path.dir().to_string_lossy().into_owned()),
                Val::Owned(n.to_string()),
                Val::Text(&e.time),
                Val::Owned(version_key(n)),
                Val::Owned(n.flag.to_string()),
                Val::Text(&s.sha256),
                Val::Int(s.size as i64),
                Val::Text(&e.time),
                Val::Text(&s.site),
                Val::Text(&s.extracted.message_type),
                Val::Int(e.seq as i64),
            ]
        })
        .collect();
    let returned = insert_rows(
        tx,
        backend,
        "records (volume_label, facility_id, patient_id, order_date, data_kind, order_no, processing_type, \
         enter_org_cd, transaction_datetime, out_rel_directory, file_name, update_datetime, version_key, condition_flag, \
         sha256, size, received_at, site, message_type, journal_seq)",
        "ON CONFLICT (facility_id, version_key) DO NOTHING RETURNING id, facility_id, version_key",
        records,
    )
    .await?;
    let mut ids: HashMap<(String, String), i64> = HashMap::new();
    for r in &returned {
        ids.insert((r.try_get("facility_id")?, r.try_get("version_key")?), r.try_get("id")?);
    }
    Ok(run
        .iter()
        .map(|(_, s)| ids.get(&(s.facility.as_str().to_owned(), version_key(&s.path.name))).copied())
        .collect())
}

/// The search rows (drugs, labs, diagnoses, encounters) of new records, each given as its id and
/// the file it indexes. The caller has removed any rows these records had (see [`crate::search`]).
pub(crate) async fn insert_search_rows(
    tx: &mut Transaction<'static, Any>,
    backend: Backend,
    files: &[(i64, &StoredFile)],
) -> Result<(), StoreError> {
    let (mut drugs, mut labs, mut diagnoses, mut encounters) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for &(id, s) in files {
        let n = &s.path.name;
        let (fac, pid, date) = (s.facility.as_str(), n.patient.as_str(), n.care_date.to_string());
        let x = &s.extracted;
        for (i, d) in x.drugs.iter().enumerate() {
            drugs.push(vec![
                Val::Int(id),
                Val::Text(fac),
                Val::Text(pid),
                Val::Owned(date.clone()),
                Val::Int(i as i64 + 1),
                Val::Text(d.source),
                Val::Text(key_text(&d.code)),
                Val::Text(&d.name),
                Val::Text(&d.coding_system),
                Val::Text(&d.dose),
                Val::Text(&d.dose_unit),
                Val::Text(&d.days),
                Val::Text(&d.route),
                Val::Text(&d.given_at),
                d.component_of.map(|p| Val::Int(p as i64)).unwrap_or(Val::Null),
                Val::Text(key_text(&d.usage_code)),
                Val::Text(&d.usage_text),
                Val::Text(&d.instructions),
                Val::Text(&d.daily_dose),
                Val::Text(&d.daily_dose_unit),
                Val::Text(&d.total),
                Val::Text(&d.total_unit),
                Val::Text(&d.rate),
                Val::Text(&d.rate_unit),
                Val::Text(&d.start_time),
                Val::Text(&d.end_time),
            ]);
        }
        for (i, l) in x.labs.iter().enumerate() {
            labs.push(vec![
                Val::Int(id),
                Val::Text(fac),
                Val::Text(pid),
                Val::Owned(date.clone()),
                Val::Int(i as i64 + 1),
                Val::Text(key_text(&l.code)),
                Val::Text(&l.name),
                Val::Text(&l.coding_system),
                Val::Text(&l.value_type),
                Val::Text(&l.value),
                Val::Text(&l.units),
                Val::Text(&l.reference_range),
                Val::Text(&l.abnormal_flags),
                Val::Text(&l.result_status),
                Val::Text(key_text(&l.observed_at)),
                l.value_num.map(Val::Real).unwrap_or(Val::Null),
                Val::Text(&l.value_code),
            ]);
        }
        for (i, d) in x.diagnoses.iter().enumerate() {
            diagnoses.push(vec![
                Val::Int(id),
                Val::Text(fac),
                Val::Text(pid),
                Val::Int(i as i64 + 1),
                Val::Text(d.source),
                Val::Text(key_text(&d.code)),
                Val::Text(&d.name),
                Val::Text(&d.coding_system),
                Val::Text(key_text(&d.icd10)),
                Val::Text(&d.onset_date),
                Val::Text(&d.status),
                Val::Text(&d.status_text),
                Val::Text(&d.resolved_date),
            ]);
        }
        for e in &x.encounters {
            encounters.push(vec![
                Val::Int(id),
                Val::Text(fac),
                Val::Text(pid),
                Val::Text(e.event),
                Val::Text(&e.trigger_event),
                Val::Text(key_text(&e.event_time)),
                Val::Text(&e.patient_class),
                Val::Text(&e.ward),
            ]);
        }
    }
    for (head, rows) in [
        (
            "drugs (record_id, facility_id, patient_id, order_date, item_no, source, code, name, coding_system, \
             dose, dose_unit, days, route, given_at, component_of, usage_code, usage_text, instructions, \
             daily_dose, daily_dose_unit, total, total_unit, rate, rate_unit, start_time, end_time)",
            drugs,
        ),
        (
            "labs (record_id, facility_id, patient_id, order_date, item_no, code, name, coding_system, value_type, \
             value, units, reference_range, abnormal_flags, result_status, observed_at, value_num, value_code)",
            labs,
        ),
        (
            "diagnoses (record_id, facility_id, patient_id, item_no, source, code, name, coding_system, icd10, \
             onset_date, status, status_text, resolved_date)",
            diagnoses,
        ),
        (
            "encounters (record_id, facility_id, patient_id, event, trigger_event, event_time, patient_class, ward)",
            encounters,
        ),
    ] {
        insert_rows(tx, backend, head, "", rows).await?;
    }
    Ok(())
}

/// `INSERT INTO head VALUES (…), (…) tail` over `rows`, in chunks of at most [`MAX_PARAMS`]
/// bound values; returns what the statements return. SQLite gets anonymous `?` placeholders
/// (numbered ones are resolved by name, one scan per value), PostgreSQL `$n`.
async fn insert_rows(
    tx: &mut Transaction<'static, Any>,
    backend: Backend,
    head: &str,
    tail: &str,
    rows: Vec<Vec<Val<'_>>>,
) -> Result<Vec<AnyRow>, StoreError> {
    let mut out = Vec::new();
    let Some(width) = rows.first().map(Vec::len) else { return Ok(out) };
    let per_chunk = (MAX_PARAMS / width).max(1);
    let mut rows = rows.into_iter().peekable();
    while rows.peek().is_some() {
        let chunk: Vec<Vec<Val>> = rows.by_ref().take(per_chunk).collect();
        let mut sql = format!("INSERT INTO {head} VALUES ");
        let mut n = 0;
        for (i, row) in chunk.iter().enumerate() {
            sql.push_str(if i == 0 { "(" } else { ", (" });
            for (j, v) in row.iter().enumerate() {
                if j > 0 {
                    sql.push_str(", ");
                }
                match (v, backend) {
                    // SQLite takes a bound NULL, so every full chunk has the same text and its
                    // prepared statement is reused from the connection's cache.
                    (_, Backend::Sqlite) => sql.push('?'),
                    (Val::Null, Backend::Postgres) => sql.push_str("NULL"),
                    (_, Backend::Postgres) => {
                        n += 1;
                        sql.push_str(&format!("${n}"));
                    }
                }
            }
            sql.push(')');
        }
        if !tail.is_empty() {
            sql.push(' ');
            sql.push_str(tail);
        }
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for row in chunk {
            for v in row {
                q = match v {
                    // PostgreSQL refuses NUL in text; `\X00\` in an HL7 field decodes to one.
                    // Both backends store it as the two characters `\0`, so they agree.
                    Val::Text(t) => q.bind(db_text(t).into_owned()),
                    Val::Owned(t) if t.contains('\0') => q.bind(db_text(&t).into_owned()),
                    Val::Owned(t) => q.bind(t),
                    Val::Int(i) => q.bind(i),
                    Val::Real(r) => q.bind(r),
                    Val::Null if backend == Backend::Sqlite => q.bind(None::<f64>),
                    Val::Null => q,
                };
            }
        }
        out.extend(q.fetch_all(&mut **tx).await?);
    }
    Ok(out)
}
