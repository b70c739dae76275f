//! Authentication of site requests: bearer token, peer address (from the TCP connection, never
//! from headers such as X-Forwarded-For) and, for uploads, the facility in the URL.

use std::net::SocketAddr;

use axum::http::{HeaderMap, StatusCode};

use super::ApiError;
use crate::Store;
use crate::metrics::Endpoint;
use crate::sites::{AuthedSite, authenticate};
use kizuna_audit::AuditEvent;
use kizuna_audit::event::presets::Source;

/// AuditSourceID of the store's audit events.
pub const AUDIT_SOURCE: &str = "kizuna-store";

/// The bearer token of a request, if it has one.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(axum::http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then_some(token.trim()).filter(|t| !t.is_empty())
}

/// Authenticates a request or says why not (and counts the refusal).
pub async fn require_site(
    store: &Store,
    endpoint: &'static str,
    headers: &HeaderMap,
    peer: SocketAddr,
    facility: Option<&str>,
) -> Result<AuthedSite, ApiError> {
    match authenticate(&store.db, bearer(headers), peer.ip(), facility).await? {
        Ok(site) => Ok(site),
        Err(d) => {
            tracing::warn!(%peer, endpoint, reason = %d.message, "request refused");
            let mut src = Source::new(AUDIT_SOURCE).ip(&peer.ip().to_string());
            if let Some(f) = facility {
                src = src.facility(f);
            }
            let reason = format!("{} {}: {} ({})", d.status, d.error, d.message, endpoint);
            store
                .audit
                .emit(AuditEvent::node_auth_failure(
                    &src,
                    d.site.as_deref().unwrap_or("unknown-site"),
                    &reason,
                ))
                .await;
            let status = StatusCode::from_u16(d.status).unwrap_or(StatusCode::FORBIDDEN);
            Err(refuse(store, endpoint, status, d.error, d.message))
        }
    }
}

/// Counts a refused request and builds its answer.
pub fn refuse(
    store: &Store,
    endpoint: &'static str,
    status: StatusCode,
    error: &'static str,
    message: String,
) -> ApiError {
    store
        .metrics
        .refused
        .get_or_create(&Endpoint { endpoint: endpoint.into(), status: status.as_u16().to_string() })
        .inc();
    ApiError::new(status, error, message)
}
