//! The uploader: sends the outbox to the store in batches, deletes what the store acknowledged,
//! quarantines what it rejected, and retries everything else with backoff.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use futures::stream::{FuturesUnordered, StreamExt};

use kizuna_wire::{FileStatus, push_file, start_batch};
use serde_json::json;
use sha2::{Digest, Sha256};
use tokio::sync::watch;

use crate::agent::Shared;
use crate::agent_log::Level;
use crate::backoff::retry_delay;
use crate::check::Violation;
use crate::error::is_disk_full;
use crate::outbox::{Claim, Entry};
use crate::quarantine::Origin;
use crate::store_client::SendError;

/// Bytes a batch body spends on one file besides its content: path length (2), path (a storage
/// path is at most ~120 bytes), content length (8), sha256 (32).
const FRAMING: usize = 2 + 128 + 8 + 32;

/// One finished upload: how many files it sent, the first of them, and the outcome.
struct Done {
    sent: usize,
    first: Entry,
    result: Result<bool, SendError>,
}

/// Sends the claimed files; the claim is dropped (handing back what was not settled) once the
/// answer has been settled.
async fn upload_claim(shared: &Arc<Shared>, claim: Claim<'_>) -> Done {
    let batch = claim.entries().to_vec();
    let (sent, first) = (batch.len(), batch[0].clone());
    let result = upload_batch(shared, batch).await;
    drop(claim);
    Done { sent, first, result }
}

/// Runs until `stop` turns true, keeping up to `upload_concurrency` batches in flight (a large
/// backlog then waits on the store's work, not on one round trip at a time). A failure pauses new
/// batches for the backoff delay; the ones in flight finish, and their failures in that pause
/// neither log again nor lengthen the delay. Files may be acknowledged out of their upload order;
/// the store places each version by its timestamp whatever the order of arrival.
pub(crate) async fn run(shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let concurrency = shared.cfg.upload_concurrency.max(1);
    let mut failures: u32 = 0;
    // Lowered when the store answers 413 (batch too large), back to the config after a success.
    let mut max_files = shared.cfg.batch_max_files;
    // No new batch starts before this, after a failure.
    let mut paused_until: Option<Instant> = None;
    let mut uploads = FuturesUnordered::new();
    loop {
        if *stop.borrow() {
            return;
        }
        let now = Instant::now();
        if paused_until.is_some_and(|t| t <= now) {
            paused_until = None;
        }
        if paused_until.is_none() {
            while uploads.len() < concurrency {
                let claim = shared.outbox.claim(max_files, shared.cfg.batch_max_bytes);
                if claim.is_empty() {
                    break;
                }
                uploads.push(upload_claim(&shared, claim));
            }
        }
        let may_start = paused_until.is_none() && uploads.len() < concurrency;
        // Also look now and then, in case a wake-up raced with the emptiness check.
        let wait = paused_until.map_or(Duration::from_secs(1), |t| t - now);
        let done = tokio::select! {
            _ = stop.changed() => return,
            Some(done) = uploads.next(), if !uploads.is_empty() => done,
            _ = shared.wake_uploader.notified(), if may_start => continue,
            _ = tokio::time::sleep(wait) => continue,
        };
        let Done { sent, first, result } = done;
        let paused = paused_until.is_some();
        match result {
            Err(SendError::Status { status: 413, body }) => {
                if sent > 1 {
                    max_files = max_files.min(sent / 2);
                    shared.record(
                        Level::Warn,
                        "batch_too_large",
                        &format!("store refused a batch of {sent} files as too large ({body}); sending {max_files} at a time"),
                        serde_json::Value::Null,
                    );
                } else {
                    quarantine_too_large(&shared, &first, &body);
                }
            }
            Ok(true) => {
                failures = 0;
                max_files = shared.cfg.batch_max_files;
            }
            // Already backing off for a failure of another batch in flight.
            Ok(false) | Err(_) if paused => {
                if let Err(e) = result {
                    tracing::debug!(%e, "another batch in flight failed too");
                }
            }
            Ok(false) => {
                // Some rejected file could not be quarantined, or some file could not be read: do not
                // retry it in a tight loop.
                failures += 1;
                paused_until = Some(Instant::now() + delay_for(&shared, failures));
            }
            Err(e) => {
                failures += 1;
                let delay = delay_for(&shared, failures);
                let level = if e.needs_operator() { Level::Error } else { Level::Warn };
                shared.record(
                    level,
                    "upload_failed",
                    &format!(
                        "upload failed (attempt {failures}): {e}; retrying in {:.1} s",
                        delay.as_secs_f64()
                    ),
                    json!({"attempt": failures, "retry_in_ms": delay.as_millis() as u64}),
                );
                paused_until = Some(Instant::now() + delay);
            }
        }
    }
}

