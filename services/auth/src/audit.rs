//! The auth service's link to the audit service: login and logout events through the spooling
//! `AuditSender`, and registration of pairwise ids (`POST /v1/pseudonyms`) so auditors can resolve
//! them. Registration retries in the background until the audit service acknowledges.

use crate::db::Db;
use crate::directory::User;
use crate::error::{AuthError, Result};
use crate::pairwise;
use kizuna_audit::event::{ActiveParticipant, AuditSourceIdentification, EventOutcome};
use kizuna_audit::pseudonym::PseudonymMapping;
use kizuna_audit::sender::AuditSender;
use kizuna_audit::{AuditEvent, EventKind};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// The audit source id of this service.
pub const SOURCE_ID: &str = "kizuna-auth";

/// How a login attempt ended.
pub enum LoginOutcome<'a> {
    Success { user: &'a User },
    Refused { username: &'a str, user_id: Option<&'a str>, locked: bool },
    TotpRefused { user_id: &'a str, locked: bool },
}

/// Emits events and registers pseudonyms.
#[derive(Clone)]
pub struct AuditHook {
    sender: AuditSender,
    base_url: String,
    token: Option<String>,
    http: reqwest::Client,
    wake: Arc<tokio::sync::Notify>,
}

impl AuditHook {
    /// `base_url` is the audit service, e.g. `http://127.0.0.1:7460`; events spool in `spool_dir`.
    pub fn new(base_url: &str, token: Option<String>, spool_dir: &Path) -> Result<Self> {
        let base_url = base_url.trim_end_matches('/').to_string();
        let mut sender = AuditSender::new(spool_dir, &format!("{base_url}/v1/events"))?;
        if let Some(t) = &token {
            sender = sender.with_token(t);
        }
        Ok(AuditHook {
            sender,
            base_url,
            token,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .map_err(|e| AuthError::invalid("audit_url", e.to_string()))?,
            wake: Arc::new(tokio::sync::Notify::new()),
        })
    }

    /// Start event delivery and pseudonym registration in the background.
    pub fn spawn(&self, db: Db) -> Vec<tokio::task::JoinHandle<()>> {
        let delivery = self.sender.spawn_delivery(Duration::from_secs(5));
        let me = self.clone();
        let registrar = tokio::spawn(async move {
            loop {
                if let Err(e) = me.register_pending(&db).await {
                    tracing::warn!(error = %e, "pairwise id registration with the audit service failed; will retry");
                }
                let _ = tokio::time::timeout(Duration::from_secs(30), me.wake.notified()).await;
            }
        });
        vec![delivery, registrar]
    }

    pub(crate) fn wake_registrar(&self) {
        self.wake.notify_one();
    }

    /// POSTs every unregistered pairwise id, one per request, and marks each once the audit
    /// service answered 2xx. A 409 (the audit service already holds that pairwise id for another
    /// subject; it logged the attempt as a security alert) is final: the id is marked refused and
    /// logged as an error, never retried, and the other ids still register. Returns how many
    /// registered.
    pub async fn register_pending(&self, db: &Db) -> Result<usize> {
        let mut registered = 0;
        for p in pairwise::unregistered(db).await? {
            let body = [PseudonymMapping {
                pairwise_id: p.subject.clone(),
                sector: p.sector.clone(),
                subject_id: p.user_id.clone(),
                display_name: Some(p.display_name.clone()),
            }];
            let mut req = self.http.post(format!("{}/v1/pseudonyms", self.base_url)).json(&body);
            if let Some(t) = &self.token {
                req = req.bearer_auth(t);
            }
            let resp = req.send().await.map_err(|e| AuthError::invalid("audit_url", e.to_string()))?;
            let status = resp.status();
            if status.is_success() {
                pairwise::mark(db, &p.subject, pairwise::Registration::Registered).await?;
                registered += 1;
            } else if status == reqwest::StatusCode::CONFLICT {
                let why = resp.text().await.unwrap_or_default();
                tracing::error!(
                    pairwise_id = %p.subject, sector = %p.sector, user = %p.user_id, answer = %why,
                    "the audit service holds this pairwise id for another subject; not retried (check the audit log's security alerts)"
                );
                pairwise::mark(db, &p.subject, pairwise::Registration::Refused).await?;
            } else {
                return Err(AuthError::invalid(
                    "audit_url",
                    format!("POST /v1/pseudonyms answered {status}"),
                ));
            }
        }
        Ok(registered)
    }

    fn emit(&self, event: AuditEvent) {
        // The spool write is an fsync; a failure is logged, the login is not blocked by audit.
        if let Err(e) = self.sender.send(&event) {
            tracing::error!(error = %e, "could not spool audit event");
        }
    }

    /// A login attempt (success or refusal). The requestor is the user's internal id, which the
    /// audit service resolves like a pairwise id; refusals of unknown users name the typed username.
    pub fn login(&self, outcome: LoginOutcome<'_>, peer: &SocketAddr) {
        let ip = peer.ip().to_string();
        let ev = match outcome {
            LoginOutcome::Success { user } => AuditEvent::new(EventKind::Login, source(Some(&user.facility)))
                .participant(
                    ActiveParticipant::requestor(&user.id).with_name(&user.display_name).with_ip(&ip),
                ),
            LoginOutcome::Refused { username, user_id, locked } => {
                let who = user_id.map(str::to_string).unwrap_or_else(|| format!("unknown-user:{username}"));
                let name = if locked { format!("{username} (locked)") } else { username.to_string() };
                AuditEvent::new(EventKind::Login, source(None))
                    .participant(ActiveParticipant::requestor(&who).with_name(&name).with_ip(&ip))
                    .outcome(EventOutcome::MinorFailure)
            }
            LoginOutcome::TotpRefused { user_id, locked } => AuditEvent::new(EventKind::Login, source(None))
                .participant(
                    ActiveParticipant::requestor(user_id)
                        .with_name(if locked { "wrong TOTP code (locked)" } else { "wrong TOTP code" })
                        .with_ip(&ip),
                )
                .outcome(EventOutcome::MinorFailure),
        };
        self.emit(ev);
    }

    pub fn logout(&self, user: &User, peer: &SocketAddr) {
        self.emit(
            AuditEvent::new(EventKind::Logout, source(Some(&user.facility))).participant(
                ActiveParticipant::requestor(&user.id)
                    .with_name(&user.display_name)
                    .with_ip(&peer.ip().to_string()),
            ),
        );
    }
}

fn source(facility: Option<&str>) -> AuditSourceIdentification {
    AuditSourceIdentification::new(SOURCE_ID, facility)
}
