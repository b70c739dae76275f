//! `POST /api/v1/facilities/{facility}/batches`: one batch of files (framing in `kizuna-wire`).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use kizuna_wire::{BATCH_CONTENT_TYPE, BatchReport, WireError, decode_batch_at_most};

use super::ApiError;
use super::auth::{refuse, require_site};
use crate::{FacilityId, Store, StoreError};

const ENDPOINT: &str = "batches";
/// Oversized bodies up to this size are drained before the 413 is sent (see `batch`).
const LINGER_MAX_BYTES: u64 = 64 << 20;

pub async fn batch(
    State(store): State<Arc<Store>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(facility): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<BatchReport>, ApiError> {
    // The facility's form first: a value such as `%00` must not reach the database (PostgreSQL
    // refuses NUL in text, which made this a 500 instead of a refusal).
    let facility_id = FacilityId::new(&facility)
        .map_err(|e| refuse(&store, ENDPOINT, StatusCode::BAD_REQUEST, "bad_facility", e.to_string()))?;
    let site = require_site(&store, ENDPOINT, &headers, peer, Some(&facility)).await?;
    let facility = facility_id;
    if let Some(why) = store.degraded() {
        return Err(refuse(&store, ENDPOINT, StatusCode::SERVICE_UNAVAILABLE, "store_degraded", why));
    }
    let ctype = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    if ctype != BATCH_CONTENT_TYPE {
        return Err(refuse(
            &store,
            ENDPOINT,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "bad_content_type",
            format!("Content-Type must be {BATCH_CONTENT_TYPE}, not {ctype:?}"),
        ));
    }
    let limits = &store.config.limits;
    let too_large = |what: String| refuse(&store, ENDPOINT, StatusCode::PAYLOAD_TOO_LARGE, "too_large", what);
    let declared =
        headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if let Some(len) = declared.filter(|l| *l > limits.max_body_bytes) {
        // A moderately oversized body is read and discarded first (a lingering close, as nginx
        // does): closing while the client still sends resets the connection, and it would never
        // see the 413 and its reason.
        if len <= LINGER_MAX_BYTES {
            let _ = axum::body::to_bytes(body, len as usize).await;
        }
        return Err(too_large(format!(
            "body of {len} bytes is more than the limit of {}",
            limits.max_body_bytes
        )));
    }
    let bytes = axum::body::to_bytes(body, limits.max_body_bytes as usize)
        .await
        .map_err(|_| too_large(format!("body is more than the limit of {} bytes", limits.max_body_bytes)))?;
    let files =
        decode_batch_at_most(&bytes, limits.max_file_bytes, limits.max_batch_files).map_err(|e| match e {
            WireError::FileTooLarge { .. } | WireError::TooManyFiles { .. } => too_large(e.to_string()),
            _ => refuse(&store, ENDPOINT, StatusCode::BAD_REQUEST, "bad_batch", e.to_string()),
        })?;
    drop(bytes);
    if files.len() > limits.max_batch_files {
        return Err(too_large(format!(
            "{} files is more than the limit of {} per batch",
            files.len(),
            limits.max_batch_files
        )));
    }
    // The batch runs in its own task so that it always finishes: when a client goes away (an agent
    // killed mid-request), hyper drops this handler's future, which would stop the batch at its
    // next await, between the journal commit and the tree, and release its folder locks; a resend
    // would then be journaled and written a second time.
    let task =
        tokio::spawn(async move { crate::ingest::ingest_batch(&store, &site.name, &facility, files).await });
    let report = task.await.map_err(|e| StoreError::Recovery(format!("batch task failed: {e}")))??;
    Ok(Json(report))
}
