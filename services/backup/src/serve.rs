//! The replica's HTTP API (`kizuna backup serve`). Every `/api/` request carries
//! `Authorization: Bearer <token>`; refusals are JSON `{"error": kind, "message": sentence}`.
//!
//! | method and path | body | answer |
//! |---|---|---|
//! | `POST /api/v1/batches` | a batch (`batch.rs`) | `Ack` once durable; 409 `gap` (with the `Ack`) or `promoted` |
//! | `GET /api/v1/state` | | `Ack` |
//! | `POST /api/v1/digests` | `DigestRequest` | `Summary` of one directory |
//! | `PUT /api/v1/linkage` | the linkage database, zstd (`linkage.rs`: sha256 and time in headers) | `LinkageState` once installed; 409 `promoted` |
//! | `GET /api/v1/linkage` | | `LinkageState` |
//! | `GET /metrics`, `GET /healthz` | | Prometheus text; `{"status":"ok",…}` |
//!
//! The token is checked by a middleware in front of every `/api/` route, before any extractor or
//! handler reads the body: a request without the right token is answered 401 at once (and its
//! connection closed) without its body being read. Checked in the handlers after a `Bytes` or
//! `Json` extractor, a wrong token used to get its whole declared body (up to `max_batch_bytes`,
//! 256 MiB) read into memory first: six such requests took the replica from 33 MB to 1.27 GB.
//! Batch bodies, read only for the token's holder, are also capped at
//! [`MAX_CONCURRENT_BATCHES`] at a time; digest requests (a folder path) at [`MAX_DIGEST_REQUEST_BYTES`].

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures::StreamExt;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use crate::BackupError;
use crate::batch::Batch;
use crate::config::ReplicaConfig;
use crate::replica::Replica;
use crate::replica::digests::{DigestRequest, summarise};

/// Batch requests whose body is read, decoded or applied at once (more wait, unread, for a turn):
/// with `max_batch_bytes` this bounds the memory batches take. The follower sends one batch at a
/// time per replica.
pub const MAX_CONCURRENT_BATCHES: usize = 2;

/// Largest `POST /api/v1/digests` body: a folder path and a check mode.
pub const MAX_DIGEST_REQUEST_BYTES: usize = 64 << 10;

struct App {
    replica: Arc<Replica>,
    /// [`MAX_CONCURRENT_BATCHES`] permits.
    batch_permits: tokio::sync::Semaphore,
    token_sha: [u8; 32],
    max_batch_bytes: u64,
    max_linkage_bytes: u64,
    /// Linkage snapshots are installed one at a time.
    linkage_lock: tokio::sync::Mutex<()>,
    linkage_bytes: Gauge,
    registry: Registry,
    applied: Gauge,
    batches: Counter,
    bytes: Counter,
    refused: Counter,
}

fn refuse(status: StatusCode, kind: &str, message: impl std::fmt::Display) -> Response {
    (status, Json(serde_json::json!({"error": kind, "message": message.to_string()}))).into_response()
}

impl App {
    #[allow(clippy::result_large_err)] // the refusal is returned as is, once per request
    fn authorised(&self, headers: &HeaderMap) -> Result<(), Response> {
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        // Compared as hashes: equal-length, and the token itself is never compared byte by byte.
        if Sha256::digest(given.as_bytes()).as_slice() == self.token_sha {
            Ok(())
        } else {
            self.refused.inc();
            Err(refuse(StatusCode::UNAUTHORIZED, "unauthorized", "missing or wrong bearer token"))
        }
    }
}

fn error_response(e: BackupError) -> Response {
    match e {
        BackupError::BadBatch(_) | BackupError::BadPath { .. } => {
            refuse(StatusCode::BAD_REQUEST, "bad_batch", e)
        }
        BackupError::Promoted => refuse(StatusCode::CONFLICT, "promoted", e),
        other => {
            tracing::error!(%other, "batch failed");
            refuse(StatusCode::INTERNAL_SERVER_ERROR, "replica_error", other)
        }
    }
}

/// In front of every `/api/` route: the bearer token is checked from the headers alone, before any
/// extractor reads the body; a refusal closes the connection (the body is never read).
async fn require_token(State(app): State<Arc<App>>, request: Request, next: Next) -> Response {
    match app.authorised(request.headers()) {
        Ok(()) => next.run(request).await,
        Err(mut refusal) => {
            refusal.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
            refusal
        }
    }
}

/// In front of `POST /api/v1/batches` (behind [`require_token`]): a turn among
/// [`MAX_CONCURRENT_BATCHES`] before the body is read, held until the batch is answered.
async fn batch_turn(State(app): State<Arc<App>>, request: Request, next: Next) -> Response {
    let Ok(_turn) = app.batch_permits.acquire().await else {
        return refuse(StatusCode::SERVICE_UNAVAILABLE, "replica_error", "shutting down");
    };
    next.run(request).await
}

