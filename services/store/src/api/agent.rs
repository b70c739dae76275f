//! `POST /api/v1/heartbeat` and `POST /api/v1/daily-log`: what the agent reports besides files.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode};
use kizuna_wire::{DailyLog, Heartbeat, HeartbeatAnswer};

use super::ApiError;
use super::auth::{refuse, require_site};
use crate::Store;
use crate::agent_reports::{check_daily_log, check_heartbeat, record_daily_log, record_heartbeat};
use crate::metrics::SiteLabel;

/// Reports are small; anything larger than this is refused.
const MAX_REPORT_BYTES: usize = 4 << 20;

async fn read_json<T: serde::de::DeserializeOwned>(
    store: &Store,
    endpoint: &'static str,
    body: axum::body::Body,
) -> Result<T, ApiError> {
    let bytes: Bytes = axum::body::to_bytes(body, MAX_REPORT_BYTES).await.map_err(|_| {
        refuse(
            store,
            endpoint,
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!("report is over {MAX_REPORT_BYTES} bytes"),
        )
    })?;
    serde_json::from_slice(&bytes)
        .map_err(|e| refuse(store, endpoint, StatusCode::BAD_REQUEST, "bad_json", format!("{endpoint}: {e}")))
}

pub async fn heartbeat(
    State(store): State<Arc<Store>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Result<Json<HeartbeatAnswer>, ApiError> {
    let site = require_site(&store, "heartbeat", &headers, peer, None).await?;
    let hb: Heartbeat = read_json(&store, "heartbeat", body).await?;
    check_heartbeat(&hb)
        .map_err(|e| refuse(&store, "heartbeat", StatusCode::BAD_REQUEST, "bad_report", e.0))?;
    record_heartbeat(
        &store.db,
        &site.name,
        &hb,
        &peer.ip().to_string(),
        store.config.limits.heartbeat_history_days,
    )
    .await?;
    crate::rerequests::record_outcomes(&store.db, &site.name, &hb.rerequests_done).await?;
    let rerequests = crate::rerequests::pending(&store.db, &site.name).await?;
    store.metrics.heartbeats.get_or_create(&SiteLabel { site: site.name }).inc();
    Ok(Json(HeartbeatAnswer { ok: true, rerequests }))
}

pub async fn daily_log(
    State(store): State<Arc<Store>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Result<Json<serde_json::Value>, ApiError> {
    let site = require_site(&store, "daily-log", &headers, peer, None).await?;
    let log: DailyLog = read_json(&store, "daily-log", body).await?;
    check_daily_log(&log)
        .map_err(|e| refuse(&store, "daily-log", StatusCode::BAD_REQUEST, "bad_report", e.0))?;
    record_daily_log(&store.db, &site.name, &log).await?;
    store.metrics.daily_logs.get_or_create(&SiteLabel { site: site.name }).inc();
    Ok(Json(serde_json::json!({ "ok": true })))
}
