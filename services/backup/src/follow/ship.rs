//! Shipping to one replica: journal entries up to the store's applied watermark, then changes
//! others made to the tree, in batches; the cursor moves only on the replica's acknowledgement.
//! Any failure (network, replica down, replica restored from an older state) leads to a retry
//! with exponential backoff that first asks the replica where it stands.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kizuna_store::journal::{Change, Entry, JournalReader};
use tokio::sync::watch;

use crate::BackupError;
use crate::batch::{Ack, Builder, Put, Remove};
use crate::client::{ReplicaClient, Sent};
use crate::config::FollowConfig;
use crate::follow::cursor::Cursor;
use crate::follow::lag::Lag;
use crate::follow::metrics::Metrics;
use crate::paths::TreePath;
use crate::primary::{ForeignChange, Primary, read_content};

/// How often the lag gauges are refreshed while waiting to retry a failed replica.
const LAG_REFRESH: Duration = Duration::from_secs(1);

/// Per-entry replication latencies (commit to acknowledgement), for benchmarks and tests.
pub type LatencySink = Arc<std::sync::Mutex<Vec<f64>>>;

pub struct Shipper {
    pub client: ReplicaClient,
    pub primary: Arc<Primary>,
    pub config: FollowConfig,
    pub metrics: Arc<Metrics>,
    pub latencies: Option<LatencySink>,
    /// Held while a batch is in flight; verification with repair takes it to pause shipping.
    pub pause: Arc<tokio::sync::Mutex<()>>,
}

fn entry_age(e: &Entry) -> f64 {
    e.time
        .parse::<jiff::Timestamp>()
        .map(|t| (jiff::Timestamp::now().as_microsecond() - t.as_microsecond()) as f64 / 1e6)
        .unwrap_or(0.0)
}

