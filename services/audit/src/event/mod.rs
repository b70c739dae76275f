//! The audit event model after JAHIS 13-009 / DICOM PS3.15 A.5 (RFC 3881 lineage).
//!
//! One [`AuditEvent`] is one DICOM `AuditMessage`: an EventIdentification, one or more
//! ActiveParticipants, one AuditSourceIdentification and any number of ParticipantObjectIdentifications.
//! It carries an [`EventId`] of its own so that senders can retry and the log stores it exactly once.

pub mod codes;
pub mod dicom_xml;
pub mod fhir;
pub mod presets;

use crate::error::{AuditError, Result};
pub use codes::Code;
use serde::{Deserialize, Serialize};

/// The AuditSourceID of the audit service's own events (auditors' searches, pseudonym
/// registrations). Reserved: intake (HTTP and syslog) refuses events from senders that claim it, so
/// `verify` can trust that such events were written by the service itself.
pub const SELF_SOURCE_ID: &str = "kizuna-audit";

/// A sender-chosen unique event id: 1..=64 of `[A-Za-z0-9._:-]`. Retries reuse it; the log dedups on it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct EventId(String);

impl EventId {
    /// A fresh random id (128 bits, hex).
    pub fn random() -> Self {
        EventId(hex::encode(rand::random::<[u8; 16]>()))
    }
    /// An id derived from content: used for syslog messages, which carry none of their own.
    pub fn from_content(bytes: &[u8]) -> Self {
        use sha2::Digest;
        EventId(format!("sha256-{}", hex::encode(&sha2::Sha256::digest(bytes)[..16])))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for EventId {
    type Error = AuditError;
    fn try_from(s: String) -> Result<Self> {
        let ok = !s.is_empty()
            && s.len() <= 64
            && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"._:-".contains(&b));
        if ok {
            Ok(EventId(s))
        } else {
            Err(AuditError::invalid("id", format!("{s:?} is not 1..=64 of [A-Za-z0-9._:-]")))
        }
    }
}
impl From<EventId> for String {
    fn from(e: EventId) -> String {
        e.0
    }
}
impl std::fmt::Display for EventId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// EventActionCode (RFC 3881 5.1.2): Create, Read, Update, Delete, Execute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventAction {
    C,
    R,
    U,
    D,
    E,
}

impl EventAction {
    pub fn as_str(self) -> &'static str {
        match self {
            EventAction::C => "C",
            EventAction::R => "R",
            EventAction::U => "U",
            EventAction::D => "D",
            EventAction::E => "E",
        }
    }
    pub fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "C" => EventAction::C,
            "R" => EventAction::R,
            "U" => EventAction::U,
            "D" => EventAction::D,
            "E" => EventAction::E,
            _ => return Err(AuditError::invalid("EventActionCode", format!("{s:?} is not C, R, U, D or E"))),
        })
    }
}

/// EventOutcomeIndicator (RFC 3881 5.1.4): 0 success, 4 minor failure, 8 serious failure, 12 major failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "u8", into = "u8")]
pub enum EventOutcome {
    Success,
    MinorFailure,
    SeriousFailure,
    MajorFailure,
}

impl EventOutcome {
    pub fn code(self) -> u8 {
        match self {
            EventOutcome::Success => 0,
            EventOutcome::MinorFailure => 4,
            EventOutcome::SeriousFailure => 8,
            EventOutcome::MajorFailure => 12,
        }
    }
}
impl TryFrom<u8> for EventOutcome {
    type Error = AuditError;
    fn try_from(v: u8) -> Result<Self> {
        Ok(match v {
            0 => EventOutcome::Success,
            4 => EventOutcome::MinorFailure,
            8 => EventOutcome::SeriousFailure,
            12 => EventOutcome::MajorFailure,
            _ => {
                return Err(AuditError::invalid(
                    "EventOutcomeIndicator",
                    format!("{v} is not 0, 4, 8 or 12"),
                ));
            }
        })
    }
}
impl From<EventOutcome> for u8 {
    fn from(o: EventOutcome) -> u8 {
        o.code()
    }
}

