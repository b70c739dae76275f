//! The agent's configuration file (YAML). Every key is documented in the crate's README.md.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::AgentError;

/// The agent's settings, read from one YAML file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The folder the EHR writes SS-MIX2 files into (watched recursively).
    pub export_dir: PathBuf,
    /// The agent's own folder: `outbox/`, `quarantine/`, `log/` and `cursor/` live below it.
    pub state_dir: PathBuf,
    /// The store's base URL, e.g. `https://10.20.0.1:8443`.
    pub store_url: String,
    /// This site's facility code; uploads go to `/api/v1/facilities/{facility}/batches`.
    pub facility: String,
    /// File holding the site's bearer token; must not be readable by group or others (0600).
    pub token_file: PathBuf,
    /// Extra PEM root certificate for the store (a private centre CA), if any.
    #[serde(default)]
    pub store_ca_file: Option<PathBuf>,
    /// Folder holding the NHO validator's tables (`include/`); absent means `$KIZUNA_NHO_TABLES`, else
    /// `../shared/external/nhoHQ-SSMIX2DataTestingTool/include` found beside the working directory or
    /// the executable.
    #[serde(default)]
    pub nho_tables_dir: Option<PathBuf>,
    /// Most files in one upload batch.
    #[serde(default = "defaults::batch_max_files")]
    pub batch_max_files: usize,
    /// Most content bytes in one upload batch (a single larger file still goes alone).
    #[serde(default = "defaults::batch_max_bytes")]
    pub batch_max_bytes: u64,
    /// Upload bandwidth limit in bytes per second; absent means unlimited.
    #[serde(default)]
    pub bandwidth_limit_bytes_per_sec: Option<u64>,
    /// Network device to bind upload sockets to (Linux `SO_BINDTODEVICE`), e.g. the upload VRF.
    #[serde(default)]
    pub bind_interface: Option<String>,
    /// Seconds between full rescans of the export folder (catches missed watcher events).
    #[serde(default = "defaults::rescan_interval_secs")]
    pub rescan_interval_secs: u64,
    /// Each rescan removes the folders below `export_dir` that are empty and have not changed for
    /// this many seconds (the EHR's patient, date and type folders the agent emptied); 0 keeps them.
    #[serde(default = "defaults::prune_empty_folders_after_secs")]
    pub prune_empty_folders_after_secs: u64,
    /// A file without a close-after-write event counts as complete once its size and mtime have not
    /// changed for this many milliseconds.
    #[serde(default = "defaults::settle_ms")]
    pub settle_ms: u64,
    /// Seconds between heartbeats to the store.
    #[serde(default = "defaults::heartbeat_interval_secs")]
    pub heartbeat_interval_secs: u64,
    /// First retry delay after a failed upload, in milliseconds (doubles per failure, with jitter).
    #[serde(default = "defaults::retry_base_ms")]
    pub retry_base_ms: u64,
    /// Longest retry delay, in milliseconds.
    #[serde(default = "defaults::retry_max_ms")]
    pub retry_max_ms: u64,
    /// Seconds one HTTP request may take before it counts as failed.
    #[serde(default = "defaults::request_timeout_secs")]
    pub request_timeout_secs: u64,
    /// Use the filesystem watcher (`notify`); when false the agent relies on rescans alone.
    #[serde(default = "defaults::watch")]
    pub watch: bool,
    /// A pharmacy's NSIPS export folder, converted to SS-MIX2 prescriptions and uploaded; absent
    /// means no NSIPS intake.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nsips: Option<NsipsConfig>,
}

/// The NSIPS intake (`nsips:`): every settled file in `dir` is converted with `kizuna-nsips` for
/// this site's `facility` (the pharmacy's 10-digit institution code) and its SS-MIX2 files go
/// through the outbox like any export.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NsipsConfig {
    /// The folder the dispensing system writes NSIPS files into (flat; not recursive).
    pub dir: PathBuf,
}