async fn batches(State(app): State<Arc<App>>, body: Bytes) -> Response {
    let max = app.max_batch_bytes;
    let size = body.len() as u64;
    let decoded = match tokio::task::spawn_blocking(move || Batch::decode(&body, max)).await {
        Ok(Ok(b)) => b,
        Ok(Err(e)) => return error_response(e),
        Err(e) => return refuse(StatusCode::INTERNAL_SERVER_ERROR, "replica_error", e),
    };
    match app.replica.apply(decoded).await {
        Ok(ack) => {
            app.applied.set(ack.applied_seq as i64);
            app.batches.inc();
            app.bytes.inc_by(size);
            Json(ack).into_response()
        }
        Err(BackupError::Gap { seq, applied }) => {
            let ack = app.replica.ack().await.unwrap_or_default();
            (
                StatusCode::CONFLICT,
                Json(serde_json::json!({"error": "gap", "message": format!("entry {seq} does not follow {applied}"),
                    "applied_seq": ack.applied_seq, "foreign_applied": ack.foreign_applied})),
            )
                .into_response()
        }
        Err(e) => error_response(e),
    }
}

async fn state(State(app): State<Arc<App>>) -> Response {
    match app.replica.ack().await {
        Ok(a) => Json(a).into_response(),
        Err(e) => error_response(e),
    }
}

async fn digests(State(app): State<Arc<App>>, Json(req): Json<DigestRequest>) -> Response {
    let tree = app.replica.tree();
    match summarise(&app.replica.manifest, Some(&tree), &req.prefix, req.check).await {
        Ok(s) => Json(s).into_response(),
        Err(e) => error_response(e),
    }
}

async fn linkage_state(State(app): State<Arc<App>>) -> Response {
    match crate::replica::linkage::state(&app.replica.data_dir) {
        Ok(s) => Json(s).into_response(),
        Err(e) => error_response(e),
    }
}

async fn put_linkage(State(app): State<Arc<App>>, headers: HeaderMap, body: Body) -> Response {
    if app.replica.promoted() {
        return error_response(BackupError::Promoted);
    }
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    let (sha, taken_at) = (header(crate::linkage::SHA256_HEADER), header(crate::linkage::TAKEN_AT_HEADER));
    let _one_at_a_time = app.linkage_lock.lock().await;
    let staging = app.replica.data_dir.join("staging");
    let tmp = staging.join(format!("{:x}-linkage.backup-tmp", std::process::id()));
    // The body is streamed to disk: a snapshot may be far larger than a batch.
    let received = async {
        let mut f = tokio::fs::File::create(&tmp).await.map_err(|e| BackupError::io(&tmp, e))?;
        let (mut stream, mut total) = (body.into_data_stream(), 0u64);
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| BackupError::BadBatch(format!("linkage snapshot: body: {e}")))?;
            total += chunk.len() as u64;
            if total > app.max_linkage_bytes {
                return Err(BackupError::BadBatch(format!(
                    "linkage snapshot: larger than max_linkage_bytes ({})",
                    app.max_linkage_bytes
                )));
            }
            f.write_all(&chunk).await.map_err(|e| BackupError::io(&tmp, e))?;
        }
        f.flush().await.map_err(|e| BackupError::io(&tmp, e))?;
        Ok(total)
    }
    .await;
    let installed = match received {
        Ok(_) => {
            crate::replica::linkage::install(
                &app.replica.data_dir,
                tmp,
                &sha,
                &taken_at,
                app.max_linkage_bytes,
            )
            .await
        }
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    };
    match installed {
        Ok(held) => {
            app.linkage_bytes.set(held.bytes as i64);
            tracing::info!(sha256 = ?held.sha256, taken_at = ?held.taken_at, bytes = held.bytes, "linkage snapshot installed");
            Json(held).into_response()
        }
        Err(e) => error_response(e),
    }
}

async fn metrics(State(app): State<Arc<App>>) -> Response {
    let mut out = String::new();
    if prometheus_client::encoding::text::encode(&mut out, &app.registry).is_err() {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    }
    ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], out)
        .into_response()
}

async fn healthz(State(app): State<Arc<App>>) -> Response {
    match app.replica.ack().await {
        Ok(a) => Json(serde_json::json!({"status": "ok", "applied_seq": a.applied_seq, "promoted": app.replica.promoted()}))
            .into_response(),
        Err(e) => refuse(StatusCode::SERVICE_UNAVAILABLE, "replica_error", e),
    }
}

/// The replica's router.
pub async fn router(config: &ReplicaConfig) -> Result<Router, BackupError> {
    Ok(router_for(open_app(config).await?, config))
}