/// EventIdentification: what happened, when, and how it ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventIdentification {
    /// EventID (DICOM CID 400), e.g. 110110 Patient Record.
    pub id: Code,
    pub action: EventAction,
    pub date_time: jiff::Timestamp,
    pub outcome: EventOutcome,
    /// EventTypeCode, e.g. 110122 Login.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub types: Vec<Code>,
    /// PurposeOfUse (DICOM 2015+, IHE BALP), e.g. BTG for emergency access.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub purpose_of_use: Vec<Code>,
}

/// NetworkAccessPointTypeCode (RFC 3881): 1 machine name, 2 IP address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkAccessPoint {
    pub id: String,
    pub type_code: u8,
}

/// ActiveParticipant: a user or process that took part.
///
/// `user_id` is the *pairwise* user ID the emitting service knows (ID federation hides the real one);
/// only the audit service can map it back, and only for auditors ([`crate::pseudonym`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActiveParticipant {
    pub user_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alt_user_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_name: Option<String>,
    pub requestor: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<Code>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_access_point: Option<NetworkAccessPoint>,
}

impl ActiveParticipant {
    /// The human (or service) that asked for the action.
    pub fn requestor(pairwise_user_id: &str) -> Self {
        ActiveParticipant {
            user_id: pairwise_user_id.into(),
            alt_user_id: None,
            user_name: None,
            requestor: true,
            roles: vec![codes::role_source()],
            network_access_point: None,
        }
    }
    /// The application that performed the action.
    pub fn application(app_id: &str) -> Self {
        ActiveParticipant {
            user_id: app_id.into(),
            alt_user_id: None,
            user_name: None,
            requestor: false,
            roles: vec![codes::role_application()],
            network_access_point: None,
        }
    }
    pub fn with_ip(mut self, ip: &str) -> Self {
        self.network_access_point = Some(NetworkAccessPoint { id: ip.into(), type_code: 2 });
        self
    }
    pub fn with_name(mut self, name: &str) -> Self {
        self.user_name = Some(name.into());
        self
    }
}

/// AuditSourceIdentification: which system recorded the event, at which site (facility).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditSourceIdentification {
    /// AuditSourceID: the service instance, e.g. `viewer@centre`.
    pub source_id: String,
    /// AuditEnterpriseSiteID: the facility on whose behalf the event was recorded (Kizuna's
    /// "facility" filter matches this).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enterprise_site_id: Option<String>,
    /// AuditSourceTypeCode (RFC 3881 1..9; 4 = application server).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub type_codes: Vec<u8>,
}

impl AuditSourceIdentification {
    pub fn new(source_id: &str, facility: Option<&str>) -> Self {
        AuditSourceIdentification {
            source_id: source_id.into(),
            enterprise_site_id: facility.map(Into::into),
            type_codes: vec![4],
        }
    }
}

/// ParticipantObjectIdentification: the data touched (a patient, a query, a document).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ParticipantObject {
    pub id: String,
    /// ParticipantObjectTypeCode: 1 person, 2 system object, 3 organization, 4 other.
    pub type_code: u8,
    /// ParticipantObjectTypeCodeRole (RFC 3881 5.5.2): 1 patient, 3 report, 24 query, ...
    pub role: u8,
    pub id_type: Code,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// ParticipantObjectQuery: the query text (base64 in XML and FHIR).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    /// ParticipantObjectDetail: type/value pairs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub details: Vec<(String, String)>,
}

