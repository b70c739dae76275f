//! Coded values used in Kizuna's audit events, with their source.
//!
//! Event IDs and event type codes come from DICOM PS3.16 (context groups CID 400 "Audit Event ID",
//! CID 401 "Audit Event Type Code", CID 402 "Audit Active Participant Role ID Code"), as profiled by
//! DICOM PS3.15 Annex A.5 and JAHIS 13-009. Emergency access follows IHE BALP / HL7: the access itself
//! is a Patient Record event whose purpose of use is `BTG` ("break the glass", HL7 v3 ActReason
//! 2.16.840.1.113883.5.8); starting the override is a Security Alert (110113) with event type 110127
//! "Emergency Override Started" (DICOM CID 403 "Security Alert Type Code").

use serde::{Deserialize, Serialize};

/// The FHIR system URI of the DICOM controlled terminology (codeSystemName "DCM").
pub const DCM_SYSTEM: &str = "http://dicom.nema.org/resources/ontology/DCM";
/// HL7 v3 ActReason, the FHIR system URI for purpose of use codes.
pub const ACT_REASON_SYSTEM: &str = "http://terminology.hl7.org/CodeSystem/v3-ActReason";
/// RFC 3881 participant object ID type codes (FHIR: the DICOM/RFC 3881 code system).
pub const RFC3881_SYSTEM: &str = "urn:ietf:rfc:3881";
/// FHIR audit source types (RFC 3881 AuditSourceTypeCode 1..9).
pub const SOURCE_TYPE_SYSTEM: &str = "http://terminology.hl7.org/CodeSystem/security-source-type";

/// A coded value: the DICOM `csd-code`/`codeSystemName`/`originalText` triple, or a FHIR Coding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Code {
    pub code: String,
    /// DICOM codeSystemName ("DCM", "RFC-3881", "ActReason", ...).
    pub system_name: String,
    pub display: String,
}

impl Code {
    pub fn new(code: &str, system_name: &str, display: &str) -> Self {
        Code { code: code.into(), system_name: system_name.into(), display: display.into() }
    }

    /// The FHIR `system` URI for this code's DICOM codeSystemName.
    pub fn fhir_system(&self) -> String {
        match self.system_name.as_str() {
            "DCM" => DCM_SYSTEM.to_string(),
            "ActReason" => ACT_REASON_SYSTEM.to_string(),
            "RFC-3881" => RFC3881_SYSTEM.to_string(),
            other if other.contains(':') => other.to_string(),
            other => format!("urn:kizuna:code-system:{other}"),
        }
    }

    /// The DICOM codeSystemName for a FHIR `system` URI (inverse of [`Code::fhir_system`]).
    pub fn system_name_for(fhir_system: &str) -> String {
        match fhir_system {
            DCM_SYSTEM => "DCM".into(),
            ACT_REASON_SYSTEM => "ActReason".into(),
            RFC3881_SYSTEM => "RFC-3881".into(),
            s => s.strip_prefix("urn:kizuna:code-system:").unwrap_or(s).to_string(),
        }
    }
}

fn dcm(code: &str, display: &str) -> Code {
    Code::new(code, "DCM", display)
}

// EventID (DICOM CID 400)
/// 110106 Export: data left the system (download, print, transfer).
pub fn export() -> Code {
    dcm("110106", "Export")
}
/// 110110 Patient Record: a patient's record was created, read, updated or deleted.
pub fn patient_record() -> Code {
    dcm("110110", "Patient Record")
}
/// 110112 Query: a search was issued.
pub fn query() -> Code {
    dcm("110112", "Query")
}
/// 110113 Security Alert: used for emergency override start/stop.
pub fn security_alert() -> Code {
    dcm("110113", "Security Alert")
}
/// 110114 User Authentication: login and logout.
pub fn user_authentication() -> Code {
    dcm("110114", "User Authentication")
}

// EventTypeCode (DICOM CID 401 / CID 403)
/// 110122 Login.
pub fn login() -> Code {
    dcm("110122", "Login")
}
/// 110123 Logout.
pub fn logout() -> Code {
    dcm("110123", "Logout")
}
/// 110127 Emergency Override Started.
pub fn emergency_override_started() -> Code {
    dcm("110127", "Emergency Override Started")
}
/// 110126 Node Authentication: a system (e.g. a site's upload agent) failed or passed authentication.
pub fn node_authentication() -> Code {
    dcm("110126", "Node Authentication")
}
/// 110129 Security Configuration: who may do what was changed (sites, tokens, allowed addresses).
pub fn security_configuration() -> Code {
    dcm("110129", "Security Configuration")
}
/// 110137 User Security Attributes Changed: who a user id stands for was set (pseudonym registrations).
pub fn user_security_attributes_changed() -> Code {
    dcm("110137", "User Security Attributes Changed")
}
/// 110138 Emergency Override Stopped.
pub fn emergency_override_stopped() -> Code {
    dcm("110138", "Emergency Override Stopped")
}

// RoleIDCode (DICOM CID 402)
/// 110153 Source Role ID: the participant that sent or requested.
pub fn role_source() -> Code {
    dcm("110153", "Source Role ID")
}
/// 110152 Destination Role ID: the participant that received.
pub fn role_destination() -> Code {
    dcm("110152", "Destination Role ID")
}
/// 110150 Application.
pub fn role_application() -> Code {
    dcm("110150", "Application")
}

// PurposeOfUse (HL7 v3 ActReason)
/// BTG: break the glass, emergency access outside the normal disclosure rules.
pub fn break_the_glass() -> Code {
    Code::new("BTG", "ActReason", "break the glass")
}
/// ETREAT: emergency treatment.
pub fn emergency_treatment() -> Code {
    Code::new("ETREAT", "ActReason", "Emergency Treatment")
}

// ParticipantObjectIDTypeCode (RFC 3881 5.5.4)
/// RFC 3881 ID type 2: Patient Number (here: the common health ID).
pub fn id_type_patient_number() -> Code {
    Code::new("2", "RFC-3881", "Patient Number")
}
/// RFC 3881 ID type 10: Search Criteria (the object of a Query event).
pub fn id_type_search_criteria() -> Code {
    Code::new("10", "RFC-3881", "Search Criteria")
}
/// RFC 3881 ID type 11: User Identifier (a site, an account).
pub fn id_type_user_identifier() -> Code {
    Code::new("11", "RFC-3881", "User Identifier")
}
/// RFC 3881 ID type 12: URI (e.g. an exported document).
pub fn id_type_uri() -> Code {
    Code::new("12", "RFC-3881", "URI")
}

/// Whether `code` is the break-the-glass purpose of use.
pub fn is_break_glass(code: &Code) -> bool {
    code.code == "BTG" && code.system_name == "ActReason"
}
