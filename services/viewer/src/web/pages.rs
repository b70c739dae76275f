//! The clinical pages: search, time series, calendar, original message, break glass. Each one
//! checks the session, applies disclosure control and emits its audit event before answering.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Form, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use kizuna_audit::event::EventOutcome;
use kizuna_index::{CommonId, IndexError, RecordKey};

use super::{LoggedIn, html, ip, logged_in, problem};
use crate::access::{PatientAccess, patient_access};
use crate::timeline::{self, Entry, Filter};
use crate::{Viewer, ViewerError, calendar, message};

type Pairs = Query<Vec<(String, String)>>;

fn filter_of(q: &[(String, String)]) -> Filter {
    let mut f = Filter::default();
    for (k, v) in q {
        match k.as_str() {
            "kind" if !v.is_empty() => {
                f.kinds.insert(v.clone());
            }
            "facility" if !v.is_empty() => {
                f.facilities.insert(v.clone());
            }
            _ => {}
        }
    }
    f
}

fn param<'a>(q: &'a [(String, String)], key: &str) -> Option<&'a str> {
    q.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

fn internal(me: Option<&LoggedIn>, e: ViewerError) -> Response {
    tracing::error!(error = %e, "viewer request failed");
    problem(StatusCode::INTERNAL_SERVER_ERROR, me, "The viewer could not answer; the error was logged.")
}

/// Audit failures refuse the page: an access that cannot be recorded is not granted.
fn audited(r: Result<(), ViewerError>, me: &LoggedIn) -> Result<(), Response> {
    r.map_err(|e| internal(Some(me), e))
}

/// A 404 for a patient or record the user asked for by URL, audited first (outcome 4), as a
/// search that finds nobody is: probing IDs through URLs leaves the same trail.
fn not_found(v: &Viewer, me: &LoggedIn, addr: &SocketAddr, id: &str, what: &str, message: &str) -> Response {
    let cid = CommonId::parse(id).ok();
    let what = if cid.is_some() {
        format!("{what}: not found")
    } else {
        let shown: String = id.chars().take(64).collect();
        format!("{what} of patient ID {shown:?}: not a common health ID")
    };
    let audit =
        v.audit.patient_read_not_found(&me.user, &ip(addr), cid.as_ref().map(CommonId::as_str), &what);
    if let Err(r) = audited(audit, me) {
        return r;
    }
    problem(StatusCode::NOT_FOUND, Some(me), message)
}

pub async fn home(
    State(v): State<Arc<Viewer>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    let me = match logged_in(&v, &headers, &addr, "/").await {
        Ok(u) => u,
        Err(r) => return r,
    };
    html::page("Search", Some(&me.user), Some(&me.csrf), html::search_form(&me.user, None)).into_response()
}

pub async fn search(
    State(v): State<Arc<Viewer>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Query(q): Pairs,
) -> Response {
    let me = match logged_in(&v, &headers, &addr, "/").await {
        Ok(u) => u,
        Err(r) => return r,
    };
    let text = param(&q, "q").unwrap_or("").trim().to_owned();
    let by = param(&q, "by").unwrap_or("common");
    let (query, found) = match by {
        "local" => {
            let query = format!("local patient ID {text:?} at facility {}", me.user.facility);
            let found = match RecordKey::new(&me.user.facility, &text) {
                Ok(key) => v.registry.find(&key).await,
                Err(e) => Err(e),
            };
            (query, found)
        }
        _ => {
            let query = format!("common health ID {text:?}");
            let found = match CommonId::parse(&text) {
                Ok(id) => match v.registry.resolve(&id).await {
                    Ok(_) => Ok(Some(id)),
                    Err(IndexError::UnknownCommonId(_)) => Ok(None),
                    Err(e) => Err(e),
                },
                Err(e) => Err(e),
            };
            (query, found)
        }
    };
    let ip = ip(&addr);
    match found {
        Ok(Some(id)) => {
            if let Err(r) = audited(v.audit.search(&me.user, &ip, &query, Some(id.as_str())), &me) {
                return r;
            }
            Redirect::to(&format!("/patients/{id}")).into_response()
        }
        Ok(None) | Err(IndexError::Invalid { .. }) => {
            if let Err(r) = audited(v.audit.search(&me.user, &ip, &query, None), &me) {
                return r;
            }
            let msg = match &found {
                Err(e) => e.to_string(),
                _ => format!("No patient found for {query}."),
            };
            (
                StatusCode::NOT_FOUND,
                html::page("Search", Some(&me.user), Some(&me.csrf), html::search_form(&me.user, Some(&msg))),
            )
                .into_response()
        }
        Err(e) => internal(Some(&me), e.into()),
    }
}

