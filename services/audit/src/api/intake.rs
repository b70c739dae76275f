//! Event intake for the services: JSON (one event or an array) or one DICOM audit XML message.

use super::{ApiState, fail};
use crate::event::{AuditEvent, dicom_xml};
use crate::pseudonym::{self, PseudonymMapping};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

/// POST /v1/events
pub async fn post_events(State(st): State<ApiState>, headers: HeaderMap, body: Bytes) -> Response {
    if let Err(r) = st.check_intake(&headers) {
        return r;
    }
    let ctype = headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("application/json");
    let events: Vec<AuditEvent> = if ctype.contains("xml") {
        match dicom_xml::from_xml(&body) {
            Ok(e) => vec![e],
            Err(e) => return fail(StatusCode::BAD_REQUEST, e.to_string()),
        }
    } else {
        let trimmed = body.iter().position(|b| !b.is_ascii_whitespace()).map(|i| body[i]);
        let parsed = if trimmed == Some(b'[') {
            serde_json::from_slice::<Vec<AuditEvent>>(&body)
        } else {
            serde_json::from_slice::<AuditEvent>(&body).map(|e| vec![e])
        };
        match parsed {
            Ok(v) => v,
            Err(e) => {
                return fail(
                    StatusCode::BAD_REQUEST,
                    format!("JSON line {} column {}: {e}", e.line(), e.column()),
                );
            }
        }
    };
    for (i, e) in events.iter().enumerate() {
        if let Err(err) = e.validate() {
            return fail(StatusCode::BAD_REQUEST, format!("event [{i}] ({}): {err}", e.id));
        }
    }
    match st.appender.submit(events).await {
        Ok(out) => axum::Json(out).into_response(),
        Err(e) => fail(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    }
}

/// POST /v1/pseudonyms: the auth service registers pairwise id -> subject mappings.
pub async fn post_pseudonyms(State(st): State<ApiState>, headers: HeaderMap, body: Bytes) -> Response {
    if let Err(r) = st.check_intake(&headers) {
        return r;
    }
    let maps: Vec<PseudonymMapping> = match serde_json::from_slice(&body) {
        Ok(m) => m,
        Err(e) => {
            return fail(
                StatusCode::BAD_REQUEST,
                format!("JSON line {} column {}: {e}", e.line(), e.column()),
            );
        }
    };
    match pseudonym::register(&st.db, &maps).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => fail(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}
