//! The site API: axum over TLS (rustls, TLS 1.3, the centre's self-signed key that tokens pin).
//!
//! - `POST /v1/enroll/preview` and `POST /v1/enroll`: token-authenticated enrollment.
//! - `GET /v1/view?after=V&have=HASH&wait=S`: the site's signed view, long-polled: answered at
//!   once when the site's view differs from `have` at a version above `after`, else when it
//!   changes, else `204` after `wait` seconds (at most `long_poll_max_secs`).
//! - `POST /v1/keys`: register new or rotated public keys. A rotated key takes effect at a switch
//!   time (`rotation_switch_delay_secs` from now) that every view listing it carries.
//! - `GET /v1/health`.
//!
//! `kizuna policy` and `kizuna site` write the database directly; the server notices their
//! changes by polling the version every `change_poll_ms` and wakes every waiting site.
//!
//! Enrollments and key registrations are audited as security configuration changes, refused
//! tokens and credentials as node authentication failures (at most one event per address and
//! reason every [`REFUSAL_REPORT_EVERY`](crate::refusals::REFUSAL_REPORT_EVERY), so a revoked site that keeps polling is reported, not
//! flooded).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::connect_info::Connected;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::serve::IncomingStream;
use axum::{Json, Router};
use kizuna_audit::emitter::AuditEmitter;
use netd::policy::Policy;
use netd::registry::protocol::*;
use netd::registry::unix_now;
use netd::registry::view::{FORMAT, KeySwitch, SignedView, ViewPayload};

use crate::refusals::RefusalLimiter;
use kizuna_listen::tls::TlsListener;
use serde::Deserialize;
use tokio::net::TcpListener;
use tokio::sync::{Mutex, watch};

use crate::audit;
use crate::config::RegistryConfig;
use crate::db::Db;
use crate::error::{RegistryError, Result};
use crate::keys::CentreKeys;
use crate::views::{self, EnrolledKeys};
use crate::{policies, sites};

/// Everything a view is computed from, at one version.
struct Snapshot {
    generation: u64,
    policy: Option<(u64, Policy)>,
    enrolled: EnrolledKeys,
    switches: Vec<KeySwitch>,
}

struct Inner {
    db: Db,
    keys: CentreKeys,
    audit: AuditEmitter,
    /// Which refusals were reported to the audit service, and when.
    refusals: std::sync::Mutex<RefusalLimiter>,
    long_poll_max: Duration,
    /// Registry policy `rotation_switch_delay_secs`.
    switch_delay_secs: u64,
    generation: watch::Sender<u64>,
    cache: Mutex<Option<Arc<Snapshot>>>,
}

type Shared = Arc<Inner>;

impl Inner {
    /// Audit a refused token or credential (rate-limited per address and reason), then hand the
    /// error back for the answer.
    async fn refused(&self, claimed: Option<&str>, peer: &PeerAddr, e: RegistryError) -> RegistryError {
        if matches!(e, RegistryError::Unauthorized(_) | RegistryError::Forbidden(_) | RegistryError::Gone(_))
        {
            let ip = peer.0.ip().to_string();
            let reason = e.to_string();
            let report = self.refusals.lock().unwrap_or_else(|p| p.into_inner()).should_report(
                &ip,
                &reason,
                Instant::now(),
            );
            if report {
                self.audit.emit(audit::refused(claimed, &ip, &reason)).await;
            }
        }
        e
    }

    fn notify(&self, generation: u64) {
        self.generation.send_if_modified(|g| {
            if generation > *g {
                *g = generation;
                true
            } else {
                false
            }
        });
    }

