//! The monitor's configuration file (YAML, `kizuna admin serve --config F`). Every key has a default;
//! unknown keys are refused by name.

use kizuna_config::check::{http_url, in_range};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::MonitorError;

/// The whole configuration. See the crate README for every key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address of the admin screen. Loopback only unless `allow_non_loopback` is set.
    pub listen: SocketAddr,
    /// Allows a non-loopback `listen` (a management network); only with `oidc.issuer` set.
    pub allow_non_loopback: bool,
    /// The store's YAML config, for its IndexDB and data folder; empty = the store's defaults.
    pub store_config: PathBuf,
    /// The store's base URL, whose `/healthz` the `store_down` rule asks; empty = `http://<the
    /// store config's listen>` (127.0.0.1 for an unspecified address).
    pub store_url: String,
    /// Base URL put in alert mail links; empty = `http://<listen>`.
    pub public_url: String,
    /// Seconds between two evaluations of the alert rules.
    pub check_interval_secs: u64,
    pub health: Health,
    pub rules: Rules,
    pub mail: Mail,
    pub oidc: Oidc,
    /// Where the admin screen's audit events go (see [`kizuna_audit::emitter::SenderConfig`]).
    pub audit: kizuna_audit::emitter::SenderConfig,
}

/// Login through the centre's single sign-on (`kizuna-auth`). An empty `issuer` = no login
/// (loopback only).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Oidc {
    /// The provider's issuer URL, e.g. `https://sso.centre.example`; empty = no login.
    pub issuer: String,
    /// The admin screen's client ID at the provider.
    pub client_id: String,
    /// File holding the client secret (confidential client); empty = a public client.
    pub client_secret_file: PathBuf,
    /// How long a login lasts.
    pub session_minutes: u64,
    /// A login ends after this many minutes without a request.
    pub session_idle_minutes: u64,
    /// How often (seconds) a logged-in user is re-checked at the provider's userinfo endpoint: a
    /// user disabled there, logged out of it or no longer an admin loses the session.
    pub session_check_secs: u64,
}

/// Thresholds of the per-site health shown on the admin screen.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Health {
    /// An outbox this deep is a warning.
    pub queue_warning: u64,
}

/// The alert rules. A rule with `enabled: false` neither alerts nor colours the admin screen.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Rules {
    pub agent_errors: AgentErrors,
    pub rejects: Rejects,
    pub dead_man: DeadMan,
    pub stalled: Stalled,
    pub store_down: StoreDown,
    pub mass_silence: MassSilence,
    pub replication_lag: ReplicationLag,
}

/// Fires when a site's agent is alive (heart-beating) but its uploads do not get through: its
/// outbox is not empty and no batch reached the store for `hours` (or ever, `hours` after the
/// site was added), or its outbox held at least `queue_depth` files in every heartbeat for
/// `hours` (from the store's heartbeat history).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Stalled {
    pub enabled: bool,
    pub hours: f64,
    pub queue_depth: u64,
}

/// Fires (one centre-wide incident) when the store's `/healthz` fails or cannot be reached. While
/// it is open, per-site dead-man and stalled incidents are neither opened nor closed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreDown {
    pub enabled: bool,
}

/// One centre-wide incident instead of one dead-man mail per site when at least `min_sites` and
/// at least `percent` % of the enabled sites go silent at once (a centre-side outage).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MassSilence {
    pub enabled: bool,
    pub min_sites: u64,
    pub percent: u64,
}

/// Fires when the newest daily log of a site's agent holds ERROR lines.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AgentErrors {
    pub enabled: bool,
    /// Only daily logs of the last this many days count (older ones are history).
    pub max_age_days: u32,
}

/// Fires when at least `threshold` files of a site were rejected (by the store, or quarantined by
/// its agent) within the last `window_hours`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Rejects {
    pub enabled: bool,
    pub threshold: u64,
    pub window_hours: u64,
}

