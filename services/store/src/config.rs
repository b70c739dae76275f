//! The store's configuration file (YAML). Every key has a default, so an empty file (or none) runs
//! the centre on embedded defaults: SQLite and local folders under `./kizuna-data`, on 127.0.0.1.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::StoreError;

/// The whole configuration. See the crate README for every key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address the upload API listens on.
    pub listen: SocketAddr,
    /// Network device the listening socket is bound to (Linux `SO_BINDTODEVICE`), e.g. netd's
    /// upload VRF `kzv-upload`: a centre router's segment addresses live in their VRF, where only a
    /// socket bound to that device can listen. Empty means none.
    pub bind_interface: String,
    /// Holds `tree/`, `staging/`, `journal/` and (by default) `index.sqlite`.
    pub data_dir: PathBuf,
    /// `sqlite://FILE` or `postgres://…`; empty means `sqlite://<data_dir>/index.sqlite`.
    pub database_url: String,
    /// SSMIXIDX VolumeLabel written in every index row.
    pub volume_label: String,
    /// Folder holding the NHO validator's tables; empty means search for them (see `ssmix2`).
    pub nho_tables: String,
    pub limits: Limits,
    pub commit: Commit,
    /// Where the store's audit events go (site authentication failures, site changes).
    pub audit: kizuna_audit::emitter::SenderConfig,
}

/// Limits on what a site may send.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Largest request body (a whole batch), in bytes.
    pub max_body_bytes: u64,
    /// Largest single file in a batch, in bytes.
    pub max_file_bytes: u64,
    /// Most files in one batch.
    pub max_batch_files: usize,
    /// Refused requests (bad token, wrong address or facility) from one address for one site and
    /// reason: the first is audited at once, the rest in one summary event at most this often, in
    /// seconds (0 = every refusal audited). See [`crate::refusals`].
    pub refusal_audit_secs: u64,
    /// Days of per-heartbeat history kept in `heartbeats` (each site's latest is in `site_status`
    /// whatever this says); older rows are deleted as new heartbeats arrive. 0 = keep none.
    pub heartbeat_history_days: u32,
}

/// Durability and group commit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Commit {
    /// How long the journal writer waits for more entries before one fsync (0 = no wait; batches
    /// that arrive while an fsync runs are grouped anyway).
    pub group_window_ms: u64,
    /// A journal segment is closed and a new one started past this size.
    pub journal_segment_bytes: u64,
    /// How staged files and changed directories are made durable: `syncfs` (one `syncfs(2)` of the
    /// data filesystem per step of a batch; the default) or `fsync` (each file and directory).
    pub sync: SyncMode,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SyncMode {
    Fsync,
    Syncfs,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8440".parse().expect("literal address"),
            bind_interface: String::new(),
            data_dir: PathBuf::from("./kizuna-data"),
            database_url: String::new(),
            volume_label: "KIZUNA".into(),
            nho_tables: String::new(),
            limits: Limits::default(),
            commit: Commit::default(),
            audit: kizuna_audit::emitter::SenderConfig::default(),
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body_bytes: 64 << 20,
            max_file_bytes: 8 << 20,
            max_batch_files: 5000,
            refusal_audit_secs: 60,
            heartbeat_history_days: 14,
        }
    }
}

impl Default for Commit {
    fn default() -> Self {
        Self { group_window_ms: 0, journal_segment_bytes: 64 << 20, sync: SyncMode::Syncfs }
    }
}

impl Config {
    /// Reads a YAML file; an error names the file and the key.
    pub fn load(path: &Path) -> Result<Self, StoreError> {
        let text = std::fs::read_to_string(path).map_err(|e| StoreError::io(path, e))?;
        Self::parse(&text).map_err(|e| StoreError::Config(format!("{}: {e}", path.display())))
    }

    /// Parses YAML text; an empty document gives the defaults.
    pub fn parse(text: &str) -> Result<Self, String> {
        if text.trim().is_empty() {
            return Ok(Self::default());
        }
        kizuna_config::yaml::from_str(text)
    }

    /// The default configuration as commented YAML, for `--print-default-config`.
    pub fn default_yaml() -> String {
        DEFAULT_YAML.to_owned()
    }

    pub fn tree_dir(&self) -> PathBuf {
        self.data_dir.join("tree")
    }

    pub fn staging_dir(&self) -> PathBuf {
        self.data_dir.join("staging")
    }

    pub fn journal_dir(&self) -> PathBuf {
        self.data_dir.join("journal")
    }

    /// The database URL in force (the SQLite default filled in).
    pub fn effective_database_url(&self) -> String {
        if self.database_url.is_empty() {
            format!("sqlite://{}?mode=rwc", self.data_dir.join("index.sqlite").display())
        } else {
            self.database_url.clone()
        }
    }

