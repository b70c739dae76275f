//! FHIR R4 AuditEvent search in the style of IHE ITI-81 (RESTful ATNA): `GET /fhir/AuditEvent?...`
//! answers a `searchset` Bundle. Parameters: date (ge/gt/le/lt/eq prefixes, repeatable), agent
//! (or agent.identifier, user), patient (or entity.identifier, entity), type, subtype, outcome, site,
//! _count. Unknown parameters are refused with an OperationOutcome naming them.

use super::{ApiState, filter};
use crate::event::{AuditEvent, fhir::to_fhir};
use crate::search::{self, SearchFilter};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

fn outcome(status: StatusCode, msg: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/fhir+json")],
        json!({"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "invalid", "diagnostics": msg}]}).to_string(),
    )
        .into_response()
}

fn fhir_json(v: Value) -> Response {
    ([(header::CONTENT_TYPE, "application/fhir+json")], v.to_string()).into_response()
}

/// Strip a FHIR token's `system|` and a reference's `Type/`.
fn token_value(v: &str) -> &str {
    let v = v.rsplit('|').next().unwrap_or(v);
    v.strip_prefix("Patient/").or_else(|| v.strip_prefix("Practitioner/")).unwrap_or(v)
}

/// ITI-81 parameters -> filter.
pub fn parse(pairs: &[(String, String)]) -> Result<SearchFilter, String> {
    let mut f = SearchFilter::default();
    for (k, v) in pairs {
        match k.as_str() {
            "date" => {
                let (prefix, value) = if v.len() > 2 && v.as_bytes()[..2].iter().all(u8::is_ascii_alphabetic)
                {
                    v.split_at(2)
                } else {
                    ("eq", v.as_str())
                };
                let lower = filter::parse_time("date", value)?;
                let upper = filter::parse_upper("date", value)?;
                match prefix {
                    "ge" => f.from = Some(lower),
                    "gt" => f.from = Some(upper),
                    "lt" => f.to = Some(lower),
                    "le" => f.to = Some(upper),
                    "eq" => {
                        f.from = Some(lower);
                        f.to = Some(upper);
                    }
                    p => return Err(format!("date prefix {p:?} is not supported (ge, gt, le, lt, eq)")),
                }
            }
            "agent" | "agent.identifier" | "user" | "agent-name" => f.user = Some(token_value(v).into()),
            "patient" | "patient.identifier" | "entity" | "entity.identifier" | "entity-id" => {
                f.patient = Some(token_value(v).into())
            }
            "type" | "subtype" => f.event_type = Some(token_value(v).into()),
            "outcome" => {
                f.outcome = Some(
                    token_value(v).parse().map_err(|_| format!("outcome={v:?}: expected 0, 4, 8 or 12"))?,
                )
            }
            "site" => f.facility = Some(v.clone()),
            "_count" => f.limit = Some(v.parse().map_err(|_| format!("_count={v:?}: expected a number"))?),
            "_offset" => f.offset = Some(v.parse().map_err(|_| format!("_offset={v:?}: expected a number"))?),
            "token" | "_format" => {}
            other => return Err(format!("search parameter {other:?} is not supported")),
        }
    }
    Ok(f)
}

/// GET /fhir/AuditEvent
pub async fn search(
    State(st): State<ApiState>,
    headers: HeaderMap,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Response {
    let tok = pairs.iter().find(|(k, _)| k == "token").map(|(_, v)| v.as_str());
    let auditor = match st.check_auditor(&headers, tok) {
        Ok(a) => a,
        Err(_) => return outcome(StatusCode::UNAUTHORIZED, "the auditor role is required"),
    };
    let f = match parse(&pairs) {
        Ok(f) => f,
        Err(e) => return outcome(StatusCode::BAD_REQUEST, &e),
    };
    let q = pairs
        .iter()
        .filter(|(k, _)| k != "token")
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    if st.record_auditor_query(&auditor, &format!("AuditEvent?{q}"), f.patient.as_deref()).await.is_err() {
        return outcome(StatusCode::SERVICE_UNAVAILABLE, super::UNRECORDED);
    }
    let (bodies, total) = match search::search_bodies(&st.db, &f).await {
        Ok(x) => x,
        Err(e) => return outcome(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    };
    let base =
        format!("http://{}/fhir", headers.get("host").and_then(|h| h.to_str().ok()).unwrap_or("localhost"));
    let entries: Vec<Value> = bodies
        .iter()
        .filter_map(|b| AuditEvent::from_json(b).ok())
        .map(|e| json!({"fullUrl": format!("{base}/AuditEvent/{}", e.id), "resource": to_fhir(&e), "search": {"mode": "match"}}))
        .collect();
    fhir_json(json!({
        "resourceType": "Bundle",
        "type": "searchset",
        "total": total,
        "link": [{"relation": "self", "url": format!("{base}/AuditEvent?{q}")}],
        "entry": entries,
    }))
}

/// GET /fhir/AuditEvent/{id}
pub async fn read(
    State(st): State<ApiState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Response {
    let tok = pairs.iter().find(|(k, _)| k == "token").map(|(_, v)| v.as_str());
    let auditor = match st.check_auditor(&headers, tok) {
        Ok(a) => a,
        Err(_) => return outcome(StatusCode::UNAUTHORIZED, "the auditor role is required"),
    };
    // Read first so that the record names the event's patient; nothing is answered before it.
    let row = sqlx::query("SELECT body FROM audit_event WHERE event_id = $1")
        .bind(id.clone())
        .fetch_optional(&st.db.pool)
        .await;
    let found = match row {
        Ok(Some(r)) => {
            let body: Vec<u8> = sqlx::Row::get(&r, "body");
            match AuditEvent::from_json(&body) {
                Ok(e) => Some(e),
                Err(e) => return outcome(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
            }
        }
        Ok(None) => None,
        Err(e) => return outcome(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    };
    let patient = found.as_ref().and_then(|e| e.patient_id());
    if st.record_auditor_query(&auditor, &format!("AuditEvent/{id}"), patient).await.is_err() {
        return outcome(StatusCode::SERVICE_UNAVAILABLE, super::UNRECORDED);
    }
    match found {
        Some(e) => fhir_json(to_fhir(&e)),
        None => outcome(StatusCode::NOT_FOUND, &format!("AuditEvent/{id} not found")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iti81_parameters_map_to_the_filter() {
        let pairs: Vec<(String, String)> = [
            ("date", "ge2026-11-01"),
            ("date", "le2026-11-25"),
            ("patient", "urn:kizuna:common-health-id|CHID-9"),
            ("agent", "pw-1"),
            ("type", "http://dicom.nema.org/resources/ontology/DCM|110110"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let f = parse(&pairs).unwrap();
        assert_eq!(f.from.unwrap().to_string(), "2026-11-01T00:00:00Z");
        assert_eq!(f.to.unwrap().to_string(), "2026-11-26T00:00:00Z");
        assert_eq!(f.patient.as_deref(), Some("CHID-9"));
        assert_eq!(f.user.as_deref(), Some("pw-1"));
        assert_eq!(f.event_type.as_deref(), Some("110110"));
        assert!(parse(&[("foo".into(), "1".into())]).unwrap_err().contains("foo"));
    }
}