/// Fires when an enabled site has sent neither an upload nor a heartbeat for `hours`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeadMan {
    pub enabled: bool,
    pub hours: f64,
}

/// Fires when a replication lag gauge passes `max`. The gauge is read from a Prometheus text
/// endpoint (the backup service's `/metrics`): `metrics_url` and `metric` (the sample name,
/// optionally with labels, e.g. `kizuna_backup_lag_entries{replica="dr"}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReplicationLag {
    pub enabled: bool,
    pub metrics_url: String,
    pub metric: String,
    pub max: f64,
}

/// Where alert mail goes. No recipients = no mail (the rules still show on the admin screen).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Mail {
    /// SMTP relay (plain SMTP, e.g. the centre's own MTA on localhost).
    pub smtp_host: String,
    pub smtp_port: u16,
    pub from: String,
    /// Every alert and recovery mail goes to all of these.
    pub to: Vec<String>,
    /// Most sample file names (or log lines) quoted in one mail.
    pub samples: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8441".parse().expect("literal address"),
            allow_non_loopback: false,
            store_config: PathBuf::new(),
            store_url: String::new(),
            public_url: String::new(),
            check_interval_secs: 60,
            health: Health::default(),
            rules: Rules::default(),
            mail: Mail::default(),
            oidc: Oidc::default(),
            audit: kizuna_audit::emitter::SenderConfig::default(),
        }
    }
}

impl Default for Oidc {
    fn default() -> Self {
        Self {
            issuer: String::new(),
            client_id: "kizuna-admin".into(),
            client_secret_file: PathBuf::new(),
            session_minutes: 480,
            session_idle_minutes: 30,
            session_check_secs: 60,
        }
    }
}

impl Default for Health {
    fn default() -> Self {
        Self { queue_warning: 1000 }
    }
}

impl Default for Rules {
    fn default() -> Self {
        Self {
            agent_errors: AgentErrors { enabled: true, max_age_days: 2 },
            rejects: Rejects { enabled: true, threshold: 1, window_hours: 24 },
            dead_man: DeadMan { enabled: true, hours: 6.0 },
            stalled: Stalled { enabled: true, hours: 6.0, queue_depth: 1000 },
            store_down: StoreDown { enabled: true },
            mass_silence: MassSilence { enabled: true, min_sites: 3, percent: 50 },
            replication_lag: ReplicationLag {
                enabled: false,
                metrics_url: "http://127.0.0.1:8451/metrics".into(),
                metric: "kizuna_backup_lag_seconds".into(),
                max: 300.0,
            },
        }
    }
}

impl Default for AgentErrors {
    fn default() -> Self {
        Rules::default().agent_errors
    }
}

impl Default for Rejects {
    fn default() -> Self {
        Rules::default().rejects
    }
}

impl Default for DeadMan {
    fn default() -> Self {
        Rules::default().dead_man
    }
}

impl Default for Stalled {
    fn default() -> Self {
        Rules::default().stalled
    }
}

impl Default for StoreDown {
    fn default() -> Self {
        Rules::default().store_down
    }
}

impl Default for MassSilence {
    fn default() -> Self {
        Rules::default().mass_silence
    }
}

impl Default for ReplicationLag {
    fn default() -> Self {
        Rules::default().replication_lag
    }
}

impl Default for Mail {
    fn default() -> Self {
        Self {
            smtp_host: "localhost".into(),
            smtp_port: 25,
            from: "kizuna-monitor@localhost".into(),
            to: Vec::new(),
            samples: 10,
        }
    }
}