    /// The state at the newest known version (cached per version). The version is read
    /// before the data, so a view never claims a version newer than its content.
    async fn snapshot(&self) -> Result<Arc<Snapshot>> {
        let known = *self.generation.borrow();
        let mut cache = self.cache.lock().await;
        if let Some(s) = cache.as_ref().filter(|s| s.generation >= known) {
            return Ok(s.clone());
        }
        let generation = self.db.generation().await?;
        let snap = Arc::new(Snapshot {
            generation,
            policy: policies::active(&self.db).await?,
            enrolled: sites::enrolled_keys(&self.db).await?,
            switches: sites::key_switches(&self.db).await?,
        });
        *cache = Some(snap.clone());
        drop(cache);
        self.notify(generation);
        Ok(snap)
    }
}

/// An error answer: status and `{"error": "..."}`.
struct ApiError(RegistryError);

impl From<RegistryError> for ApiError {
    fn from(e: RegistryError) -> Self {
        ApiError(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = match &self.0 {
            RegistryError::NotFound(_) => StatusCode::NOT_FOUND,
            RegistryError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            RegistryError::Forbidden(_) => StatusCode::FORBIDDEN,
            RegistryError::Gone(_) => StatusCode::GONE,
            RegistryError::Conflict(_) | RegistryError::Policy(_) => StatusCode::CONFLICT,
            RegistryError::BadRequest(_) => StatusCode::BAD_REQUEST,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        if status == StatusCode::INTERNAL_SERVER_ERROR {
            tracing::error!(error = %self.0, "site API request failed");
        }
        (status, Json(ErrorBody { error: self.0.to_string() })).into_response()
    }
}

/// A request body or query that parsed, else a 400 with `{"error": ...}` (axum's own answer is
/// plain text, 415 or 422).
fn parsed<T, R: std::fmt::Display>(r: std::result::Result<T, R>) -> Result<T> {
    r.map_err(|e| RegistryError::BadRequest(format!("malformed request: {e}")))
}

/// The peer address of a TLS connection (axum's `ConnectInfo`).
#[derive(Debug, Clone, Copy)]
pub struct PeerAddr(pub SocketAddr);

impl Connected<IncomingStream<'_, TlsListener>> for PeerAddr {
    fn connect_info(stream: IncomingStream<'_, TlsListener>) -> Self {
        PeerAddr(*stream.remote_addr())
    }
}

fn bearer(headers: &HeaderMap) -> Result<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(|| RegistryError::Unauthorized("missing site credential (Authorization: Bearer)".into()))
}

/// The site behind the request's bearer credential; a refusal is audited, naming the site when
/// the credential is one it was issued (a revoked site).
async fn authenticated(r: &Inner, peer: &PeerAddr, headers: &HeaderMap) -> Result<netd::policy::SiteName> {
    let credential = match bearer(headers) {
        Ok(c) => c,
        Err(e) => return Err(r.refused(None, peer, e).await),
    };
    match sites::authenticate(&r.db, credential).await {
        Ok(site) => Ok(site),
        Err(e) => {
            let claimed = match e {
                RegistryError::Forbidden(_) => sites::credential_site(&r.db, credential).await?,
                _ => None,
            };
            Err(r.refused(claimed.as_deref(), peer, e).await)
        }
    }
}

async fn health() -> &'static str {
    "ok\n"
}

async fn preview(
    State(r): State<Shared>,
    ConnectInfo(peer): ConnectInfo<PeerAddr>,
    req: std::result::Result<Json<PreviewRequest>, JsonRejection>,
) -> Result<Json<PreviewResponse>, ApiError> {
    let Json(req) = parsed(req)?;
    let segments = match sites::preview(&r.db, &req.site, &req.secret).await {
        Ok(s) => s,
        Err(e) => return Err(r.refused(Some(&req.site), &peer, e).await.into()),
    };
    Ok(Json(PreviewResponse { site: req.site, segments, signing_key: r.keys.signing_public() }))
}

