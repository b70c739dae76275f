//! The search rows (`drugs`, `labs`, `diagnoses`, `encounters`) are derived data: each comes from
//! one record's file in the tree, so they can always be rebuilt. They are written behind the
//! upload's answer, by one writer task of their own, in larger transactions than a batch (the
//! batches of up to `GROUP_WINDOW`, at most `MAX_RECORDS_PER_TX` records, their rows sorted by
//! patient so the `…_by_patient` B-tree inserts are local). Before the
//! answer only the records rows are written, with the tree and the journal.
//!
//! `store_state.search_seq` is their durable watermark: every record whose `journal_seq` is at or
//! below it has all its search rows. It advances in the same transaction as the rows it covers,
//! and only over an unbroken run of finished journal entries (batches finish out of order). At
//! start, [`catch_up`] rebuilds the rows of every record above it from the file in the tree,
//! first deleting whatever rows such a record already has, so a crash at any point loses nothing
//! and doubles nothing.
//!
//! Readers see a record before its search rows (the lag is one writer transaction while uploads
//! flow); [`crate::Store::search_caught_up`] waits until everything journalled so far has them.

use std::collections::BTreeSet;
use std::sync::Arc;

use sqlx::Row;
use ssmix2::StoragePath;
use ssmix2::hl7::MessageView;
use tokio::sync::{mpsc, watch};

use crate::db::Db;
use crate::extract::{Extracted, extract};
use crate::index::StoredFile;
use crate::index_rows::insert_search_rows;
use crate::tree::Tree;
use crate::{FacilityId, StoreError};

/// Most records whose rows one writer transaction takes (it holds SQLite's single write lock that
/// long, so the answers of batches waiting to write their records wait that long too).
const MAX_RECORDS_PER_TX: usize = 10_000;
/// How long the writer gathers batches for one transaction (unless it fills first): fewer, larger
/// transactions change each index page once for many rows, instead of once per batch.
const GROUP_WINDOW: std::time::Duration = std::time::Duration::from_millis(1000);
/// Records re-derived per transaction when catching up at start.
const CATCH_UP_CHUNK: i64 = 500;
/// A progress line every this many records re-derived.
const PROGRESS_EVERY: u64 = 50_000;
/// Batches waiting for the writer before the next batch's answer waits for room.
const QUEUE: usize = 64;

/// What one batch hands the search writer after its records are committed: every journal entry
/// it finished, and the new records among them with the files they index.
pub(crate) struct Work {
    pub seqs: Vec<u64>,
    pub records: Vec<(i64, StoredFile)>,
}

/// The handle the store keeps: where batches send their work, and the committed watermark.
#[derive(Clone)]
pub(crate) struct SearchWriter {
    queue: mpsc::Sender<Work>,
    watermark: watch::Receiver<u64>,
}

impl SearchWriter {
    /// Starts the writer task above `watermark` (as [`catch_up`] left it). The task ends when the
    /// handle is dropped and the queue is drained.
    pub fn start(db: Db, watermark: u64, on_seq: impl Fn(u64) + Send + 'static) -> Self {
        let (queue, rx) = mpsc::channel(QUEUE);
        let (tx_w, watermark_rx) = watch::channel(watermark);
        tokio::spawn(run(db, rx, tx_w, on_seq));
        Self { queue, watermark: watermark_rx }
    }

    /// Queues a batch's work (waits while the queue is full: back-pressure on the uploads).
    pub async fn send(&self, work: Work) {
        if self.queue.send(work).await.is_err() {
            tracing::error!("search writer has stopped; the rows are rebuilt at the next start");
        }
    }

    /// The committed watermark.
    pub fn watermark(&self) -> u64 {
        *self.watermark.borrow()
    }

    /// Waits until the committed watermark reaches `seq`.
    pub async fn wait_for(&self, seq: u64) {
        let mut rx = self.watermark.clone();
        let _ = rx.wait_for(|w| *w >= seq).await;
    }
}

