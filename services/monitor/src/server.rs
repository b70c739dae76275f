//! The admin screen's HTTP routes.
//!
//! | method | path | what |
//! |---|---|---|
//! | GET | `/` | one row per site with its health, and the alerts |
//! | GET | `/sites/{site}` | the site's page |
//! | POST | `/sites/{site}/rerequest` | `file`, `sha256`, `csrf`: re-request a quarantined file |
//! | POST | `/sites/{site}/enabled` | `enabled` (`1`/`0`), `csrf` |
//! | POST | `/sites/{site}/rotate-token` | `csrf`: a new token, shown once |
//! | GET | `/healthz` | `ok`; 503 with the reasons while the alert checks fail, alert mail is not delivered, or the store is down |
//! | GET | `/metrics` | Prometheus text: mail delivered/failed, mail and store state |
//!
//! Plus the login routes of [`crate::login`]. Every route but `/healthz` and those passes the
//! [`access::gate`]; site pages viewed and actions done are audited ([`crate::audit`]).

use std::sync::Arc;

use axum::extract::{Form, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};
use maud::Markup;

use crate::access::{self, Visitor};
use crate::{Monitor, alerts, audit, csrf, health, login, pages, status};

/// The router.
pub fn router(m: Arc<Monitor>) -> Router {
    let gated = Router::new()
        .route("/", get(overview))
        .route("/sites/{site}", get(site_page))
        .route("/sites/{site}/rerequest", post(rerequest))
        .route("/sites/{site}/enabled", post(set_enabled))
        .route("/sites/{site}/rotate-token", post(rotate_token))
        .route_layer(axum::middleware::from_fn_with_state(m.clone(), access::gate));
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .merge(login::routes())
        .merge(gated)
        .with_state(m)
}

/// `ok`, or 503 with one line per reason while the scheduled alert checks fail, alert mail is
/// not delivered or the store is down (a screen whose alerts reach nobody must not look healthy).
async fn healthz(State(m): State<Arc<Monitor>>) -> Response {
    let problems = m.problems();
    if problems.is_empty() {
        (StatusCode::OK, "ok").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, problems.join("\n")).into_response()
    }
}

/// The alerting path's state in Prometheus text format (no site or recipient names).
async fn metrics(State(m): State<Arc<Monitor>>) -> Response {
    let mail = m.mailer.stats();
    let failures = m.checks.lock().unwrap_or_else(std::sync::PoisonError::into_inner).failures;
    let store_up = m.store_down.lock().unwrap_or_else(std::sync::PoisonError::into_inner).is_none();
    let body = format!(
        "# HELP kizuna_monitor_mail_delivered_total Alert and recovery mail accepted by the relay, per recipient.\n\
         # TYPE kizuna_monitor_mail_delivered_total counter\nkizuna_monitor_mail_delivered_total {}\n\
         # HELP kizuna_monitor_mail_failures_total Deliveries to a recipient that failed (refused, relay down).\n\
         # TYPE kizuna_monitor_mail_failures_total counter\nkizuna_monitor_mail_failures_total {}\n\
         # HELP kizuna_monitor_mail_owed Recipients still owed a mail the others got (retried each check).\n\
         # TYPE kizuna_monitor_mail_owed gauge\nkizuna_monitor_mail_owed {}\n\
         # HELP kizuna_monitor_mail_ok 1 while the relay is reachable and no recipient is refused.\n\
         # TYPE kizuna_monitor_mail_ok gauge\nkizuna_monitor_mail_ok {}\n\
         # HELP kizuna_monitor_store_up 0 while the store's /healthz fails (as of the last check).\n\
         # TYPE kizuna_monitor_store_up gauge\nkizuna_monitor_store_up {}\n\
         # HELP kizuna_monitor_check_failures Alert checks failed in a row.\n\
         # TYPE kizuna_monitor_check_failures gauge\nkizuna_monitor_check_failures {}\n",
        mail.delivered_total,
        mail.failures_total,
        mail.owed,
        u8::from(mail.ok),
        u8::from(store_up),
        failures,
    );
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
}

/// An HTML answer that makes sure the browser holds a CSRF cookie; returns the token in use.
pub(crate) fn with_csrf(headers: &HeaderMap) -> (String, Option<HeaderValue>) {
    match csrf::cookie_token(headers) {
        Some(t) => (t, None),
        None => {
            let t = csrf::new_token();
            let v = HeaderValue::from_str(&csrf::set_cookie(&t)).ok();
            (t, v)
        }
    }
}