mod defaults {
    pub fn batch_max_files() -> usize {
        200
    }
    pub fn batch_max_bytes() -> u64 {
        8 << 20
    }
    pub fn rescan_interval_secs() -> u64 {
        60
    }
    pub fn prune_empty_folders_after_secs() -> u64 {
        86_400
    }
    pub fn settle_ms() -> u64 {
        2000
    }
    pub fn heartbeat_interval_secs() -> u64 {
        60
    }
    pub fn retry_base_ms() -> u64 {
        500
    }
    pub fn retry_max_ms() -> u64 {
        60_000
    }
    pub fn request_timeout_secs() -> u64 {
        120
    }
    pub fn watch() -> bool {
        true
    }
}

/// The commented default configuration printed by `kizuna-agent --print-default-config`.
pub const DEFAULT_CONFIG: &str = r#"# kizuna-agent configuration (every key is described in services/agent/README.md)
export_dir: /srv/ssmix2/export        # where the EHR writes SS-MIX2 files (watched recursively)
state_dir: /var/lib/kizuna-agent      # outbox/, quarantine/, log/, cursor/
store_url: https://10.20.0.1:8443     # the store at the centre, reached over the upload mesh
facility: "1310000001"                # this site's facility code
token_file: /etc/kizuna/agent.token   # bearer token, mode 0600
# store_ca_file: /etc/kizuna/centre-ca.pem
# nho_tables_dir: /usr/share/kizuna/nho-tables
batch_max_files: 200
batch_max_bytes: 8388608
# bandwidth_limit_bytes_per_sec: 1000000
# bind_interface: vrf-upload
rescan_interval_secs: 60
prune_empty_folders_after_secs: 86400  # emptied folders idle this long go; 0 keeps them
settle_ms: 2000
heartbeat_interval_secs: 60
retry_base_ms: 500
retry_max_ms: 60000
request_timeout_secs: 120
watch: true
# A pharmacy: convert the dispensing system's NSIPS exports to SS-MIX2 and upload them too
# (facility must then be the pharmacy's 10-digit institution code).
# nsips:
#   dir: /srv/kizuna/nsips
"#;

impl Config {
    /// Reads and checks a config file; errors name the file and the offending key.
    pub fn load(path: &Path) -> Result<Self, AgentError> {
        let text = std::fs::read_to_string(path).map_err(|e| AgentError::io(path, e))?;
        Self::parse(&text, path)
    }