/// The backoff delay after `failures` failures in a row.
fn delay_for(shared: &Shared, failures: u32) -> Duration {
    retry_delay(
        failures,
        Duration::from_millis(shared.cfg.retry_base_ms),
        Duration::from_millis(shared.cfg.retry_max_ms),
        &mut rand::rng(),
    )
}

/// Reads, sends and settles one batch. Only a failure to reach the store (or a non-protocol answer)
/// is an error; everything it answered is settled here. Returns false when some file could not be
/// settled (a rejected file that cannot be quarantined) or read.
async fn upload_batch(shared: &Arc<Shared>, batch: Vec<Entry>) -> Result<bool, SendError> {
    let reader = shared.clone();
    let (body, sent, missing, unreadable) = tokio::task::spawn_blocking(move || {
        let mut body = start_batch();
        // Sized once for the whole batch (path, length and digest framing per file): a body grown
        // by doubling was copied several times and, with a large allocation each time, faulted
        // in fresh pages.
        body.reserve(batch.iter().map(|e| e.size as usize + FRAMING).sum());
        let mut sent = Vec::new();
        let mut missing = Vec::new();
        let mut unreadable = Vec::new();
        for e in batch {
            match std::fs::read(reader.outbox.file_of(&e)) {
                Ok(content) => {
                    let sha: [u8; 32] = Sha256::digest(&content).into();
                    push_file(&mut body, &e.path.to_string(), &sha, &content);
                    sent.push(e);
                }
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => missing.push(e),
                Err(err) => unreadable.push((e, err)),
            }
        }
        (body, sent, missing, unreadable)
    })
    .await
    .map_err(|e| SendError::Protocol(e.to_string()))?;
    // A file that vanished from the outbox (removed by hand) is forgotten.
    if !missing.is_empty() {
        let _ = shared.outbox.complete(&missing);
    }
    // Any other read error (EMFILE, EIO, EACCES) keeps the file for a later try: the caller backs
    // off when this returns false. One line per batch, however many files failed.
    if let Some((first, err)) = unreadable.first() {
        shared.record(
            Level::Error,
            "outbox_unreadable",
            &format!(
                "cannot read {} file(s) in the outbox (first {}: {err}); keeping them and retrying",
                unreadable.len(),
                first.path
            ),
            json!({"files": unreadable.len(), "file": first.path.to_string()}),
        );
    }
    if sent.is_empty() {
        return Ok(unreadable.is_empty());
    }
    let paths: Vec<String> = sent.iter().map(|e| e.path.to_string()).collect();
    let bytes = body.len();
    let report = shared.store.send_batch(body, &paths).await?;

    let settler = shared.clone();
    let settled = tokio::task::spawn_blocking(move || settle(&settler, sent, report.results, bytes))
        .await
        .map_err(|e| SendError::Protocol(e.to_string()))?;
    Ok(settled && unreadable.is_empty())
}

