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
# ed25519 checkpoint signing key (64 hex digits); create with `kizuna audit keygen --out FILE`.
# Like every secret file below it must be mode 0600 (not readable by group or others), or the
# service refuses to start.
signing_key_file: /etc/kizuna/audit-signing.key
# RFC 3161 time-stamp authority, an http:// or https:// URL (HTTP POST
# application/timestamp-query); null = no time stamps (verify then reports every checkpoint as
# unstamped).
tsa_url: null
# PEM certificate(s) trusted to sign time stamps: the TSA's certificate or its CA.
tsa_ca_file: null
# HTTP API: event intake (POST /v1/events), auditor search, FHIR AuditEvent search, web UI (/ui).
# Anything but a loopback address (127.0.0.1, [::1], localhost), e.g. 0.0.0.0:7460, needs both
# intake_token_file and auditor_token_file, or the service refuses to start.
http_listen: 127.0.0.1:7460
# Syslog over TLS (RFC 5425, IHE ITI-20), e.g. 0.0.0.0:6514; null = off.
syslog_tls_listen: null
syslog_tls_cert_file: null
# The TLS private key (PEM, mode 0600).
syslog_tls_key_file: null
# CA for client certificates (mutual TLS, as IHE ATNA requires); null = no client authentication,
# allowed on a loopback syslog_tls_listen only.
syslog_tls_client_ca_file: null
# Syslog over UDP (RFC 5426), e.g. 127.0.0.1:514; null = off. Loopback only: UDP carries no
# credentials (remote senders use syslog_tls_listen with client certificates).
syslog_udp_listen: null
# Write a signed, time-stamped checkpoint after this many new events ...
checkpoint_every_events: 10000
# ... or after this many seconds if anything new arrived.
checkpoint_interval_secs: 60
# File (mode 0600) holding the bearer token services must present to POST events/pseudonyms;
# null = no check (only for a listener bound to loopback).
intake_token_file: null
# File (mode 0600) holding the bearer token of the auditor role (UI, search, FHIR, CSV); the
# events recording searches made with it name the user `auditor`. null = no check (only for a
# listener bound to loopback) unless auditor_tokens_file is set.
auditor_token_file: null
# File (mode 0600) with one line per auditor, `name token` (name: [A-Za-z0-9._@-], up to 64;
# `#` comments): the events recording each search name the auditor whose token was used. May be
# set together with auditor_token_file (tokens must differ); null = none.
auditor_tokens_file: null
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
    /// Per-auditor tokens, lines `name token` ([`crate::auditors`]).
    #[serde(default)]
    pub auditor_tokens_file: Option<PathBuf>,
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
        kizuna_config::yaml::check_duplicates(text)
            .map_err(|reason| AuditError::Config { path: path.into(), reason })?;
        let cfg: AuditConfig = serde_norway::from_str(text).map_err(|e| AuditError::Config {
            path: path.into(),
            reason: match e.location() {
                Some(l) => format!("line {} column {}: {e}", l.line(), l.column()),
                None => e.to_string(),
            },
        })?;
        cfg.validate(path)?;
        Ok(cfg)
    }

    /// The checks [`parse`](Self::parse) makes on the values, also made by
    /// [`crate::server::start`] for configurations built in code. `path` names the file in errors.
    pub fn validate(&self, path: &Path) -> Result<()> {
        let bad = |reason: String| AuditError::Config { path: path.into(), reason };
        if self.syslog_tls_listen.is_some()
            && (self.syslog_tls_cert_file.is_none() || self.syslog_tls_key_file.is_none())
        {
            return Err(bad("syslog_tls_listen needs syslog_tls_cert_file and syslog_tls_key_file".into()));
        }
        if self.checkpoint_every_events == 0 || self.checkpoint_interval_secs == 0 {
            return Err(bad("checkpoint_every_events and checkpoint_interval_secs must be > 0".into()));
        }
        if let Some(u) = &self.tsa_url {
            check_http_url("tsa_url", u).map_err(bad)?;
        }
        // Syslog carries no bearer token: beyond loopback only mutual TLS says who sends.
        if let Some(l) = self.syslog_udp_listen.as_deref().filter(|l| !is_loopback_listen(l)) {
            return Err(bad(format!(
                "syslog_udp_listen {l:?} is not a loopback address: UDP syslog carries no credentials, so \
                 anyone who reaches it could write forged (even backdated break-glass) events into the \
                 trail; receive remote senders with syslog_tls_listen and syslog_tls_client_ca_file \
                 (mutual TLS), or listen on 127.0.0.1"
            )));
        }
        if let Some(l) = self.syslog_tls_listen.as_deref().filter(|l| !is_loopback_listen(l))
            && self.syslog_tls_client_ca_file.is_none()
        {
            return Err(bad(format!(
                "syslog_tls_listen {l:?} is not a loopback address and syslog_tls_client_ca_file is not \
                 set: without client certificates anyone who reaches it could write forged events into \
                 the trail; set syslog_tls_client_ca_file (mutual TLS, as IHE ATNA requires) or listen \
                 on 127.0.0.1"
            )));
        }
        if !is_loopback_listen(&self.http_listen) {
            // Without a token a role is open to whoever reaches the listener: fine on loopback only.
            let open: Vec<(&str, &str)> = [
                (self.intake_token_file.is_none(), "intake_token_file", "add events and pseudonyms"),
                (
                    self.auditor_token_file.is_none() && self.auditor_tokens_file.is_none(),
                    "auditor_token_file (or auditor_tokens_file)",
                    "read the audit trail (search, CSV, FHIR, /ui)",
                ),
            ]
            .into_iter()
            .filter_map(|(missing, key, what)| missing.then_some((key, what)))
            .collect();
            if !open.is_empty() {
                let keys: Vec<&str> = open.iter().map(|(k, _)| *k).collect();
                let whats: Vec<&str> = open.iter().map(|(_, w)| *w).collect();
                return Err(bad(format!(
                    "http_listen {:?} is not a loopback address and {} {} not set: anyone who reaches it \
                     could {}; set {} (a mode 0600 file holding the bearer token) or listen on 127.0.0.1",
                    self.http_listen,
                    keys.join(" and "),
                    if keys.len() == 1 { "is" } else { "are" },
                    whats.join(" and "),
                    keys.join(" and "),
                )));
            }
        }
        Ok(())
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

/// Whether `listen` (`IP:port` or `host:port`) is a loopback address only: `127.0.0.0/8`, `[::1]`
/// (also IPv4-mapped) or the name `localhost`. Any other name counts as not loopback.
pub fn is_loopback_listen(listen: &str) -> bool {
    if let Ok(a) = listen.parse::<std::net::SocketAddr>() {
        return a.ip().to_canonical().is_loopback();
    }
    let host = listen.rsplit_once(':').map_or(listen, |(h, _)| h);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    match host.parse::<std::net::IpAddr>() {
        Ok(ip) => ip.to_canonical().is_loopback(),
        Err(_) => host.eq_ignore_ascii_case("localhost"),
    }
}

/// Checks that `value` (the value of config key `key`) is an `http://` or `https://` URL with a
/// host; the error names the key (`kizuna_config::check::http_url`).
pub fn check_http_url(key: &str, value: &str) -> std::result::Result<(), String> {
    kizuna_config::check::http_url(key, value).map(drop)
}

/// Read a file holding a secret (signing key, token, TLS key; `what` says which), refusing one
/// that group or others may read: the error names the file, its mode and the `chmod` to run
/// (`kizuna_config::secret::read_private`). Contents are never logged.
pub fn read_private(what: &'static str, path: &Path) -> Result<String> {
    use kizuna_config::secret::{SecretFileError, read_private};
    read_private(path).map_err(|e| match e {
        SecretFileError::Io(e) => AuditError::io(path, e),
        exposed => AuditError::Secret { what, path: path.into(), problem: exposed.to_string() },
    })
}

/// Read a one-line secret (token) file, mode 0600 (see [`read_private`]). Never logged.
pub fn read_token(path: &Path) -> Result<String> {
    let t = read_private("token file", path)?.trim().to_string();
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
    fn parse_with(extra: &str) -> Result<AuditConfig> {
        AuditConfig::parse(&format!("data_dir: /x\nsigning_key_file: /k\n{extra}"), Path::new("audit.yaml"))
    }

    #[test]
    fn a_listener_beyond_loopback_without_the_intake_and_auditor_tokens_is_refused() {
        // The reviewer's configuration: the whole audit trail served to the network, no token.
        let e = parse_with("http_listen: 0.0.0.0:17461\n").unwrap_err().to_string();
        for part in ["audit.yaml", "http_listen", "0.0.0.0:17461", "auditor_token_file", "intake_token_file"]
        {
            assert!(e.contains(part), "{part} missing in: {e}");
        }
        // One token is not enough; the error names the missing one only.
        let e = parse_with("http_listen: 0.0.0.0:17461\nauditor_token_file: /a\n").unwrap_err().to_string();
        assert!(e.contains("intake_token_file") && !e.contains("auditor_token_file"), "{e}");
        let e = parse_with("http_listen: 10.10.1.1:7460\nintake_token_file: /i\n").unwrap_err().to_string();
        assert!(e.contains("auditor_token_file") && !e.contains("intake_token_file"), "{e}");
        let tokens = "intake_token_file: /i\nauditor_token_file: /a\n";
        for addr in ["0.0.0.0:7460", "10.10.1.1:7460", "[::]:7460", "audit.centre.example:7460"] {
            let e = parse_with(&format!("http_listen: {addr:?}\n")).unwrap_err().to_string();
            assert!(e.contains("auditor_token_file"), "{addr} without tokens: {e}");
            parse_with(&format!("http_listen: {addr:?}\n{tokens}")).unwrap();
        }
        for addr in
            ["127.0.0.1:7460", "127.0.0.2:0", "[::1]:7460", "localhost:7460", "[::ffff:127.0.0.1]:7460"]
        {
            parse_with(&format!("http_listen: {addr:?}\n")).unwrap();
        }
    }

    #[test]
    fn syslog_beyond_loopback_needs_mutual_tls_and_udp_stays_on_loopback() {
        // The reviewer's forged break-glass event came in over UDP on 0.0.0.0.
        let e = parse_with("syslog_udp_listen: 0.0.0.0:17514\n").unwrap_err().to_string();
        assert!(e.contains("syslog_udp_listen") && e.contains("no credentials"), "{e}");
        parse_with("syslog_udp_listen: 127.0.0.1:514\n").unwrap();
        let tls = "syslog_tls_cert_file: /c\nsyslog_tls_key_file: /k\n";
        let e = parse_with(&format!("syslog_tls_listen: 0.0.0.0:6514\n{tls}")).unwrap_err().to_string();
        assert!(e.contains("syslog_tls_client_ca_file"), "{e}");
        parse_with(&format!("syslog_tls_listen: 0.0.0.0:6514\n{tls}syslog_tls_client_ca_file: /ca\n"))
            .unwrap();
        parse_with(&format!("syslog_tls_listen: 127.0.0.1:6514\n{tls}")).unwrap();
    }

    #[test]
    fn tsa_url_must_be_an_http_or_https_url_with_a_host() {
        for bad in ["ftp://x", "nope", "\"\"", "http://", "file:///tmp/tsa"] {
            let e = parse_with(&format!("tsa_url: {bad}\n")).unwrap_err().to_string();
            assert!(e.contains("audit.yaml") && e.contains("tsa_url") && e.contains("http://"), "{bad}: {e}");
        }
        for good in ["http://127.0.0.1:3161/", "https://tsa.example.jp/tsa"] {
            assert_eq!(parse_with(&format!("tsa_url: {good}\n")).unwrap().tsa_url.as_deref(), Some(good));
        }
    }

    #[test]
    fn a_token_file_readable_by_group_or_others_is_refused_with_the_chmod_to_run() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("auditor.token");
        std::fs::write(&p, "t0ken\n").unwrap();
        for mode in [0o644, 0o640, 0o604] {
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
            let e = read_token(&p).unwrap_err().to_string();
            let want = format!(
                "mode is {mode:04o}; it must not be readable by group or others (chmod 600 {})",
                p.display()
            );
            assert!(e.contains(&p.display().to_string()) && e.contains(&want), "{e}");
        }
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(read_token(&p).unwrap(), "t0ken");
    }

    #[test]
    fn a_key_given_twice_is_refused_with_both_lines() {
        let text = "data_dir: /a\ndata_dir: /b\n";
        let e = AuditConfig::parse(text, Path::new("audit.yaml")).unwrap_err().to_string();
        assert!(
            e.contains("audit.yaml") && e.contains("line 2: duplicate key `data_dir` (first at line 1)"),
            "{e}"
        );
    }
}