impl ParticipantObject {
    /// The patient, identified by the common health ID.
    pub fn patient(common_id: &str) -> Self {
        ParticipantObject {
            id: common_id.into(),
            type_code: 1,
            role: 1,
            id_type: codes::id_type_patient_number(),
            name: None,
            query: None,
            details: Vec::new(),
        }
    }
    /// The query issued (RFC 3881 role 24, ID type 10 "Search Criteria").
    pub fn query(query_text: &str) -> Self {
        ParticipantObject {
            id: "query".into(),
            type_code: 2,
            role: 24,
            id_type: codes::id_type_search_criteria(),
            name: None,
            query: Some(query_text.into()),
            details: Vec::new(),
        }
    }
    /// An exported document or file, by URI (role 3 "Report").
    pub fn exported(uri: &str) -> Self {
        ParticipantObject {
            id: uri.into(),
            type_code: 2,
            role: 3,
            id_type: codes::id_type_uri(),
            name: None,
            query: None,
            details: Vec::new(),
        }
    }
    pub fn is_patient(&self) -> bool {
        self.type_code == 1 && self.role == 1
    }
}

/// One audit message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEvent {
    pub id: EventId,
    pub event: EventIdentification,
    pub participants: Vec<ActiveParticipant>,
    pub source: AuditSourceIdentification,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub objects: Vec<ParticipantObject>,
}

/// The kinds of event every Kizuna service emits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    Login,
    Logout,
    PatientRecordRead,
    Query,
    Export,
    EmergencyOverrideStarted,
}

impl AuditEvent {
    /// A new event of `kind`, now, successful, with a fresh id. Add participants and objects after.
    pub fn new(kind: EventKind, source: AuditSourceIdentification) -> Self {
        let (id, action, types) = match kind {
            EventKind::Login => (codes::user_authentication(), EventAction::E, vec![codes::login()]),
            EventKind::Logout => (codes::user_authentication(), EventAction::E, vec![codes::logout()]),
            EventKind::PatientRecordRead => (codes::patient_record(), EventAction::R, vec![]),
            EventKind::Query => (codes::query(), EventAction::E, vec![]),
            EventKind::Export => (codes::export(), EventAction::R, vec![]),
            EventKind::EmergencyOverrideStarted => {
                (codes::security_alert(), EventAction::E, vec![codes::emergency_override_started()])
            }
        };
        let mut e = AuditEvent {
            id: EventId::random(),
            event: EventIdentification {
                id,
                action,
                date_time: jiff::Timestamp::now()
                    .round(jiff::Unit::Microsecond)
                    .unwrap_or_else(|_| jiff::Timestamp::now()),
                outcome: EventOutcome::Success,
                types,
                purpose_of_use: Vec::new(),
            },
            participants: Vec::new(),
            source,
            objects: Vec::new(),
        };
        if kind == EventKind::EmergencyOverrideStarted {
            e = e.break_glass();
        }
        e
    }
    pub fn participant(mut self, p: ActiveParticipant) -> Self {
        self.participants.push(p);
        self
    }
    pub fn object(mut self, o: ParticipantObject) -> Self {
        self.objects.push(o);
        self
    }
    pub fn outcome(mut self, o: EventOutcome) -> Self {
        self.event.outcome = o;
        self
    }
    pub fn at(mut self, t: jiff::Timestamp) -> Self {
        self.event.date_time = t;
        self
    }
    pub fn with_id(mut self, id: EventId) -> Self {
        self.id = id;
        self
    }
    /// Mark as emergency ("break the glass") access: purpose of use BTG.
    pub fn break_glass(mut self) -> Self {
        if !self.is_break_glass() {
            self.event.purpose_of_use.push(codes::break_the_glass());
        }
        self
    }
    pub fn is_break_glass(&self) -> bool {
        self.event.purpose_of_use.iter().any(codes::is_break_glass)
    }

    /// Check the invariants DICOM A.5 requires: at least one participant, non-empty ids.
    pub fn validate(&self) -> Result<()> {
        if self.participants.is_empty() {
            return Err(AuditError::invalid("ActiveParticipant", "at least one is required"));
        }
        for (i, p) in self.participants.iter().enumerate() {
            if p.user_id.trim().is_empty() {
                return Err(AuditError::invalid(&format!("ActiveParticipant[{i}].UserID"), "empty"));
            }
        }
        if self.source.source_id.trim().is_empty() {
            return Err(AuditError::invalid("AuditSourceIdentification.AuditSourceID", "empty"));
        }
        for (i, o) in self.objects.iter().enumerate() {
            if o.id.trim().is_empty() {
                return Err(AuditError::invalid(
                    &format!("ParticipantObjectIdentification[{i}].ParticipantObjectID"),
                    "empty",
                ));
            }
        }
        if self.event.id.code.is_empty() {
            return Err(AuditError::invalid("EventID", "empty code"));
        }
        Ok(())
    }

