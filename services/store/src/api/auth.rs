//! Authentication of site requests: bearer token, peer address (from the TCP connection, never
//! from headers such as X-Forwarded-For) and, for uploads, the facility in the URL. Every refusal
//! is answered and counted; which refusals are audited (the first per address, site and reason,
//! then a summary at most every `limits.refusal_audit_secs`) is [`crate::refusals`]' decision.

use std::net::SocketAddr;

use axum::http::{HeaderMap, StatusCode};

use super::ApiError;
use crate::Store;
use crate::metrics::Endpoint;
use crate::refusals::{Refusal, RefusalKey};
use crate::sites::{AuthedSite, authenticate};

/// AuditSourceID of the store's audit events.
pub const AUDIT_SOURCE: &str = "kizuna-store";

/// The bearer token of a request, if it has one.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(axum::http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then_some(token.trim()).filter(|t| !t.is_empty())
}

/// Authenticates a request or says why not (counts the refusal, and audits it or holds it back for
/// a summary: see [`crate::refusals`]).
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
            let refusal = Refusal {
                key: RefusalKey {
                    ip: peer.ip().to_canonical(),
                    site: d.site.clone().unwrap_or_else(|| "unknown-site".into()),
                    reason: format!("{} {}", d.status, d.error),
                },
                facility: facility.map(str::to_owned),
                detail: format!("{} {}: {} ({})", d.status, d.error, d.message, endpoint),
            };
            store.refusals.refused(refusal).await;
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
