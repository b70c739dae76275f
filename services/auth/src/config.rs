//! The auth service's configuration file (YAML). Every key is documented in [`DEFAULT_CONFIG`].

use crate::error::{AuthError, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The default configuration, with every key explained (`kizuna auth print-default-config`).
pub const DEFAULT_CONFIG: &str = r#"# kizuna auth service (OpenID Connect provider) configuration
# Directory for the SQLite database (when database_url is empty) and the audit spool.
data_dir: /var/lib/kizuna/auth
# sqlite://FILE or postgres://user:pass@host/db; empty = sqlite://<data_dir>/auth.sqlite
database_url: ""
# The centre's ed25519 key that signs ID tokens (64 hex digits, mode 0600); create it and the
# pairwise salt below with
#   kizuna auth keygen --signing-key /etc/kizuna/auth-signing.key --pairwise-salt /etc/kizuna/auth-pairwise.salt
# (same format as the audit checkpoint key; existing files are never overwritten). A key or salt
# that group or others may read is refused at start (chmod 600 FILE).
signing_key_file: /etc/kizuna/auth-signing.key
# Secret salt of the pairwise subject ids (64 hex digits, mode 0600); created with the signing key.
# Changing it changes every user's subject id at every service.
pairwise_salt_file: /etc/kizuna/auth-pairwise.salt
# HTTP listener (put a TLS-terminating proxy in front of it in production).
http_listen: 127.0.0.1:7470
# Bind the listener to this network device first, e.g. the reference segment's VRF `kzv-reference`
# on the centre's router (then http_listen must be IP:port, an address of that VRF); "" = none.
http_bind_interface: ""
# The issuer URL relying parties see (https://... in production); empty = http://<http_listen>,
# which only a loopback http_listen (127.0.0.1, [::1], localhost) may use: any other address needs
# the issuer set, e.g. http://10.10.1.1:7470.
issuer: ""
# Cookies carry the Secure flag (and the __Host- prefix); null = when the issuer is https.
secure_cookies: null
# Lifetimes in seconds: authorization codes, ID tokens, browser sessions, logins in progress.
# Access tokens live as long as the browser session they were issued from.
code_lifetime_secs: 60
token_lifetime_secs: 300
session_lifetime_secs: 28800
login_flow_lifetime_secs: 600
# A browser session also ends after this many seconds unused (no code issued from it, no userinfo
# answered for its tokens): the provider's idle timeout, so that a shared PC left alone does not
# keep a single sign-on session for the whole session_lifetime_secs. Relying parties that re-check
# their users at userinfo (the viewer, the admin screen) keep it alive while they are in use.
session_idle_secs: 1800
# Consecutive failed passwords or TOTP codes that lock an account, and for how long (seconds).
lockout_threshold: 5
lockout_secs: 900
# TOTP codes from this many 30-second steps before or after now are accepted (clock skew).
totp_skew_steps: 1
# The audit service's base URL, http:// or https:// (e.g. http://127.0.0.1:7460): login/logout
# events and pairwise-id registration; null = no audit (events are only logged).
audit_url: null
# File (mode 0600) holding the audit intake bearer token; null = none.
audit_token_file: null
"#;

/// Parsed configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    pub data_dir: PathBuf,
    #[serde(default)]
    pub database_url: String,
    pub signing_key_file: PathBuf,
    pub pairwise_salt_file: PathBuf,
    #[serde(default = "default_http")]
    pub http_listen: String,
    /// Device (VRF) the listener is bound to; empty = none.
    #[serde(default)]
    pub http_bind_interface: String,
    #[serde(default)]
    pub issuer: String,
    #[serde(default)]
    pub secure_cookies: Option<bool>,
    #[serde(default = "default_code_lifetime")]
    pub code_lifetime_secs: i64,
    #[serde(default = "default_token_lifetime")]
    pub token_lifetime_secs: i64,
    #[serde(default = "default_session_lifetime")]
    pub session_lifetime_secs: i64,
    /// A browser session unused this long ends (the provider's idle timeout).
    #[serde(default = "default_session_idle")]
    pub session_idle_secs: i64,
    #[serde(default = "default_flow_lifetime")]
    pub login_flow_lifetime_secs: i64,
    #[serde(default = "default_lockout_threshold")]
    pub lockout_threshold: i64,
    #[serde(default = "default_lockout_secs")]
    pub lockout_secs: i64,
    #[serde(default = "default_skew")]
    pub totp_skew_steps: u8,
    #[serde(default)]
    pub audit_url: Option<String>,
    #[serde(default)]
    pub audit_token_file: Option<PathBuf>,
}

