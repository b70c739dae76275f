//! Audit events of the viewer: every search, every patient view, every original message opened,
//! logins and break-glass grants. With an audit service configured each event is spooled through
//! `kizuna_audit::sender::AuditSender` (durable before the page is answered); without one it is
//! written to the log (tracing target `kizuna_viewer::audit`).

use std::time::Duration;

use kizuna_audit::event::{ActiveParticipant, AuditSourceIdentification, EventOutcome, ParticipantObject};
use kizuna_audit::sender::AuditSender;
use kizuna_audit::{AuditEvent, EventKind};

use crate::ViewerError;
use crate::access::User;
use crate::config::Config;

/// The audit source ID of the viewer.
pub const SOURCE_ID: &str = "kizuna-viewer";

/// Where the viewer's audit events go.
#[derive(Clone)]
pub struct Audit {
    sender: Option<AuditSender>,
}

impl Audit {
    /// Only logs events.
    pub fn log_only() -> Self {
        Self { sender: None }
    }

    /// Spools through `sender` (its delivery is the caller's to run).
    pub fn with_sender(sender: AuditSender) -> Self {
        Self { sender: Some(sender) }
    }

    /// From the `audit:` config; starts background delivery when a URL is set.
    pub fn from_config(c: &Config) -> Result<Self, ViewerError> {
        if c.audit.url.trim().is_empty() {
            return Ok(Self::log_only());
        }
        if c.audit.spool_dir.as_os_str().is_empty() {
            // The default spool is inside the store's data folder: never create that folder.
            c.check_store()?;
        }
        let mut sender = AuditSender::new(c.audit_spool_dir(), &c.audit.url)?;
        if !c.audit.token_file.as_os_str().is_empty() {
            use kizuna_config::secret::{SecretFileError, read_private};
            let path = &c.audit.token_file;
            let t = read_private(path).map_err(|e| match e {
                SecretFileError::Io(e) => ViewerError::io(path, e),
                exposed => ViewerError::Config {
                    path: path.clone(),
                    message: format!("audit.token_file: {exposed}"),
                },
            })?;
            sender = sender.with_token(t.trim());
        }
        sender.spawn_delivery(Duration::from_secs(5));
        Ok(Self::with_sender(sender))
    }

    fn emit(&self, event: AuditEvent) -> Result<(), ViewerError> {
        match &self.sender {
            Some(s) => s.send(&event)?,
            None => tracing::info!(
                target: "kizuna_viewer::audit",
                event = %String::from_utf8_lossy(&event.canonical_bytes()),
                "audit event"
            ),
        }
        Ok(())
    }

    fn base(kind: EventKind, user: &User, ip: &str) -> AuditEvent {
        AuditEvent::new(kind, AuditSourceIdentification::new(SOURCE_ID, Some(&user.facility)))
            .participant(ActiveParticipant::requestor(&user.subject).with_ip(ip).with_name(&user.name))
    }

    /// A patient search (by common ID or local ID); `found` is the common ID it led to.
    pub fn search(&self, user: &User, ip: &str, query: &str, found: Option<&str>) -> Result<(), ViewerError> {
        let mut e = Self::base(EventKind::Query, user, ip).object(ParticipantObject::query(query));
        if let Some(p) = found {
            e = e.object(ParticipantObject::patient(p));
        } else {
            e = e.outcome(EventOutcome::MinorFailure);
        }
        self.emit(e)
    }

    /// A patient's records were shown (`what`: `timeline`, `calendar`, `message <id>`).
    pub fn patient_read(
        &self,
        user: &User,
        ip: &str,
        common_id: &str,
        what: &str,
        break_glass: bool,
    ) -> Result<(), ViewerError> {
        let mut e = Self::base(EventKind::PatientRecordRead, user, ip)
            .object(ParticipantObject::patient(common_id))
            .object(ParticipantObject::query(what));
        if break_glass {
            e = e.break_glass();
        }
        self.emit(e)
    }

    /// A patient page or original message that was refused as not found: an unknown patient, or
    /// a record that does not exist or lies outside what the user may see (outcome 4, like a
    /// search that finds nobody). `common_id` is `None` when the path's ID is not even well
    /// formed; `what` says what was asked for.
    pub fn patient_read_not_found(
        &self,
        user: &User,
        ip: &str,
        common_id: Option<&str>,
        what: &str,
    ) -> Result<(), ViewerError> {
        let mut e = Self::base(EventKind::PatientRecordRead, user, ip);
        if let Some(p) = common_id {
            e = e.object(ParticipantObject::patient(p));
        }
        self.emit(e.object(ParticipantObject::query(what)).outcome(EventOutcome::MinorFailure))
    }

    /// A break-glass grant was opened, with its reason.
    pub fn break_glass(
        &self,
        user: &User,
        ip: &str,
        common_id: &str,
        reason: &str,
        outcome: EventOutcome,
    ) -> Result<(), ViewerError> {
        self.emit(
            Self::base(EventKind::EmergencyOverrideStarted, user, ip)
                .object(ParticipantObject::patient(common_id))
                .object(ParticipantObject::query(&format!("reason: {reason}")))
                .outcome(outcome),
        )
    }

    /// A login to the viewer (after the provider's ID token was verified) or a refused one.
    pub fn login(&self, user: &User, ip: &str, ok: bool) -> Result<(), ViewerError> {
        let e = Self::base(EventKind::Login, user, ip);
        self.emit(if ok { e } else { e.outcome(EventOutcome::SeriousFailure) })
    }

    /// A logout.
    pub fn logout(&self, user: &User, ip: &str) -> Result<(), ViewerError> {
        self.emit(Self::base(EventKind::Logout, user, ip))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The intake token is a secret: a token file others may read is refused, with the chmod.
    #[test]
    fn an_audit_token_file_others_may_read_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let token = dir.path().join("audit.token");
        std::fs::write(&token, "0123456789abcdef\n").unwrap();
        std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o644)).unwrap();
        let mut c = Config::default();
        c.audit.url = "http://127.0.0.1:9/v1/events".into();
        c.audit.spool_dir = dir.path().join("spool");
        c.audit.token_file = token.clone();
        let e = Audit::from_config(&c).err().expect("refused").to_string();
        assert!(e.contains("audit.token_file") && e.contains("chmod 600"), "{e}");
    }
}
