//! Group commit of the records: the IndexDB has one writer (SQLite's lock), and batches arriving
//! while it is busy are written together in its next transaction, by one writer task, instead of
//! one transaction each. A larger transaction changes each index page once for many rows; the
//! upload benchmark showed batches queueing for the writer most of their time.
//!
//! Each batch still gets its answer only after the transaction holding its records commits. A
//! failed transaction fails every batch in it, as a failed transaction of its own did before
//! (their journal entries stay committed and are finished by recovery).

use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};

use crate::StoreError;
use crate::db::Db;
use crate::index::{self, StoredFile, Tally};
use crate::journal::Entry;
use crate::search::{SearchWriter, Work};

/// Most files one transaction takes (the batches beyond wait for the next).
const MAX_FILES_PER_TX: usize = 4000;
/// How long a group's failing transaction is retried before its batches fail (and the store
/// turns degraded, see `ingest_batch`).
const RETRY_FOR: Duration = Duration::from_secs(30);

/// One batch's index writes.
pub(crate) struct Request {
    pub site: String,
    /// The batch's journal entries, each beside the file it writes.
    pub entries: Vec<Entry>,
    pub stored: Vec<StoredFile>,
    pub tally: Tally,
    /// The applied watermark when the batch sent this (persisted with the transaction).
    pub applied: u64,
    sent: Instant,
    reply: oneshot::Sender<Result<Committed, String>>,
}

/// How a batch's records were written, for its log line.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Committed {
    /// From the request to the start of its transaction.
    pub waited: Duration,
    /// The commit itself.
    pub commit: Duration,
    /// Batches in the transaction.
    pub batches: usize,
}

/// Where batches send their index writes.
pub(crate) struct RecordsWriter {
    queue: mpsc::UnboundedSender<Request>,
}

impl RecordsWriter {
    /// Starts the writer task; it hands each committed batch's new records to `search`, and ends
    /// when this handle is dropped.
    pub fn start(db: Db, volume_label: String, search: SearchWriter) -> Self {
        let (queue, rx) = mpsc::unbounded_channel();
        tokio::spawn(run(db, volume_label, search, rx));
        Self { queue }
    }

    /// Writes a batch's records, counters and rejections; returns once they are committed.
    pub async fn write(
        &self,
        site: &str,
        entries: Vec<Entry>,
        stored: Vec<StoredFile>,
        tally: Tally,
        applied: u64,
    ) -> Result<Committed, StoreError> {
        let (reply, answer) = oneshot::channel();
        let request =
            Request { site: site.to_owned(), entries, stored, tally, applied, sent: Instant::now(), reply };
        let stopped = || StoreError::IndexWrite("the records writer has stopped".into());
        self.queue.send(request).map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?.map_err(StoreError::IndexWrite)
    }
}

async fn run(db: Db, volume_label: String, search: SearchWriter, mut rx: mpsc::UnboundedReceiver<Request>) {
    while let Some(first) = rx.recv().await {
        let mut files = first.entries.len();
        let mut group = vec![first];
        while files < MAX_FILES_PER_TX {
            match rx.try_recv() {
                Ok(r) => {
                    files += r.entries.len();
                    group.push(r);
                }
                Err(_) => break,
            }
        }
        let started = Instant::now();
        // A failure to run the transaction (the database restarting, a lock held too long) is
        // retried for a while: the batches wait, holding their folders, and the journal keeps
        // their entries whatever happens. A value the database refuses is not retried.
        // The first failure is the cause that the batches are answered with (a retry can fail
        // differently, as a consequence of it).
        let mut result = write_group(&db, &volume_label, &group).await;
        let mut first: Option<String> = None;
        let mut delay = Duration::from_millis(100);
        while let Err(e) = &result
            && !crate::search::refused_value(e)
        {
            db.note_write_failure(&e.to_string());
            first.get_or_insert_with(|| e.to_string());
            if db.pool.is_closed() || started.elapsed() + delay >= RETRY_FOR {
                break;
            }
            tracing::warn!(%e, retry_in_ms = delay.as_millis() as u64, "writing records failed; retrying");
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(5));
            result = write_group(&db, &volume_label, &group).await;
        }
        match result {
            Ok((ids, commit)) => {
                let batches = group.len();
                for (r, ids) in group.into_iter().zip(ids) {
                    let waited = started.saturating_duration_since(r.sent);
                    let seqs: Vec<u64> = r.entries.iter().map(|e| e.seq).collect();
                    let records =
                        ids.into_iter().zip(r.stored).filter_map(|(id, s)| Some((id?, s))).collect();
                    if !seqs.is_empty() {
                        search.send(Work { seqs, records }).await;
                    }
                    let _ = r.reply.send(Ok(Committed { waited, commit, batches }));
                }
            }
            Err(e) => {
                let last = e.to_string();
                let why = match first {
                    Some(first) if first != last => format!("{first} (last attempt: {last})"),
                    _ => last,
                };
                for r in group {
                    let _ = r.reply.send(Err(why.clone()));
                }
            }
        }
    }
}

/// One transaction for a group of batches: their records, counters, rejections and the applied
/// watermark. Returns each batch's new record ids and the commit's duration.
async fn write_group(
    db: &Db,
    volume_label: &str,
    group: &[Request],
) -> Result<(Vec<Vec<Option<i64>>>, Duration), StoreError> {
    let _w = db.write_guard().await;
    let mut tx = db.begin_write().await?;
    let mut ids = Vec::with_capacity(group.len());
    for r in group {
        let items: Vec<_> = r.entries.iter().zip(&r.stored).collect();
        ids.push(crate::index_rows::apply_entries(&mut tx, db.backend, volume_label, &items).await?);
        index::record_tally(&mut tx, &r.site, &r.tally).await?;
    }
    let applied = group.iter().map(|r| r.applied).max().unwrap_or(0);
    index::set_applied(&mut tx, applied).await?;
    let before = Instant::now();
    db.commit(tx).await?;
    Ok((ids, before.elapsed()))
}
