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
    if let Err(r) = st.record_auditor_query(&auditor, &describe(&pairs), f.patient.as_deref()).await {
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
    if let Err(r) = st.record_auditor_query(&auditor, &describe(&pairs), f.patient.as_deref()).await {
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

/// Rows per page of a CSV export (memory per export stays one page).
const EXPORT_PAGE: u32 = 1000;

/// GET /v1/export.csv?<filters>: every matching event (as of the request), streamed page by page;
/// `limit` and `offset`, when given, cut the export as asked. `X-Total-Count` is the number of
/// matching events; a failure after the first byte aborts the transfer (never a short file that
/// looks complete).
pub async fn get_csv(State(st): State<ApiState>, headers: HeaderMap, Query(pairs): Pairs) -> Response {
    let auditor = match st.check_auditor(&headers, token(&pairs)) {
        Ok(a) => a,
        Err(r) => return r,
    };
    let f = match filter::from_pairs(&pairs) {
        Ok(f) => f,
        Err(e) => return fail(StatusCode::BAD_REQUEST, e),
    };
    let query = format!("export.csv?{}", describe(&pairs));
    if let Err(r) = st.record_auditor_query(&auditor, &query, f.patient.as_deref()).await {
        return r;
    }
    // The log as of now (this export's own record included): later events are not mixed in.
    let head = async {
        let upto = search::last_seq(&st.db).await?;
        let total = search::export_count(&st.db, &f, upto).await?;
        Ok::<_, crate::error::AuditError>((upto, total, search::csv_header()?))
    };
    let (upto, total, header_row) = match head.await {
        Ok(x) => x,
        Err(e) => return fail(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    let remaining = f.limit.map_or(u64::MAX, u64::from);
    let state = Export { db: st.db.clone(), f, upto, cursor: None, remaining, header: Some(header_row) };
    let body = axum::body::Body::from_stream(futures::stream::unfold(state, next_chunk));
    let mut resp = (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (header::CONTENT_DISPOSITION, "attachment; filename=\"audit.csv\""),
        ],
        body,
    )
        .into_response();
    resp.headers_mut().insert("x-total-count", total.into());
    resp
}

/// A CSV export in progress.
struct Export {
    db: crate::db::Db,
    f: search::SearchFilter,
    upto: i64,
    cursor: Option<search::Cursor>,
    /// Rows still to send (`limit`, else unbounded).
    remaining: u64,
    /// The header row, until sent.
    header: Option<String>,
}

/// The next chunk: the header, then one page per call, until a short page.
async fn next_chunk(mut ex: Export) -> Option<(std::io::Result<axum::body::Bytes>, Export)> {
    if let Some(h) = ex.header.take() {
        return Some((Ok(h.into()), ex));
    }
    if ex.remaining == 0 {
        return None;
    }
    let want = ex.remaining.min(u64::from(EXPORT_PAGE)) as u32;
    let offset = if ex.cursor.is_none() { ex.f.offset.unwrap_or(0) } else { 0 };
    let page = search::export_page(&ex.db, &ex.f, ex.upto, ex.cursor, want, offset)
        .await
        .and_then(|rows| Ok((search::csv_rows(&rows)?, rows)));
    match page {
        Ok((_, rows)) if rows.is_empty() => None,
        Ok((text, rows)) => {
            let last = rows.last().expect("not empty");
            ex.cursor = Some((last.event_time.as_microsecond(), last.seq));
            ex.remaining -= rows.len() as u64;
            if (rows.len() as u32) < want {
                ex.remaining = 0;
            }
            Some((Ok(text.into()), ex))
        }
        Err(e) => {
            tracing::error!(error = %e, "CSV export failed part-way; aborting the transfer");
            ex.remaining = 0;
            Some((Err(std::io::Error::other(e.to_string())), ex))
        }
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
    if let Err(r) = st.record_auditor_query(&auditor, &format!("resolve pairwise id {id}"), None).await {
        return r;
    }
    match pseudonym::resolve(&st.db, &auditor, &id).await {
        Ok(Some(m)) => axum::Json(m).into_response(),
        Ok(None) => fail(StatusCode::NOT_FOUND, format!("no subject registered for pairwise id {id:?}")),
        Err(e) => fail(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}