    /// Parses config text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &Path) -> Result<Self, AgentError> {
        let cfg: Config = serde_norway::from_str(text)
            .map_err(|e| AgentError::Config { file: origin.to_owned(), message: e.to_string() })?;
        cfg.check().map_err(|message| AgentError::Config { file: origin.to_owned(), message })?;
        Ok(cfg)
    }

    fn check(&self) -> Result<(), String> {
        if !(self.store_url.starts_with("http://") || self.store_url.starts_with("https://")) {
            return Err(format!("store_url {:?} must start with http:// or https://", self.store_url));
        }
        if self.facility.is_empty()
            || !self.facility.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(format!(
                "facility {:?} must be non-empty letters, digits, '-' or '_'",
                self.facility
            ));
        }
        let positive = [
            ("batch_max_files", self.batch_max_files as u64),
            ("batch_max_bytes", self.batch_max_bytes),
            ("rescan_interval_secs", self.rescan_interval_secs),
            ("heartbeat_interval_secs", self.heartbeat_interval_secs),
            ("retry_base_ms", self.retry_base_ms),
            ("request_timeout_secs", self.request_timeout_secs),
        ];
        for (key, v) in positive {
            if v == 0 {
                return Err(format!("{key} must be greater than 0"));
            }
        }
        if self.bandwidth_limit_bytes_per_sec == Some(0) {
            return Err("bandwidth_limit_bytes_per_sec must be greater than 0 (omit it for no limit)".into());
        }
        if self.retry_max_ms < self.retry_base_ms {
            return Err("retry_max_ms must not be smaller than retry_base_ms".into());
        }
        if self.bind_interface.as_deref() == Some("") {
            return Err("bind_interface is empty (omit it to use the default route)".into());
        }
        if self.state_dir.starts_with(&self.export_dir) {
            return Err("state_dir must not lie inside export_dir".into());
        }
        if let Some(n) = &self.nsips {
            if self.facility.len() != 10 || !self.facility.bytes().all(|b| b.is_ascii_digit()) {
                return Err(format!(
                    "nsips needs facility to be the pharmacy's 10-digit institution code, not {:?}",
                    self.facility
                ));
            }
            for (name, other) in [("export_dir", &self.export_dir), ("state_dir", &self.state_dir)] {
                if n.dir.starts_with(other) || other.starts_with(&n.dir) {
                    return Err(format!("nsips.dir and {name} must not lie inside one another"));
                }
            }
        }
        Ok(())
    }

    pub(crate) fn settle(&self) -> Duration {
        Duration::from_millis(self.settle_ms)
    }

    pub(crate) fn rescan_interval(&self) -> Duration {
        Duration::from_secs(self.rescan_interval_secs)
    }

    /// How long an emptied folder stays before a rescan removes it; `None`: it stays.
    pub(crate) fn prune_after(&self) -> Option<Duration> {
        (self.prune_empty_folders_after_secs > 0)
            .then(|| Duration::from_secs(self.prune_empty_folders_after_secs))
    }

    pub fn outbox_dir(&self) -> PathBuf {
        self.state_dir.join("outbox")
    }

    pub fn quarantine_dir(&self) -> PathBuf {
        self.state_dir.join("quarantine")
    }

    pub fn log_dir(&self) -> PathBuf {
        self.state_dir.join("log")
    }

    pub fn cursor_dir(&self) -> PathBuf {
        self.state_dir.join("cursor")
    }

    /// The NSIPS intake's own folder: `converted.json` (what was converted) and `staging/`.
    pub fn nsips_state_dir(&self) -> PathBuf {
        self.state_dir.join("nsips")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_config_parses_and_documents_every_key() {
        let cfg = Config::parse(DEFAULT_CONFIG, Path::new("default")).unwrap();
        assert_eq!(cfg.batch_max_files, 200);
        let readme = include_str!("../README.md");
        let yaml: serde_norway::Value = serde_norway::to_value(&cfg).unwrap();
        for key in yaml.as_mapping().unwrap().keys() {
            let key = key.as_str().unwrap();
            assert!(readme.contains(&format!("`{key}`")), "README.md does not document {key}");
            assert!(DEFAULT_CONFIG.contains(key), "default config does not mention {key}");
        }
    }

    #[test]
    fn bad_keys_are_named() {
        let text = DEFAULT_CONFIG.replace("batch_max_files: 200", "batch_max_files: 0");
        let err = Config::parse(&text, Path::new("agent.yaml")).unwrap_err().to_string();
        assert!(err.contains("agent.yaml") && err.contains("batch_max_files"), "{err}");
        let err = Config::parse("export_dir: /x\nbogus: 1\n", Path::new("a.yaml")).unwrap_err().to_string();
        assert!(err.contains("bogus") || err.contains("missing"), "{err}");
    }

    #[test]
    fn nsips_key_is_checked() {
        let on = DEFAULT_CONFIG.replace("# nsips:\n#   dir:", "nsips:\n  dir:");
        let cfg = Config::parse(&on, Path::new("agent.yaml")).unwrap();
        assert_eq!(cfg.nsips.unwrap().dir, Path::new("/srv/kizuna/nsips"));
        let text = on.replace("facility: \"1310000001\"", "facility: \"pharmacy-1\"");
        let err = Config::parse(&text, Path::new("agent.yaml")).unwrap_err().to_string();
        assert!(err.contains("nsips") && err.contains("10-digit"), "{err}");
        let text = on.replace("dir: /srv/kizuna/nsips", "dir: /srv/ssmix2/export/nsips");
        let err = Config::parse(&text, Path::new("agent.yaml")).unwrap_err().to_string();
        assert!(err.contains("nsips.dir and export_dir"), "{err}");
        let text = on.replace("dir: /srv/kizuna/nsips", "dir: /srv/kizuna/nsips\n  bogus: 1");
        assert!(Config::parse(&text, Path::new("agent.yaml")).unwrap_err().to_string().contains("bogus"));
    }
}
