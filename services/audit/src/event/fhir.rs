//! FHIR R4 `AuditEvent` JSON, mapped from the DICOM fields as in the FHIR R4 AuditEvent mapping and
//! IHE BALP; used by the ITI-81 style search API.

use super::{AuditEvent, Code};
use crate::event::codes::SOURCE_TYPE_SYSTEM;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::{Value, json};

fn coding(c: &Code) -> Value {
    let mut v = json!({"system": c.fhir_system(), "code": c.code});
    if !c.display.is_empty() {
        v["display"] = json!(c.display);
    }
    v
}

/// System URI of Kizuna's common health ID (the patient identifier in entity.what).
pub const COMMON_ID_SYSTEM: &str = "urn:kizuna:common-health-id";
/// System URI of pairwise user ids (agent.who).
pub const PAIRWISE_ID_SYSTEM: &str = "urn:kizuna:pairwise-user-id";

/// The FHIR R4 AuditEvent resource for `ev`.
pub fn to_fhir(ev: &AuditEvent) -> Value {
    let mut r = json!({
        "resourceType": "AuditEvent",
        "id": ev.id.as_str(),
        "type": coding(&ev.event.id),
        "action": ev.event.action.as_str(),
        "recorded": ev.event.date_time.to_string(),
        "outcome": ev.event.outcome.code().to_string(),
    });
    if !ev.event.types.is_empty() {
        r["subtype"] = Value::Array(ev.event.types.iter().map(coding).collect());
    }
    if !ev.event.purpose_of_use.is_empty() {
        r["purposeOfEvent"] =
            Value::Array(ev.event.purpose_of_use.iter().map(|c| json!({"coding": [coding(c)]})).collect());
    }
    r["agent"] = Value::Array(
        ev.participants
            .iter()
            .map(|p| {
                let mut a = json!({
                    "who": {"identifier": {"system": PAIRWISE_ID_SYSTEM, "value": p.user_id}},
                    "requestor": p.requestor,
                });
                if let Some(role) = p.roles.first() {
                    a["type"] = json!({"coding": [coding(role)]});
                }
                if let Some(alt) = &p.alt_user_id {
                    a["altId"] = json!(alt);
                }
                if let Some(n) = &p.user_name {
                    a["name"] = json!(n);
                }
                if let Some(nap) = &p.network_access_point {
                    a["network"] = json!({"address": nap.id, "type": nap.type_code.to_string()});
                }
                a
            })
            .collect(),
    );
    let mut source = json!({"observer": {"display": ev.source.source_id}});
    if let Some(site) = &ev.source.enterprise_site_id {
        source["site"] = json!(site);
    }
    if !ev.source.type_codes.is_empty() {
        source["type"] = Value::Array(
            ev.source
                .type_codes
                .iter()
                .map(|t| json!({"system": SOURCE_TYPE_SYSTEM, "code": t.to_string()}))
                .collect(),
        );
    }
    r["source"] = source;
    if !ev.objects.is_empty() {
        r["entity"] = Value::Array(
            ev.objects
                .iter()
                .map(|o| {
                    let what = if o.is_patient() {
                        json!({"identifier": {"system": COMMON_ID_SYSTEM, "value": o.id}})
                    } else {
                        json!({"identifier": {"value": o.id}})
                    };
                    let mut e = json!({
                        "what": what,
                        "type": {"system": "http://terminology.hl7.org/CodeSystem/audit-entity-type", "code": o.type_code.to_string()},
                        "role": {"system": "http://terminology.hl7.org/CodeSystem/object-role", "code": o.role.to_string()},
                    });
                    if let Some(n) = &o.name {
                        e["name"] = json!(n);
                    }
                    if let Some(q) = &o.query {
                        e["query"] = json!(B64.encode(q.as_bytes()));
                    }
                    if !o.details.is_empty() {
                        e["detail"] =
                            Value::Array(o.details.iter().map(|(t, v)| json!({"type": t, "valueString": v})).collect());
                    }
                    e
                })
                .collect(),
        );
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::sample;

    #[test]
    fn patient_record_access_maps_to_the_expected_fhir_audit_event() {
        let want: Value = serde_json::from_str(
            r#"{
  "resourceType": "AuditEvent",
  "id": "e-0001",
  "type": {"system": "http://dicom.nema.org/resources/ontology/DCM", "code": "110110", "display": "Patient Record"},
  "action": "R",
  "recorded": "2026-11-25T09:30:00Z",
  "outcome": "0",
  "purposeOfEvent": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code": "BTG", "display": "break the glass"}]}],
  "agent": [
    {"type": {"coding": [{"system": "http://dicom.nema.org/resources/ontology/DCM", "code": "110153", "display": "Source Role ID"}]},
     "who": {"identifier": {"system": "urn:kizuna:pairwise-user-id", "value": "pw-7f3a9c"}},
     "name": "Dr. Sato", "requestor": true, "network": {"address": "10.20.1.5", "type": "2"}},
    {"type": {"coding": [{"system": "http://dicom.nema.org/resources/ontology/DCM", "code": "110150", "display": "Application"}]},
     "who": {"identifier": {"system": "urn:kizuna:pairwise-user-id", "value": "kizuna-viewer"}},
     "requestor": false}
  ],
  "source": {"site": "F0401", "observer": {"display": "viewer@centre"},
             "type": [{"system": "http://terminology.hl7.org/CodeSystem/security-source-type", "code": "4"}]},
  "entity": [
    {"what": {"identifier": {"system": "urn:kizuna:common-health-id", "value": "CHID-000123"}},
     "type": {"system": "http://terminology.hl7.org/CodeSystem/audit-entity-type", "code": "1"},
     "role": {"system": "http://terminology.hl7.org/CodeSystem/object-role", "code": "1"}},
    {"what": {"identifier": {"value": "query"}},
     "type": {"system": "http://terminology.hl7.org/CodeSystem/audit-entity-type", "code": "2"},
     "role": {"system": "http://terminology.hl7.org/CodeSystem/object-role", "code": "24"},
     "query": "bmFtZT3kvZDol6QmYmlydGg9MTk1MC0wMS0wMg=="}
  ]
}"#,
        )
        .unwrap();
        assert_eq!(to_fhir(&sample::patient_read()), want);
    }
}