async fn enroll(
    State(r): State<Shared>,
    ConnectInfo(peer): ConnectInfo<PeerAddr>,
    req: std::result::Result<Json<EnrollRequest>, JsonRejection>,
) -> Result<Json<EnrollResponse>, ApiError> {
    let Json(req) = parsed(req)?;
    let (credential, version) = match sites::enroll(&r.db, &req.site, &req.secret, &req.keys).await {
        Ok(x) => x,
        Err(e) => return Err(r.refused(Some(&req.site), &peer, e).await.into()),
    };
    r.notify(version);
    let ip = peer.0.ip().to_string();
    // The enrolment is committed and its token used up: only the credential may follow. Noting
    // where the router was seen is best effort (a failure here once left the router without its
    // credential, to be provisioned again).
    match req.site.parse() {
        Ok(name) => {
            if let Err(e) = sites::observe(&r.db, &name, &ip).await {
                tracing::warn!(site = %req.site, error = %e, "could not note where the enrolled router was seen");
            }
        }
        Err(e) => tracing::warn!(site = %req.site, error = %e, "enrolled site name does not parse"),
    }
    tracing::info!(site = %req.site, from = %ip, version, "site enrolled");
    let segments = req.keys.keys().map(|s| s.as_str()).collect::<Vec<_>>().join(",");
    r.audit
        .emit(audit::site_change(
            &req.site,
            &ip,
            &format!("site enrolled at version {version}: keys for {segments}"),
        ))
        .await;
    Ok(Json(EnrollResponse { site: req.site, credential, signing_key: r.keys.signing_public(), version }))
}

async fn register_keys(
    State(r): State<Shared>,
    ConnectInfo(peer): ConnectInfo<PeerAddr>,
    headers: HeaderMap,
    req: std::result::Result<Json<KeysRequest>, JsonRejection>,
) -> Result<Json<KeysResponse>, ApiError> {
    let site = authenticated(&r, &peer, &headers).await?;
    let Json(req) = parsed(req)?;
    let done = sites::register_keys(&r.db, &site, &req.keys, r.switch_delay_secs).await?;
    let (version, switch_unix) = (done.version, done.switch_unix);
    if done.changed.is_empty() {
        // Registered already: no new version, nothing to wake or audit.
        return Ok(Json(KeysResponse { version, switch_unix }));
    }
    r.notify(version);
    tracing::info!(site = %site, segments = ?done.changed, version, switch_unix, "keys registered");
    let segments = done.changed.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(",");
    r.audit
        .emit(audit::site_change(
            site.as_str(),
            &peer.0.ip().to_string(),
            &match switch_unix {
                Some(t) => format!("keys rotated at version {version}, switch at UNIX time {t}: {segments}"),
                None => format!("keys registered at version {version}: {segments}"),
            },
        ))
        .await;
    Ok(Json(KeysResponse { version, switch_unix }))
}

#[derive(Debug, Deserialize)]
struct ViewQuery {
    after: Option<u64>,
    have: Option<String>,
    #[serde(default)]
    wait: u64,
}

