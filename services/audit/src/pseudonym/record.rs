//! Pseudonym registrations as events in the Merkle log, so that `verify` covers the table: each new
//! mapping, each display-name change and each refused re-mapping is a 110113 Security Alert of type
//! 110137 "User Security Attributes Changed" from the audit service itself ([`SELF_SOURCE_ID`]),
//! whose object is the pairwise id with the mapping as ParticipantObjectDetail pairs.

use super::PseudonymMapping;
use crate::event::presets::{Source, security_alert, security_subject};
use crate::event::{AuditEvent, EventAction, EventOutcome, SELF_SOURCE_ID, codes};

/// Detail key saying what the event records (values below).
const KIND: &str = "pseudonym";
const REGISTERED: &str = "registered";
const RENAMED: &str = "display-name-changed";
const REFUSED: &str = "remap-refused";
/// Detail value of the one-time event that adopted the rows found at upgrade.
const ADOPTED: &str = "table-adopted";

/// Who sent a registration: the credential it presented and its address.
#[derive(Debug, Clone)]
pub struct Sender {
    /// `intake-token` (the bearer intake token) or `loopback-no-token`.
    pub credential: String,
    pub ip: Option<String>,
}

fn source(sender: &Sender) -> Source {
    let s = Source::new(SELF_SOURCE_ID);
    match &sender.ip {
        Some(ip) => s.ip(ip),
        None => s,
    }
}

fn base(sender: &Sender, m: &PseudonymMapping, kind: &str) -> AuditEvent {
    let src = source(sender);
    let mut o = security_subject(&m.pairwise_id)
        .detail(KIND, kind)
        .detail("sector", &m.sector)
        .detail("subject_id", &m.subject_id);
    if let Some(d) = &m.display_name {
        o = o.detail("display_name", d);
    }
    security_alert(&src, codes::user_security_attributes_changed())
        .participant(src.requestor(&sender.credential))
        .participant(src.application())
        .object(o)
}

/// A new mapping (action C) or a display-name change of the same subject (action U, `old_name`).
pub fn registered(sender: &Sender, m: &PseudonymMapping, renamed_from: Option<Option<&str>>) -> AuditEvent {
    match renamed_from {
        None => {
            let mut e = base(sender, m, REGISTERED);
            e.event.action = EventAction::C;
            e
        }
        Some(old) => {
            let mut e = base(sender, m, RENAMED);
            e.event.action = EventAction::U;
            e.objects[0].details.push(("previous_display_name".into(), old.unwrap_or("").into()));
            e
        }
    }
}

/// A refused attempt to map an existing pairwise id to another subject (or sector): outcome 8,
/// with the mapping asked for and the one kept.
pub fn refused(sender: &Sender, asked: &PseudonymMapping, kept: &PseudonymMapping) -> AuditEvent {
    let mut e = base(sender, asked, REFUSED).outcome(EventOutcome::SeriousFailure);
    e.event.action = EventAction::U;
    e.objects[0].details.push(("registered_sector".into(), kept.sector.clone()));
    e.objects[0].details.push(("registered_subject_id".into(), kept.subject_id.clone()));
    e
}

/// The one-time event that adopts the `rows` mappings found in the table at upgrade (each also
/// gets a [`registered`] event in the same batch).
pub fn adopted(rows: usize) -> AuditEvent {
    let src = Source::new(SELF_SOURCE_ID);
    security_alert(&src, codes::user_security_attributes_changed())
        .participant(src.requestor("upgrade"))
        .participant(src.application())
        .object(security_subject("audit_pseudonym").detail(KIND, ADOPTED).detail("rows", &rows.to_string()))
}

/// What a logged event says about the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Logged {
    /// The row the table must hold for this pairwise id (from now on).
    Mapping(PseudonymMapping),
    /// The rows found at upgrade were adopted.
    Adopted,
}

fn detail<'a>(details: &'a [(String, String)], key: &str) -> Option<&'a str> {
    details.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

/// Read back an event written by [`registered`] or [`adopted`] (refusals change nothing: `None`).
pub fn read(e: &AuditEvent) -> Option<Logged> {
    if e.source.source_id != SELF_SOURCE_ID
        || e.event.id.code != codes::security_alert().code
        || e.event.types.first().map(|c| c.code.as_str())
            != Some(&codes::user_security_attributes_changed().code)
        || e.event.outcome != EventOutcome::Success
    {
        return None;
    }
    let o = e.objects.first()?;
    match detail(&o.details, KIND)? {
        REGISTERED | RENAMED => Some(Logged::Mapping(PseudonymMapping {
            pairwise_id: o.id.clone(),
            sector: detail(&o.details, "sector")?.into(),
            subject_id: detail(&o.details, "subject_id")?.into(),
            display_name: detail(&o.details, "display_name").map(Into::into),
        })),
        ADOPTED => Some(Logged::Adopted),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(subject: &str, name: Option<&str>) -> PseudonymMapping {
        PseudonymMapping {
            pairwise_id: "pw-1".into(),
            sector: "viewer".into(),
            subject_id: subject.into(),
            display_name: name.map(Into::into),
        }
    }

    #[test]
    fn registrations_read_back_and_refusals_do_not() {
        let s = Sender { credential: "intake-token".into(), ip: Some("127.0.0.1".into()) };
        let e = registered(&s, &m("u-1", Some("Dr. Sato")), None);
        e.validate().unwrap();
        assert_eq!(e.requestor_id(), Some("intake-token"));
        let back = AuditEvent::from_json(&e.canonical_bytes()).unwrap();
        assert_eq!(read(&back), Some(Logged::Mapping(m("u-1", Some("Dr. Sato")))));
        let r = registered(&s, &m("u-1", None), Some(Some("Dr. Sato")));
        assert_eq!(read(&r), Some(Logged::Mapping(m("u-1", None))));
        let refused = refused(&s, &m("u-2", None), &m("u-1", None));
        assert_eq!(refused.event.outcome, EventOutcome::SeriousFailure);
        assert_eq!(read(&refused), None);
        assert_eq!(read(&adopted(3)), Some(Logged::Adopted));
        // The same event claimed by another source is not the service's own.
        let mut forged = e.clone();
        forged.source.source_id = "kizuna-viewer".into();
        assert_eq!(read(&forged), None);
    }
}