/// A single file the store refuses as too large can never be delivered: quarantine it.
fn quarantine_too_large(shared: &Shared, entry: &Entry, body: &str) {
    let v = [Violation {
        code: "too-large".into(),
        field: None,
        message: format!("store refused the file as too large: {body}"),
    }];
    let rel = format!("rejected/{}", entry.path);
    match shared
        .outbox
        .take_out(entry, |src| shared.quarantine.put(src, &rel, Origin::Store, "", &v).map(drop))
    {
        Ok(()) => shared.record(
            Level::Warn,
            "rejected",
            &format!("store refused {} as too large ({} bytes)", entry.path, entry.size),
            json!({"file": entry.path.to_string(), "codes": ["too-large"]}),
        ),
        Err(e) => shared.record(
            Level::Error,
            "quarantine_failed",
            &format!("store refused {} as too large and it cannot be quarantined: {e}", entry.path),
            serde_json::Value::Null,
        ),
    }
}

fn settle(shared: &Shared, sent: Vec<Entry>, results: Vec<kizuna_wire::FileResult>, bytes: usize) -> bool {
    let mut all_settled = true;
    let mut acked = Vec::new();
    let (mut stored, mut duplicate, mut rejected) = (0u64, 0u64, 0u64);
    for (entry, r) in sent.into_iter().zip(results) {
        match r.status {
            FileStatus::Stored | FileStatus::Duplicate => {
                if r.status == FileStatus::Stored {
                    stored += 1
                } else {
                    duplicate += 1
                }
                acked.push(entry);
            }
            FileStatus::Rejected => {
                rejected += 1;
                let mut violations: Vec<Violation> = r
                    .codes
                    .iter()
                    .map(|c| Violation {
                        code: c.clone(),
                        field: None,
                        message: ssmix2::validate::Code::parse(c)
                            .map(|c| c.describe().to_owned())
                            .unwrap_or_default(),
                    })
                    .collect();
                if let Some(reason) = &r.reason {
                    violations.push(Violation {
                        code: "store-reason".into(),
                        field: None,
                        message: reason.clone(),
                    });
                }
                let rel = format!("rejected/{}", r.path);
                let moved = shared.outbox.take_out(&entry, |src| {
                    shared.quarantine.put(src, &rel, Origin::Store, &r.sha256, &violations).map(drop)
                });
                let why = violations
                    .iter()
                    .map(|v| format!("{}: {}", v.code, v.message))
                    .collect::<Vec<_>>()
                    .join("; ");
                match moved {
                    Ok(()) => shared.record(
                        Level::Warn,
                        "rejected",
                        &format!("store rejected {}: {why}", r.path),
                        json!({"file": r.path, "codes": r.codes}),
                    ),
                    Err(e) => {
                        all_settled = false;
                        if is_disk_full(&e) {
                            shared.note_disk_full("a rejected file into the quarantine", &e);
                        } else {
                            shared.record(
                                Level::Error,
                                "quarantine_failed",
                                &format!(
                                    "store rejected {} ({why}) and it cannot be quarantined: {e}",
                                    r.path
                                ),
                                json!({"file": r.path}),
                            );
                        }
                    }
                }
            }
        }
    }
    if let Err(e) = shared.outbox.complete(&acked) {
        shared.record(
            Level::Error,
            "outbox_failed",
            &format!("cannot delete acknowledged files from the outbox: {e}"),
            serde_json::Value::Null,
        );
    }
    let n = stored + duplicate;
    // The time first: whoever sees the new count (status, heartbeat) also sees its upload time.
    if n > 0 {
        crate::report::write_last_upload(shared);
    }
    shared.files_uploaded.fetch_add(n, Ordering::Release);
    shared.record(
        Level::Info,
        "uploaded",
        &format!(
            "batch acknowledged: {stored} stored, {duplicate} duplicate, {rejected} rejected ({bytes} bytes)"
        ),
        json!({"files": n, "stored": stored, "duplicate": duplicate, "rejected": rejected, "bytes": bytes}),
    );
    all_settled
}