impl Config {
    /// Reads a YAML file; an error names the file and the key.
    pub fn load(path: &Path) -> Result<Self, MonitorError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| MonitorError::Config(format!("{}: {e}", path.display())))?;
        Self::parse(&text).map_err(|e| MonitorError::Config(format!("{}: {e}", path.display())))
    }

    /// Parses YAML text (an empty document gives the defaults) and checks it.
    pub fn parse(text: &str) -> Result<Self, String> {
        let c: Self =
            if text.trim().is_empty() { Self::default() } else { kizuna_config::yaml::from_str(text)? };
        c.check()?;
        Ok(c)
    }

    /// Refuses what would be unsafe or cannot work, naming the key.
    pub fn check(&self) -> Result<(), String> {
        if !self.listen.ip().is_loopback() && !self.login_required() {
            return Err(format!(
                "listen: {} is not a loopback address; without oidc.issuer the admin screen has no login, \
                 so it serves loopback only",
                self.listen
            ));
        }
        if !self.listen.ip().is_loopback() && !self.allow_non_loopback {
            return Err(format!(
                "listen: {} is not a loopback address; set allow_non_loopback: true to serve the admin \
                 screen (behind its login) on a management network",
                self.listen
            ));
        }
        if self.login_required() {
            let o = &self.oidc;
            check_issuer("oidc.issuer", &o.issuer)?;
            if o.client_id.trim().is_empty() {
                return Err("oidc.client_id: must not be empty".into());
            }
            if o.session_minutes == 0 {
                return Err("oidc.session_minutes: must be at least 1".into());
            }
            if o.session_idle_minutes == 0 {
                return Err("oidc.session_idle_minutes: must be at least 1".into());
            }
            if o.session_check_secs == 0 {
                return Err("oidc.session_check_secs: must be at least 1".into());
            }
            if self.public_url.is_empty() && self.listen.ip().is_unspecified() {
                return Err(format!(
                    "public_url: needed with oidc.issuer when listen is {} (the login's redirect URI is \
                     <public_url>/auth/callback)",
                    self.listen
                ));
            }
        }
        // Upper bounds everywhere: a value past what the clock arithmetic can hold made the alert
        // check (and every page showing health) panic instead of being refused here.
        let o = &self.oidc;
        in_range("oidc.session_minutes", o.session_minutes, 0, MAX_MINUTES)?;
        in_range("oidc.session_idle_minutes", o.session_idle_minutes, 0, MAX_MINUTES)?;
        in_range("oidc.session_check_secs", o.session_check_secs, 0, MAX_INTERVAL_SECS)?;
        in_range("check_interval_secs", self.check_interval_secs, 1, MAX_INTERVAL_SECS)?;
        in_range("health.queue_warning", self.health.queue_warning, 1, u64::MAX)?;
        let r = &self.rules;
        in_range("rules.agent_errors.max_age_days", u64::from(r.agent_errors.max_age_days), 1, MAX_DAYS)?;
        in_range("rules.rejects.threshold", r.rejects.threshold, 1, u64::MAX)?;
        in_range("rules.rejects.window_hours", r.rejects.window_hours, 1, MAX_HOURS)?;
        for (key, hours) in
            [("rules.dead_man.hours", r.dead_man.hours), ("rules.stalled.hours", r.stalled.hours)]
        {
            if !(hours.is_finite() && hours > 0.0 && hours <= MAX_HOURS as f64) {
                return Err(format!(
                    "{key}: {hours} must be a number of hours more than 0 and at most {MAX_HOURS} (366 days)"
                ));
            }
        }
        in_range("rules.stalled.queue_depth", r.stalled.queue_depth, 1, u64::MAX)?;
        in_range("rules.mass_silence.min_sites", r.mass_silence.min_sites, 2, u64::MAX)?;
        in_range("rules.mass_silence.percent", r.mass_silence.percent, 1, 100)?;
        if !self.store_url.is_empty() {
            http_url("store_url", &self.store_url)?;
        }
        let l = &r.replication_lag;
        if l.enabled && (l.metrics_url.is_empty() || l.metric.is_empty()) {
            return Err("rules.replication_lag: enabled needs metrics_url and metric".into());
        }
        if !l.metrics_url.is_empty() {
            http_url("rules.replication_lag.metrics_url", &l.metrics_url)?;
        }
        if !(l.max.is_finite() && l.max >= 0.0) {
            return Err(format!("rules.replication_lag.max: {} must be a finite number, 0 or more", l.max));
        }
        in_range("mail.samples", self.mail.samples as u64, 1, 1000)?;
        for (i, to) in self.mail.to.iter().enumerate() {
            to.parse::<lettre::message::Mailbox>().map_err(|e| format!("mail.to[{i}]: {to:?}: {e}"))?;
        }
        self.mail.from.parse::<lettre::message::Mailbox>().map_err(|e| format!("mail.from: {e}"))?;
        Ok(())
    }

    /// The store's configuration this monitor reads from.
    pub fn store(&self) -> Result<kizuna_store::Config, MonitorError> {
        if self.store_config.as_os_str().is_empty() {
            Ok(kizuna_store::Config::default())
        } else {
            kizuna_store::Config::load(&self.store_config).map_err(|e| MonitorError::Config(e.to_string()))
        }
    }

    /// The store's IndexDB URL, once it is known to hold a store: a SQLite IndexDB (the default,
    /// `<data_dir>/index.sqlite`, or a `sqlite:` `database_url`) must exist. The monitor only
    /// reads the store's data: a mistyped `data_dir` used to create an empty database there, and
    /// the screen and the alert checks watched nothing ("0 mails sent").
    pub fn store_database_url(&self, store: &kizuna_store::Config) -> Result<String, MonitorError> {
        let origin = if self.store_config.as_os_str().is_empty() {
            "store_config: '' (the store's defaults): ".to_owned()
        } else {
            format!("store_config: {}: ", self.store_config.display())
        };
        let refuse = |m: String| Err(MonitorError::Config(format!("{origin}{m}")));
        let never = "the monitor reads the store's data and never creates it; is the path right, and has \
                     `kizuna serve` run with it?";
        if store.database_url.is_empty() {
            let dir = &store.data_dir;
            if !dir.is_dir() {
                return refuse(format!("data_dir: {} does not exist: {never}", dir.display()));
            }
            let file = dir.join("index.sqlite");
            if !file.is_file() {
                return refuse(format!(
                    "data_dir: {} holds no store (no {}): {never}",
                    dir.display(),
                    file.display()
                ));
            }
        } else if let Some(file) = sqlite_file(&store.database_url)
            && !file.is_file()
        {
            return refuse(format!("database_url: {} does not exist: {never}", file.display()));
        }
        Ok(store.effective_database_url())
    }

    /// The store's `/healthz` URL: `store_url`, else from the store config's `listen` (loopback
    /// for an unspecified address). `None` when the store listens bound to a device
    /// (`bind_interface`, e.g. the upload segment's VRF) and no `store_url` is set: its address
    /// is not reachable from outside that VRF, so the monitor could only ever call it down.
    pub fn store_healthz_url(&self, store: &kizuna_store::Config) -> Option<String> {
        if !self.store_url.is_empty() {
            return Some(format!("{}/healthz", self.store_url.trim_end_matches('/')));
        }
        if !store.bind_interface.is_empty() {
            return None;
        }
        let mut a = store.listen;
        if a.ip().is_unspecified() {
            a.set_ip(if a.is_ipv4() {
                std::net::Ipv4Addr::LOCALHOST.into()
            } else {
                std::net::Ipv6Addr::LOCALHOST.into()
            });
        }
        Some(format!("http://{a}/healthz"))
    }

    /// Whether every page (but `/healthz`) needs a logged-in admin: `oidc.issuer` is set.
    pub fn login_required(&self) -> bool {
        !self.oidc.issuer.trim().is_empty()
    }

    /// The redirect URI registered at the provider: `<public_url>/auth/callback`.
    pub fn redirect_uri(&self) -> String {
        format!("{}/auth/callback", self.base_url())
    }

    /// Session cookies are `Secure` when browsers reach the screen over HTTPS.
    pub fn secure_cookies(&self) -> bool {
        self.base_url().starts_with("https://")
    }

    /// The base of links in mail and of the login's redirect URI.
    pub fn base_url(&self) -> String {
        if self.public_url.is_empty() {
            format!("http://{}", self.listen)
        } else {
            self.public_url.trim_end_matches('/').to_owned()
        }
    }

    /// The default configuration as commented YAML, for `--print-default-config`.
    pub fn default_yaml() -> &'static str {
        DEFAULT_YAML
    }
}