async fn run(db: Db, mut rx: mpsc::Receiver<Work>, tx_w: watch::Sender<u64>, on_seq: impl Fn(u64)) {
    let mut watermark = *tx_w.borrow();
    // Finished entries above the watermark.
    let mut done: BTreeSet<u64> = BTreeSet::new();
    while let Some(first) = rx.recv().await {
        let mut works = vec![first];
        let mut records = works[0].records.len();
        let deadline = tokio::time::Instant::now() + GROUP_WINDOW;
        while records < MAX_RECORDS_PER_TX {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(w)) => {
                    records += w.records.len();
                    works.push(w);
                }
                // The store is closing, or the window is over: write what there is.
                Ok(None) | Err(_) => break,
            }
        }
        let mut finished = done.clone();
        finished.extend(works.iter().flat_map(|w| w.seqs.iter().copied()));
        let mut next = watermark;
        while finished.remove(&(next + 1)) {
            next += 1;
        }
        let mut rows: Vec<(i64, &StoredFile)> =
            works.iter().flat_map(|w| w.records.iter().map(|(id, s)| (*id, s))).collect();
        rows.sort_by(|a, b| {
            (a.1.facility.as_str(), a.1.path.name.patient.as_str(), a.0).cmp(&(
                b.1.facility.as_str(),
                b.1.path.name.patient.as_str(),
                b.0,
            ))
        });
        // A failure here (the database unreachable, a full disk) is retried; the uploads keep
        // their answers meanwhile and the queue fills, which then holds them back. A value the
        // database refuses (a data error: it would fail every retry) switches this group to one
        // transaction per record, so that only the rows of the record holding it are left out.
        let mut delay = std::time::Duration::from_millis(100);
        let started = std::time::Instant::now();
        let mut one_by_one = false;
        loop {
            let written =
                if one_by_one { write_each(&db, &rows, next).await } else { write(&db, &rows, next).await };
            match written {
                Err(e) if !one_by_one && refused_value(&e) => {
                    tracing::warn!(%e, records = rows.len(), "the database refused a search row; writing record by record");
                    one_by_one = true;
                }
                Ok(wait) => {
                    tracing::info!(
                        batches = works.len(),
                        records = rows.len(),
                        search_seq = next,
                        ms = started.elapsed().as_millis() as u64,
                        wait_ms = wait.as_millis() as u64,
                        "search rows"
                    );
                    break;
                }
                Err(_) if db.pool.is_closed() => return,
                Err(e) => {
                    db.note_write_failure(&e.to_string());
                    tracing::error!(%e, "writing search rows failed; retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(std::time::Duration::from_secs(10));
                }
            }
        }
        done = finished;
        watermark = next;
        on_seq(watermark);
        tx_w.send_replace(watermark);
    }
}

/// One writer transaction: the rows of new records and the watermark they complete.
/// Returns the time spent waiting for the write lock.
async fn write(
    db: &Db,
    rows: &[(i64, &StoredFile)],
    watermark: u64,
) -> Result<std::time::Duration, StoreError> {
    let started = std::time::Instant::now();
    let _w = db.write_guard().await;
    let waited = started.elapsed();
    let mut tx = db.begin_write().await?;
    insert_search_rows(&mut tx, db.backend, rows).await?;
    set_search_seq(&mut tx, watermark).await?;
    db.commit(tx).await?;
    Ok(waited)
}

/// [`write`] one record per transaction, each first deleting whatever rows its record has (so a
/// retry after a partial run doubles nothing); a record whose rows the database refuses keeps
/// none, logged with its file. Then the watermark, in a transaction of its own.
async fn write_each(
    db: &Db,
    rows: &[(i64, &StoredFile)],
    watermark: u64,
) -> Result<std::time::Duration, StoreError> {
    let started = std::time::Instant::now();
    for &(id, s) in rows {
        let _w = db.write_guard().await;
        let mut tx = db.begin_write().await?;
        delete_rows_of(&mut tx, "record_id = $1", &[id]).await?;
        match insert_search_rows(&mut tx, db.backend, &[(id, s)]).await {
            Ok(()) => db.commit(tx).await?,
            Err(e) if refused_value(&e) => {
                tracing::error!(
                    %e,
                    facility = s.facility.as_str(),
                    file = %s.path,
                    "the database refused this file's search rows; it is stored and indexed, but not searchable by drug, lab, diagnosis or encounter"
                );
                tx.rollback().await?;
            }
            Err(e) => return Err(e),
        }
    }
    let _w = db.write_guard().await;
    let mut tx = db.begin_write().await?;
    set_search_seq(&mut tx, watermark).await?;
    db.commit(tx).await?;
    Ok(started.elapsed())
}

