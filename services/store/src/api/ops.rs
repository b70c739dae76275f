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
/// The database is `ok` only if it answers and its latest write transaction did not fail (a full
/// disk still answers `SELECT 1`); `database_error` then says why.
pub async fn healthz(State(store): State<Arc<Store>>) -> Response {
    let reachable = sqlx::query("SELECT 1").execute(&store.db.pool).await;
    let (database, database_error) = match (reachable, store.db.write_failure()) {
        (Err(e), _) => ("unreachable", Some(kizuna_db::error_text(&e))),
        (Ok(_), Some(why)) => ("writes_failing", Some(why)),
        (Ok(_), None) => ("ok", None),
    };
    let degraded = store.degraded();
    let ok = database == "ok" && degraded.is_none();
    let body = serde_json::json!({
        "status": if ok { "ok" } else { "unhealthy" },
        "database": database,
        "database_error": database_error,
        "degraded": degraded,
        "journal_seq": store.journal.last_seq(),
        "applied_seq": store.applied_watermark(),
        "search_seq": store.search_watermark(),
    });
    (if ok { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE }, Json(body)).into_response()
}