/// Longest window or limit of a rule, in hours (366 days).
pub const MAX_HOURS: u64 = 366 * 24;
/// Longest `rules.agent_errors.max_age_days`.
pub const MAX_DAYS: u64 = 366;
/// Longest login (`oidc.session_minutes`, `oidc.session_idle_minutes`), in minutes (366 days).
pub const MAX_MINUTES: u64 = 366 * 24 * 60;
/// Longest `check_interval_secs` and `oidc.session_check_secs` (a day).
pub const MAX_INTERVAL_SECS: u64 = 86_400;

/// The file a `sqlite:` URL names (none for `:memory:` or another scheme).
fn sqlite_file(url: &str) -> Option<PathBuf> {
    let rest = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next()?;
    (!path.is_empty() && path != ":memory:").then(|| path.into())
}

/// An OpenID Connect issuer: an http(s) URL with a host and no query or fragment.
pub fn check_issuer(key: &str, value: &str) -> Result<(), String> {
    let u = http_url(key, value)?;
    if u.query().is_some() || u.fragment().is_some() {
        return Err(format!("{key}: {value:?} must be an http:// or https:// URL without query or fragment"));
    }
    Ok(())
}

/// Kept in sync with `Default` by the test `default_yaml_is_the_default`.
const DEFAULT_YAML: &str = r#"# kizuna admin (monitoring) configuration (every key optional; these are the defaults)
# Address of the admin screen. Without a login (oidc.issuer empty) it serves loopback only; with
# one, a non-loopback address (a management network) also needs allow_non_loopback: true.
listen: 127.0.0.1:8441
allow_non_loopback: false
# The store's config file (for its IndexDB and data folder); empty = the store's defaults. Its
# data_dir (or a sqlite: database_url) must already hold the store's IndexDB: the monitor never
# creates one (a mistyped path is refused, naming it).
store_config: ''
# The store's base URL; the store_down rule asks its /healthz. Empty = http://<the store config's
# listen> (127.0.0.1 when it listens on 0.0.0.0).
store_url: ''
# Base URL browsers reach the screen at, used in alert mail links and for the login's redirect URI
# (<public_url>/auth/callback); empty = http://<listen>. Session cookies are Secure with https://.
public_url: ''
# Seconds between two evaluations of the alert rules (1 to 86400). While they fail, /healthz
# answers 503.
check_interval_secs: 60
health:
  # An agent outbox this deep shows the site as warning.
  queue_warning: 1000
