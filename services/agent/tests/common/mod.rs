//! A real HTTP server speaking the store's side of `kizuna-wire` (decoding batches with
//! `kizuna_wire::decode_batch`, deduplicating by name + sha256), which tests can tell to fail or
//! stall; plus SS-MIX2 test files built from the guideline's public sample.
#![allow(dead_code)]

pub mod real_store;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use kizuna_agent::Config;
use kizuna_wire::{BatchReport, DailyLog, FileResult, FileStatus, Heartbeat, decode_batch};

pub const TOKEN: &str = "site-token-0123456789";
pub const FACILITY: &str = "1310000001";

/// What the test store saw, and how it should misbehave.
#[derive(Default)]
pub struct StoreState {
    /// Stored files by path.
    pub files: Mutex<BTreeMap<String, Vec<u8>>>,
    /// Every file received, in order, including duplicates.
    pub receipts: Mutex<Vec<String>>,
    /// Per batch request: arrival, body fully read, body bytes.
    pub batches: Mutex<Vec<(Instant, Instant, usize)>>,
    /// Arrival time of every batch request, answered or not.
    pub attempts: Mutex<Vec<Instant>>,
    /// Answer the next N batch requests with 503.
    pub fail_batches: AtomicU32,
    /// Answer every batch request with 503 while set.
    pub down: AtomicBool,
    /// Wait this long before answering a batch.
    pub delay_ms: AtomicU64,
    /// Answer 413 to batches of more files than this (0: no limit).
    pub max_batch_files: AtomicUsize,
    /// Reject files whose path contains this.
    pub reject_containing: Mutex<Option<String>>,
    pub heartbeats: Mutex<Vec<Heartbeat>>,
    pub daily_logs: Mutex<Vec<DailyLog>>,
    /// The token the store accepts instead of [`TOKEN`] (after a rotation).
    pub rotated_token: Mutex<Option<String>>,
    /// Answer the next N daily-log requests with 503.
    pub fail_daily: AtomicU32,
    /// Batch requests being handled now, and the most there ever were at once.
    pub in_flight: AtomicUsize,
    pub max_in_flight: AtomicUsize,
}

/// Counts one batch request in flight until dropped.
struct InFlight<'a>(&'a StoreState);