/// The patient as the user may see them, with every shown record (unfiltered).
async fn load_patient(
    v: &Viewer,
    me: &LoggedIn,
    addr: &SocketAddr,
    id: &str,
    what: &str,
) -> Result<(PatientAccess, Vec<Entry>), Response> {
    let cid = CommonId::parse(id).map_err(|e| not_found(v, me, addr, id, what, &e.to_string()))?;
    let access = match patient_access(&v.registry, &me.user, &cid).await {
        Ok(a) => a,
        Err(ViewerError::Index(IndexError::UnknownCommonId(_))) => {
            return Err(not_found(v, me, addr, id, what, &format!("No patient {cid}.")));
        }
        Err(e) => return Err(internal(Some(me), e)),
    };
    let entries = timeline::load(&v.store.pool, &access.keys()).await.map_err(|e| internal(Some(me), e))?;
    Ok((access, entries))
}

pub async fn timeline(
    State(v): State<Arc<Viewer>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Pairs,
) -> Response {
    let me = match logged_in(&v, &headers, &addr, &format!("/patients/{id}")).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    let (access, all) = match load_patient(&v, &me, &addr, &id, "time series").await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let filter = filter_of(&q);
    let shown: Vec<Entry> = all.iter().filter(|e| filter.keeps(e)).cloned().collect();
    let what = format!("time series: {} records from {} facilities", shown.len(), access.shown.len());
    let audit = v.audit.patient_read(&me.user, &ip(&addr), &id, &what, access.uses_break_glass());
    if let Err(r) = audited(audit, &me) {
        return r;
    }
    let body = html::timeline(&access, &me.user, &me.csrf, &v.config.facility_names, &all, &shown, &filter);
    html::page(&format!("Patient {id}"), Some(&me.user), Some(&me.csrf), body).into_response()
}

pub async fn calendar(
    State(v): State<Arc<Viewer>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Pairs,
) -> Response {
    let me = match logged_in(&v, &headers, &addr, &format!("/patients/{id}/calendar")).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    let (access, all) = match load_patient(&v, &me, &addr, &id, "calendar").await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let filter = filter_of(&q);
    let shown: Vec<Entry> = all.into_iter().filter(|e| filter.keeps(e)).collect();
    let ym = match param(&q, "month") {
        Some(m) => match calendar::parse_month(m) {
            Some(ym) => Some(ym),
            None => {
                return problem(StatusCode::BAD_REQUEST, Some(&me), &format!("month {m:?} is not YYYY-MM"));
            }
        },
        None => calendar::newest_month(&shown),
    };
    let month = ym.map(|(y, m)| calendar::month(&shown, y, m));
    let what = match &month {
        Some(m) => format!("calendar {:04}-{:02}", m.year, m.month),
        None => "calendar (no records)".to_owned(),
    };
    let audit = v.audit.patient_read(&me.user, &ip(&addr), &id, &what, access.uses_break_glass());
    if let Err(r) = audited(audit, &me) {
        return r;
    }
    let body = html::calendar(&access, &me.user, &me.csrf, &v.config.facility_names, month.as_ref(), &filter);
    html::page(&format!("Patient {id}: calendar"), Some(&me.user), Some(&me.csrf), body).into_response()
}