/// Deletes the search rows matching `filter` (on `record_id`, with `binds` as `$1`, `$2`, …).
async fn delete_rows_of(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    filter: &str,
    binds: &[i64],
) -> Result<(), StoreError> {
    for table in ["drugs", "labs", "diagnoses", "encounters"] {
        let mut q = sqlx::query(sqlx::AssertSqlSafe(format!("DELETE FROM {table} WHERE {filter}")));
        for b in binds {
            q = q.bind(*b);
        }
        q.execute(&mut **tx).await?;
    }
    Ok(())
}

/// Whether the database refused a value itself (a data exception, a constraint, a size limit),
/// which no retry cures, rather than failing to run the statement (connection, lock, disk).
pub(crate) fn refused_value(e: &StoreError) -> bool {
    let StoreError::Db(sqlx::Error::Database(d)) = e else { return false };
    if !matches!(d.kind(), sqlx::error::ErrorKind::Other) {
        return true;
    }
    // PostgreSQL's SQLSTATE (five characters): classes 22 (data exception: e.g. a NUL in text),
    // 23 (integrity) and 54 (program limit exceeded: e.g. an index row too large). SQLite's
    // (extended) result code: SQLITE_TOOBIG (18), SQLITE_CONSTRAINT (19, also from a trigger's
    // RAISE) and SQLITE_MISMATCH (20).
    match d.code() {
        Some(c) if c.len() == 5 => ["22", "23", "54"].iter().any(|class| c.starts_with(class)),
        Some(c) => c.parse::<u32>().is_ok_and(|n| matches!(n & 0xff, 18..=20)),
        None => false,
    }
}

/// Raises the persisted search watermark (never lowers it).
async fn set_search_seq(tx: &mut sqlx::Transaction<'static, sqlx::Any>, seq: u64) -> Result<(), StoreError> {
    crate::index::raise_watermark(tx, "search_seq", seq).await
}

/// The persisted search watermark.
pub async fn search_seq(db: &Db) -> Result<u64, StoreError> {
    crate::index::watermark(db, "search_seq").await
}

/// What [`catch_up`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CaughtUp {
    /// The new search watermark.
    pub watermark: u64,
    /// Records whose search rows were rebuilt from their files.
    pub rebuilt: u64,
}

