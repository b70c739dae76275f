//! The audit service's configuration file (YAML). Every key is documented in [`DEFAULT_CONFIG`].

use crate::error::{AuditError, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The default configuration, with every key explained (`kizuna audit print-default-config`).
pub const DEFAULT_CONFIG: &str = r#"# kizuna audit service configuration
# Directory for the disk mirror of Merkle leaves (leaves.bin) and checkpoint copies (checkpoints/).
data_dir: /var/lib/kizuna/audit
# sqlite://FILE or postgres://user:pass@host/db; empty = sqlite://<data_dir>/audit.sqlite
database_url: ""
# ed25519 checkpoint signing key (64 hex digits, mode 0600); create with `kizuna audit keygen`.
signing_key_file: /etc/kizuna/audit-signing.key
# RFC 3161 time-stamp authority (HTTP POST application/timestamp-query); null = no time stamps
# (verify then reports every checkpoint as unstamped).
tsa_url: null
# PEM certificate(s) trusted to sign time stamps: the TSA's certificate or its CA.
tsa_ca_file: null
# HTTP API: event intake (POST /v1/events), auditor search, FHIR AuditEvent search, web UI (/ui).
http_listen: 127.0.0.1:7460
# Syslog over TLS (RFC 5425, IHE ITI-20), e.g. 0.0.0.0:6514; null = off.
syslog_tls_listen: null
syslog_tls_cert_file: null
syslog_tls_key_file: null
# CA for client certificates (mutual TLS, as IHE ATNA requires); null = no client authentication.
syslog_tls_client_ca_file: null
# Syslog over UDP (RFC 5426), e.g. 0.0.0.0:514; null = off.
syslog_udp_listen: null
# Write a signed, time-stamped checkpoint after this many new events ...
checkpoint_every_events: 10000
# ... or after this many seconds if anything new arrived.
checkpoint_interval_secs: 60
# File holding the bearer token services must present to POST events/pseudonyms; null = no check.
intake_token_file: null
# File holding the bearer token of the auditor role (UI, search, FHIR, CSV); null = no check
# (only for a listener bound to loopback).
auditor_token_file: null
"#;

/// Parsed configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditConfig {
    pub data_dir: PathBuf,
    #[serde(default)]
    pub database_url: String,
    pub signing_key_file: PathBuf,
    #[serde(default)]
    pub tsa_url: Option<String>,
    #[serde(default)]
    pub tsa_ca_file: Option<PathBuf>,
    #[serde(default = "default_http")]
    pub http_listen: String,
    #[serde(default)]
    pub syslog_tls_listen: Option<String>,
    #[serde(default)]
    pub syslog_tls_cert_file: Option<PathBuf>,
    #[serde(default)]
    pub syslog_tls_key_file: Option<PathBuf>,
    #[serde(default)]
    pub syslog_tls_client_ca_file: Option<PathBuf>,
    #[serde(default)]
    pub syslog_udp_listen: Option<String>,
    #[serde(default = "default_every")]
    pub checkpoint_every_events: u64,
    #[serde(default = "default_interval")]
    pub checkpoint_interval_secs: u64,
    #[serde(default)]
    pub intake_token_file: Option<PathBuf>,
    #[serde(default)]
    pub auditor_token_file: Option<PathBuf>,
}

fn default_http() -> String {
    "127.0.0.1:7460".into()
}
fn default_every() -> u64 {
    10000
}
fn default_interval() -> u64 {
    60
}

impl AuditConfig {
    /// Load and check a config file; errors name the file and the line.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| AuditError::io(path, e))?;
        Self::parse(&text, path)
    }
    pub fn parse(text: &str, path: &Path) -> Result<Self> {
        let cfg: AuditConfig = serde_norway::from_str(text).map_err(|e| AuditError::Config {
            path: path.into(),
            reason: match e.location() {
                Some(l) => format!("line {} column {}: {e}", l.line(), l.column()),
                None => e.to_string(),
            },
        })?;
        if cfg.syslog_tls_listen.is_some()
            && (cfg.syslog_tls_cert_file.is_none() || cfg.syslog_tls_key_file.is_none())
        {
            return Err(AuditError::Config {
                path: path.into(),
                reason: "syslog_tls_listen needs syslog_tls_cert_file and syslog_tls_key_file".into(),
            });
        }
        if cfg.checkpoint_every_events == 0 || cfg.checkpoint_interval_secs == 0 {
            return Err(AuditError::Config {
                path: path.into(),
                reason: "checkpoint_every_events and checkpoint_interval_secs must be > 0".into(),
            });
        }
        Ok(cfg)
    }
    /// The database URL, defaulting to a SQLite file in `data_dir`.
    pub fn database_url(&self) -> String {
        if self.database_url.trim().is_empty() {
            format!("sqlite://{}", self.data_dir.join("audit.sqlite").display())
        } else {
            self.database_url.clone()
        }
    }
}

/// Read a one-line secret (token) file. Never logged.
pub fn read_token(path: &Path) -> Result<String> {
    let t = std::fs::read_to_string(path).map_err(|e| AuditError::io(path, e))?.trim().to_string();
    if t.is_empty() {
        return Err(AuditError::Config { path: path.into(), reason: "token file is empty".into() });
    }
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_config_parses() {
        let c = AuditConfig::parse(DEFAULT_CONFIG, Path::new("default")).unwrap();
        assert_eq!(c.database_url(), "sqlite:///var/lib/kizuna/audit/audit.sqlite");
        assert_eq!(c.checkpoint_every_events, 10000);
    }

    #[test]
    fn unknown_key_is_rejected_with_its_line() {
        let err = AuditConfig::parse(
            "data_dir: /x\nsigning_key_file: /k\ntsa_urll: http://x\n",
            Path::new("audit.yaml"),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("audit.yaml") && err.contains("line 3") && err.contains("tsa_urll"), "{err}");
    }
}