impl Shipper {
    /// Ships until `stop` turns true.
    pub async fn run(self, mut stop: watch::Receiver<bool>) -> Result<(), BackupError> {
        let name = self.client.name.clone();
        let label = Metrics::label(&name);
        let mut cursor = Cursor::load(&self.config.state_dir, &name)?;
        let mut reader = JournalReader::new(&self.primary.journal_dir, cursor.ack.applied_seq + 1);
        let mut pending: VecDeque<Entry> = VecDeque::new();
        let mut synced = false;
        // The last batch left a foreign file out for want of room beside its entries.
        let mut deferred = false;
        let mut backoff = Duration::from_millis(self.config.retry_min_ms.max(1));
        let tree = self.primary.tree.clone();
        let mut lag = Lag::new(self.primary.journal_dir.clone(), label.clone());
        loop {
            if *stop.borrow() {
                return Ok(());
            }
            let step = async {
                if !synced {
                    // Before asking the replica, which may not answer: the lag must grow meanwhile.
                    lag.report(&self.metrics, cursor.ack.applied_seq, self.primary.applied(), &pending, true);
                    let ack = self.client.state().await?;
                    if ack != cursor.ack {
                        tracing::info!(replica = %name, from = cursor.ack.applied_seq, to = ack.applied_seq, "resuming from the replica's position");
                    }
                    cursor.store(ack)?;
                    reader = JournalReader::new(&self.primary.journal_dir, ack.applied_seq + 1);
                    pending.clear();
                    synced = true;
                }
                let applied = self.primary.applied();
                if pending.len() < self.config.batch_max_entries {
                    let more = reader.poll(self.config.batch_max_entries - pending.len())?;
                    pending.extend(more);
                }
                lag.report(&self.metrics, cursor.ack.applied_seq, applied, &pending, true);
                // Build a batch: entries up to the watermark, then foreign changes.
                let _paused = self.pause.lock().await;
                let mut b = Builder::default();
                let mut content_bytes = 0u64;
                let t = tree.clone();
                let mut reads = Vec::new();
                for e in pending.iter().take_while(|e| e.seq <= applied) {
                    if !b.header.entries.is_empty() && content_bytes >= self.config.batch_max_bytes as u64 {
                        break;
                    }
                    for c in &e.changes {
                        if let Change::Write { path, sha256, size, .. } = c {
                            reads.push((TreePath::of_entry(&e.facility, path)?, sha256.clone()));
                            content_bytes += size;
                        }
                    }
                    b.header.entries.push(e.clone());
                }
                let mut foreign = self.primary.foreign_since(cursor.ack.foreign_applied, 1000).await?;
                let replica_max = self.config.replica_max_batch_bytes;
                let room = (self.config.batch_max_bytes as u64).saturating_sub(content_bytes);
                let first = foreign.first().map(|f| put_cost(f, replica_max)).unwrap_or(0);
                // A foreign file that does not fit beside the entries waits one batch at most, then
                // goes with no entries (a backlog of large files must not hold the journal back).
                let alone = first > room && (b.header.entries.is_empty() || deferred);
                deferred = first > room && !alone;
                if alone {
                    b.header.entries.clear();
                    reads.clear();
                }
                let n = match (alone, deferred) {
                    (_, true) => 0,
                    (true, _) => foreign_in_batch(&foreign, self.config.batch_max_bytes as u64, replica_max),
                    _ => foreign_in_batch(&foreign, room, replica_max),
                };
                foreign.truncate(n);
                let (b, skipped) = tokio::task::spawn_blocking(move || {
                    let mut skipped = 0u64;
                    let mut b = b;
                    for (p, sha) in &reads {
                        match read_content(&t, p, sha) {
                            Some(bytes) => b.add_blob(sha, &bytes),
                            None => tracing::warn!(path = %p, "file of a journal entry is gone from the primary; shipped without content"),
                        }
                    }
                    // The replica applies puts before removes, so only each path's last change goes
                    // in (a file removed and written again must end up there, not removed).
                    let last: std::collections::HashMap<&str, u64> =
                        foreign.iter().map(|f| (f.path.as_str(), f.id)).collect();
                    for f in foreign.iter().filter(|f| last[f.path.as_str()] == f.id) {
                        match &f.sha256 {
                            Some(_) if !fits_alone(f.size, replica_max) => {
                                skipped += 1;
                                tracing::error!(path = %f.path, size = f.size, replica_max_batch_bytes = replica_max, "file written by others is too large for a batch the replica takes; NOT shipped");
                            }
                            // Changed or removed since when unreadable: a later log row carries that.
                            Some(sha) => {
                                if let Some(bytes) = TreePath::parse(&f.path).ok().and_then(|p| read_content(&t, &p, sha)) {
                                    b.add_blob(sha, &bytes);
                                    b.header.puts.push(Put { path: f.path.clone(), sha256: sha.clone(), size: f.size });
                                }
                            }
                            None => b.header.removes.push(Remove { path: f.path.clone(), tree: false }),
                        }
                    }
                    b.header.foreign_upto = foreign.last().map(|f| f.id).unwrap_or(0);
                    (b, skipped)
                })
                .await
                .map_err(|e| BackupError::replica(&name, format!("reading files: {e}")))?;
                if b.header.entries.is_empty() && b.header.foreign_upto == 0 {
                    return Ok::<bool, BackupError>(false);
                }
                let body = b.encode();
                let bytes = body.len() as u64;
                match self.client.send(body).await? {
                    Sent::Acked(ack) => {
                        let now_entries: Vec<Entry> =
                            pending.iter().take_while(|e| e.seq <= ack.applied_seq).cloned().collect();
                        let shipped = now_entries.len() as u64;
                        for e in &now_entries {
                            let age = entry_age(e);
                            self.metrics.replication_seconds.get_or_create(&label).observe(age);
                            if let Some(sink) = &self.latencies {
                                sink.lock().expect("latencies").push(age);
                            }
                        }
                        pending.retain(|e| e.seq > ack.applied_seq);
                        cursor.store(Ack {
                            applied_seq: ack.applied_seq,
                            foreign_applied: ack.foreign_applied.max(cursor.ack.foreign_applied),
                        })?;
                        self.metrics.acked_seq.get_or_create(&label).set(ack.applied_seq as i64);
                        self.metrics.shipped_entries.get_or_create(&label).inc_by(shipped);
                        self.metrics.shipped_bytes.get_or_create(&label).inc_by(bytes);
                        self.metrics.foreign_skipped.get_or_create(&label).inc_by(skipped);
                        // No journal read here: the next step polls the entry and sets the age.
                        lag.report(&self.metrics, ack.applied_seq, self.primary.applied(), &pending, false);
                        Ok(true)
                    }
                    Sent::Gap(ack) => {
                        tracing::warn!(replica = %name, replica_at = ack.applied_seq, "replica is elsewhere than the cursor; resyncing");
                        synced = false;
                        Ok(true)
                    }
                }
            };
            let started = Instant::now();
            match step.await {
                Ok(true) => backoff = Duration::from_millis(self.config.retry_min_ms.max(1)),
                Ok(false) => {
                    tokio::select! {
                        _ = tokio::time::sleep(self.config.poll_interval()) => {}
                        _ = stop.changed() => {}
                    }
                }
                Err(e) => {
                    self.metrics.ship_errors.get_or_create(&label).inc();
                    tracing::warn!(replica = %name, error = %e, retry_in_ms = backoff.as_millis() as u64, after_ms = started.elapsed().as_millis() as u64, "shipping failed");
                    synced = false;
                    let jitter =
                        Duration::from_millis(rand::random::<u64>() % (backoff.as_millis() as u64 / 4 + 1));
                    // The lag gauges are refreshed every second of the backoff (up to
                    // `retry_max_ms`), not only at each retry.
                    let until = tokio::time::Instant::now() + backoff + jitter;
                    loop {
                        lag.report(
                            &self.metrics,
                            cursor.ack.applied_seq,
                            self.primary.applied(),
                            &pending,
                            true,
                        );
                        let now = tokio::time::Instant::now();
                        if now >= until {
                            break;
                        }
                        tokio::select! {
                            _ = tokio::time::sleep_until(until.min(now + LAG_REFRESH)) => {}
                            _ = stop.changed() => break,
                        }
                    }
                    backoff = (backoff * 2).min(Duration::from_millis(self.config.retry_max_ms.max(1)));
                }
            }
        }
    }
}