rules:
  # The newest daily log of a site's agent holds ERROR lines (logs older than max_age_days, 1 to
  # 366, ignored).
  agent_errors:
    enabled: true
    max_age_days: 2
  # At least `threshold` (1 or more) files rejected by the store or quarantined by the agent in
  # `window_hours` (1 to 8784, i.e. 366 days).
  rejects:
    enabled: true
    threshold: 1
    window_hours: 24
  # Dead-man: an enabled site sent no upload and no heartbeat for `hours` (more than 0, at most
  # 8784; fractions allowed).
  # New sites get `hours` of grace after they are added. Disabling a site closes its incident
  # without a RECOVERED mail.
  dead_man:
    enabled: true
    hours: 6.0
  # Uploads stalled while the agent heart-beats: its outbox is not empty and no batch reached the
  # store for `hours` (more than 0, at most 8784), or the outbox held at least `queue_depth` files
  # in every heartbeat for `hours` (needs the store's heartbeat history).
  stalled:
    enabled: true
    hours: 6.0
    queue_depth: 1000
  # The store's /healthz fails or cannot be reached: one centre-wide (centre) incident; while it
  # is open, per-site dead_man and stalled incidents are neither opened nor closed.
  store_down:
    enabled: true
  # At least min_sites (2 or more) and at least percent % (1 to 100) of the enabled sites go
  # silent at once: one (centre) incident listing them instead of a dead-man mail per site.
  mass_silence:
    enabled: true
    min_sites: 3
    percent: 50
  # Replication lag: the gauge `metric` read from the Prometheus endpoint `metrics_url` (the backup
  # follower's metrics_listen) is above `max`. A bare metric name takes the worst replica; add
  # labels (kizuna_backup_lag_seconds{replica="dr"}) for one. An unreadable gauge also alerts.
  # metrics_url: http:// or https:// with a host; max: a finite number, 0 or more.
  replication_lag:
    enabled: false
    metrics_url: http://127.0.0.1:8451/metrics
    metric: kizuna_backup_lag_seconds
    max: 300.0
