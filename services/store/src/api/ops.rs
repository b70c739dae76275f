//! `GET /metrics` and `GET /healthz`.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::Store;

pub async fn metrics(State(store): State<Arc<Store>>) -> Response {
    (
        [(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")],
        store.metrics.render(),
    )
        .into_response()
}

/// 200 with the journal position when the store can take uploads; 503 with the reason otherwise.
pub async fn healthz(State(store): State<Arc<Store>>) -> Response {
    let db_ok = sqlx::query("SELECT 1").execute(&store.db.pool).await.is_ok();
    let degraded = store.degraded();
    let ok = db_ok && degraded.is_none();
    let body = serde_json::json!({
        "status": if ok { "ok" } else { "unhealthy" },
        "database": if db_ok { "ok" } else { "unreachable" },
        "degraded": degraded,
        "journal_seq": store.journal.last_seq(),
        "applied_seq": store.applied_watermark(),
        "search_seq": store.search_watermark(),
    });
    (if ok { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE }, Json(body)).into_response()
}
