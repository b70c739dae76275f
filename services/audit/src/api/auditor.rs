//! The auditor's JSON and CSV API.

use super::{ApiState, fail, filter};
use crate::pseudonym;
use crate::search::{self, CountBy};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

type Pairs = Query<Vec<(String, String)>>;

fn token(pairs: &[(String, String)]) -> Option<&str> {
    pairs.iter().find(|(k, _)| k == "token").map(|(_, v)| v.as_str())
}

fn describe(pairs: &[(String, String)]) -> String {
    pairs
        .iter()
        .filter(|(k, v)| k != "token" && !v.is_empty())
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// GET /v1/events?user=&patient=&facility=&event_type=&from=&to=&outcome=&limit=
pub async fn get_events(State(st): State<ApiState>, headers: HeaderMap, Query(pairs): Pairs) -> Response {
    let auditor = match st.check_auditor(&headers, token(&pairs)) {
        Ok(a) => a,
        Err(r) => return r,
    };
    let f = match filter::from_pairs(&pairs) {
        Ok(f) => f,
        Err(e) => return fail(StatusCode::BAD_REQUEST, e),
    };
    if let Err(r) = st.record_auditor_query(&auditor, &describe(&pairs)).await {
        return r;
    }
    match search::search(&st.db, &f).await {
        Ok(rows) => axum::Json(rows).into_response(),
        Err(e) => fail(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

/// GET /v1/counts?by=day|user|patient&<filters>
pub async fn get_counts(State(st): State<ApiState>, headers: HeaderMap, Query(pairs): Pairs) -> Response {
    let auditor = match st.check_auditor(&headers, token(&pairs)) {
        Ok(a) => a,
        Err(r) => return r,
    };
    let by = match pairs.iter().find(|(k, _)| k == "by").map(|(_, v)| v.as_str()) {
        Some("day") | None => CountBy::Day,
        Some("user") => CountBy::User,
        Some("patient") => CountBy::Patient,
        Some(other) => {
            return fail(StatusCode::BAD_REQUEST, format!("by={other:?}: expected day, user or patient"));
        }
    };
    let f = match filter::from_pairs(&pairs) {
        Ok(f) => f,
        Err(e) => return fail(StatusCode::BAD_REQUEST, e),
    };
    if let Err(r) = st.record_auditor_query(&auditor, &describe(&pairs)).await {
        return r;
    }
    match search::count(&st.db, &f, by).await {
        Ok(rows) => axum::Json(
            rows.into_iter().map(|(k, n)| serde_json::json!({"key": k, "count": n})).collect::<Vec<_>>(),
        )
        .into_response(),
        Err(e) => fail(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

/// GET /v1/export.csv?<filters>
pub async fn get_csv(State(st): State<ApiState>, headers: HeaderMap, Query(pairs): Pairs) -> Response {
    let auditor = match st.check_auditor(&headers, token(&pairs)) {
        Ok(a) => a,
        Err(r) => return r,
    };
    let mut f = match filter::from_pairs(&pairs) {
        Ok(f) => f,
        Err(e) => return fail(StatusCode::BAD_REQUEST, e),
    };
    f.limit = Some(f.limit.unwrap_or(10_000));
    if let Err(r) = st.record_auditor_query(&auditor, &format!("export.csv?{}", describe(&pairs))).await {
        return r;
    }
    match search::search(&st.db, &f).await.and_then(|rows| search::to_csv(&rows)) {
        Ok(csv) => (
            [
                (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
                (header::CONTENT_DISPOSITION, "attachment; filename=\"audit.csv\""),
            ],
            csv,
        )
            .into_response(),
        Err(e) => fail(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

/// GET /v1/pseudonyms/{pairwise_id}: who is behind a pairwise id (auditors only).
pub async fn get_pseudonym(
    State(st): State<ApiState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(pairs): Pairs,
) -> Response {
    let auditor = match st.check_auditor(&headers, token(&pairs)) {
        Ok(a) => a,
        Err(r) => return r,
    };
    if let Err(r) = st.record_auditor_query(&auditor, &format!("resolve pairwise id {id}")).await {
        return r;
    }
    match pseudonym::resolve(&st.db, &auditor, &id).await {
        Ok(Some(m)) => axum::Json(m).into_response(),
        Ok(None) => fail(StatusCode::NOT_FOUND, format!("no subject registered for pairwise id {id:?}")),
        Err(e) => fail(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}
