//! The registry's configuration file (YAML). Every key is documented in [`DEFAULT_CONFIG`].

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{RegistryError, Result};

/// The default configuration (`kizuna registry serve --print-default-config`).
pub const DEFAULT_CONFIG: &str = r#"# kizuna registry configuration
# Directory of the registry's keys (generated on first use, mode 0600): signing.key (ed25519,
# signs every site's view), tls.key and tls.crt (the TLS key sites pin).
data_dir: /var/lib/kizuna/registry
# sqlite://FILE or postgres://user:pass@host/db; empty = sqlite://<data_dir>/registry.sqlite
database_url: ""
# Site API (TLS) on the underlay: enrollment, signed views, key registration.
listen: 0.0.0.0:9443
# URL sites use to reach `listen`, written into enrollment tokens (the centre's underlay address).
public_url: https://192.0.2.1:9443
# Lifetime of an enrollment token from `kizuna site provision`, in seconds (default one day;
# 60 to 2592000, i.e. 30 days).
token_ttl_secs: 86400
# Longest a site's long-poll is held before answering "nothing new", in seconds.
long_poll_max_secs: 60
# How often the server looks for changes made by `kizuna policy` / `kizuna site` commands (which
# write the database directly), in milliseconds.
change_poll_ms: 500
# Key rotation policy: a rotated key takes effect this many seconds after the site registers it.
# The views carry the switch time; until then every router keeps the old key, then all switch at
# once (outage: the routers' clock skew plus one WireGuard handshake; routers need NTP). It must
# cover the long-poll reaching every site and one reconcile pass there; a router that learns of a
# rotation later switches at once, and its traffic with the rotating site waits until it does.
rotation_switch_delay_secs: 15
# Audit events: a site enrolled, keys registered or rotated, a refused token or credential, and
# the `kizuna policy` / `kizuna site provision|revoke` changes. Keys: url (the audit service's
# intake, e.g. http://127.0.0.1:7460/v1/events; empty = events go to this service's log only),
# spool_dir (where events wait while the audit service is down; empty = <data_dir>/audit-spool),
# token_file (the intake bearer token), retry_secs.
audit:
  url: ""
  spool_dir: ""
  token_file: ""
  retry_secs: 5
"#;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistryConfig {
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    #[serde(default)]
    pub database_url: String,
    #[serde(default = "default_listen")]
    pub listen: String,
    #[serde(default = "default_public_url")]
    pub public_url: String,
    #[serde(default = "default_ttl")]
    pub token_ttl_secs: u64,
    #[serde(default = "default_long_poll")]
    pub long_poll_max_secs: u64,
    #[serde(default = "default_change_poll")]
    pub change_poll_ms: u64,
    #[serde(default = "default_switch_delay")]
    pub rotation_switch_delay_secs: u64,
    /// Where the registry's audit events go (see [`kizuna_audit::emitter::SenderConfig`]).
    #[serde(default)]
    pub audit: kizuna_audit::emitter::SenderConfig,
}

fn default_data_dir() -> PathBuf {
    "/var/lib/kizuna/registry".into()
}
fn default_listen() -> String {
    "0.0.0.0:9443".into()
}
fn default_public_url() -> String {
    "https://192.0.2.1:9443".into()
}
fn default_ttl() -> u64 {
    86400
}
fn default_long_poll() -> u64 {
    60
}
fn default_change_poll() -> u64 {
    500
}
fn default_switch_delay() -> u64 {
    15
}

impl Default for RegistryConfig {
    fn default() -> Self {
        serde_norway::from_str::<Self>(DEFAULT_CONFIG).expect("default config parses").resolved()
    }
}

