//! The store's HTTP API. Site-facing endpoints (`upload`, `agent`) authenticate every request;
//! operator endpoints (`ops`) serve metrics and health.
//!
//! | method | path | body | answer |
//! |---|---|---|---|
//! | POST | `/api/v1/facilities/{facility}/batches` | `application/x-kizuna-batch` | `BatchReport` JSON |
//! | POST | `/api/v1/heartbeat` | `Heartbeat` JSON | `{"ok":true}` |
//! | POST | `/api/v1/daily-log` | `DailyLog` JSON | `{"ok":true}` |
//! | GET | `/metrics` | | Prometheus text |
//! | GET | `/healthz` | | JSON status |
//!
//! Every refusal is JSON `{"error": "<kind>", "message": "<sentence>"}` with a 4xx/5xx status.

mod agent;
mod auth;
mod ops;
mod upload;

pub use auth::AUDIT_SOURCE;

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use crate::Store;

/// A refusal, answered as JSON.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub error: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, error: &'static str, message: impl Into<String>) -> Self {
        Self { status, error, message: message.into() }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(serde_json::json!({ "error": self.error, "message": self.message })))
            .into_response()
    }
}

impl From<crate::StoreError> for ApiError {
    fn from(e: crate::StoreError) -> Self {
        tracing::error!(%e, "request failed");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "store_error", e.to_string())
    }
}

/// The router. The caller must serve it with `into_make_service_with_connect_info::<SocketAddr>()`:
/// the source address check needs the peer address.
pub fn router(store: Arc<Store>) -> Router {
    Router::new()
        .route("/api/v1/facilities/{facility}/batches", post(upload::batch))
        .route("/api/v1/heartbeat", post(agent::heartbeat))
        .route("/api/v1/daily-log", post(agent::daily_log))
        .route("/metrics", get(ops::metrics))
        .route("/healthz", get(ops::healthz))
        // Limits are enforced by the handlers, after authentication and with JSON answers.
        .layer(axum::extract::DefaultBodyLimit::disable())
        .with_state(store)
}
