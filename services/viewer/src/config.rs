//! The viewer's YAML configuration (`kizuna viewer serve --config FILE`). Every key is optional;
//! unknown keys are refused by name.

use kizuna_config::check::{http_url, in_range};
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
    /// Empty = `http://<listen>` (see [`Config::base_url`]).
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
    /// A login session ends after this many minutes without a request; also the `max_age` of every
    /// login (the provider must have checked the password at most this long ago).
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
            public_url: String::new(),
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
    /// Parses YAML text (an empty document gives the defaults); errors name the file, line and
    /// key.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ViewerError> {
        let c: Self = if text.trim().is_empty() {
            Self::default()
        } else {
            kizuna_config::yaml::from_str(text)
                .map_err(|message| ViewerError::Config { path: path.to_owned(), message })?
        };
        c.check(path)?;
        Ok(c)
    }

    /// Reads and parses a config file.
    pub fn load(path: &Path) -> Result<Self, ViewerError> {
        let text = std::fs::read_to_string(path).map_err(|e| ViewerError::io(path, e))?;
        Self::parse(&text, path)
    }

    /// Refuses what cannot work, naming the key.
    pub fn check(&self, path: &Path) -> Result<(), ViewerError> {
        self.problem().map_err(|message| ViewerError::Config { path: path.to_owned(), message })
    }

    fn problem(&self) -> Result<(), String> {
        if !self.public_url.is_empty() {
            let u = http_url("public_url", &self.public_url)?;
            // A loopback public_url on another port than a loopback listen: the login's redirect
            // (and every link) would go to a port nothing of ours answers on.
            let host = u.host_str().unwrap_or_default();
            let loopback = host.eq_ignore_ascii_case("localhost")
                || host.trim_matches(['[', ']']).parse::<std::net::IpAddr>().is_ok_and(|a| a.is_loopback());
            if u.scheme() == "http"
                && loopback
                && self.listen.ip().is_loopback()
                && u.port_or_known_default() != Some(self.listen.port())
            {
                return Err(format!(
                    "public_url: {} and listen: {} are both on this host but on different ports: the \
                     login would come back to a port the viewer does not listen on. Leave public_url \
                     empty (it is then http://<listen>) or make the ports agree",
                    self.public_url, self.listen
                ));
            }
        } else if self.listen.ip().is_unspecified() && !self.oidc.issuer.is_empty() {
            return Err(format!(
                "public_url: needed with oidc.issuer when listen is {} (browsers cannot be sent to \
                 that address; the login's redirect URI is <public_url>/auth/callback)",
                self.listen
            ));
        }
        if !self.oidc.issuer.is_empty() {
            let u = http_url("oidc.issuer", &self.oidc.issuer)?;
            if u.query().is_some() || u.fragment().is_some() {
                return Err(format!(
                    "oidc.issuer: {:?} must be an http:// or https:// URL without query or fragment",
                    self.oidc.issuer
                ));
            }
        }
        if !self.audit.url.is_empty() {
            http_url("audit.url", &self.audit.url)?;
        }
        in_range("break_glass_minutes", u64::from(self.break_glass_minutes), 1, u64::from(u32::MAX))?;
        in_range("session_minutes", self.session_minutes, 1, MAX_MINUTES)?;
        in_range("session_idle_minutes", self.session_idle_minutes, 1, MAX_MINUTES)?;
        in_range("session_check_secs", self.session_check_secs, 1, MAX_CHECK_SECS)?;
        Ok(())
    }

    /// The store's data folder and IndexDB, checked before the viewer opens them: `store_data_dir`
    /// must be a folder holding a store (its `tree/`), and a SQLite IndexDB (the default
    /// `<store_data_dir>/index.sqlite`, or a `sqlite:` `store_database_url`) must exist. The
    /// viewer only reads the store's data: a mistyped folder used to become a new, empty store
    /// that the viewer served (every patient without records).
    pub fn check_store(&self) -> Result<(), ViewerError> {
        let refuse = |message: String| Err(ViewerError::NoStore(message));
        let never = "the viewer reads the store's data and never creates it; is the path right, and has \
                     `kizuna serve` run with it?";
        let dir = &self.store_data_dir;
        if !dir.is_dir() {
            return refuse(format!("store_data_dir: {} does not exist: {never}", dir.display()));
        }
        if !self.tree_dir().is_dir() {
            return refuse(format!("store_data_dir: {} holds no store (no tree/): {never}", dir.display()));
        }
        if self.store_database_url.is_empty() {
            let file = dir.join("index.sqlite");
            if !file.is_file() {
                return refuse(format!(
                    "store_data_dir: {} holds no store IndexDB ({} does not exist): {never}",
                    dir.display(),
                    file.display()
                ));
            }
        } else if let Some(file) = sqlite_file(&self.store_database_url)
            && !file.is_file()
        {
            return refuse(format!("store_database_url: {} does not exist: {never}", file.display()));
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

    /// The URL browsers reach the viewer at, without a trailing `/`: `public_url`, or
    /// `http://<listen>` when it is empty.
    pub fn base_url(&self) -> String {
        if self.public_url.is_empty() {
            format!("http://{}", self.listen)
        } else {
            self.public_url.trim_end_matches('/').to_owned()
        }
    }

    /// The OIDC redirect URI.
    pub fn redirect_uri(&self) -> String {
        format!("{}/auth/callback", self.base_url())
    }

    /// The audit spool folder.
    pub fn audit_spool_dir(&self) -> PathBuf {
        if self.audit.spool_dir.as_os_str().is_empty() {
            self.store_data_dir.join("viewer-audit-spool")
        } else {
            self.audit.spool_dir.clone()
        }
    }

    /// The default configuration as commented YAML, for `--print-default-config`.
    pub fn default_yaml() -> &'static str {
        DEFAULT_YAML
    }
}

