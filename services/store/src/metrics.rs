//! Prometheus metrics served on `/metrics`.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SiteStatus {
    pub site: String,
    pub status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SiteCode {
    pub site: String,
    pub code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SiteLabel {
    pub site: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Endpoint {
    pub endpoint: String,
    pub status: String,
}

/// Every metric the store exports.
pub struct Metrics {
    pub registry: Registry,
    /// Files by site and outcome (`stored`, `duplicate`, `rejected`).
    pub files: Family<SiteStatus, Counter>,
    /// Rejected files by site and violation code.
    pub rejects: Family<SiteCode, Counter>,
    /// Bytes stored by site.
    pub bytes: Family<SiteLabel, Counter>,
    /// Requests refused before reading (auth, limits) by endpoint and HTTP status.
    pub refused: Family<Endpoint, Counter>,
    pub heartbeats: Family<SiteLabel, Counter>,
    pub daily_logs: Family<SiteLabel, Counter>,
    /// Time from batch received to answer.
    pub batch_seconds: Histogram,
    /// Last journal sequence number written, and the last applied to tree and index.
    pub journal_seq: Gauge,
    pub applied_seq: Gauge,
    /// Last journal entry whose records have all their search rows.
    pub search_seq: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::default();
        let files = Family::<SiteStatus, Counter>::default();
        let rejects = Family::<SiteCode, Counter>::default();
        let bytes = Family::<SiteLabel, Counter>::default();
        let refused = Family::<Endpoint, Counter>::default();
        let heartbeats = Family::<SiteLabel, Counter>::default();
        let daily_logs = Family::<SiteLabel, Counter>::default();
        let batch_seconds = Histogram::new(exponential_buckets(0.001, 2.0, 16));
        let journal_seq = Gauge::default();
        let applied_seq = Gauge::default();
        let search_seq = Gauge::default();
        registry.register("kizuna_upload_files", "Uploaded files by site and outcome", files.clone());
        registry.register(
            "kizuna_upload_rejects",
            "Rejected files by site and violation code",
            rejects.clone(),
        );
        registry.register("kizuna_upload_stored_bytes", "Bytes stored by site", bytes.clone());
        registry.register(
            "kizuna_upload_refused_requests",
            "Requests refused before any file was read",
            refused.clone(),
        );
        registry.register("kizuna_agent_heartbeats", "Agent heartbeats received", heartbeats.clone());
        registry.register("kizuna_agent_daily_logs", "Agent daily log reports received", daily_logs.clone());
        registry.register(
            "kizuna_upload_batch_seconds",
            "Time to check, store and index one batch",
            batch_seconds.clone(),
        );
        registry.register(
            "kizuna_journal_seq",
            "Last change-journal sequence number written",
            journal_seq.clone(),
        );
        registry.register(
            "kizuna_journal_applied_seq",
            "Last journal entry applied to tree and index",
            applied_seq.clone(),
        );
        registry.register(
            "kizuna_search_seq",
            "Last journal entry whose records have their search rows",
            search_seq.clone(),
        );
        Self {
            registry,
            files,
            rejects,
            bytes,
            refused,
            heartbeats,
            daily_logs,
            batch_seconds,
            journal_seq,
            applied_seq,
            search_seq,
        }
    }
}

impl Metrics {
    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry).expect("writing to a String");
        out
    }
}
