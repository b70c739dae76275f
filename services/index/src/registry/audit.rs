//! The registry's audit events (sent with `kizuna_audit`'s spooling sender when the registry was
//! given an emitter with [`Registry::with_audit`], otherwise written to the log): every link decision
//! (an admin's link, unlink or review decision, the matcher's automatic links) is a Patient Record
//! update of the common health ID, so is every consent change (set by a clerk, or narrowed or copied
//! by a link or split), and every lookup a viewer makes with [`Registry::resolve_as`] is a
//! Query about that patient, attributed to the (pairwise) user who asked.

use kizuna_audit::AuditEvent;
use kizuna_audit::event::EventAction;
use kizuna_audit::event::presets::Source;

use super::consent::ConsentChange;
use super::{CommonId, Registry};
use crate::{IndexError, RecordKey};

/// AuditSourceID of the index's events.
pub const AUDIT_SOURCE: &str = "kizuna-index";

/// A Patient Record event (`action`) about `common_id` by `actor`, with `details` on the patient
/// object; `facility` names the site when the change concerns one of its records.
fn patient_event(
    facility: Option<&str>,
    action: EventAction,
    actor: &str,
    common_id: &str,
    details: impl IntoIterator<Item = (&'static str, String)>,
) -> AuditEvent {
    let mut src = Source::new(AUDIT_SOURCE);
    if let Some(f) = facility {
        src = src.facility(f);
    }
    let mut e = AuditEvent::patient_record(&src, action, actor, common_id);
    if let Some(o) = e.objects.first_mut() {
        o.details.extend(details.into_iter().map(|(k, v)| (k.to_owned(), v)));
    }
    e
}

/// A link change: `method` is `auto`, `manual`, `split` or `review-accepted`/`review-rejected`.
pub(super) fn link_event(
    key: &RecordKey,
    common_id: &CommonId,
    method: &str,
    actor: &str,
    reason: &str,
) -> AuditEvent {
    let link = format!("{method}: {}/{}", key.facility, key.local_id);
    let details = [("link", link), ("reason", reason.to_owned())];
    patient_event(Some(&key.facility), EventAction::U, actor, common_id.as_str(), details)
}

/// A consent change: a Patient Record update of the common ID, with the consent before and after
/// and the reason, by `actor`.
pub(super) fn consent_event(change: &ConsentChange) -> AuditEvent {
    let before = change.old.as_ref().map_or_else(|| "none on record".to_owned(), ToString::to_string);
    let details = [("consent", format!("{before} -> {}", change.new)), ("reason", change.reason.clone())];
    patient_event(None, EventAction::U, &change.actor, change.common_id.as_str(), details)
}

/// A patient moved from one common ID to another (`method`: `manual`, `split`,
/// `review-accepted`): one event about each ID, so that a search by either finds the move. The
/// event about `to` is the link event with `from` beside it; the one about `from` says where the
/// record went.
pub(super) fn move_events(
    key: &RecordKey,
    from: &CommonId,
    to: &CommonId,
    method: &str,
    actor: &str,
    reason: &str,
) -> [AuditEvent; 2] {
    let mut into = link_event(key, to, method, actor, reason);
    if let Some(o) = into.objects.first_mut() {
        o.details.push(("from".into(), from.to_string()));
    }
    let unlink = format!("{method}: {}/{}", key.facility, key.local_id);
    let out = patient_event(
        Some(&key.facility),
        EventAction::U,
        actor,
        from.as_str(),
        [("unlink", unlink), ("to", to.to_string()), ("reason", reason.to_owned())],
    );
    [into, out]
}

impl Registry {
    /// Sends both events of a move (see [`move_events`]).
    pub(super) async fn audit_move(
        &self,
        key: &RecordKey,
        from: &CommonId,
        to: &CommonId,
        method: &str,
        actor: &str,
        reason: &str,
    ) {
        for e in move_events(key, from, to, method, actor, reason) {
            self.audit.emit(e).await;
        }
    }

    /// Records that `user` was shown a patient's consent, its history and break-glass grants
    /// (`kizuna consent show`): a Patient Record read of the common ID.
    pub async fn audit_consent_shown(&self, common_id: &CommonId, user: &str) {
        let details = [("shown", "consent, consent history, break-glass grants".to_owned())];
        self.audit.emit(patient_event(None, EventAction::R, user, common_id.as_str(), details)).await;
    }

    /// Records that `user` was shown link data of a patient (`what`: their link history, a review
    /// item; `kizuna index history|review list`): a Patient Record read of the common ID.
    pub async fn audit_links_shown(&self, common_id: &CommonId, user: &str, what: &str) {
        let details = [("shown", what.to_owned())];
        self.audit.emit(patient_event(None, EventAction::R, user, common_id.as_str(), details)).await;
    }

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
