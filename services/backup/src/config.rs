//! The backup's YAML configuration: one file, a `replica` section for `kizuna backup serve` and
//! `promote`, a `follow` section for `kizuna backup follow` and `verify`. Every key is optional.

use kizuna_config::check::{http_url, in_range};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::BackupError;
use crate::replica::digests::Check;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub replica: ReplicaConfig,
    pub follow: FollowConfig,
}

/// `kizuna backup serve` (on each replica).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReplicaConfig {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub token_file: PathBuf,
    pub max_batch_bytes: u64,
    pub max_linkage_bytes: u64,
    /// PEM certificate chain (leaf first) served over TLS; empty = plain HTTP.
    pub tls_cert_file: PathBuf,
    /// PEM private key of `tls_cert_file` (mode 0600).
    pub tls_key_file: PathBuf,
}

/// `kizuna backup follow` (on the primary, beside the store).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FollowConfig {
    pub store_data_dir: PathBuf,
    pub state_dir: PathBuf,
    pub metrics_listen: SocketAddr,
    pub replicas: Vec<ReplicaTarget>,
    pub batch_max_entries: usize,
    pub batch_max_bytes: usize,
    /// The replicas' `replica.max_batch_bytes`: a foreign file too large for a batch under it is skipped.
    pub replica_max_batch_bytes: u64,
    pub poll_interval_ms: u64,
    pub retry_min_ms: u64,
    pub retry_max_ms: u64,
    pub request_timeout_s: u64,
    pub watch: WatchConfig,
    pub verify: VerifyConfig,
    pub linkage: LinkageConfig,
}

/// One replica the primary ships to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplicaTarget {
    pub name: String,
    pub url: String,
    pub token_file: PathBuf,
    /// PEM certificates trusted for this replica's HTTPS instead of the public roots (a private
    /// CA, or the replica's own certificate); empty = the public roots.
    #[serde(default)]
    pub ca_file: PathBuf,
}

/// Watching the tree for files others write into it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WatchConfig {
    pub enabled: bool,
    pub queue: usize,
    pub settle_ms: u64,
    pub rescan_max_dirs: usize,
}

/// Snapshots of the linkage database (common IDs, consent) shipped to the replicas.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LinkageConfig {
    /// The SQLite linkage database; empty = `linkage.sqlite` in `store_data_dir`.
    pub database: PathBuf,
    /// Seconds between checks for a change (0 = never ship the linkage database).
    pub interval_s: u64,
}

/// The scheduled verification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VerifyConfig {
    pub interval_s: u64,
    pub check: Check,
    pub repair: bool,
    /// How long a verification waits for the replica to apply what was in flight, s.
    pub settle_s: u64,
}

impl Default for ReplicaConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8450".parse().expect("literal"),
            data_dir: "./kizuna-replica".into(),
            token_file: PathBuf::new(),
            max_batch_bytes: 256 << 20,
            max_linkage_bytes: 16 << 30,
            tls_cert_file: PathBuf::new(),
            tls_key_file: PathBuf::new(),
        }
    }
}

impl Default for FollowConfig {
    fn default() -> Self {
        Self {
            store_data_dir: "./kizuna-data".into(),
            state_dir: "./kizuna-backup".into(),
            metrics_listen: "127.0.0.1:8451".parse().expect("literal"),
            replicas: Vec::new(),
            batch_max_entries: 2000,
            batch_max_bytes: 32 << 20,
            replica_max_batch_bytes: 256 << 20,
            poll_interval_ms: 20,
            retry_min_ms: 200,
            retry_max_ms: 30_000,
            request_timeout_s: 120,
            watch: WatchConfig::default(),
            verify: VerifyConfig::default(),
            linkage: LinkageConfig::default(),
        }
    }
}

impl Default for LinkageConfig {
    fn default() -> Self {
        Self { database: PathBuf::new(), interval_s: 30 }
    }
}

impl Default for WatchConfig {
    fn default() -> Self {
        Self { enabled: true, queue: 65_536, settle_ms: 1000, rescan_max_dirs: 256 }
    }
}

impl Default for VerifyConfig {
    fn default() -> Self {
        Self {
            interval_s: 86_400,
            check: Check::Stat,
            repair: false,
            settle_s: crate::verify::DEFAULT_SETTLE_S,
        }
    }
}

impl Config {
    /// Reads a YAML file; an error names the file and the key.
    pub fn load(path: &Path) -> Result<Self, BackupError> {
        let text = std::fs::read_to_string(path).map_err(|e| BackupError::io(path, e))?;
        Self::parse(&text).map_err(|e| BackupError::Config(format!("{}: {e}", path.display())))
    }

