//! Event intake for the services: JSON (one event or an array) or one DICOM audit XML message.

use super::{ApiState, fail};
use crate::error::AuditError;
use crate::event::{AuditEvent, dicom_xml};
use crate::pseudonym::{self, PseudonymMapping, Registered, record::Sender};
use axum::body::Bytes;
use axum::extract::{ConnectInfo, State};
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
        if let Err(err) = e.validate().and_then(|()| e.check_not_reserved()) {
            return fail(StatusCode::BAD_REQUEST, format!("event [{i}] ({}): {err}", e.id));
        }
    }
    match st.appender.submit(events).await {
        Ok(out) => axum::Json(out).into_response(),
        Err(e) => fail(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    }
}

/// POST /v1/pseudonyms: the auth service registers pairwise id -> subject mappings. Write-once:
/// 204 when all are registered (again), 409 naming the pairwise ids already registered to another
/// subject (nothing written; each attempt logged as a security alert).
pub async fn post_pseudonyms(
    State(st): State<ApiState>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let credential = match st.check_intake(&headers) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let maps: Vec<PseudonymMapping> = match serde_json::from_slice(&body) {
        Ok(m) => m,
        Err(e) => {
            return fail(
                StatusCode::BAD_REQUEST,
                format!("JSON line {} column {}: {e}", e.line(), e.column()),
            );
        }
    };
    let sender = Sender { credential: credential.into(), ip: Some(peer.ip().to_canonical().to_string()) };
    let _one_at_a_time = st.pseudonym_lock.lock().await;
    match pseudonym::register(&st.db, &st.appender, &sender, &maps).await {
        Ok(Registered::Done { .. }) => StatusCode::NO_CONTENT.into_response(),
        Ok(Registered::Refused { pairwise_ids }) => fail(
            StatusCode::CONFLICT,
            format!(
                "pairwise id(s) {} already registered to another subject (or sector): a pairwise id's \
                 subject is written once and never changed. Nothing in this request was registered; the \
                 attempt was recorded in the audit log as a security alert",
                pairwise_ids.join(", ")
            ),
        ),
        Err(e @ AuditError::InvalidEvent { .. }) => fail(StatusCode::BAD_REQUEST, e.to_string()),
        Err(e @ AuditError::Send(_)) => fail(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
        Err(e) => fail(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}
