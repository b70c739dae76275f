//! The audit service's HTTP API, split by audience: `intake` for the services that emit events,
//! `auditor` for search, counts, CSV and the web UI, `fhir` for IHE ITI-81 style AuditEvent search.

pub mod auditor;
pub mod fhir;
pub mod filter;
pub mod intake;
pub mod ui;

use crate::appender::Appender;
use crate::auditors::{AuditorTokens, SHARED_NAME, same};
use crate::db::Db;
use crate::event::{ActiveParticipant, AuditEvent, AuditSourceIdentification, EventKind, ParticipantObject};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

/// Shared state of the HTTP handlers.
#[derive(Clone)]
pub struct ApiState {
    pub appender: Appender,
    /// Read pool for searches (the appender owns the writer).
    pub db: Db,
    pub intake_token: Option<String>,
    /// Auditor tokens and whose they are; `None` = no check (loopback only).
    pub auditors: Option<AuditorTokens>,
    /// This service's AuditSourceID, used for the events it records about auditors' own searches.
    pub source_id: String,
    /// One pseudonym registration at a time: the table check and its write stay together.
    pub pseudonym_lock: std::sync::Arc<tokio::sync::Mutex<()>>,
}

/// The router with every route.
pub fn router(state: ApiState) -> axum::Router {
    use axum::routing::{get, post};
    axum::Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/v1/events", post(intake::post_events).get(auditor::get_events))
        .route("/v1/pseudonyms", post(intake::post_pseudonyms))
        .route("/v1/pseudonyms/{id}", get(auditor::get_pseudonym))
        .route("/v1/counts", get(auditor::get_counts))
        .route("/v1/export.csv", get(auditor::get_csv))
        .route("/fhir/AuditEvent", get(fhir::search))
        .route("/fhir/AuditEvent/{id}", get(fhir::read))
        .route("/ui", get(ui::page))
        .with_state(state)
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers.get("authorization")?.to_str().ok()?.strip_prefix("Bearer ")
}

fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all("cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|kv| kv.trim().strip_prefix(name)?.strip_prefix('='))
}

/// The answer to a search whose own audit record could not be written (no request data echoed).
pub(crate) const UNRECORDED: &str = "the audit trail cannot record this search now; try again later";

/// An error answer with a plain-text body.
pub(crate) fn fail(status: StatusCode, msg: impl Into<String>) -> Response {
    (status, msg.into()).into_response()
}

// The rejection is the HTTP response itself, returned once per request: its size does not matter.
#[allow(clippy::result_large_err)]
impl ApiState {
    /// The intake role; answers the credential used (`intake-token`, or `loopback-no-token`).
    pub(crate) fn check_intake(&self, headers: &HeaderMap) -> Result<&'static str, Response> {
        match &self.intake_token {
            None => Ok("loopback-no-token"),
            Some(t) if bearer(headers).is_some_and(|b| same(b, t)) => Ok("intake-token"),
            Some(_) => Err(fail(StatusCode::UNAUTHORIZED, "intake requires the service bearer token")),
        }
    }

    /// The auditor role: bearer token, or the `kizuna_audit` cookie, or `token=` in the query
    /// (which the UI turns into the cookie).
    pub(crate) fn check_auditor(
        &self,
        headers: &HeaderMap,
        query_token: Option<&str>,
    ) -> Result<crate::pseudonym::Auditor, Response> {
        let Some(tokens) = &self.auditors else {
            return Ok(crate::pseudonym::Auditor::authenticated(SHARED_NAME));
        };
        let name = [bearer(headers), cookie(headers, "kizuna_audit"), query_token]
            .into_iter()
            .flatten()
            .find_map(|t| tokens.name_of(t));
        match name {
            Some(n) => Ok(crate::pseudonym::Auditor::authenticated(n)),
            None => Err(fail(StatusCode::UNAUTHORIZED, "the auditor role is required")),
        }
    }

    /// Searching the audit trail is itself access to personal data: record it (DICOM 110112 Query)
    /// under the auditor's name, with the patient searched for as its patient object, so that "who
    /// looked at this patient" lists auditors too. Fails closed: when the record cannot be
    /// written, the caller answers 503 and no data.
    pub(crate) async fn record_auditor_query(
        &self,
        auditor: &crate::pseudonym::Auditor,
        query: &str,
        patient: Option<&str>,
    ) -> Result<(), Response> {
        let mut ev = AuditEvent::new(EventKind::Query, AuditSourceIdentification::new(&self.source_id, None))
            .participant(ActiveParticipant::requestor(&auditor.name));
        if let Some(p) = patient.map(str::trim).filter(|p| !p.is_empty()) {
            ev = ev.object(ParticipantObject::patient(p));
        }
        let ev = ev.object(ParticipantObject::query(query));
        self.appender.submit(vec![ev]).await.map(|_| ()).map_err(|e| {
            tracing::error!(error = %e, "could not record the auditor's query; refusing it");
            fail(StatusCode::SERVICE_UNAVAILABLE, UNRECORDED)
        })
    }
}
