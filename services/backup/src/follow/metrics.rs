//! The follower's metrics on `/metrics`.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReplicaLabel {
    pub replica: String,
}

/// Every metric the follower exports, per replica where it makes sense.
pub struct Metrics {
    pub registry: Registry,
    /// Entries applied on the primary but not yet acknowledged by the replica.
    pub lag_entries: Family<ReplicaLabel, Gauge>,
    /// Age of the oldest entry not yet acknowledged (0 when caught up), seconds.
    pub lag_seconds: Family<ReplicaLabel, Gauge<f64, AtomicU64>>,
    /// Highest entry acknowledged.
    pub acked_seq: Family<ReplicaLabel, Gauge>,
    pub shipped_entries: Family<ReplicaLabel, Counter>,
    pub shipped_bytes: Family<ReplicaLabel, Counter>,
    pub ship_errors: Family<ReplicaLabel, Counter>,
    /// Time from the store's commit of an entry to the replica's acknowledgement.
    pub replication_seconds: Family<ReplicaLabel, Histogram>,
    /// Last verification: 1 clean, 0 differences found, -1 failed to run.
    pub verify_result: Family<ReplicaLabel, Gauge>,
    pub verify_differences: Family<ReplicaLabel, Gauge>,
    /// Differences the last verification saw while replication was in flight (settled on re-check).
    pub verify_in_flight: Family<ReplicaLabel, Gauge>,
    pub verify_timestamp: Family<ReplicaLabel, Gauge>,
    pub verify_seconds: Family<ReplicaLabel, Gauge<f64, AtomicU64>>,
    /// Files others wrote into the tree, and rescans after watcher overflows.
    /// Linkage database snapshots taken, the time of the snapshot each replica holds (Unix), and
    /// failed linkage requests per replica.
    pub linkage_snapshots: Counter,
    pub linkage_timestamp: Family<ReplicaLabel, Gauge>,
    pub linkage_errors: Family<ReplicaLabel, Counter>,
    pub foreign_changes: Counter,
    /// Files others wrote that are too large for any batch the replica takes, not shipped.
    pub foreign_skipped: Family<ReplicaLabel, Counter>,
    pub rescans: Counter,
    pub watch_overflows: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut r = Registry::default();
        let m = Self {
            registry: Registry::default(),
            lag_entries: Family::default(),
            lag_seconds: Family::default(),
            acked_seq: Family::default(),
            shipped_entries: Family::default(),
            shipped_bytes: Family::default(),
            ship_errors: Family::default(),
            replication_seconds: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.005, 2.0, 14))
            }),
            verify_result: Family::default(),
            verify_differences: Family::default(),
            verify_in_flight: Family::default(),
            verify_timestamp: Family::default(),
            verify_seconds: Family::default(),
            linkage_snapshots: Counter::default(),
            linkage_timestamp: Family::default(),
            linkage_errors: Family::default(),
            foreign_changes: Counter::default(),
            foreign_skipped: Family::default(),
            rescans: Counter::default(),
            watch_overflows: Counter::default(),
        };
        r.register(
            "kizuna_backup_lag_entries",
            "Journal entries applied on the primary and not yet acknowledged by the replica",
            m.lag_entries.clone(),
        );
        r.register(
            "kizuna_backup_lag_seconds",
            "Age of the oldest entry the replica has not acknowledged",
            m.lag_seconds.clone(),
        );
        r.register(
            "kizuna_backup_acked_seq",
            "Highest journal entry the replica acknowledged",
            m.acked_seq.clone(),
        );
        r.register(
            "kizuna_backup_shipped_entries",
            "Journal entries acknowledged by the replica",
            m.shipped_entries.clone(),
        );
        r.register(
            "kizuna_backup_shipped_bytes",
            "Compressed batch bytes acknowledged by the replica",
            m.shipped_bytes.clone(),
        );
        r.register(
            "kizuna_backup_ship_errors",
            "Batches that failed (retried with backoff)",
            m.ship_errors.clone(),
        );
        r.register(
            "kizuna_backup_replication_seconds",
            "Time from the store's commit to the replica's acknowledgement",
            m.replication_seconds.clone(),
        );
        r.register(
            "kizuna_backup_verify_last_result",
            "Last verification: 1 clean, 0 differences, -1 failed",
            m.verify_result.clone(),
        );
        r.register(
            "kizuna_backup_verify_last_differences",
            "Differences the last verification found",
            m.verify_differences.clone(),
        );
        r.register(
            "kizuna_backup_verify_last_in_flight",
            "Differences the last verification saw in flight (gone once the replica applied them)",
            m.verify_in_flight.clone(),
        );
        r.register(
            "kizuna_backup_verify_last_timestamp_seconds",
            "When the last verification ended (Unix time)",
            m.verify_timestamp.clone(),
        );
        r.register(
            "kizuna_backup_verify_last_duration_seconds",
            "How long the last verification took",
            m.verify_seconds.clone(),
        );
        r.register(
            "kizuna_backup_linkage_snapshots",
            "Linkage database snapshots taken (one per change seen)",
            m.linkage_snapshots.clone(),
        );
        r.register(
            "kizuna_backup_linkage_snapshot_timestamp_seconds",
            "When the primary took the linkage snapshot the replica holds (Unix time)",
            m.linkage_timestamp.clone(),
        );
        r.register(
            "kizuna_backup_linkage_errors",
            "Failed linkage snapshot requests to the replica (retried at the next interval)",
            m.linkage_errors.clone(),
        );
        r.register(
            "kizuna_backup_foreign_changes",
            "Changes by others than the store seen in the tree",
            m.foreign_changes.clone(),
        );
        r.register(
            "kizuna_backup_foreign_skipped",
            "Files others wrote that are too large for a batch the replica takes (replica_max_batch_bytes): not shipped",
            m.foreign_skipped.clone(),
        );
        r.register(
            "kizuna_backup_rescans",
            "Folders rescanned after a watcher overflow or a new folder",
            m.rescans.clone(),
        );
        r.register(
            "kizuna_backup_watch_overflows",
            "Watcher events that did not fit the queue",
            m.watch_overflows.clone(),
        );
        Self { registry: r, ..m }
    }
}

impl Metrics {
    pub fn label(replica: &str) -> ReplicaLabel {
        ReplicaLabel { replica: replica.to_owned() }
    }

    /// The OpenMetrics text.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry).expect("writing to a String");
        out
    }
}