impl<'a> InFlight<'a> {
    fn new(s: &'a StoreState) -> Self {
        let now = s.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        s.max_in_flight.fetch_max(now, Ordering::SeqCst);
        Self(s)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

impl StoreState {
    pub fn stored_count(&self) -> usize {
        self.files.lock().unwrap().len()
    }
}

fn authorized(s: &StoreState, h: &HeaderMap) -> bool {
    let token = s.rotated_token.lock().unwrap().clone().unwrap_or_else(|| TOKEN.to_owned());
    h.get("authorization").and_then(|v| v.to_str().ok()) == Some(&format!("Bearer {token}"))
}

async fn batch(
    State(s): State<Arc<StoreState>>,
    UrlPath(facility): UrlPath<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let start = Instant::now();
    let _counted = InFlight::new(&s);
    s.attempts.lock().unwrap().push(start);
    if !authorized(&s, &headers) || facility != FACILITY {
        return (StatusCode::UNAUTHORIZED, "wrong token or facility").into_response();
    }
    let bytes = match axum::body::to_bytes(body, 256 << 20).await {
        Ok(b) => b,
        Err(e) => return (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    };
    let end = Instant::now();
    let delay = s.delay_ms.load(Ordering::SeqCst);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    if s.down.load(Ordering::SeqCst)
        || s.fail_batches.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok()
    {
        return (StatusCode::SERVICE_UNAVAILABLE, "store is busy").into_response();
    }
    let files = match decode_batch(&bytes, 64 << 20) {
        Ok(f) => f,
        Err(e) => return (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    };
    let limit = s.max_batch_files.load(Ordering::SeqCst);
    if limit > 0 && files.len() > limit {
        return (StatusCode::PAYLOAD_TOO_LARGE, format!("{} files is more than {limit}", files.len()))
            .into_response();
    }
    s.batches.lock().unwrap().push((start, end, bytes.len()));
    let reject = s.reject_containing.lock().unwrap().clone();
    let mut stored = s.files.lock().unwrap();
    let mut results = Vec::new();
    for f in files {
        s.receipts.lock().unwrap().push(f.path.clone());
        let sha256 = f.sha256_hex();
        let (status, codes, reason) = if reject.as_deref().is_some_and(|r| f.path.contains(r)) {
            (
                FileStatus::Rejected,
                vec!["data-type-mismatch".to_owned()],
                Some("test store refuses this file".to_owned()),
            )
        } else {
            match stored.get(&f.path) {
                Some(c) if *c == f.content => (FileStatus::Duplicate, vec![], None),
                Some(_) => (
                    FileStatus::Rejected,
                    vec![],
                    Some("different content under an existing name".to_owned()),
                ),
                None => {
                    stored.insert(f.path.clone(), f.content);
                    (FileStatus::Stored, vec![], None)
                }
            }
        };
        results.push(FileResult { path: f.path, sha256, status, codes, reason });
    }
    axum::Json(BatchReport { results }).into_response()
}

async fn heartbeat(
    State(s): State<Arc<StoreState>>,
    headers: HeaderMap,
    axum::Json(hb): axum::Json<Heartbeat>,
) -> Response {
    if !authorized(&s, &headers) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    s.heartbeats.lock().unwrap().push(hb);
    axum::Json(serde_json::json!({"ok": true})).into_response()
}

async fn daily_log(
    State(s): State<Arc<StoreState>>,
    headers: HeaderMap,
    axum::Json(log): axum::Json<DailyLog>,
) -> Response {
    if !authorized(&s, &headers) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    if s.fail_daily.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok() {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    s.daily_logs.lock().unwrap().push(log);
    StatusCode::NO_CONTENT.into_response()
}

/// Starts the test store on a loopback port of the current runtime.
pub async fn start_store() -> (Arc<StoreState>, SocketAddr) {
    start_store_on("127.0.0.1:0").await
}

pub async fn start_store_on(addr: &str) -> (Arc<StoreState>, SocketAddr) {
    let state = Arc::new(StoreState::default());
    let app = Router::new()
        .route("/api/v1/facilities/{facility}/batches", post(batch))
        .route("/api/v1/heartbeat", post(heartbeat))
        .route("/api/v1/daily-log", post(daily_log))
        .with_state(state.clone());
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (state, addr)
}

/// `shared/` beside the repository.
pub fn shared_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared")
}

/// The guideline's ADT-00 sample message (ISO-2022-JP, patient 9999013).
pub fn sample_message() -> Vec<u8> {
    std::fs::read(shared_dir().join(
        "external/nhoHQ-SSMIX2DataTestingTool/sampleData/999/901/9999013/-/ADT-00/9999013_-_ADT-00_999999999999999_20111220224447339_-_1",
    ))
    .unwrap()
}

/// The `i`-th distinct valid file name for the sample message.
pub fn file_name(i: u32) -> String {
    let (h, m, s) = (i / 3600 % 24, i / 60 % 60, i % 60);
    format!("9999013_-_ADT-00_{:015}_20111220{h:02}{m:02}{s:02}{:03}_-_1", 100_000 + i, i % 1000)
}

/// The storage path the store files `name` under.
pub fn storage_path(name: &str) -> String {
    format!("999/901/9999013/-/ADT-00/{name}")
}

/// A temp folder with export and state folders, a 0600 token file and a fast config.
pub struct Site {
    pub dir: tempfile::TempDir,
    pub cfg: Config,
}

impl Site {
    pub fn new(store: SocketAddr) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let export = dir.path().join("export");
        std::fs::create_dir(&export).unwrap();
        let token_file = dir.path().join("token");
        std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&token_file, std::fs::Permissions::from_mode(0o600)).unwrap();
        let yaml = format!(
            "export_dir: {export}\nstate_dir: {state}\nstore_url: http://{store}\nfacility: \"{FACILITY}\"\n\
             token_file: {token}\nsettle_ms: 200\nrescan_interval_secs: 1\nheartbeat_interval_secs: 1\n\
             retry_base_ms: 100\nretry_max_ms: 1000\nrequest_timeout_secs: 10\nbatch_max_files: 50\n",
            export = export.display(),
            state = dir.path().join("state").display(),
            token = token_file.display(),
        );
        let cfg = Config::parse(&yaml, Path::new("test.yaml")).unwrap();
        Self { dir, cfg }
    }

    pub fn export(&self) -> PathBuf {
        self.cfg.export_dir.clone()
    }

    /// Writes the config as YAML (for the binary).
    pub fn write_config(&self) -> PathBuf {
        let p = self.dir.path().join("agent.yaml");
        std::fs::write(&p, serde_norway::to_string(&self.cfg).unwrap()).unwrap();
        p
    }

    /// Writes `content` at `export/rel` (creating folders) via a temp name and rename, as EHRs do.
    pub fn drop_file(&self, rel: &str, content: &[u8]) {
        let p = self.export().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        let tmp = p.with_file_name(format!(".{}.tmp", p.file_name().unwrap().to_string_lossy()));
        std::fs::write(&tmp, content).unwrap();
        std::fs::rename(&tmp, &p).unwrap();
    }

    /// Regular files left below `dir`.
    pub fn files_below(dir: &Path) -> Vec<PathBuf> {
        let mut out = Vec::new();
        if let Ok(rd) = std::fs::read_dir(dir) {
            for e in rd.flatten() {
                let p = e.path();
                if p.is_dir() { out.extend(Self::files_below(&p)) } else { out.push(p) }
            }
        }
        out.sort();
        out
    }

    /// Every line of the agent's own log (all days).
    pub fn log_lines(&self) -> Vec<serde_json::Value> {
        let mut out = Vec::new();
        for f in Self::files_below(&self.cfg.log_dir()) {
            for line in std::fs::read_to_string(f).unwrap().lines() {
                if let Ok(v) = serde_json::from_str(line) {
                    out.push(v);
                }
            }
        }
        out
    }
}

/// A running in-process agent.
pub struct Running {
    pub status: kizuna_agent::StatusHandle,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), kizuna_agent::AgentError>>,
}

impl Running {
    pub fn start(cfg: Config) -> Self {
        let agent = kizuna_agent::Agent::new(cfg).unwrap();
        let status = agent.status();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(agent.run(async move {
            let _ = rx.await;
        }));
        Self { status, stop: Some(tx), task }
    }

    pub async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        self.task.await.unwrap().unwrap();
    }
}

/// Polls `cond` every 50 ms until it holds or `secs` pass; returns whether it held.
pub async fn wait_for(secs: u64, mut cond: impl FnMut() -> bool) -> bool {
    let until = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < until {
        if cond() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    cond()
}
