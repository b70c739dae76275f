//! What a centre service holds to emit audit events: the `audit:` section of its YAML config
//! ([`SenderConfig`]) and an [`AuditEmitter`] built from it, which spools each event through an
//! [`AuditSender`] to the audit service, or, when no URL is configured, writes it to the log with
//! `tracing` (target `kizuna_audit::event`) so that nothing is silently dropped.

use crate::config::read_token;
use crate::error::Result;
use crate::event::AuditEvent;
use crate::sender::AuditSender;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Duration;

/// The `audit:` key of a service's configuration. Every field is optional.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SenderConfig {
    /// The audit service's event intake, e.g. `http://127.0.0.1:7460/v1/events`; empty = events
    /// are only written to the service's log (tracing target `kizuna_audit::event`).
    pub url: String,
    /// Where events wait until the audit service has them (needed with `url`); kept across restarts.
    pub spool_dir: PathBuf,
    /// File holding the intake bearer token (the audit service's `intake_token_file`); empty = none.
    pub token_file: PathBuf,
    /// Seconds between delivery retries while the audit service is unreachable.
    pub retry_secs: u64,
}

impl Default for SenderConfig {
    fn default() -> Self {
        SenderConfig {
            url: String::new(),
            spool_dir: PathBuf::new(),
            token_file: PathBuf::new(),
            retry_secs: 5,
        }
    }
}

impl SenderConfig {
    /// A configuration that sends to `url`, spooling in `spool_dir`.
    pub fn new(url: &str, spool_dir: impl Into<PathBuf>) -> Self {
        SenderConfig { url: url.into(), spool_dir: spool_dir.into(), ..Default::default() }
    }
}

/// A service's audit event outlet; cheap to clone.
#[derive(Clone, Default)]
pub struct AuditEmitter {
    sender: Option<AuditSender>,
}

impl AuditEmitter {
    /// Events are only logged (no audit service configured).
    pub fn log_only() -> Self {
        AuditEmitter { sender: None }
    }

    /// Spool through `sender`; the caller runs its delivery ([`AuditSender::spawn_delivery`]).
    pub fn with_sender(sender: AuditSender) -> Self {
        AuditEmitter { sender: Some(sender) }
    }

    /// Build from a service's `audit:` config and start background delivery (needs a Tokio
    /// runtime when `url` is set). Errors name the bad key or file.
    pub fn from_config(cfg: &SenderConfig) -> Result<Self> {
        let Some(sender) = Self::sender_from_config(cfg)? else { return Ok(Self::log_only()) };
        sender.spawn_delivery(Duration::from_secs(cfg.retry_secs.max(1)));
        Ok(Self::with_sender(sender))
    }

    /// Build from config without starting delivery: for short-lived commands, which
    /// [`flush`](Self::flush) before they exit (what they cannot deliver stays spooled for the
    /// long-running service that shares the spool).
    pub fn from_config_no_delivery(cfg: &SenderConfig) -> Result<Self> {
        Ok(Self::sender_from_config(cfg)?.map(Self::with_sender).unwrap_or_default())
    }

    fn sender_from_config(cfg: &SenderConfig) -> Result<Option<AuditSender>> {
        if cfg.url.trim().is_empty() {
            return Ok(None);
        }
        if cfg.spool_dir.as_os_str().is_empty() {
            return Err(crate::AuditError::Config {
                path: "audit.spool_dir".into(),
                reason: "must be set when audit.url is set".into(),
            });
        }
        let mut sender = AuditSender::new(&cfg.spool_dir, cfg.url.trim())?;
        if !cfg.token_file.as_os_str().is_empty() {
            sender = sender.with_token(&read_token(&cfg.token_file)?);
        }
        Ok(Some(sender))
    }

    /// The sender, when an audit service is configured.
    pub fn sender(&self) -> Option<&AuditSender> {
        self.sender.as_ref()
    }

