//! The admin screen's HTTP routes.
//!
//! | method | path | what |
//! |---|---|---|
//! | GET | `/` | one row per site with its health, and the alerts |
//! | GET | `/sites/{site}` | the site's page |
//! | POST | `/sites/{site}/rerequest` | `file`, `sha256`, `csrf`: re-request a quarantined file |
//! | POST | `/sites/{site}/enabled` | `enabled` (`1`/`0`), `csrf` |
//! | POST | `/sites/{site}/rotate-token` | `csrf`: a new token, shown once |
//! | GET | `/healthz` | `ok` |

use std::sync::Arc;

use axum::Router;
use axum::extract::{Form, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use maud::Markup;

use crate::{Monitor, alerts, csrf, health, pages, status};

/// The router.
pub fn router(m: Arc<Monitor>) -> Router {
    Router::new()
        .route("/", get(overview))
        .route("/healthz", get(|| async { "ok" }))
        .route("/sites/{site}", get(site_page))
        .route("/sites/{site}/rerequest", post(rerequest))
        .route("/sites/{site}/enabled", post(set_enabled))
        .route("/sites/{site}/rotate-token", post(rotate_token))
        .with_state(m)
}

/// An HTML answer that makes sure the browser holds a CSRF cookie; returns the token in use.
fn with_csrf(headers: &HeaderMap) -> (String, Option<HeaderValue>) {
    match csrf::cookie_token(headers) {
        Some(t) => (t, None),
        None => {
            let t = csrf::new_token();
            let v = HeaderValue::from_str(&csrf::set_cookie(&t)).ok();
            (t, v)
        }
    }
}

fn html(status: StatusCode, cookie: Option<HeaderValue>, body: Markup) -> Response {
    let mut r = (status, [(header::CACHE_CONTROL, "no-store")], body).into_response();
    if let Some(c) = cookie {
        r.headers_mut().insert(header::SET_COOKIE, c);
    }
    r.headers_mut().insert("x-frame-options", HeaderValue::from_static("DENY"));
    r
}

fn failure(e: impl std::fmt::Display) -> Response {
    tracing::error!(%e, "admin request failed");
    html(StatusCode::INTERNAL_SERVER_ERROR, None, pages::message("Error", &e.to_string()))
}

async fn overview(State(m): State<Arc<Monitor>>, headers: HeaderMap) -> Response {
    let now = jiff::Timestamp::now();
    let (_, cookie) = with_csrf(&headers);
    let facts = match status::all_sites(&m.db).await {
        Ok(f) => f,
        Err(e) => return failure(e),
    };
    let rows: Vec<_> = facts
        .into_iter()
        .map(|f| {
            let fs = health::findings(&f, &m.cfg, now);
            (f, fs)
        })
        .collect();
    let incidents = match alerts::incidents(&m.db, None, 50).await {
        Ok(i) => i,
        Err(e) => return failure(e),
    };
    html(StatusCode::OK, cookie, pages::overview(&rows, &incidents, now))
}

async fn render_site(m: &Monitor, site: &str, headers: &HeaderMap, notice: Option<String>) -> Response {
    let now = jiff::Timestamp::now();
    let (token, cookie) = with_csrf(headers);
    let facts = match status::one_site(&m.db, site).await {
        Ok(Some(f)) => f,
        Ok(None) => {
            return html(
                StatusCode::NOT_FOUND,
                cookie,
                pages::message("No such site", &format!("There is no site {site:?}.")),
            );
        }
        Err(e) => return failure(e),
    };
    let findings = health::findings(&facts, &m.cfg, now);
    let rerequests = match kizuna_store::rerequests::list(&m.db, site, 50).await {
        Ok(r) => r,
        Err(e) => return failure(e),
    };
    let incidents = match alerts::incidents(&m.db, Some(site), 20).await {
        Ok(i) => i,
        Err(e) => return failure(e),
    };
    let page = pages::SitePage {
        facts: &facts,
        findings: &findings,
        rerequests: &rerequests,
        incidents: &incidents,
        csrf: &token,
        now,
        notice,
    };
    html(StatusCode::OK, cookie, pages::site(&page))
}

async fn site_page(State(m): State<Arc<Monitor>>, Path(site): Path<String>, headers: HeaderMap) -> Response {
    render_site(&m, &site, &headers, None).await
}

fn refused(why: &str) -> Response {
    html(StatusCode::FORBIDDEN, None, pages::message("Refused", why))
}

#[derive(serde::Deserialize)]
struct RerequestForm {
    csrf: String,
    file: String,
    #[serde(default)]
    sha256: String,
}

async fn rerequest(
    State(m): State<Arc<Monitor>>,
    Path(site): Path<String>,
    headers: HeaderMap,
    Form(f): Form<RerequestForm>,
) -> Response {
    if let Err(why) = csrf::check(&headers, &f.csrf) {
        return refused(why);
    }
    if f.file.is_empty() || f.file.len() > 1024 {
        return html(
            StatusCode::BAD_REQUEST,
            None,
            pages::message("Bad request", "file: 1 to 1024 characters"),
        );
    }
    match kizuna_store::rerequests::request(&m.db, &site, &f.file, &f.sha256, "admin screen").await {
        Ok(id) => {
            tracing::info!(site, file = f.file, id, "re-request recorded");
            let n = format!(
                "Re-request {id} recorded for {}: the agent picks it up with its next heartbeat.",
                f.file
            );
            render_site(&m, &site, &headers, Some(n)).await
        }
        Err(e) => failure(e),
    }
}

#[derive(serde::Deserialize)]
struct EnabledForm {
    csrf: String,
    enabled: String,
}

async fn set_enabled(
    State(m): State<Arc<Monitor>>,
    Path(site): Path<String>,
    headers: HeaderMap,
    Form(f): Form<EnabledForm>,
) -> Response {
    if let Err(why) = csrf::check(&headers, &f.csrf) {
        return refused(why);
    }
    let on = match f.enabled.as_str() {
        "1" => true,
        "0" => false,
        _ => return html(StatusCode::BAD_REQUEST, None, pages::message("Bad request", "enabled: 1 or 0")),
    };
    match kizuna_store::sites::set_enabled(&m.db, &site, on).await {
        Ok(()) => {
            tracing::info!(site, enabled = on, "site enabled state changed from the admin screen");
            let n = if on { "Site enabled." } else { "Site disabled: its uploads are refused from now on." };
            render_site(&m, &site, &headers, Some(n.into())).await
        }
        Err(e) => failure(e),
    }
}

#[derive(serde::Deserialize)]
struct CsrfForm {
    csrf: String,
}

async fn rotate_token(
    State(m): State<Arc<Monitor>>,
    Path(site): Path<String>,
    headers: HeaderMap,
    Form(f): Form<CsrfForm>,
) -> Response {
    if let Err(why) = csrf::check(&headers, &f.csrf) {
        return refused(why);
    }
    match kizuna_store::sites::rotate_token(&m.db, &site).await {
        Ok(token) => {
            tracing::info!(site, "token rotated from the admin screen");
            let n = format!("New token (shown once; the old one no longer works): {token}");
            render_site(&m, &site, &headers, Some(n)).await
        }
        Err(e) => failure(e),
    }
}