    /// Refuse an event that claims the audit service's own AuditSourceID ([`SELF_SOURCE_ID`]).
    pub fn check_not_reserved(&self) -> Result<()> {
        if self.source.source_id.trim() == SELF_SOURCE_ID {
            return Err(AuditError::invalid(
                "AuditSourceIdentification.AuditSourceID",
                format!("{SELF_SOURCE_ID:?} is reserved for the audit service's own events"),
            ));
        }
        Ok(())
    }

    /// The requesting user's (pairwise) id: the first requestor, else the first participant.
    pub fn requestor_id(&self) -> Option<&str> {
        self.participants
            .iter()
            .find(|p| p.requestor)
            .or(self.participants.first())
            .map(|p| p.user_id.as_str())
    }
    /// The first patient object's common health ID.
    pub fn patient_id(&self) -> Option<&str> {
        self.objects.iter().find(|o| o.is_patient()).map(|o| o.id.as_str())
    }
    /// The canonical bytes stored in the log and hashed into its Merkle leaf.
    pub fn canonical_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("AuditEvent serializes")
    }
    /// Parse from JSON and validate.
    pub fn from_json(bytes: &[u8]) -> Result<Self> {
        let e: AuditEvent = serde_json::from_slice(bytes).map_err(|err| {
            AuditError::invalid(&format!("JSON line {} column {}", err.line(), err.column()), err.to_string())
        })?;
        e.validate()?;
        Ok(e)
    }
}

#[cfg(test)]
pub(crate) mod sample {
    use super::*;

    /// A fixed event used by the serialization tests.
    pub fn patient_read() -> AuditEvent {
        AuditEvent::new(
            EventKind::PatientRecordRead,
            AuditSourceIdentification::new("viewer@centre", Some("F0401")),
        )
        .with_id(EventId::try_from("e-0001".to_string()).unwrap())
        .at("2026-11-25T09:30:00Z".parse().unwrap())
        .participant(ActiveParticipant::requestor("pw-7f3a9c").with_name("Dr. Sato").with_ip("10.20.1.5"))
        .participant(ActiveParticipant::application("kizuna-viewer"))
        .object(ParticipantObject::patient("CHID-000123"))
        .object(ParticipantObject::query("name=佐藤&birth=1950-01-02"))
        .break_glass()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_round_trip_keeps_every_field() {
        let e = sample::patient_read();
        let back = AuditEvent::from_json(&e.canonical_bytes()).unwrap();
        assert_eq!(back, e);
        assert_eq!(back.canonical_bytes(), e.canonical_bytes());
    }

    #[test]
    fn event_without_participant_is_rejected_naming_the_field() {
        let e = AuditEvent::new(EventKind::Login, AuditSourceIdentification::new("auth", None));
        let err = e.validate().unwrap_err().to_string();
        assert!(err.contains("ActiveParticipant"), "{err}");
    }

    #[test]
    fn bad_event_id_is_rejected() {
        assert!(EventId::try_from("has space".to_string()).is_err());
        assert!(EventId::try_from("x".repeat(65)).is_err());
        assert!(EventId::try_from("ok-1.2:3_4".to_string()).is_ok());
    }

    #[test]
    fn emergency_override_carries_break_glass() {
        let e = AuditEvent::new(
            EventKind::EmergencyOverrideStarted,
            AuditSourceIdentification::new("viewer", None),
        );
        assert!(e.is_break_glass());
        assert_eq!(e.event.id.code, "110113");
        assert_eq!(e.event.types[0].code, "110127");
    }
}