pub(crate) fn html(status: StatusCode, cookie: Option<HeaderValue>, body: Markup) -> Response {
    let mut r = (status, [(header::CACHE_CONTROL, "no-store")], body).into_response();
    if let Some(c) = cookie {
        r.headers_mut().insert(header::SET_COOKIE, c);
    }
    r.headers_mut().insert("x-frame-options", HeaderValue::from_static("DENY"));
    r
}

fn failure(e: impl Into<crate::MonitorError>) -> Response {
    let e: crate::MonitorError = e.into();
    tracing::error!(%e, "admin request failed");
    // The store's IndexDB cannot be read: say so (503), not a bare "Error".
    if matches!(e, crate::MonitorError::Db(_) | crate::MonitorError::Store(_)) {
        return html(
            StatusCode::SERVICE_UNAVAILABLE,
            None,
            pages::message(
                "The store's IndexDB cannot be read",
                &format!(
                    "The admin screen cannot read the store's database, so it cannot show the sites' state \
                     (and the alert checks fail too): {e}"
                ),
            ),
        );
    }
    html(StatusCode::INTERNAL_SERVER_ERROR, None, pages::message("Error", &e.to_string()))
}

async fn overview(
    State(m): State<Arc<Monitor>>,
    Extension(v): Extension<Visitor>,
    headers: HeaderMap,
) -> Response {
    let now = jiff::Timestamp::now();
    let (token, cookie) = with_csrf(&headers);
    let facts = match status::all_sites(&m.db, &m.cfg).await {
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
    let who = v.name.as_deref().map(|name| pages::Who { name, csrf: &token });
    html(StatusCode::OK, cookie, pages::overview(&rows, &incidents, &m.problems(), now, who))
}

/// The site's page; a plain view (`notice` none) is audited as a query by `v`.
async fn render_site(
    m: &Monitor,
    v: &Visitor,
    site: &str,
    headers: &HeaderMap,
    notice: Option<String>,
) -> Response {
    let now = jiff::Timestamp::now();
    let (token, cookie) = with_csrf(headers);
    let facts = match status::one_site(&m.db, site, &m.cfg).await {
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
    if notice.is_none() {
        m.audit.emit(audit::site_page(&v.actor, site)).await;
    }
    let page = pages::SitePage {
        facts: &facts,
        findings: &findings,
        rerequests: &rerequests,
        incidents: &incidents,
        csrf: &token,
        user: v.name.as_deref(),
        now,
        notice,
    };
    html(StatusCode::OK, cookie, pages::site(&page))
}

async fn site_page(
    State(m): State<Arc<Monitor>>,
    Extension(v): Extension<Visitor>,
    Path(site): Path<String>,
    headers: HeaderMap,
) -> Response {
    render_site(&m, &v, &site, &headers, None).await
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
    Extension(v): Extension<Visitor>,
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
    let by = match &v.name {
        Some(name) => format!("admin screen ({name})"),
        None => "admin screen".to_owned(),
    };
    match kizuna_store::rerequests::request(&m.db, &site, &f.file, &f.sha256, &by).await {
        Ok(id) => {
            tracing::info!(site, file = f.file, id, "re-request recorded");
            m.audit
                .emit(audit::site_change(&v.actor, &site, &format!("re-request of file {}", f.file)))
                .await;
            let n = format!(
                "Re-request {id} recorded for {}: the agent picks it up with its next heartbeat.",
                f.file
            );
            render_site(&m, &v, &site, &headers, Some(n)).await
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
    Extension(v): Extension<Visitor>,
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
            let change = if on { "site enabled" } else { "site disabled" };
            m.audit.emit(audit::site_change(&v.actor, &site, change)).await;
            let n = if on { "Site enabled." } else { "Site disabled: its uploads are refused from now on." };
            render_site(&m, &v, &site, &headers, Some(n.into())).await
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
    Extension(v): Extension<Visitor>,
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
            m.audit.emit(audit::site_change(&v.actor, &site, "upload token rotated")).await;
            let n = format!("New token (shown once; the old one no longer works): {token}");
            render_site(&m, &v, &site, &headers, Some(n)).await
        }
        Err(e) => failure(e),
    }
}