    /// Parses YAML text (an empty document gives the defaults) and checks it.
    pub fn parse(text: &str) -> Result<Self, String> {
        let c: Self =
            if text.trim().is_empty() { Self::default() } else { kizuna_config::yaml::from_str(text)? };
        c.check()?;
        Ok(c)
    }

    /// Refuses values that cannot work, naming the key (`replica.…`, `follow.…`).
    pub fn check(&self) -> Result<(), String> {
        self.replica.check()?;
        self.follow.check()
    }

    /// The default configuration as commented YAML, for `--print-default-config`.
    pub fn default_yaml() -> &'static str {
        DEFAULT_YAML
    }
}

impl ReplicaConfig {
    /// Refuses values that cannot work, naming the key.
    pub fn check(&self) -> Result<(), String> {
        in_range("replica.max_batch_bytes", self.max_batch_bytes, 1, u64::MAX)?;
        in_range("replica.max_linkage_bytes", self.max_linkage_bytes, 1, u64::MAX)?;
        let (cert, key) =
            (self.tls_cert_file.as_os_str().is_empty(), self.tls_key_file.as_os_str().is_empty());
        if cert != key {
            let (set, unset) = if cert {
                ("replica.tls_key_file", "replica.tls_cert_file")
            } else {
                ("replica.tls_cert_file", "replica.tls_key_file")
            };
            return Err(format!(
                "{set} is set but {unset} is not: TLS needs both the certificate and its key"
            ));
        }
        Ok(())
    }

    /// Serves HTTPS (both TLS files set)?
    pub fn tls(&self) -> bool {
        !self.tls_cert_file.as_os_str().is_empty()
    }
}

/// Shortest `follow.retry_min_ms`: a replica that fails at once is retried at most this often
/// before the backoff grows (0 used to flood the log with ~400 WARN lines a second).
pub const MIN_RETRY_MS: u64 = 10;
/// Shortest `follow.retry_max_ms`: a replica down for long is retried at most once a second.
pub const MIN_RETRY_MAX_MS: u64 = 1000;
/// Longest `follow.retry_max_ms` (an hour).
pub const MAX_RETRY_MS: u64 = 3_600_000;