/// Longest `session_minutes` and `session_idle_minutes` (366 days).
pub const MAX_MINUTES: u64 = 366 * 24 * 60;
/// Longest `session_check_secs` (a day).
pub const MAX_CHECK_SECS: u64 = 86_400;

/// The file a `sqlite:` URL names (none for `:memory:` or another scheme).
fn sqlite_file(url: &str) -> Option<PathBuf> {
    let rest = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next()?;
    (!path.is_empty() && path != ":memory:").then(|| path.into())
}

/// Kept in sync with `Default` by the test `default_yaml_is_the_default_and_commented`.
const DEFAULT_YAML: &str = r#"# kizuna viewer configuration (every key optional; these are the defaults)
# Address of the web UI (on the centre's reference segment).
listen: 127.0.0.1:8460
# Network device (VRF) the listener and the connections to the provider are bound to, e.g.
# kzv-reference on the centre's router (with listen on the centre's reference address); '' = none.
bind_interface: ''
# The URL browsers reach the viewer at; the login's redirect URI is <public_url>/auth/callback and
# logout comes back to <public_url>/. Empty = http://<listen>, so changing listen moves it too.
# Set it behind a reverse proxy or with https://. A loopback http:// public_url on another port
# than a loopback listen is refused (the login would come back to the wrong port).
public_url: ''
# The store's data folder (its data_dir): tree/ holds the original messages. It must exist and hold
# a store (tree/, and index.sqlite unless store_database_url names another IndexDB): the viewer only
# reads it and never creates it.
store_data_dir: ./kizuna-data
# The store's IndexDB (sqlite://FILE or postgres://...); empty = <store_data_dir>/index.sqlite.
store_database_url: ''
# The linkage database of kizuna-index (common health IDs, consent, break-glass grants).
index_database_url: sqlite://./kizuna-data/linkage.sqlite?mode=rwc
# How long a break-glass grant lasts, in minutes.
break_glass_minutes: 60
# How long a login lasts (minutes, at most 527040), and after how many minutes without a request it
# ends. Logins ask the provider for an authentication at most session_idle_minutes old (max_age):
# after an idle timeout the password is needed again, whatever the provider's own session.
session_minutes: 480
session_idle_minutes: 30
# Every this many seconds (at the next request; at most 86400) the provider's userinfo endpoint is
# asked about the logged-in user: disabled, logged out there (password or TOTP changed), or another
# role or facility = the session ends (audited as a logout). Provider unreachable: 503, session kept.
session_check_secs: 60
# Cookies carry the Secure attribute (browsers then send them only over HTTPS, or to localhost).
secure_cookies: true
# Display names of facilities by facility code, e.g. {'0411000017': 'Sendai Hospital'}.
facility_names: {}
# Login through the centre's single sign-on (kizuna auth serve). Register the viewer with redirect
# URI <public_url>/auth/callback and post-logout URI <public_url>/ (kizuna auth client add).
oidc:
  # The provider's issuer URL (http:// or https:// with a host); empty = login unavailable, every
  # page answers 503.
  issuer: ''
  client_id: kizuna-viewer
  # File (mode 0600) holding the client secret; empty = a public client (PKCE only).
  client_secret_file: ''