    /// Record `event`: durably spooled for the audit service (off the async worker threads), or
    /// logged. Never fails the caller's operation: a spool failure is logged with the whole event.
    pub async fn emit(&self, event: AuditEvent) {
        let summary = (event.event.id.code.clone(), event.requestor_id().map(str::to_string));
        match &self.sender {
            None => log_event(&event),
            Some(s) => {
                let s = s.clone();
                let res =
                    tokio::task::spawn_blocking(move || s.send(&event).map_err(|e| Box::new((e, event))))
                        .await;
                match res {
                    Ok(Ok(())) => {
                        tracing::debug!(code = %summary.0, user = ?summary.1, "audit event spooled")
                    }
                    Ok(Err(failed)) => {
                        let (e, event) = *failed;
                        tracing::error!(error = %e, "audit event could not be spooled");
                        log_event(&event);
                    }
                    Err(e) => tracing::error!(error = %e, "audit spool task failed"),
                }
            }
        }
    }

    /// Try to deliver everything spooled now (for commands about to exit). Returns events delivered.
    pub async fn flush(&self) -> Result<usize> {
        match &self.sender {
            Some(s) => s.flush().await,
            None => Ok(0),
        }
    }
}

/// The operating-system account running a command, as an audit user ID (`os:NAME`;
/// `SUDO_USER` first, so `sudo kizuna …` names the person rather than root).
pub fn os_user() -> String {
    std::env::var("SUDO_USER")
        .or_else(|_| std::env::var("USER"))
        .map(|u| format!("os:{u}"))
        .unwrap_or_else(|_| "os:unknown".into())
}

/// Record an administrator's Security Configuration change from a short-lived command: spool
/// it, then try to deliver it before the command exits. What cannot be delivered stays in the
/// spool, which the long-running service sharing `cfg.spool_dir` delivers later. Only a bad
/// `audit:` key is an error; the administrator is [`os_user`].
pub async fn record_admin_change(
    cfg: &SenderConfig,
    source_id: &str,
    subject: &str,
    change: &str,
) -> Result<()> {
    AdminChanges::open(cfg, source_id)?.record(subject, change).await;
    Ok(())
}

/// [`record_admin_change`] in two steps, for a command that must not change anything when its
/// `audit:` key is bad: `open` checks the key (and prepares the spool) before the change,
/// `record` then cannot fail on it.
pub struct AdminChanges {
    emitter: AuditEmitter,
    source_id: String,
}

impl AdminChanges {
    pub fn open(cfg: &SenderConfig, source_id: &str) -> Result<Self> {
        Ok(Self { emitter: AuditEmitter::from_config_no_delivery(cfg)?, source_id: source_id.to_owned() })
    }

    /// Spools the change and tries to deliver it (what cannot be delivered stays in the spool).
    pub async fn record(&self, subject: &str, change: &str) {
        use crate::event::presets::Source;
        let event = AuditEvent::security_change(&Source::new(&self.source_id), &os_user(), subject, change);
        self.emitter.emit(event).await;
        if let Err(e) = self.emitter.flush().await {
            tracing::warn!(error = %e, "audit event left in the spool for the running service to deliver");
        }
    }
}

/// Write the whole event to the service's log.
fn log_event(event: &AuditEvent) {
    let json = String::from_utf8(event.canonical_bytes()).expect("JSON is UTF-8");
    tracing::info!(target: "kizuna_audit::event", event = %json, "audit event (no audit service configured)");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_defaults_and_unknown_keys() {
        let c: SenderConfig =
            serde_norway::from_str("url: http://127.0.0.1:7460/v1/events\nspool_dir: /s\n").unwrap();
        assert_eq!(c.retry_secs, 5);
        assert!(c.token_file.as_os_str().is_empty());
        let err = serde_norway::from_str::<SenderConfig>("urll: x\n").unwrap_err().to_string();
        assert!(err.contains("urll"), "{err}");
    }

    #[test]
    fn url_without_spool_dir_is_refused() {
        let err =
            AuditEmitter::from_config_no_delivery(&SenderConfig::new("http://127.0.0.1:1/v1/events", ""))
                .err()
                .unwrap()
                .to_string();
        assert!(err.contains("audit.spool_dir"), "{err}");
    }
}