/// Opens the replica folder (taking its lock) and the state the routes share.
async fn open_app(config: &ReplicaConfig) -> Result<Arc<App>, BackupError> {
    let token = crate::config::read_token(&config.token_file)?;
    let replica = Replica::open(&config.data_dir).await?;
    let mut registry = Registry::default();
    let (applied, batches_total, bytes, refused) =
        (Gauge::default(), Counter::default(), Counter::default(), Counter::default());
    registry.register(
        "kizuna_backup_replica_applied_seq",
        "Highest journal entry durably applied here",
        applied.clone(),
    );
    registry.register("kizuna_backup_replica_batches", "Batches applied", batches_total.clone());
    registry.register(
        "kizuna_backup_replica_received_bytes",
        "Compressed batch bytes received",
        bytes.clone(),
    );
    registry.register(
        "kizuna_backup_replica_refused_requests",
        "Requests refused for a bad token",
        refused.clone(),
    );
    let linkage_bytes = Gauge::default();
    registry.register(
        "kizuna_backup_replica_linkage_bytes",
        "Size of the linkage database snapshot held here (0: none yet)",
        linkage_bytes.clone(),
    );
    linkage_bytes.set(crate::replica::linkage::state(&config.data_dir)?.bytes as i64);
    applied.set(replica.ack().await?.applied_seq as i64);
    Ok(Arc::new(App {
        replica,
        batch_permits: tokio::sync::Semaphore::new(MAX_CONCURRENT_BATCHES),
        token_sha: Sha256::digest(token.as_bytes()).into(),
        max_batch_bytes: config.max_batch_bytes,
        max_linkage_bytes: config.max_linkage_bytes,
        linkage_lock: tokio::sync::Mutex::new(()),
        linkage_bytes,
        registry,
        applied,
        batches: batches_total,
        bytes,
        refused,
    }))
}

/// The routes over `app`.
fn router_for(app: Arc<App>, config: &ReplicaConfig) -> Router {
    let api = Router::new()
        .route(
            "/api/v1/batches",
            post(batches)
                .route_layer(middleware::from_fn_with_state(app.clone(), batch_turn))
                .layer(DefaultBodyLimit::max(config.max_batch_bytes as usize)),
        )
        .route("/api/v1/state", get(state))
        .route("/api/v1/digests", post(digests).layer(DefaultBodyLimit::max(MAX_DIGEST_REQUEST_BYTES)))
        // Streamed to disk with its own limit (max_linkage_bytes).
        .route("/api/v1/linkage", get(linkage_state).put(put_linkage).layer(DefaultBodyLimit::disable()))
        // Outermost on every route above: nothing reads a body before the token is checked.
        .route_layer(middleware::from_fn_with_state(app.clone(), require_token));
    Router::new().route("/metrics", get(metrics)).route("/healthz", get(healthz)).merge(api).with_state(app)
}

/// Serves the replica on `listener` until `shutdown` resolves.
pub async fn serve_on(
    listener: tokio::net::TcpListener,
    config: &ReplicaConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), BackupError> {
    // The certificate and key first: a bad one is refused before the folder is opened.
    let acceptor = match config.tls() {
        true => Some(crate::tls::acceptor(&config.tls_cert_file, &config.tls_key_file)?),
        false => None,
    };
    let app = open_app(config).await?;
    let replica = Arc::downgrade(&app.replica);
    let addr: SocketAddr =
        listener.local_addr().map_err(|e| BackupError::io(std::path::Path::new("listener"), e))?;
    let router = router_for(app, config);
    let served = if let Some(acceptor) = acceptor {
        let tls = kizuna_listen::tls::TlsListener::new(listener, acceptor)
            .map_err(|e| BackupError::io(std::path::Path::new("listener"), e))?;
        tracing::info!(%addr, data_dir = %config.data_dir.display(), "backup replica listening (HTTPS)");
        axum::serve(tls, router).with_graceful_shutdown(shutdown).await
    } else {
        if !addr.ip().is_loopback() {
            tracing::warn!(
                %addr,
                "backup replica serving plain HTTP beyond this host: batches carry patient data; set \
                 replica.tls_cert_file and replica.tls_key_file"
            );
        }
        tracing::info!(%addr, data_dir = %config.data_dir.display(), "backup replica listening (HTTP)");
        axum::serve(listener, router).with_graceful_shutdown(shutdown).await
    }
    .map_err(|e| BackupError::io(std::path::Path::new("listener"), e));
    // Connection tasks let the router go a moment after `serve` returns: wait (bounded) until the
    // replica, and with it the folder's lock, is released, so that whoever stopped the server can
    // promote the folder at once.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while replica.strong_count() > 0 && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    served
}
