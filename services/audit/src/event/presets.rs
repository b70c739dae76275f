//! Ready-made events for what centre services record most, so that each service emits them the same
//! way (same codes, same participant and object layout) and auditors can search them alike.
//!
//! ```
//! use kizuna_audit::event::{AuditEvent, EventAction, presets::Source};
//! let src = Source::new("viewer@centre").facility("0411000017");
//! let e = AuditEvent::patient_record(&src, EventAction::R, "pw-3f2a", "KZ1234567890123");
//! assert_eq!(e.patient_id(), Some("KZ1234567890123"));
//! ```

use super::{
    ActiveParticipant, AuditEvent, AuditSourceIdentification, EventAction, EventKind, EventOutcome,
    ParticipantObject, codes,
};

/// Who records the event: the service instance (`store@centre`) and, when it acts for one, the
/// facility (AuditEnterpriseSiteID, the auditors' "facility" filter), plus the requestor's address.
#[derive(Debug, Clone)]
pub struct Source {
    source_id: String,
    facility: Option<String>,
    ip: Option<String>,
}

impl Source {
    pub fn new(source_id: &str) -> Self {
        Source { source_id: source_id.into(), facility: None, ip: None }
    }
    /// The facility the event is recorded for.
    pub fn facility(mut self, facility: &str) -> Self {
        self.facility = Some(facility.into());
        self
    }
    /// The requestor's network address (NetworkAccessPointID).
    pub fn ip(mut self, ip: &str) -> Self {
        self.ip = Some(ip.into());
        self
    }
    fn ident(&self) -> AuditSourceIdentification {
        AuditSourceIdentification::new(&self.source_id, self.facility.as_deref())
    }
    pub(crate) fn requestor(&self, user: &str) -> ActiveParticipant {
        let p = ActiveParticipant::requestor(user);
        match &self.ip {
            Some(ip) => p.with_ip(ip),
            None => p,
        }
    }
    pub(crate) fn application(&self) -> ActiveParticipant {
        ActiveParticipant::application(&self.source_id)
    }
}

/// A site, account or other security subject as a ParticipantObject (RFC 3881 role 11 "Security
/// User Entity", ID type 11 "User Identifier").
pub(crate) fn security_subject(id: &str) -> ParticipantObject {
    ParticipantObject {
        id: id.into(),
        type_code: 2,
        role: 11,
        id_type: codes::id_type_user_identifier(),
        name: None,
        query: None,
        details: Vec::new(),
    }
}

/// A 110113 Security Alert (action E) of the given DICOM CID 403 type, without participants yet.
pub(crate) fn security_alert(src: &Source, alert_type: codes::Code) -> AuditEvent {
    let mut e = AuditEvent::new(EventKind::Query, src.ident());
    e.event.id = codes::security_alert();
    e.event.action = EventAction::E;
    e.event.types = vec![alert_type];
    e
}

impl ParticipantObject {
    /// Add a ParticipantObjectDetail type/value pair (e.g. `reason`, `method`).
    pub fn detail(mut self, kind: &str, value: &str) -> Self {
        self.details.push((kind.into(), value.into()));
        self
    }
}

impl AuditEvent {
    /// 110110 Patient Record: `user` created (C), read (R), updated (U) or deleted (D) the record
    /// of the patient with common health ID `patient`.
    pub fn patient_record(src: &Source, action: EventAction, user: &str, patient: &str) -> Self {
        let mut e = AuditEvent::new(EventKind::PatientRecordRead, src.ident())
            .participant(src.requestor(user))
            .participant(src.application())
            .object(ParticipantObject::patient(patient));
        e.event.action = action;
        e
    }

    /// 110112 Query: `user` searched with `query_text`; `patient` is the patient it was about, if one.
    pub fn query(src: &Source, user: &str, query_text: &str, patient: Option<&str>) -> Self {
        let mut e = AuditEvent::new(EventKind::Query, src.ident())
            .participant(src.requestor(user))
            .participant(src.application());
        if let Some(p) = patient {
            e = e.object(ParticipantObject::patient(p));
        }
        e.object(ParticipantObject::query(query_text))
    }

    /// 110114 User Authentication, Login (110122) or Logout (110123) of `user`.
    pub fn user_login(src: &Source, user: &str, login: bool, outcome: EventOutcome) -> Self {
        let kind = if login { EventKind::Login } else { EventKind::Logout };
        AuditEvent::new(kind, src.ident())
            .participant(src.requestor(user))
            .participant(src.application())
            .outcome(outcome)
    }

    /// 110113 Security Alert / 110126 Node Authentication, failed: a system (a site's agent)
    /// presented bad credentials. `who` is what it claimed to be (or `unknown`); outcome 4.
    pub fn node_auth_failure(src: &Source, who: &str, reason: &str) -> Self {
        security_alert(src, codes::node_authentication())
            .participant(src.requestor(who))
            .participant(src.application())
            .object(security_subject(who).detail("reason", reason))
            .outcome(EventOutcome::MinorFailure)
    }

    /// 110113 Security Alert / 110129 Security Configuration: `admin` changed who may do what;
    /// `subject` is what was changed (a site name), `change` says how (`site add`, `token rotated`).
    pub fn security_change(src: &Source, admin: &str, subject: &str, change: &str) -> Self {
        security_alert(src, codes::security_configuration())
            .participant(src.requestor(admin))
            .participant(src.application())
            .object(security_subject(subject).detail("change", change))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_failure_is_a_security_alert_without_break_glass() {
        let e = AuditEvent::node_auth_failure(
            &Source::new("store@centre").ip("127.0.0.1"),
            "unknown",
            "bad token",
        );
        e.validate().unwrap();
        assert_eq!(e.event.id.code, "110113");
        assert_eq!(e.event.types[0].code, "110126");
        assert_eq!(e.event.outcome, EventOutcome::MinorFailure);
        assert!(!e.is_break_glass());
        assert_eq!(e.objects[0].details, vec![("reason".to_string(), "bad token".to_string())]);
        let ap = &e.participants[0];
        assert_eq!(ap.network_access_point.as_ref().unwrap().id, "127.0.0.1");
    }

    #[test]
    fn patient_record_keeps_action_and_patient() {
        let e = AuditEvent::patient_record(&Source::new("index@centre"), EventAction::U, "admin", "KZ1");
        assert_eq!((e.event.id.code.as_str(), e.event.action), ("110110", EventAction::U));
        assert_eq!(e.requestor_id(), Some("admin"));
        assert_eq!(e.patient_id(), Some("KZ1"));
        let q = AuditEvent::query(&Source::new("index@centre"), "dr", "resolve KZ1", Some("KZ1"));
        assert_eq!(q.event.id.code, "110112");
        assert_eq!(q.patient_id(), Some("KZ1"));
    }
}