mail:
  # Plain SMTP relay (e.g. the centre's MTA on localhost). No recipients = no mail.
  smtp_host: localhost
  smtp_port: 25
  from: kizuna-monitor@localhost
  to: []
  # Most sample file names or log lines quoted in one mail (1 to 1000).
  samples: 10
# Login through the centre's single sign-on (kizuna auth serve). With an issuer set, every page but
# /healthz needs a logged-in user whose ID token has the admin role (others get 403). The issuer is
# an http:// or https:// URL with a host, without query or fragment. Register the
# screen at the provider with redirect URI <public_url>/auth/callback (kizuna auth client add).
# Empty issuer = no login: the screen then serves loopback only and says so at startup.
oidc:
  issuer: ''
  client_id: kizuna-admin
  # File holding the client secret (a confidential client); empty = a public client.
  client_secret_file: ''
  # How long a login lasts, in minutes (at most 527040, i.e. 366 days, as session_idle_minutes).
  session_minutes: 480
  # A login ends after this many minutes without a request.
  session_idle_minutes: 30
  # Every this many seconds (at the next request) the provider's userinfo endpoint is asked about
  # the logged-in user: disabled, logged out there (password or TOTP changed), or no longer an
  # admin = the session ends (audited as a logout) and the browser goes to the login. If the
  # provider cannot be asked, pages answer 503 and the session stays for the next try. At most 86400.
  session_check_secs: 60