pub async fn original(
    State(v): State<Arc<Viewer>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path((id, record)): Path<(String, i64)>,
) -> Response {
    let me = match logged_in(&v, &headers, &addr, &format!("/patients/{id}/records/{record}")).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    let what = format!("original message: record {record}");
    let cid = match CommonId::parse(&id) {
        Ok(c) => c,
        Err(e) => return not_found(&v, &me, &addr, &id, &what, &e.to_string()),
    };
    let access = match patient_access(&v.registry, &me.user, &cid).await {
        Ok(a) => a,
        Err(ViewerError::Index(IndexError::UnknownCommonId(_))) => {
            return not_found(&v, &me, &addr, &id, &what, &format!("No patient {cid}."));
        }
        Err(e) => return internal(Some(&me), e),
    };
    let file = match timeline::file_of(&v.store.pool, record).await {
        Ok(f) => f,
        Err(e) => return internal(Some(&me), e),
    };
    // The record must belong to one of the patient's keys the user may see; anything else is
    // answered exactly like a record that does not exist.
    let Some((facility, patient, _, name)) =
        file.filter(|(f, p, _, _)| access.keys().iter().any(|(kf, kp)| kf == f && kp == p))
    else {
        return not_found(&v, &me, &addr, &id, &what, "No such record for this patient.");
    };
    let what = format!("original message: record {record} of facility {facility} patient {patient}");
    let bg =
        access.shown.iter().any(|(k, a)| k.facility == facility && *a == kizuna_index::Access::BreakGlass);
    if let Err(r) = audited(v.audit.patient_read(&me.user, &ip(&addr), &id, &what, bg), &me) {
        return r;
    }
    let tree = v.config.tree_dir();
    let fac = facility.clone();
    let m = match tokio::task::spawn_blocking(move || message::read(&tree, &facility, &name)).await {
        Ok(Ok(m)) => m,
        Ok(Err(e)) => return internal(Some(&me), e),
        Err(e) => return internal(Some(&me), ViewerError::BadRequest(e.to_string())),
    };
    html::page("Original message", Some(&me.user), Some(&me.csrf), html::original(&id, &fac, record, &m))
        .into_response()
}

#[derive(Deserialize)]
pub struct BreakGlassForm {
    csrf: String,
    reason: String,
}

pub async fn break_glass(
    State(v): State<Arc<Viewer>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(f): Form<BreakGlassForm>,
) -> Response {
    let me = match logged_in(&v, &headers, &addr, &format!("/patients/{id}")).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    // Refused attempts are audited too (outcome 4): an override tried by a role that may not,
    // or posted from outside the session (CSRF), is what an auditor wants to see.
    let refused = |why: &str, message: &str| {
        let reason = format!("{why}; reason given: {}", f.reason.trim());
        let audit = v.audit.break_glass(&me.user, &ip(&addr), &id, &reason, EventOutcome::MinorFailure);
        if let Err(r) = audited(audit, &me) {
            return r;
        }
        problem(StatusCode::FORBIDDEN, Some(&me), message)
    };
    if !kizuna_oidc_rp::constant_time_eq(f.csrf.as_bytes(), me.csrf.as_bytes()) {
        return refused(
            "refused: CSRF check failed",
            "The form was not sent from this session (CSRF check failed).",
        );
    }
    if !me.user.role.may_break_glass() {
        return refused(
            &format!("refused: the {} role may not break glass", me.user.role.as_str()),
            "Your role may not use emergency access.",
        );
    }
    let reason = f.reason.trim();
    if reason.is_empty() {
        return problem(StatusCode::BAD_REQUEST, Some(&me), "Emergency access needs a reason.");
    }
    let cid = match CommonId::parse(&id) {
        Ok(c) => c,
        Err(e) => return problem(StatusCode::NOT_FOUND, Some(&me), &e.to_string()),
    };
    // An override of a patient who does not exist is recorded as the failed attempt it is.
    let attempt = |outcome| v.audit.break_glass(&me.user, &ip(&addr), &id, reason, outcome);
    match v.registry.resolve(&cid).await {
        Ok(_) => {}
        Err(IndexError::UnknownCommonId(_)) => {
            if let Err(r) = audited(attempt(EventOutcome::MinorFailure), &me) {
                return r;
            }
            return problem(StatusCode::NOT_FOUND, Some(&me), &format!("No patient {cid}."));
        }
        Err(e) => return internal(Some(&me), e.into()),
    }
    // The audit event is spooled before access is granted.
    if let Err(r) = audited(attempt(EventOutcome::Success), &me) {
        return r;
    }
    match v
        .registry
        .break_glass(&cid, &me.user.facility, &me.user.subject, reason, v.config.break_glass_minutes)
        .await
    {
        Ok(_) => Redirect::to(&format!("/patients/{id}")).into_response(),
        Err(e) => {
            // No access was opened: a second event says so (the first already claimed success).
            let outcome = match e {
                IndexError::UnknownCommonId(_) => EventOutcome::MinorFailure,
                _ => EventOutcome::SeriousFailure,
            };
            if let Err(r) = audited(attempt(outcome), &me) {
                return r;
            }
            match e {
                IndexError::UnknownCommonId(_) => {
                    problem(StatusCode::NOT_FOUND, Some(&me), &format!("No patient {cid}."))
                }
                e => internal(Some(&me), e.into()),
            }
        }
    }
}
