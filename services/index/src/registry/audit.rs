//! The registry's audit events (sent with `kizuna_audit`'s spooling sender when the registry was
//! given an emitter with [`Registry::with_audit`], otherwise written to the log): every link decision
//! (an admin's link, unlink or review decision, the matcher's automatic links) is a Patient Record
//! update of the common health ID, and every lookup a viewer makes with [`Registry::resolve_as`] is a
//! Query about that patient, attributed to the (pairwise) user who asked.

use kizuna_audit::AuditEvent;
use kizuna_audit::event::EventAction;
use kizuna_audit::event::presets::Source;

use super::{CommonId, Registry};
use crate::{IndexError, RecordKey};

/// AuditSourceID of the index's events.
pub const AUDIT_SOURCE: &str = "kizuna-index";

/// A link change: `method` is `auto`, `manual`, `split` or `review-accepted`/`review-rejected`.
pub(super) fn link_event(
    key: &RecordKey,
    common_id: &CommonId,
    method: &str,
    actor: &str,
    reason: &str,
) -> AuditEvent {
    let src = Source::new(AUDIT_SOURCE).facility(&key.facility);
    let mut e = AuditEvent::patient_record(&src, EventAction::U, actor, common_id.as_str());
    if let Some(o) = e.objects.first_mut() {
        o.details.push(("link".into(), format!("{method}: {}/{}", key.facility, key.local_id)));
        o.details.push(("reason".into(), reason.into()));
    }
    e
}

impl Registry {
    /// [`Registry::resolve`] on behalf of `user` (the pairwise user id the viewer knows), working
    /// for `facility`: records a Query audit event about the patient, found or not.
    pub async fn resolve_as(
        &self,
        common_id: &CommonId,
        user: &str,
        facility: Option<&str>,
    ) -> Result<Vec<RecordKey>, IndexError> {
        let res = self.resolve(common_id).await;
        let mut src = Source::new(AUDIT_SOURCE);
        if let Some(f) = facility {
            src = src.facility(f);
        }
        let mut e = AuditEvent::query(
            &src,
            user,
            &format!("resolve common_id={common_id}"),
            Some(common_id.as_str()),
        );
        if res.is_err() {
            e = e.outcome(kizuna_audit::event::EventOutcome::MinorFailure);
        }
        self.audit.emit(e).await;
        res
    }
}