async fn view(
    State(r): State<Shared>,
    ConnectInfo(peer): ConnectInfo<PeerAddr>,
    headers: HeaderMap,
    q: std::result::Result<Query<ViewQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let site = authenticated(&r, &peer, &headers).await?;
    let Query(q) = parsed(q)?;
    // Best effort, as in `enroll`: the view does not depend on where the site was seen.
    if let Err(e) = sites::observe(&r.db, &site, &peer.0.ip().to_string()).await {
        tracing::warn!(site = %site, error = %e, "could not note where the site was seen");
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(q.wait).min(r.long_poll_max);
    let mut changes = r.generation.subscribe();
    loop {
        changes.borrow_and_update();
        let snap = r.snapshot().await?;
        if q.after.is_none_or(|a| snap.generation > a) {
            let (_, policy) = snap
                .policy
                .as_ref()
                .ok_or_else(|| RegistryError::Conflict("the registry holds no policy yet".into()))?;
            let (view, missing) = views::build(policy, &snap.enrolled, &site).map_err(|e| match e {
                views::ViewError::NotInPolicy(_) => RegistryError::NotFound(e.to_string()),
                views::ViewError::NotEnrolled(_) => RegistryError::Forbidden(e.to_string()),
                _ => RegistryError::Conflict(e.to_string()),
            })?;
            // The switches of keys this view lists (rotations of its peers and of the site itself).
            let key_switches: Vec<KeySwitch> = snap
                .switches
                .iter()
                .filter(|sw| {
                    view.sites.iter().any(|s| s.name.as_str() == sw.site && s.keys.contains_key(&sw.segment))
                })
                .cloned()
                .collect();
            let content_hash = ViewPayload::hash_content(&view, &missing);
            if q.have.as_deref() != Some(content_hash.as_str()) {
                let payload = ViewPayload {
                    format: FORMAT.into(),
                    site: site.to_string(),
                    version: snap.generation,
                    issued_unix: unix_now(),
                    content_hash,
                    missing_keys: missing,
                    policy: view,
                    key_switches,
                };
                let signed: SignedView = SignedView::sign(&r.keys.signing, &payload);
                return Ok(Json(signed).into_response());
            }
        }
        match tokio::time::timeout_at(deadline, changes.changed()).await {
            Ok(Ok(())) => continue,
            Ok(Err(_)) => return Err(RegistryError::Conflict("registry shutting down".into()).into()),
            Err(_) => return Ok(StatusCode::NO_CONTENT.into_response()),
        }
    }
}

/// A running registry site API.
pub struct Running {
    pub addr: SocketAddr,
    pub pin: String,
    task: tokio::task::JoinHandle<()>,
    poller: tokio::task::JoinHandle<()>,
}

impl Running {
    /// Stop serving (tests: "the registry is down").
    pub fn stop(self) {
        self.task.abort();
        self.poller.abort();
    }

    /// Serve until the task ends.
    pub async fn wait(self) {
        let _ = self.task.await;
        self.poller.abort();
    }
}

/// Bind `cfg.listen` and serve the site API in the background.
pub async fn start(cfg: &RegistryConfig, db: Db) -> Result<Running> {
    let keys = CentreKeys::load_or_generate(&cfg.data_dir)?;
    let acceptor = keys.tls_acceptor()?;
    let pin = keys.pin.clone();
    let tcp = TcpListener::bind(&cfg.listen).await.map_err(|e| RegistryError::io(cfg.listen.as_ref(), e))?;
    let listener = TlsListener::new(tcp, acceptor).map_err(|e| RegistryError::io(cfg.listen.as_ref(), e))?;
    let addr = listener.local();
    let generation = db.generation().await?;
    let audit = AuditEmitter::from_config(&cfg.audit)?;
    let inner = Arc::new(Inner {
        db: db.clone(),
        keys,
        audit,
        refusals: std::sync::Mutex::new(RefusalLimiter::default()),
        long_poll_max: Duration::from_secs(cfg.long_poll_max_secs),
        switch_delay_secs: cfg.rotation_switch_delay_secs,
        generation: watch::Sender::new(generation),
        cache: Mutex::new(None),
    });
    let poll_every = Duration::from_millis(cfg.change_poll_ms.max(50));
    let poller = {
        let inner = inner.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(poll_every).await;
                match inner.db.generation().await {
                    Ok(g) => inner.notify(g),
                    Err(e) => tracing::warn!(error = %e, "reading the registry version failed"),
                }
            }
        })
    };
    let app = Router::new()
        .route(PATH_HEALTH, get(health))
        .route(PATH_PREVIEW, post(preview))
        .route(PATH_ENROLL, post(enroll))
        .route(PATH_VIEW, get(view))
        .route(PATH_KEYS, post(register_keys))
        .with_state(inner);
    let task = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app.into_make_service_with_connect_info::<PeerAddr>()).await {
            tracing::error!(error = %e, "registry site API stopped");
        }
    });
    tracing::info!(%addr, pin = %pin, generation, "registry serving");
    Ok(Running { addr, pin, task, poller })
}