# Audit events: logins and logouts, each site page viewed (a query naming the site) and each
# action (re-request, enable/disable, token rotation: a security configuration change), source
# admin@centre. Keys: url (the audit service's intake, e.g. http://127.0.0.1:7460/v1/events; empty
# = events go to this service's log only), spool_dir (where events wait while the audit service
# is down; needed with url), token_file (the intake bearer token), retry_secs.
audit:
  url: ''
  spool_dir: ''
  token_file: ''
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
    fn the_store_healthz_url_comes_from_store_url_or_a_reachable_listen() {
        let store = |yaml: &str| kizuna_store::Config::parse(yaml).unwrap();
        let monitor = Config::default();
        let any = store("listen: 0.0.0.0:8440\n");
        assert_eq!(monitor.store_healthz_url(&any).as_deref(), Some("http://127.0.0.1:8440/healthz"));
        // Inside the upload segment's VRF (the lab's and a deployed centre's store): not reachable
        // from the monitor, so not checked, rather than reported down for ever.
        let vrf = store("listen: 10.20.1.1:8440\nbind_interface: kzv-upload\n");
        assert_eq!(monitor.store_healthz_url(&vrf), None);
        let set = Config { store_url: "http://10.20.1.1:8440/".into(), ..Config::default() };
        assert_eq!(set.store_healthz_url(&vrf).as_deref(), Some("http://10.20.1.1:8440/healthz"));
    }

    #[test]
    fn unknown_keys_are_refused_by_name() {
        let e = Config::parse("rules:\n  rejectz: {}\n").unwrap_err();
        assert!(e.contains("rejectz"), "{e}");
    }

    #[test]
    fn non_loopback_needs_a_login_and_explicit_consent() {
        let e = Config::parse("listen: 0.0.0.0:8441\n").unwrap_err();
        assert!(e.contains("listen") && e.contains("oidc.issuer"), "{e}");
        let e = Config::parse("listen: 10.0.0.5:8441\nallow_non_loopback: true\n").unwrap_err();
        assert!(e.contains("oidc.issuer") && e.contains("loopback only"), "without a login: {e}");
        let sso = "oidc:\n  issuer: https://sso.centre.example\n";
        let e = Config::parse(&format!("listen: 10.0.0.5:8441\n{sso}")).unwrap_err();
        assert!(e.contains("allow_non_loopback"), "{e}");
        let c = Config::parse(&format!("listen: 10.0.0.5:8441\nallow_non_loopback: true\n{sso}")).unwrap();
        assert_eq!((c.listen.port(), c.login_required()), (8441, true));
        assert_eq!(c.redirect_uri(), "http://10.0.0.5:8441/auth/callback");
        let e = Config::parse(&format!("listen: 0.0.0.0:8441\nallow_non_loopback: true\n{sso}")).unwrap_err();
        assert!(e.contains("public_url"), "{e}");
    }

    #[test]
    fn oidc_and_audit_keys_are_checked_by_name() {
        let e = Config::parse("oidc:\n  issuer: sso.example\n").unwrap_err();
        assert!(e.contains("oidc.issuer"), "{e}");
        let e = Config::parse("oidc:\n  isuer: x\n").unwrap_err();
        assert!(e.contains("isuer"), "{e}");
        let sso = "oidc:\n  issuer: https://sso.centre.example\n";
        for key in ["session_idle_minutes", "session_check_secs"] {
            let e = Config::parse(&format!("{sso}  {key}: 0\n")).unwrap_err();
            assert!(e.contains(&format!("oidc.{key}")), "{e}");
        }
        let c = Config::parse(&format!("{sso}  session_check_secs: 5\n")).unwrap();
        assert_eq!((c.oidc.session_check_secs, c.oidc.session_idle_minutes), (5, 30));
        let e = Config::parse("audit:\n  ulr: x\n").unwrap_err();
        assert!(e.contains("ulr"), "{e}");
        let c = Config::parse("public_url: https://admin.centre.example/\n").unwrap();
        assert!(c.secure_cookies() && !Config::default().secure_cookies());
        assert_eq!(c.redirect_uri(), "https://admin.centre.example/auth/callback");
    }

    /// Values past what the clock arithmetic holds made `kizuna admin check` panic in jiff and
    /// killed the admin screen's alert task; each is refused by its key now.
    #[test]
    fn every_numeric_rule_is_range_checked_by_name() {
        let refused = [
            ("rules:\n  dead_man:\n    hours: .nan\n", "rules.dead_man.hours"),
            ("rules:\n  dead_man:\n    hours: .inf\n", "rules.dead_man.hours"),
            ("rules:\n  dead_man:\n    hours: 1e300\n", "rules.dead_man.hours"),
            ("rules:\n  dead_man:\n    hours: 8785\n", "rules.dead_man.hours"),
            ("rules:\n  dead_man:\n    hours: 0\n", "rules.dead_man.hours"),
            ("rules:\n  dead_man:\n    hours: -2\n", "rules.dead_man.hours"),
            ("rules:\n  stalled:\n    hours: .nan\n", "rules.stalled.hours"),
            ("rules:\n  stalled:\n    queue_depth: 0\n", "rules.stalled.queue_depth"),
            ("rules:\n  mass_silence:\n    percent: 101\n", "rules.mass_silence.percent"),
            ("rules:\n  mass_silence:\n    min_sites: 1\n", "rules.mass_silence.min_sites"),
            ("store_url: nohost\n", "store_url"),
            ("rules:\n  rejects:\n    window_hours: 100000000000000\n", "rules.rejects.window_hours"),
            ("rules:\n  rejects:\n    window_hours: 0\n", "rules.rejects.window_hours"),
            ("rules:\n  rejects:\n    threshold: 0\n", "rules.rejects.threshold"),
            ("rules:\n  agent_errors:\n    max_age_days: 4000000000\n", "rules.agent_errors.max_age_days"),
            ("rules:\n  agent_errors:\n    max_age_days: 0\n", "rules.agent_errors.max_age_days"),
            ("rules:\n  replication_lag:\n    max: .nan\n", "rules.replication_lag.max"),
            ("rules:\n  replication_lag:\n    max: -1\n", "rules.replication_lag.max"),
            ("check_interval_secs: 18446744073709551615\n", "check_interval_secs"),
            ("health:\n  queue_warning: 0\n", "health.queue_warning"),
            ("mail:\n  samples: 0\n", "mail.samples"),
            ("oidc:\n  session_minutes: 18446744073709551615\n", "oidc.session_minutes"),
            ("oidc:\n  session_idle_minutes: 18446744073709551615\n", "oidc.session_idle_minutes"),
        ];
        for (yaml, key) in refused {
            let e = Config::parse(yaml).expect_err(yaml);
            assert!(e.starts_with(&format!("{key}: ")), "{yaml:?}: {e}");
        }
        // The largest values accepted are evaluated without a panic (the admin screen's health
        // and the alert check both use them).
        let c = Config::parse(
            "rules:\n  dead_man:\n    hours: 8784\n  rejects:\n    window_hours: 8784\n  agent_errors:\n    max_age_days: 366\n",
        )
        .unwrap();
        let facts = crate::status::SiteFacts {
            site: kizuna_store::sites::Site {
                name: "s".into(),
                facilities: vec![],
                allow: vec![],
                enabled: true,
                created_at: String::new(),
                token_rotated_at: String::new(),
            },
            activity: Default::default(),
            daily: vec![],
            reject_codes: vec![],
            rejected: vec![],
            quarantine: vec![],
            newest_log: None,
            log_lines: vec![],
            queue_history: None,
        };
        let f = crate::health::findings(&facts, &c, jiff::Timestamp::now());
        assert_eq!(crate::health::health_of(&f), crate::health::Health::Silent);
    }

    #[test]
    fn the_metrics_url_must_be_an_http_url_with_a_host() {
        for url in ["not a url", "ftp://backup/metrics", "http://", "metrics"] {
            let e = Config::parse(&format!("rules:\n  replication_lag:\n    metrics_url: '{url}'\n"))
                .unwrap_err();
            assert!(e.starts_with("rules.replication_lag.metrics_url: "), "{url}: {e}");
        }
        let c = Config::parse("rules:\n  replication_lag:\n    enabled: true\n    metrics_url: https://dr.example:8451/metrics\n")
            .unwrap();
        assert!(c.rules.replication_lag.enabled);
        for issuer in ["garbage", "ftp://sso", "https://sso.example/?x=1"] {
            let e = Config::parse(&format!("oidc:\n  issuer: '{issuer}'\n")).unwrap_err();
            assert!(e.starts_with("oidc.issuer: "), "{issuer}: {e}");
        }
    }

    #[test]
    fn bad_recipients_and_lag_rule_are_named() {
        let e = Config::parse("mail:\n  to: ['not an address']\n").unwrap_err();
        assert!(e.contains("mail.to[0]"), "{e}");
        let e = Config::parse("rules:\n  replication_lag:\n    enabled: true\n    metric: ''\n").unwrap_err();
        assert!(e.contains("replication_lag"), "{e}");
    }

    #[test]
    fn a_key_given_twice_is_refused_with_both_lines() {
        let e = Config::parse("listen: 127.0.0.1:1\nlisten: 127.0.0.1:2\n").unwrap_err();
        assert!(e.contains("line 2: duplicate key `listen` (first at line 1)"), "{e}");
    }
}