# Audit events (every search, view, break glass, login and logout).
audit:
  # The audit service's intake, e.g. http://127.0.0.1:7460/v1/events; empty = the log only.
  url: ''
  # Where events wait until delivered; empty = <store_data_dir>/viewer-audit-spool.
  spool_dir: ''
  # File holding the intake bearer token; empty = none.
  token_file: ''
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_yaml_is_the_default_and_commented() {
        let p = Path::new("viewer.yaml");
        assert_eq!(Config::parse(Config::default_yaml(), p).unwrap(), Config::default());
        assert_eq!(Config::parse("", p).unwrap(), Config::default());
        // Every key of the defaults is in the commented file, and explained: each top-level key
        // has a comment line right above it (or above its group).
        let yaml = Config::default_yaml();
        let keys: Vec<&str> =
            yaml.lines().filter(|l| !l.starts_with([' ', '#'])).filter_map(|l| l.split(':').next()).collect();
        let emitted = serde_norway::to_string(&Config::default()).unwrap();
        let want: Vec<&str> =
            emitted.lines().filter(|l| !l.starts_with(' ')).filter_map(|l| l.split(':').next()).collect();
        assert_eq!(keys, want);
        let lines: Vec<&str> = yaml.lines().collect();
        for (i, l) in lines.iter().enumerate().skip(1) {
            if !l.starts_with([' ', '#']) && !["session_idle_minutes"].iter().any(|k| l.starts_with(k)) {
                assert!(lines[i - 1].starts_with('#'), "no comment above {l:?}");
            }
        }
        for key in ["  issuer: ''", "  client_id: kizuna-viewer", "  spool_dir: ''"] {
            assert!(yaml.contains(key), "{key}");
        }
    }

    #[test]
    fn defaults_round_trip_and_unknown_keys_are_named() {
        let p = Path::new("viewer.yaml");
        assert_eq!(Config::parse(Config::default_yaml(), p).unwrap(), Config::default());
        let e = Config::parse("listen: 127.0.0.1:1\nbreak_glas_minutes: 5\n", p).unwrap_err().to_string();
        assert!(e.contains("viewer.yaml") && e.contains("break_glas_minutes"), "{e}");
        let e = Config::parse("break_glass_minutes: 0\n", p).unwrap_err().to_string();
        assert!(e.contains("break_glass_minutes"), "{e}");
        let e = Config::parse("session_check_secs: 0\n", p).unwrap_err().to_string();
        assert!(e.contains("session_check_secs"), "{e}");
    }

    /// The redirect URI (and every link) follows listen unless public_url is set: a viewer moved
    /// to another port used to send the login back to :8460.
    #[test]
    fn public_url_follows_listen_unless_set() {
        let p = Path::new("viewer.yaml");
        let c = Config::parse("listen: 127.0.0.1:9460\n", p).unwrap();
        assert_eq!(c.redirect_uri(), "http://127.0.0.1:9460/auth/callback");
        assert_eq!(Config::default().redirect_uri(), "http://127.0.0.1:8460/auth/callback");
        let c =
            Config::parse("listen: 10.10.1.1:8460\npublic_url: https://viewer.centre.example/\n", p).unwrap();
        assert_eq!(c.redirect_uri(), "https://viewer.centre.example/auth/callback");
        assert_eq!(c.base_url(), "https://viewer.centre.example");
        // Set explicitly to this host on another port: refused, naming both keys.
        for url in ["http://127.0.0.1:8460", "http://localhost:8460/", "http://[::1]:8460"] {
            let e = Config::parse(&format!("listen: 127.0.0.1:9460\npublic_url: '{url}'\n"), p)
                .unwrap_err()
                .to_string();
            assert!(e.contains("public_url: ") && e.contains("listen: 127.0.0.1:9460"), "{e}");
        }
        Config::parse("listen: 127.0.0.1:80\npublic_url: http://localhost\n", p).unwrap();
        // A proxy terminating TLS on this host may forward to any port.
        Config::parse("listen: 127.0.0.1:9460\npublic_url: https://localhost\n", p).unwrap();
        let sso = "oidc:\n  issuer: https://sso.centre.example\n";
        let e = Config::parse(&format!("listen: 0.0.0.0:8460\n{sso}"), p).unwrap_err().to_string();
        assert!(e.contains("public_url: needed"), "{e}");
    }

    /// The admin screen refused an issuer that is not a URL; the viewer took it and failed at
    /// the first login.
    #[test]
    fn urls_are_checked_by_name() {
        let p = Path::new("viewer.yaml");
        for (yaml, key) in [
            ("oidc:\n  issuer: garbage\n", "oidc.issuer: "),
            ("oidc:\n  issuer: ftp://sso.example\n", "oidc.issuer: "),
            ("oidc:\n  issuer: 'https://sso.example/?a=1'\n", "oidc.issuer: "),
            ("public_url: viewer.example\n", "public_url: "),
            ("public_url: 'http://'\n", "public_url: "),
            ("audit:\n  url: 'not a url'\n", "audit.url: "),
            ("session_minutes: 18446744073709551615\n", "session_minutes: "),
            ("session_idle_minutes: 18446744073709551615\n", "session_idle_minutes: "),
            ("session_check_secs: 18446744073709551615\n", "session_check_secs: "),
        ] {
            let e = Config::parse(yaml, p).unwrap_err().to_string();
            assert!(e.starts_with(&format!("viewer.yaml: {key}")), "{yaml:?}: {e}");
        }
        let c = Config::parse("oidc:\n  issuer: https://sso.centre.example\n", p).unwrap();
        assert_eq!(c.oidc.issuer, "https://sso.centre.example");
    }

    /// The viewer only reads the store's data: a folder that is not a store is refused by name,
    /// and nothing is created.
    #[test]
    fn a_store_data_dir_without_a_store_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let nosuch = d.path().join("nosuch");
        let c = Config { store_data_dir: nosuch.clone(), ..Config::default() };
        let e = c.check_store().unwrap_err().to_string();
        assert!(e.contains(&format!("store_data_dir: {} does not exist", nosuch.display())), "{e}");
        std::fs::create_dir_all(nosuch.join("tree")).unwrap();
        let e = c.check_store().unwrap_err().to_string();
        assert!(e.contains("holds no store IndexDB") && e.contains("index.sqlite"), "{e}");
        let c2 = Config { store_database_url: "sqlite:///nonexistent/k.sqlite?mode=rwc".into(), ..c.clone() };
        let e = c2.check_store().unwrap_err().to_string();
        assert!(e.contains("store_database_url: /nonexistent/k.sqlite does not exist"), "{e}");
        std::fs::write(nosuch.join("index.sqlite"), b"").unwrap();
        c.check_store().unwrap();
        let pg = Config { store_database_url: "postgres://db/kizuna".into(), ..c };
        pg.check_store().unwrap();
    }

    #[test]
    fn a_key_given_twice_is_refused_with_both_lines() {
        let text = "listen: 127.0.0.1:1\nlisten: 127.0.0.1:2\n";
        let e = Config::parse(text, Path::new("viewer.yaml")).unwrap_err().to_string();
        assert!(
            e.contains("viewer.yaml") && e.contains("line 2: duplicate key `listen` (first at line 1)"),
            "{e}"
        );
    }
}
