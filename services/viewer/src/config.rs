//! The viewer's YAML configuration (`kizuna viewer serve --config FILE`). Every key is optional;
//! unknown keys are refused by name.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::ViewerError;

/// The whole configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address the web UI listens on (on the reference segment).
    pub listen: SocketAddr,
    /// Network device (VRF) the listener and the connections to the OIDC provider are bound to,
    /// e.g. `kzv-reference` on the centre's router; empty = none.
    pub bind_interface: String,
    /// The URL browsers reach the viewer at; the OIDC redirect URI is `<public_url>/auth/callback`.
    pub public_url: String,
    /// The store's data folder (as `kizuna serve`): `tree/` holds the original messages.
    pub store_data_dir: PathBuf,
    /// The store's IndexDB; empty = `sqlite://<store_data_dir>/index.sqlite`.
    pub store_database_url: String,
    /// The linkage database of `kizuna-index` (common health IDs, consent, break-glass grants).
    pub index_database_url: String,
    /// How long a break-glass grant lasts.
    pub break_glass_minutes: u32,
    /// How long a login session lasts without a new login.
    pub session_minutes: u64,
    /// A login session ends after this many minutes without a request.
    pub session_idle_minutes: u64,
    /// How often (seconds) a session's user is re-checked at the provider's userinfo endpoint: a
    /// user disabled there, logged out of it or given another role or facility is thrown out.
    pub session_check_secs: u64,
    /// Mark cookies `Secure` (browsers then send them only over HTTPS, or to localhost).
    pub secure_cookies: bool,
    /// Display names of facilities, by facility code (codes without a name are shown as is).
    pub facility_names: BTreeMap<String, String>,
    /// The OpenID Connect provider (`kizuna-auth`).
    pub oidc: OidcConfig,
    /// Where audit events go.
    pub audit: AuditConfig,
}

/// The viewer as a relying party of the centre's OpenID Connect provider.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OidcConfig {
    /// The issuer URL (discovery at `<issuer>/.well-known/openid-configuration`); empty = login off,
    /// and every page answers 503.
    pub issuer: String,
    /// The viewer's client ID at the provider.
    pub client_id: String,
    /// File (mode 0600) holding the client secret; empty = a public client (PKCE only).
    pub client_secret_file: PathBuf,
}

/// Audit events: spooled to the audit service, or only logged when `url` is empty.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditConfig {
    /// The audit service's intake, e.g. `http://127.0.0.1:7460/v1/events`; empty = log only.
    pub url: String,
    /// Spool folder for events not yet delivered; empty = `<store_data_dir>/viewer-audit-spool`.
    pub spool_dir: PathBuf,
    /// File holding the intake bearer token; empty = none.
    pub token_file: PathBuf,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8460".parse().expect("valid address"),
            bind_interface: String::new(),
            public_url: "http://127.0.0.1:8460".into(),
            store_data_dir: PathBuf::from("./kizuna-data"),
            store_database_url: String::new(),
            index_database_url: "sqlite://./kizuna-data/linkage.sqlite?mode=rwc".into(),
            break_glass_minutes: 60,
            session_minutes: 480,
            session_idle_minutes: 30,
            session_check_secs: 60,
            secure_cookies: true,
            facility_names: BTreeMap::new(),
            oidc: OidcConfig::default(),
            audit: AuditConfig::default(),
        }
    }
}

impl Default for OidcConfig {
    fn default() -> Self {
        Self { issuer: String::new(), client_id: "kizuna-viewer".into(), client_secret_file: PathBuf::new() }
    }
}

impl Default for AuditConfig {
    fn default() -> Self {
        Self { url: String::new(), spool_dir: PathBuf::new(), token_file: PathBuf::new() }
    }
}

impl Config {
    /// Parses YAML text; errors name the file, line and key.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ViewerError> {
        let c: Self = serde_norway::from_str(text)
            .map_err(|e| ViewerError::Config { path: path.to_owned(), message: e.to_string() })?;
        c.check(path)?;
        Ok(c)
    }

    /// Reads and parses a config file.
    pub fn load(path: &Path) -> Result<Self, ViewerError> {
        let text = std::fs::read_to_string(path).map_err(|e| ViewerError::io(path, e))?;
        Self::parse(&text, path)
    }

    fn check(&self, path: &Path) -> Result<(), ViewerError> {
        let bad = |message: String| ViewerError::Config { path: path.to_owned(), message };
        if !(self.public_url.starts_with("http://") || self.public_url.starts_with("https://")) {
            return Err(bad(format!("public_url {:?} must start with http:// or https://", self.public_url)));
        }
        if self.break_glass_minutes == 0 {
            return Err(bad("break_glass_minutes must be at least 1".into()));
        }
        if self.session_minutes == 0 {
            return Err(bad("session_minutes must be at least 1".into()));
        }
        if self.session_idle_minutes == 0 {
            return Err(bad("session_idle_minutes must be at least 1".into()));
        }
        if self.session_check_secs == 0 {
            return Err(bad("session_check_secs must be at least 1".into()));
        }
        Ok(())
    }

    /// The store's IndexDB URL.
    pub fn effective_store_database_url(&self) -> String {
        if self.store_database_url.is_empty() {
            format!("sqlite://{}?mode=rwc", self.store_data_dir.join("index.sqlite").display())
        } else {
            self.store_database_url.clone()
        }
    }

    /// The store's SS-MIX2 tree.
    pub fn tree_dir(&self) -> PathBuf {
        self.store_data_dir.join("tree")
    }

    /// The OIDC redirect URI.
    pub fn redirect_uri(&self) -> String {
        format!("{}/auth/callback", self.public_url.trim_end_matches('/'))
    }

    /// The audit spool folder.
    pub fn audit_spool_dir(&self) -> PathBuf {
        if self.audit.spool_dir.as_os_str().is_empty() {
            self.store_data_dir.join("viewer-audit-spool")
        } else {
            self.audit.spool_dir.clone()
        }
    }

    /// The YAML of the defaults, for `--print-default-config`.
    pub fn default_yaml() -> String {
        serde_norway::to_string(&Self::default()).expect("the default config serializes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_round_trip_and_unknown_keys_are_named() {
        let p = Path::new("viewer.yaml");
        assert_eq!(Config::parse(&Config::default_yaml(), p).unwrap(), Config::default());
        let e = Config::parse("listen: 127.0.0.1:1\nbreak_glas_minutes: 5\n", p).unwrap_err().to_string();
        assert!(e.contains("viewer.yaml") && e.contains("break_glas_minutes"), "{e}");
        let e = Config::parse("break_glass_minutes: 0\n", p).unwrap_err().to_string();
        assert!(e.contains("break_glass_minutes"), "{e}");
        let e = Config::parse("session_check_secs: 0\n", p).unwrap_err().to_string();
        assert!(e.contains("session_check_secs"), "{e}");
    }
}