/// Rebuilds the search rows of every record above the persisted search watermark from its file
/// in the tree, then raises the watermark to `applied` (recovery has put every entry up to it in
/// the index). Idempotent: each chunk deletes its records' rows before inserting them, in the
/// transaction that raises the watermark past them.
pub async fn catch_up(db: &Db, tree: &Arc<Tree>, applied: u64) -> Result<CaughtUp, StoreError> {
    let mut from = search_seq(db).await?;
    let mut rebuilt = 0u64;
    loop {
        let rows = sqlx::query(
            "SELECT id, facility_id, out_rel_directory, file_name, journal_seq FROM records \
             WHERE journal_seq > $1 ORDER BY journal_seq LIMIT $2",
        )
        .bind(from as i64)
        .bind(CATCH_UP_CHUNK)
        .fetch_all(&db.pool)
        .await?;
        let Some(last) = rows.last().map(|r| r.try_get::<i64, _>("journal_seq")).transpose()? else { break };
        let mut todo = Vec::with_capacity(rows.len());
        for r in &rows {
            let id: i64 = r.try_get("id")?;
            let facility: String = r.try_get("facility_id")?;
            let dir: String = r.try_get("out_rel_directory")?;
            let name: String = r.try_get("file_name")?;
            todo.push((id, facility, format!("{dir}/{name}")));
        }
        let t = tree.clone();
        let files = tokio::task::spawn_blocking(move || -> Result<Vec<(i64, StoredFile)>, StoreError> {
            todo.into_iter()
                .map(|(id, facility, path)| Ok((id, stored_file_of(&t, &facility, &path)?)))
                .collect()
        })
        .await
        .map_err(|e| StoreError::Recovery(format!("search catch-up task failed: {e}")))??;
        let _w = db.write_guard().await;
        let mut tx = db.begin_write().await?;
        delete_rows_of(
            &mut tx,
            "record_id IN (SELECT id FROM records WHERE journal_seq > $1 AND journal_seq <= $2)",
            &[from as i64, last],
        )
        .await?;
        let refs: Vec<(i64, &StoredFile)> = files.iter().map(|(id, s)| (*id, s)).collect();
        match insert_search_rows(&mut tx, db.backend, &refs).await {
            Ok(()) => {
                set_search_seq(&mut tx, last as u64).await?;
                db.commit(tx).await?;
            }
            // One record's value refused: this chunk record by record, leaving that one out.
            Err(e) if refused_value(&e) => {
                tx.rollback().await?;
                drop(_w);
                write_each(db, &refs, last as u64).await?;
            }
            Err(e) => return Err(e),
        }
        rebuilt += files.len() as u64;
        from = last as u64;
        if rebuilt % PROGRESS_EVERY < CATCH_UP_CHUNK as u64 {
            tracing::info!(rebuilt, search_seq = from, "rebuilding search rows");
        }
    }
    if applied > from {
        let _w = db.write_guard().await;
        let mut tx = db.begin_write().await?;
        set_search_seq(&mut tx, applied).await?;
        db.commit(tx).await?;
        from = applied;
    }
    Ok(CaughtUp { watermark: from, rebuilt })
}

/// Lowers the search watermark to 0, so that the next [`catch_up`] rebuilds every record's search
/// rows (`kizuna reindex`). The rows stay until each chunk replaces them.
pub async fn reset_search_seq(db: &Db) -> Result<(), StoreError> {
    let _w = db.write_guard().await;
    let mut tx = db.begin_write().await?;
    sqlx::query("UPDATE store_state SET value = 0 WHERE key = 'search_seq'").execute(&mut *tx).await?;
    db.commit(tx).await?;
    Ok(())
}

/// What the search rows need about a stored file, read back from the tree (`path` relative to the
/// facility's root). A file that no longer parses gets no search rows (it passed the checks when
/// it was stored, so that means damage: logged).
fn stored_file_of(tree: &Tree, facility: &str, path: &str) -> Result<StoredFile, StoreError> {
    let fac = FacilityId::new(facility)?;
    let sp = StoragePath::parse(path)
        .map_err(|e| StoreError::Recovery(format!("records row {facility}/{path}: {e}")))?;
    let file = tree.path_of(&fac, &sp);
    let extracted = match std::fs::read(&file) {
        Ok(bytes) => parse(&bytes, &sp).unwrap_or_else(|err| {
            tracing::error!(file = %file.display(), %err, "stored file no longer parses; no search rows");
            Extracted::default()
        }),
        Err(err) => {
            tracing::error!(file = %file.display(), %err, "indexed file cannot be read; no search rows");
            Extracted::default()
        }
    };
    Ok(StoredFile {
        facility: fac,
        path: sp,
        sha256: String::new(),
        size: 0,
        site: String::new(),
        processing_type: "",
        extracted,
    })
}

/// The search rows' data of a file's content.
pub(crate) fn parse(bytes: &[u8], sp: &StoragePath) -> Result<Extracted, String> {
    let text = ssmix2::hl7::decode_iso2022jp(bytes).map_err(|e| e.to_string())?;
    let msg = MessageView::parse(&text).map_err(|e| e.to_string())?;
    Ok(extract(&msg, &sp.name))
}