/// True if a batch holding only this file fits the replica's limit (room for the header and for
/// zstd's worst-case growth of content that does not compress).
fn fits_alone(size: u64, replica_max: u64) -> bool {
    size.saturating_add(size / 128 + (64 << 10)) <= replica_max
}

/// Bytes a foreign change adds to a batch: a put's content, unless it is too large to ship at all.
fn put_cost(f: &ForeignChange, replica_max: u64) -> u64 {
    if f.sha256.is_some() && fits_alone(f.size, replica_max) { f.size } else { 0 }
}

/// How many of `rows` (oldest first) go in a batch with `room` bytes of content left: at least one,
/// so that a file larger than `batch_max_bytes` travels in a batch of its own.
fn foreign_in_batch(rows: &[ForeignChange], room: u64, replica_max: u64) -> usize {
    let mut used = 0u64;
    for (i, f) in rows.iter().enumerate() {
        used += put_cost(f, replica_max);
        if i > 0 && used > room {
            return i;
        }
    }
    rows.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(id: u64, size: u64) -> ForeignChange {
        ForeignChange { id, path: format!("F/{id}"), sha256: Some("00".into()), size }
    }

    #[test]
    fn foreign_puts_fill_a_batch_up_to_its_room_and_at_least_one_goes() {
        let max = 1 << 20;
        let rows = [put(1, 40), put(2, 40), put(3, 40)];
        assert_eq!(foreign_in_batch(&rows, 100, max), 2);
        assert_eq!(foreign_in_batch(&rows, 10, max), 1, "one larger than the room goes alone");
        // Too large for the replica: costs nothing (it is skipped), so it never holds others back.
        let rows = [put(1, 2 << 20), put(2, 40), ForeignChange { sha256: None, ..put(3, 0) }];
        assert_eq!(foreign_in_batch(&rows, 100, max), 3);
        assert!(fits_alone(900 << 10, max) && !fits_alone(max, max));
    }
}