fn default_http() -> String {
    "127.0.0.1:7470".into()
}
fn default_code_lifetime() -> i64 {
    60
}
fn default_token_lifetime() -> i64 {
    300
}
fn default_session_lifetime() -> i64 {
    28800
}
fn default_session_idle() -> i64 {
    1800
}
fn default_flow_lifetime() -> i64 {
    600
}
fn default_lockout_threshold() -> i64 {
    5
}
fn default_lockout_secs() -> i64 {
    900
}
fn default_skew() -> u8 {
    1
}

impl AuthConfig {
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| AuthError::io(path, e))?;
        Self::parse(&text, path)
    }

    pub fn parse(text: &str, path: &Path) -> Result<Self> {
        kizuna_config::yaml::check_duplicates(text)
            .map_err(|reason| AuthError::Config { path: path.into(), reason })?;
        let cfg: AuthConfig = serde_norway::from_str(text).map_err(|e| AuthError::Config {
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
    /// [`crate::Server::start`] for configurations built in code. `path` names the file in errors.
    pub fn validate(&self, path: &Path) -> Result<()> {
        let bad = |reason: String| AuthError::Config { path: path.into(), reason };
        if !self.http_bind_interface.is_empty() && self.http_listen.parse::<std::net::SocketAddr>().is_err() {
            return Err(bad(format!(
                "http_listen {:?} must be IP:port when http_bind_interface is set",
                self.http_listen
            )));
        }
        for (name, v) in [
            ("code_lifetime_secs", self.code_lifetime_secs),
            ("token_lifetime_secs", self.token_lifetime_secs),
            ("session_lifetime_secs", self.session_lifetime_secs),
            ("session_idle_secs", self.session_idle_secs),
            ("login_flow_lifetime_secs", self.login_flow_lifetime_secs),
            ("lockout_threshold", self.lockout_threshold),
            ("lockout_secs", self.lockout_secs),
        ] {
            if v <= 0 {
                return Err(bad(format!("{name} must be positive, not {v}")));
            }
        }
        if !self.issuer.is_empty() {
            let u =
                url::Url::parse(&self.issuer).map_err(|e| bad(format!("issuer {:?}: {e}", self.issuer)))?;
            if !matches!(u.scheme(), "http" | "https") || u.query().is_some() || u.fragment().is_some() {
                return Err(bad(format!(
                    "issuer {:?}: must be an http(s) URL without query or fragment",
                    self.issuer
                )));
            }
        } else if !kizuna_audit::config::is_loopback_listen(&self.http_listen) {
            // The default issuer would be the bound address (e.g. http://0.0.0.0:7470), which no
            // browser or relying party can use.
            return Err(bad(format!(
                "issuer is empty but http_listen {:?} is not a loopback address: set issuer to the URL \
                 relying parties and browsers reach this service at (e.g. https://sso.example.jp)",
                self.http_listen
            )));
        }
        if let Some(u) = &self.audit_url {
            kizuna_audit::config::check_http_url("audit_url", u).map_err(bad)?;
        }
        Ok(())
    }

    /// A configuration for tests and local demos: everything under `data_dir` (SQLite, keys created
    /// if missing), listening on an ephemeral loopback port.
    pub fn local(data_dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(data_dir).map_err(|e| AuthError::io(data_dir, e))?;
        let signing_key_file = data_dir.join("signing.key");
        let pairwise_salt_file = data_dir.join("pairwise.salt");
        for f in [&signing_key_file, &pairwise_salt_file] {
            if !f.exists() {
                crate::keys::generate_secret_file(f)?;
            }
        }
        let mut cfg = Self::parse(DEFAULT_CONFIG, Path::new("<default>"))?;
        cfg.data_dir = data_dir.to_path_buf();
        cfg.signing_key_file = signing_key_file;
        cfg.pairwise_salt_file = pairwise_salt_file;
        cfg.http_listen = "127.0.0.1:0".into();
        Ok(cfg)
    }

    pub fn database_url(&self) -> String {
        if self.database_url.trim().is_empty() {
            format!("sqlite://{}", self.data_dir.join("auth.sqlite").display())
        } else {
            self.database_url.clone()
        }
    }
}

/// Read a one-line secret (token) file, refusing one that group or others may read (see
/// [`crate::keys::read_private`]). Never logged.
pub fn read_token(path: &Path) -> Result<String> {
    let t = crate::keys::read_private("token file", path)?.trim().to_string();
    if t.is_empty() {
        return Err(AuthError::Config { path: path.into(), reason: "token file is empty".into() });
    }
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_config_parses_with_documented_values() {
        let c = AuthConfig::parse(DEFAULT_CONFIG, Path::new("d.yaml")).unwrap();
        assert_eq!(c.http_listen, "127.0.0.1:7470");
        assert_eq!(c.lockout_threshold, 5);
        assert_eq!(c.code_lifetime_secs, 60);
        assert!(c.audit_url.is_none());
    }

    #[test]
    fn unknown_key_is_refused_with_its_line() {
        let text = format!("{DEFAULT_CONFIG}lockout_treshold: 3\n");
        let e = AuthConfig::parse(&text, Path::new("auth.yaml")).unwrap_err().to_string();
        assert!(e.contains("auth.yaml") && e.contains("lockout_treshold") && e.contains("line"), "{e}");
    }

    #[test]
    fn a_bound_listener_needs_an_ip_address() {
        let text = DEFAULT_CONFIG
            .replace("http_listen: 127.0.0.1:7470", "http_listen: localhost:7470")
            .replace("http_bind_interface: \"\"", "http_bind_interface: kzv-reference");
        let e = AuthConfig::parse(&text, Path::new("a.yaml")).unwrap_err().to_string();
        assert!(e.contains("a.yaml") && e.contains("http_listen") && e.contains("IP:port"), "{e}");
        // (Beyond loopback, the issuer must be given too.)
        let text = text
            .replace("localhost:7470", "10.10.1.1:7470")
            .replace("issuer: \"\"", "issuer: http://10.10.1.1:7470");
        let c = AuthConfig::parse(&text, Path::new("a.yaml")).unwrap();
        assert_eq!(c.http_bind_interface, "kzv-reference");
    }

    #[test]
    fn negative_lifetime_is_refused() {
        let text = DEFAULT_CONFIG.replace("code_lifetime_secs: 60", "code_lifetime_secs: -1");
        let e = AuthConfig::parse(&text, Path::new("a.yaml")).unwrap_err().to_string();
        assert!(e.contains("code_lifetime_secs"), "{e}");
    }
    #[test]
    fn audit_url_must_be_an_http_or_https_url_with_a_host() {
        for bad in ["nope", "ftp://x", "http://", "\"\""] {
            let text = DEFAULT_CONFIG.replace("audit_url: null", &format!("audit_url: {bad}"));
            let e = AuthConfig::parse(&text, Path::new("auth.yaml")).unwrap_err().to_string();
            assert!(
                e.contains("auth.yaml") && e.contains("audit_url") && e.contains("http://"),
                "{bad}: {e}"
            );
        }
        let text = DEFAULT_CONFIG.replace("audit_url: null", "audit_url: http://127.0.0.1:7460");
        let c = AuthConfig::parse(&text, Path::new("auth.yaml")).unwrap();
        assert_eq!(c.audit_url.as_deref(), Some("http://127.0.0.1:7460"));
    }

    #[test]
    fn a_listener_beyond_loopback_needs_an_explicit_issuer() {
        // Before, 0.0.0.0 with an empty issuer advertised issuer="http://0.0.0.0:17470".
        for (listen, device) in
            [("0.0.0.0:17470", ""), ("10.10.1.1:7470", "kzv-reference"), ("sso.example:7470", "")]
        {
            let text = DEFAULT_CONFIG
                .replace("http_listen: 127.0.0.1:7470", &format!("http_listen: {listen}"))
                .replace("http_bind_interface: \"\"", &format!("http_bind_interface: \"{device}\""));
            let e = AuthConfig::parse(&text, Path::new("auth.yaml")).unwrap_err().to_string();
            assert!(e.contains("auth.yaml") && e.contains("issuer") && e.contains(listen), "{listen}: {e}");
            let text = text.replace("issuer: \"\"", "issuer: http://10.10.1.1:7470");
            let c = AuthConfig::parse(&text, Path::new("auth.yaml")).unwrap();
            assert_eq!(c.issuer, "http://10.10.1.1:7470");
        }
        for listen in ["127.0.0.1:7470", "[::1]:7470", "localhost:7470"] {
            let text =
                DEFAULT_CONFIG.replace("http_listen: 127.0.0.1:7470", &format!("http_listen: {listen:?}"));
            AuthConfig::parse(&text, Path::new("auth.yaml")).unwrap();
        }
    }

    /// The keygen command the printed default config and the README give must be the one the CLI
    /// (`services/kizuna/src/cmd/auth.rs`) takes: before, they said `--out FILE` / `--dir DIR`,
    /// which `kizuna auth keygen` refuses ("unexpected argument").
    #[test]
    fn the_default_config_and_the_readme_give_the_real_keygen_command() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
        let cli = std::fs::read_to_string(dir.join("../kizuna/src/cmd/auth.rs")).unwrap();
        let variant = &cli[cli.find("    Keygen {").expect("the Keygen subcommand")..];
        let variant = &variant[..variant.find("},").unwrap()];
        // Its fields, as clap spells the flags (`#[arg(long)] signing_key: PathBuf` = --signing-key).
        let flags: Vec<String> = variant
            .lines()
            .filter_map(|l| l.trim().split_once(": PathBuf"))
            .map(|(f, _)| format!("--{}", f.replace('_', "-")))
            .collect();
        assert_eq!(flags, ["--signing-key", "--pairwise-salt"], "{variant}");
        let readme = std::fs::read_to_string(dir.join("README.md")).unwrap();
        for (doc, text) in [("DEFAULT_CONFIG", DEFAULT_CONFIG), ("README.md", readme.as_str())] {
            let mut uses = 0;
            for (i, _) in text.match_indices("kizuna auth keygen") {
                let cmd = text[i..].split(['`', '\n']).next().unwrap();
                let given: Vec<&str> = cmd.split_whitespace().filter(|w| w.starts_with("--")).collect();
                if !given.is_empty() {
                    // A bare mention ("`kizuna auth keygen` writes …") is fine; a command must run.
                    assert_eq!(given, flags, "{doc}: {cmd}");
                    uses += 1;
                }
            }
            assert!(uses > 0, "{doc} gives the command that makes the keys");
        }
    }

    #[test]
    fn a_key_given_twice_is_refused_with_both_lines() {
        let text = "data_dir: /a\ndata_dir: /b\n";
        let e = AuthConfig::parse(text, Path::new("auth.yaml")).unwrap_err().to_string();
        assert!(
            e.contains("auth.yaml") && e.contains("line 2: duplicate key `data_dir` (first at line 1)"),
            "{e}"
        );
    }
}