    /// The warning for a listener that takes patient records and site tokens in plain HTTP from
    /// other machines outside a netd segment (not loopback, no `bind_interface`); `None` when the
    /// segment's WireGuard (or loopback) carries them.
    pub fn plaintext_exposure(&self) -> Option<String> {
        if self.listen.ip().is_loopback() || !self.bind_interface.is_empty() {
            return None;
        }
        Some(format!(
            "listen {} takes uploads (patient records and site tokens) in plain HTTP from any network, \
             outside a netd segment: set bind_interface to the upload segment's interface (its WireGuard \
             encrypts the traffic) or listen on loopback behind a TLS proxy",
            self.listen
        ))
    }

    pub fn group_window(&self) -> Duration {
        Duration::from_millis(self.commit.group_window_ms)
    }
}

/// Kept in sync with `Default` by the test `default_yaml_is_the_default`.
const DEFAULT_YAML: &str = r#"# kizuna store configuration (every key optional; these are the defaults)
# Address the upload API (and /metrics, /healthz) listens on.
listen: 127.0.0.1:8440
# Network device to bind the listening socket to (SO_BINDTODEVICE), e.g. kzv-upload (netd's upload
# VRF) to listen on the centre router's upload address only; empty = none.
bind_interface: ''
# Holds tree/<facility>/... (the SS-MIX2 trees), staging/, journal/ and index.sqlite.
data_dir: ./kizuna-data
# IndexDB: sqlite://FILE or postgres://user:pass@host/db; empty = sqlite://<data_dir>/index.sqlite
database_url: ''
# SSMIXIDX VolumeLabel recorded in every index row.
volume_label: KIZUNA
# Folder with the NHO validator tables (HL7_SEGMENT.json ...); empty = $KIZUNA_NHO_TABLES or search.
nho_tables: ''
limits:
  # Largest request body (one batch), bytes. Larger requests get 413 and nothing is written.
  max_body_bytes: 67108864
  # Largest single file in a batch, bytes.
  max_file_bytes: 8388608
  # Most files in one batch.
  max_batch_files: 5000
  # Refused requests (bad token, wrong address or facility) from one address, for one site and
  # reason: the first is audited at once, the ones after it as one summary event ("N more
  # refusals from ADDR for REASON") at most this often, seconds; every refusal is still answered
  # 401/403. 0 = audit every refusal.
  refusal_audit_secs: 60
  # Days of per-heartbeat history kept in the heartbeats table (at 60 s per site, 1,440 rows a
  # site a day); older rows go as new heartbeats arrive. Each site's latest heartbeat is kept in
  # site_status regardless. 0 = keep no history.
  heartbeat_history_days: 14
commit:
  # Journal group commit: wait this long for more entries before one fsync (0 = only group what
  # arrives while an fsync runs).
  group_window_ms: 0
  # Start a new journal segment past this size, bytes.
  journal_segment_bytes: 67108864
  # How new files and directory entries are made durable before the answer: syncfs (one syncfs(2)
  # of the data filesystem per batch step: fastest when the store owns the filesystem) or fsync
  # (each staged file and each changed directory, in parallel).
  sync: syncfs
audit:
  # The audit service's event intake (kizuna audit serve), e.g. http://127.0.0.1:7460/v1/events.
  # Empty = audit events (site authentication failures, site changes) are only written to the log.
  url: ''
  # Where events wait, crash-safely, until the audit service has them (needed with url).
  spool_dir: ''
  # File holding the audit service's intake token; empty = none.
  token_file: ''
  # Seconds between delivery retries while the audit service is unreachable.
  retry_secs: 5
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_yaml_is_the_default() {
        assert_eq!(Config::parse(DEFAULT_YAML).unwrap(), Config::default());
        assert_eq!(Config::parse("").unwrap(), Config::default());
    }

    #[test]
    fn a_plain_http_listener_outside_a_segment_is_warned_about() {
        assert_eq!(Config::default().plaintext_exposure(), None, "loopback");
        let open = Config::parse("listen: 0.0.0.0:8440\n").unwrap();
        let w = open.plaintext_exposure().expect("warned");
        assert!(w.contains("0.0.0.0:8440") && w.contains("bind_interface"), "{w}");
        let segment = Config::parse("listen: 0.0.0.0:8440\nbind_interface: kz-upload\n").unwrap();
        assert_eq!(segment.plaintext_exposure(), None, "the upload segment's WireGuard encrypts it");
    }

    #[test]
    fn unknown_keys_are_refused_by_name() {
        let e = Config::parse("listen: 127.0.0.1:1\nlimitz: {}\n").unwrap_err();
        assert!(e.contains("limitz"), "{e}");
    }

    #[test]
    fn sqlite_default_lives_in_the_data_dir() {
        let c = Config { data_dir: "/srv/k".into(), ..Config::default() };
        assert_eq!(c.effective_database_url(), "sqlite:///srv/k/index.sqlite?mode=rwc");
    }

    #[test]
    fn a_key_given_twice_is_refused_with_both_lines() {
        let e = Config::parse("listen: 127.0.0.1:1\ndata_dir: /a\nlisten: 127.0.0.1:2\n").unwrap_err();
        assert_eq!(e, "line 3: duplicate key `listen` (first at line 1)");
    }
}