impl RegistryConfig {
    /// Read a configuration file; errors name the file (and serde_norway's line and column).
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| RegistryError::io(path, e))?;
        let cfg = kizuna_config::yaml::from_str::<Self>(&text)
            .map(Self::resolved)
            .map_err(|reason| RegistryError::Config { path: path.to_path_buf(), reason })?;
        crate::sites::check_token_ttl(cfg.token_ttl_secs, "token_ttl_secs")
            .map_err(|reason| RegistryError::Config { path: path.to_path_buf(), reason })?;
        Ok(cfg)
    }

    /// Fills the defaults that depend on other keys: an empty `audit.spool_dir` is
    /// `<data_dir>/audit-spool` (the same whether the file is absent or omits the key).
    fn resolved(mut self) -> Self {
        if self.audit.spool_dir.as_os_str().is_empty() {
            self.audit.spool_dir = self.data_dir.join("audit-spool");
        }
        self
    }

    /// The database URL, defaulting to a SQLite file in `data_dir`.
    pub fn effective_database_url(&self) -> String {
        if self.database_url.is_empty() {
            format!("sqlite://{}", self.data_dir.join("registry.sqlite").display())
        } else {
            self.database_url.clone()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_config_has_documented_values_and_unknown_keys_are_refused() {
        let c = RegistryConfig::default();
        assert_eq!(c.listen, "0.0.0.0:9443");
        assert_eq!(c.token_ttl_secs, 86400);
        assert_eq!(c.rotation_switch_delay_secs, 15);
        let c: RegistryConfig = serde_norway::from_str("listen: 127.0.0.1:1\n").unwrap();
        assert_eq!(c.rotation_switch_delay_secs, 15, "a missing key takes its default");
        assert!(c.effective_database_url().ends_with("/var/lib/kizuna/registry/registry.sqlite"));
        let err = serde_norway::from_str::<RegistryConfig>("listn: 1\n").unwrap_err().to_string();
        assert!(err.contains("listn"), "{err}");
        assert!(c.audit.url.is_empty(), "audit events only logged until an intake is configured");
        let err = serde_norway::from_str::<RegistryConfig>("audit:\n  ulr: x\n").unwrap_err().to_string();
        assert!(err.contains("ulr"), "{err}");
    }

    /// The audit spool defaults to `<data_dir>/audit-spool` whether the config file is absent or
    /// omits the key (a file without it had an empty spool, and `registry serve` was refused).
    #[test]
    fn the_audit_spool_defaults_to_the_data_folder_with_or_without_a_file() {
        assert_eq!(
            RegistryConfig::default().audit.spool_dir,
            Path::new("/var/lib/kizuna/registry/audit-spool")
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("registry.yaml");
        std::fs::write(&path, "data_dir: /srv/reg\naudit:\n  url: http://127.0.0.1:7460/v1/events\n")
            .unwrap();
        assert_eq!(RegistryConfig::load(&path).unwrap().audit.spool_dir, Path::new("/srv/reg/audit-spool"));
        std::fs::write(&path, "audit:\n  spool_dir: /elsewhere\n").unwrap();
        assert_eq!(RegistryConfig::load(&path).unwrap().audit.spool_dir, Path::new("/elsewhere"));
    }

    #[test]
    fn a_token_lifetime_outside_one_minute_to_30_days_is_refused_naming_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("registry.yaml");
        for bad in ["0", "59", "2592001", "18446744073709551615"] {
            std::fs::write(&path, format!("token_ttl_secs: {bad}\n")).unwrap();
            let e = RegistryConfig::load(&path).unwrap_err().to_string();
            assert!(e.contains("registry.yaml") && e.contains("token_ttl_secs"), "{e}");
        }
        std::fs::write(&path, "token_ttl_secs: 2592000\n").unwrap();
        assert_eq!(RegistryConfig::load(&path).unwrap().token_ttl_secs, 2_592_000);
    }

    #[test]
    fn a_key_given_twice_is_refused_with_both_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("registry.yaml");
        std::fs::write(&path, "listen: 127.0.0.1:1\nlisten: 127.0.0.1:2\n").unwrap();
        let e = RegistryConfig::load(&path).unwrap_err().to_string();
        assert!(
            e.contains("registry.yaml") && e.contains("line 2: duplicate key `listen` (first at line 1)"),
            "{e}"
        );
    }
}
