//! The lag gauges of one replica, computed from the cursor (the last acknowledged position) and the
//! store's watermark alone, so that they keep growing while every request to the replica fails
//! (they used to be set only after the replica had answered, and froze during an outage).

use std::collections::VecDeque;
use std::path::PathBuf;

use kizuna_store::journal::{Entry, JournalReader};

use crate::follow::metrics::{Metrics, ReplicaLabel};

/// Sets `kizuna_backup_lag_entries` and `kizuna_backup_lag_seconds` for one replica.
pub struct Lag {
    journal_dir: PathBuf,
    label: ReplicaLabel,
    /// The oldest unacknowledged entry's number and commit time, as last read from the journal
    /// (read once per acknowledged position, not on every retry).
    oldest: Option<(u64, Option<jiff::Timestamp>)>,
}

impl Lag {
    pub fn new(journal_dir: PathBuf, label: ReplicaLabel) -> Self {
        Self { journal_dir, label, oldest: None }
    }

    /// Sets both gauges: entries from `acked` up to the store's watermark `applied`, and the age of
    /// entry `acked + 1`, taken from `pending` when it is there, else from the last read, else (if
    /// `may_read`) from the journal; when none has it, `lag_seconds` is left as it was (the next
    /// report sets it).
    pub fn report(
        &mut self,
        metrics: &Metrics,
        acked: u64,
        applied: u64,
        pending: &VecDeque<Entry>,
        may_read: bool,
    ) {
        let lag = applied.saturating_sub(acked);
        metrics.lag_entries.get_or_create(&self.label).set(lag as i64);
        let age = if lag == 0 {
            Some(0.0)
        } else {
            self.oldest_time(acked + 1, pending, may_read).map(|t| t.map(age_of).unwrap_or(0.0))
        };
        if let Some(age) = age {
            metrics.lag_seconds.get_or_create(&self.label).set(age);
        }
    }

    /// The commit time of entry `seq`: `None` when not looked up, `Some(None)` when unreadable.
    fn oldest_time(
        &mut self,
        seq: u64,
        pending: &VecDeque<Entry>,
        may_read: bool,
    ) -> Option<Option<jiff::Timestamp>> {
        if let Some(e) = pending.front().filter(|e| e.seq == seq) {
            return Some(time_of(e));
        }
        match self.oldest {
            Some((s, t)) if s == seq => Some(t),
            _ if !may_read => None,
            _ => {
                let t = match JournalReader::new(&self.journal_dir, seq).poll(1) {
                    Ok(v) => v.first().filter(|e| e.seq == seq).and_then(time_of),
                    Err(e) => {
                        tracing::debug!(error = %e, seq, "reading the oldest unacknowledged entry's time");
                        None
                    }
                };
                // A failed read is not cached: the next report tries again.
                if t.is_some() {
                    self.oldest = Some((seq, t));
                }
                Some(t)
            }
        }
    }
}

fn time_of(e: &Entry) -> Option<jiff::Timestamp> {
    e.time.parse::<jiff::Timestamp>().ok()
}

/// Seconds from `t` to now (0 if `t` is in the future).
pub fn age_of(t: jiff::Timestamp) -> f64 {
    ((jiff::Timestamp::now().as_microsecond() - t.as_microsecond()) as f64 / 1e6).max(0.0)
}