/// A replica name: non-empty ASCII letters, digits, '-' and '_' (so never a path such as `../x`).
pub fn valid_replica_name(name: &str) -> bool {
    !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

impl FollowConfig {
    /// Refuses values that cannot work, naming the key: minimums, `retry_min_ms` ≤
    /// `retry_max_ms`, and each replica's `url` an http(s) URL with a host.
    pub fn check(&self) -> Result<(), String> {
        in_range("follow.retry_min_ms", self.retry_min_ms, MIN_RETRY_MS, MAX_RETRY_MS)?;
        in_range("follow.retry_max_ms", self.retry_max_ms, MIN_RETRY_MAX_MS, MAX_RETRY_MS)?;
        if self.retry_min_ms > self.retry_max_ms {
            return Err(format!(
                "follow.retry_min_ms: {} is more than follow.retry_max_ms: {} (the backoff runs from the \
                 first to the second)",
                self.retry_min_ms, self.retry_max_ms
            ));
        }
        in_range("follow.poll_interval_ms", self.poll_interval_ms, 1, 60_000)?;
        in_range("follow.request_timeout_s", self.request_timeout_s, 1, 86_400)?;
        in_range("follow.batch_max_entries", self.batch_max_entries as u64, 1, u64::MAX)?;
        in_range("follow.batch_max_bytes", self.batch_max_bytes as u64, 1, u64::MAX)?;
        in_range("follow.replica_max_batch_bytes", self.replica_max_batch_bytes, 1, u64::MAX)?;
        in_range("follow.watch.queue", self.watch.queue as u64, 1, u64::MAX)?;
        in_range("follow.watch.rescan_max_dirs", self.watch.rescan_max_dirs as u64, 1, u64::MAX)?;
        in_range("follow.watch.settle_ms", self.watch.settle_ms, 0, 3_600_000)?;
        in_range("follow.verify.interval_s", self.verify.interval_s, 0, 366 * 86_400)?;
        in_range("follow.verify.settle_s", self.verify.settle_s, 0, 86_400)?;
        in_range("follow.linkage.interval_s", self.linkage.interval_s, 0, 86_400)?;
        let mut names = std::collections::BTreeSet::new();
        for (i, r) in self.replicas.iter().enumerate() {
            // The name is a file name under `state_dir/cursors/` and the metrics label.
            if !valid_replica_name(&r.name) || !names.insert(r.name.as_str()) {
                return Err(format!(
                    "follow.replicas[{i}].name: {:?} must be unique, letters, digits, '-' or '_'",
                    r.name
                ));
            }
            let key = format!("follow.replicas[{i}].url");
            let u = http_url(&key, &r.url)?;
            if u.query().is_some() || u.fragment().is_some() {
                return Err(format!("{key}: {:?} must have no query or fragment", r.url));
            }
            if !r.ca_file.as_os_str().is_empty() && u.scheme() != "https" {
                return Err(format!(
                    "follow.replicas[{i}].ca_file is set but the url {:?} is not https://: the certificates \
                     it names are only used over TLS",
                    r.url
                ));
            }
        }
        Ok(())
    }

    /// The store's data folder, checked before it is read: it must exist and hold a store (its
    /// `journal/`). The follower only reads it; a mistyped `store_data_dir` used to be created
    /// (with an empty `tree/`) and followed, shipping nothing for ever.
    pub fn check_store(&self) -> Result<(), BackupError> {
        let dir = &self.store_data_dir;
        let never = "the follower reads the store's data and never creates it; is the path right, and \
                     has `kizuna serve` run with it?";
        if !dir.is_dir() {
            return Err(BackupError::Config(format!(
                "follow.store_data_dir: {} does not exist: {never}",
                dir.display()
            )));
        }
        if !self.journal_dir().is_dir() {
            return Err(BackupError::Config(format!(
                "follow.store_data_dir: {} holds no store (no journal/): {never}",
                dir.display()
            )));
        }
        Ok(())
    }

    pub fn poll_interval(&self) -> Duration {
        Duration::from_millis(self.poll_interval_ms.max(1))
    }
    pub fn journal_dir(&self) -> PathBuf {
        self.store_data_dir.join("journal")
    }
    pub fn tree_dir(&self) -> PathBuf {
        self.store_data_dir.join("tree")
    }
    pub fn manifest_path(&self) -> PathBuf {
        self.state_dir.join("manifest.sqlite")
    }
    /// The linkage database the follower snapshots.
    pub fn linkage_database(&self) -> PathBuf {
        if self.linkage.database.as_os_str().is_empty() {
            self.store_data_dir.join(crate::linkage::LINKAGE_FILE)
        } else {
            self.linkage.database.clone()
        }
    }
}

/// Reads a secret token from a file (whitespace trimmed); refuses files others can read.
pub fn read_token(path: &Path) -> Result<String, BackupError> {
    if path.as_os_str().is_empty() {
        return Err(BackupError::Config("token_file is not set".into()));
    }
    let t = kizuna_config::secret::read_private(path)
        .map_err(|e| match e {
            kizuna_config::secret::SecretFileError::Io(e) => BackupError::io(path, e),
            exposed => BackupError::Config(format!("{}: token file {exposed}", path.display())),
        })?
        .trim()
        .to_owned();
    if t.len() < 16 {
        return Err(BackupError::Config(format!("{}: token shorter than 16 characters", path.display())));
    }
    Ok(t)
}

/// Kept in sync with `Default` by the test `default_yaml_is_the_default`.
const DEFAULT_YAML: &str = r#"# kizuna backup configuration (every key optional; these are the defaults)
replica:                      # kizuna backup serve / promote (on a replica)
  # Address the replica's API (batches, digests, /metrics, /healthz) listens on.
  listen: 127.0.0.1:8450
  # Holds tree/, journal/, staging/ (laid out like the store's), backup/manifest.sqlite and the
  # primary's linkage.sqlite (the latest snapshot).
  data_dir: ./kizuna-replica
  # File (mode 0600) holding the bearer token the primary must present. Required.
  token_file: ''
  # Largest batch accepted, bytes after decompression.
  max_batch_bytes: 268435456
  # Largest linkage database snapshot accepted, bytes after decompression.
  max_linkage_bytes: 17179869184
  # HTTPS: the replica's PEM certificate chain (leaf first) and its PEM private key (mode 0600),
  # both or neither. Batches carry patient data: a replica reached over any network but the
  # host's own loopback should serve HTTPS (plain HTTP there is logged as a warning at start).
  tls_cert_file: ''
  tls_key_file: ''
follow:                       # kizuna backup follow / verify (on the primary, beside the store)
  # The store's data_dir (its journal/ and tree/ are read, never written). It must exist and hold
  # the store's journal/: a folder that does not is refused, never created.
  store_data_dir: ./kizuna-data
  # The follower's own state: manifest.sqlite (the primary's recorded digests) and cursors/.
  state_dir: ./kizuna-backup
  # Address of /metrics and /healthz.
  metrics_listen: 127.0.0.1:8451
  # Replicas to ship to, all at once, each with its own cursor (url: http:// or https:// with a host;
  # ca_file, optional: PEM certificates trusted for that replica's HTTPS instead of the public
  # roots, e.g. a private CA or the replica's own self-signed tls_cert_file):
  #   - {name: dc2, url: 'https://dc2.centre.example:8450', token_file: /etc/kizuna/dc2.token,
  #      ca_file: /etc/kizuna/dc2.pem}
  replicas: []
  # A batch holds at most this many journal entries and this many bytes of file content.
  batch_max_entries: 2000
  batch_max_bytes: 33554432
  # The replicas' replica.max_batch_bytes. A file others wrote that is larger than batch_max_bytes
  # goes in a batch of its own; one too large for a batch under this limit is not shipped (ERROR
  # log, kizuna_backup_foreign_skipped_total), so that it cannot stop replication.
  replica_max_batch_bytes: 268435456
  # How often the journal's applied watermark is checked when there is nothing to ship, ms.
  poll_interval_ms: 20
  # Retry after a failed batch: exponential backoff between these bounds, ms (retry_min_ms at
  # least 10, retry_max_ms 1000 to 3600000 and not below retry_min_ms).
  retry_min_ms: 200
  retry_max_ms: 30000
  # One request's time limit, s.
  request_timeout_s: 120
  watch:
    # Watch the tree (notify) for files written by others than the store.
    enabled: true
    # Events queued between the watcher and the follower; past it, the affected folders are
    # rescanned instead (a bounded rescan, never a loss).
    queue: 65536
    # A changed file is looked at once it has been quiet this long, ms.
    settle_ms: 1000
    # Folders remembered for a rescan after an overflow; past it, their parents are rescanned.
    rescan_max_dirs: 256
  verify:
    # Verify every replica this often, s (0 = never); the result is logged and on /metrics.
    interval_s: 86400
    # How closely replicas check their files: recorded, stat or content.
    check: stat
    # Repair differences found by the scheduled verification.
    repair: false
    # Uploads go on during a verification: a difference whose path the journal (or the log of
    # files others wrote) changed after the replica's position is in flight, and is looked at
    # again once the replica has applied that. How long to wait for it, s; still in flight then
    # (not shipped), it is reported.
    settle_s: 120
  linkage:
    # The linkage database (common IDs, consent, break-glass) whose consistent snapshot
    # (VACUUM INTO) goes to every replica whenever it changed, so that a promoted replica links
    # and discloses as the primary did. Empty: linkage.sqlite in store_data_dir. Only SQLite:
    # a PostgreSQL linkage database is replicated by PostgreSQL itself.
    database: ''
    # Seconds between checks for a change (the replicas' linkage lags by at most this, plus
    # the time to ship it); 0 = never.
    interval_s: 30
"#;

#[cfg(test)]
mod tests {
    use super::*;

    /// The centre image's template (`images/`) is a configuration this version loads, and it lists
    /// every `replica:` key (the TLS keys, added here and not there, first failed in the lab).
    #[test]
    fn the_images_template_loads_and_lists_every_replica_key() {
        let path =
            concat!(env!("CARGO_MANIFEST_DIR"), "/../../images/rootfs/centre/etc/kizuna/backup.yaml.example");
        let text = std::fs::read_to_string(path).unwrap();
        let c = Config::parse(&text).unwrap_or_else(|e| panic!("{path}: {e}"));
        assert_eq!(c.replica.data_dir, PathBuf::from("/var/lib/kizuna/store"));
        for key in [
            "listen",
            "data_dir",
            "token_file",
            "max_batch_bytes",
            "max_linkage_bytes",
            "tls_cert_file",
            "tls_key_file",
        ] {
            assert!(text.contains(&format!("\n  {key}: ")), "{path}: no replica.{key}");
        }
    }

    #[test]
    fn default_yaml_is_the_default() {
        assert_eq!(Config::parse(DEFAULT_YAML).unwrap(), Config::default());
        assert_eq!(Config::parse("").unwrap(), Config::default());
    }

    /// `retry_min_ms: 0` flooded the log (~1,150 WARN lines in 3 s), `retry_min_ms: 5000` with
    /// `retry_max_ms: 10` was taken, and a replica `url: ftp:/x` only failed later as a repeated
    /// "builder error": each is refused at load, naming the key.
    #[test]
    fn retry_bounds_and_replica_urls_are_checked_by_name() {
        let replica =
            |url: &str| format!("follow:\n  replicas:\n    - {{name: dr, url: '{url}', token_file: /t}}\n");
        let refused = [
            ("follow:\n  retry_min_ms: 0\n".to_owned(), "follow.retry_min_ms: 0 is too small"),
            (
                "follow:\n  retry_min_ms: 5000\n  retry_max_ms: 10\n".into(),
                "follow.retry_max_ms: 10 is too small",
            ),
            (
                "follow:\n  retry_min_ms: 5000\n  retry_max_ms: 2000\n".into(),
                "follow.retry_min_ms: 5000 is more than follow.retry_max_ms: 2000",
            ),
            ("follow:\n  retry_max_ms: 18446744073709551615\n".into(), "follow.retry_max_ms: "),
            ("follow:\n  batch_max_entries: 0\n".into(), "follow.batch_max_entries: "),
            ("follow:\n  request_timeout_s: 0\n".into(), "follow.request_timeout_s: "),
            ("follow:\n  watch:\n    queue: 0\n".into(), "follow.watch.queue: "),
            ("replica:\n  max_batch_bytes: 0\n".into(), "replica.max_batch_bytes: "),
            (replica("ftp:/x"), "follow.replicas[0].url: \"ftp:/x\" must be an http:// or https:// URL"),
            (replica("not a url"), "follow.replicas[0].url: \"not a url\" is not a URL"),
            (replica("http://"), "follow.replicas[0].url: "),
            (replica("http://dr:8450/?x=1"), "follow.replicas[0].url: "),
            (
                "follow:\n  replicas:\n    - {name: dr, url: 'http://dr:8450', token_file: /t, ca_file: /ca.pem}\n"
                    .into(),
                "follow.replicas[0].ca_file is set but the url \"http://dr:8450\" is not https://",
            ),
            (
                "replica:\n  tls_cert_file: /c.pem\n".into(),
                "replica.tls_cert_file is set but replica.tls_key_file is not",
            ),
            ("replica:\n  tls_key_file: /k.pem\n".into(), "replica.tls_key_file is set but replica.tls_cert_file is not"),
        ];
        for (yaml, want) in refused {
            let e = Config::parse(&yaml).expect_err(&yaml);
            assert!(e.starts_with(want), "{yaml:?}: {e}");
        }
        let c = Config::parse(&format!(
            "{}  retry_min_ms: 10\n  retry_max_ms: 1000\n",
            replica("https://dr.centre.example:8450/")
        ))
        .unwrap();
        assert_eq!((c.follow.retry_min_ms, c.follow.retry_max_ms, c.follow.replicas.len()), (10, 1000, 1));
    }

    /// `serve`, `follow`, `verify` and `promote` all load through here: a replica name `follow`
    /// would refuse (a duplicate, a path) is refused at load for every command, naming the file
    /// and the key. `verify` used to take them (`../dc2` verified, two `dc2` told apart by nothing).
    #[test]
    fn replica_names_are_checked_at_load_for_every_command() {
        let two = |a: &str, b: &str| {
            format!(
                "follow:\n  replicas:\n    - {{name: '{a}', url: 'http://a:1', token_file: /t}}\n    \
                 - {{name: '{b}', url: 'http://b:1', token_file: /t}}\n"
            )
        };
        let refused = [
            (two("dc2", "dc2"), "follow.replicas[1].name: \"dc2\" must be unique"),
            (two("dc1", "../dc2"), "follow.replicas[1].name: \"../dc2\" must be unique, letters"),
            (two("", "dc2"), "follow.replicas[0].name: \"\" must be"),
            (two("dc 1", "dc2"), "follow.replicas[0].name: \"dc 1\" must be"),
        ];
        let dir = tempfile::tempdir().unwrap();
        for (yaml, want) in refused {
            let e = Config::parse(&yaml).expect_err(&yaml);
            assert!(e.starts_with(want), "{yaml:?}: {e}");
            let file = dir.path().join("backup.yaml");
            std::fs::write(&file, &yaml).unwrap();
            let e = Config::load(&file).expect_err("refused at load").to_string();
            assert!(e.contains(&file.display().to_string()) && e.contains(want), "{e}");
        }
        let c = Config::parse(&two("dc-1", "dc_2")).unwrap();
        assert_eq!(c.follow.replicas.len(), 2);
    }

    #[test]
    fn unknown_keys_are_refused_by_name() {
        let e = Config::parse("follow:\n  replicaz: []\n").unwrap_err();
        assert!(e.contains("replicaz"), "{e}");
    }

    #[test]
    fn a_key_given_twice_is_refused_with_both_lines() {
        let e = Config::parse("replica:\n  listen: 127.0.0.1:1\n  listen: 127.0.0.1:2\n").unwrap_err();
        assert!(e.contains("line 3: duplicate key `replica.listen` (first at line 2)"), "{e}");
    }
}
