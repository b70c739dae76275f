//! The follower (`kizuna backup follow`), beside the store on the primary: keeps the primary's
//! manifest up to the store's applied watermark, ships to every replica at once (one task and one
//! cursor each), sends them snapshots of the linkage database when it changes, watches the tree for files others write, verifies on a schedule, and serves
//! `/metrics` and `/healthz`.

pub mod cursor;
pub mod lag;
pub mod linkage;
pub mod metrics;
pub mod ship;
pub mod watch;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::response::IntoResponse;
use axum::routing::get;
use tokio::sync::watch as signal;

use crate::BackupError;
use crate::client::ReplicaClient;
use crate::config::FollowConfig;
use crate::primary::Primary;
use crate::verify::{Options, verify_paused};
use metrics::Metrics;
use ship::{LatencySink, Shipper};

/// A running follower's handles.
pub struct Follower {
    pub primary: Arc<Primary>,
    pub metrics: Arc<Metrics>,
    pub config: FollowConfig,
    /// Commit-to-acknowledgement latencies, when asked for (benchmarks, tests).
    pub latencies: Option<LatencySink>,
    /// The lock on `state_dir/follow.lock`: one follower per state folder.
    _lock: kizuna_lockfile::DirLock,
}

/// Locks `state_dir/follow.lock` for this process, or fails at once naming the holder: two
/// followers on one state folder would ship every batch twice and overwrite each other's
/// positions.
fn lock_state_dir(state_dir: &std::path::Path) -> Result<kizuna_lockfile::DirLock, BackupError> {
    std::fs::create_dir_all(state_dir).map_err(|e| BackupError::io(state_dir, e))?;
    kizuna_lockfile::DirLock::try_acquire(state_dir, "follow.lock").map_err(|e| match e {
        kizuna_lockfile::LockError::Held { dir, lock_file, holder } => BackupError::Config(format!(
            "follow.state_dir {} is in use by another follower{} ({}): stop it first",
            dir.display(),
            holder.map(|p| format!(" (pid {p})")).unwrap_or_default(),
            lock_file.display()
        )),
        kizuna_lockfile::LockError::Io { path, source } => BackupError::io(&path, source),
    })
}

impl Follower {
    pub async fn open(config: FollowConfig) -> Result<Self, BackupError> {
        config.check().map_err(BackupError::Config)?;
        if config.replicas.is_empty() {
            return Err(BackupError::Config("follow.replicas is empty: nothing to ship to".into()));
        }
        let lock = lock_state_dir(&config.state_dir)?;
        let primary = Arc::new(Primary::open(&config).await?);
        Ok(Self { primary, metrics: Arc::new(Metrics::default()), config, latencies: None, _lock: lock })
    }

    /// Runs until `stop` turns true; the metrics server is served on `metrics_listener` if given.
    pub async fn run(
        self,
        metrics_listener: Option<tokio::net::TcpListener>,
        stop: signal::Receiver<bool>,
    ) -> Result<(), BackupError> {
        let mut tasks = tokio::task::JoinSet::new();
        // The manifest, kept up to the watermark.
        {
            let (p, mut stop, every) = (
                self.primary.clone(),
                stop.clone(),
                self.config.poll_interval().max(Duration::from_millis(200)),
            );
            tasks.spawn(async move {
                loop {
                    if let Err(e) = p.catch_up().await {
                        tracing::warn!(error = %e, "manifest catch-up failed");
                    }
                    tokio::select! { _ = tokio::time::sleep(every) => {}, _ = stop.changed() => {} }
                    if *stop.borrow() {
                        return Ok(());
                    }
                }
            });
        }
        let timeout = Duration::from_secs(self.config.request_timeout_s.max(1));
        for target in &self.config.replicas {
            let pause = Arc::new(tokio::sync::Mutex::new(()));
            let shipper = Shipper {
                client: ReplicaClient::new(target, timeout)?,
                primary: self.primary.clone(),
                config: self.config.clone(),
                metrics: self.metrics.clone(),
                latencies: self.latencies.clone(),
                pause: pause.clone(),
            };
            tasks.spawn(shipper.run(stop.clone()));
            if self.config.verify.interval_s > 0 {
                let client = ReplicaClient::new(target, timeout)?;
                let (p, m, v, mut stop) =
                    (self.primary.clone(), self.metrics.clone(), self.config.verify.clone(), stop.clone());
                tasks.spawn(async move {
                    loop {
                        tokio::select! { _ = tokio::time::sleep(Duration::from_secs(v.interval_s)) => {}, _ = stop.changed() => {} }
                        if *stop.borrow() {
                            return Ok(());
                        }
                        // Repair batches must not interleave with shipping to the same replica;
                        // shipping goes on meanwhile otherwise (what is in flight must settle).
                        let opts = Options {
                            check: v.check,
                            repair: v.repair,
                            settle: Duration::from_secs(v.settle_s),
                            ..Options::default()
                        };
                        run_verify_paused(&p, &client, &m, opts, Some(&pause)).await;
                    }
                });
            }
        }
        if self.config.linkage.interval_s > 0 {
            let shipper = linkage::LinkageShipper {
                database: self.config.linkage_database(),
                state_dir: self.config.state_dir.clone(),
                interval: Duration::from_secs(self.config.linkage.interval_s),
                replicas: self
                    .config
                    .replicas
                    .iter()
                    .map(|t| ReplicaClient::new(t, timeout))
                    .collect::<Result<_, _>>()?,
                metrics: self.metrics.clone(),
            };
            tasks.spawn(shipper.run(stop.clone()));
        }
        if self.config.watch.enabled {
            tasks.spawn(watch::run(
                self.primary.clone(),
                self.config.watch.clone(),
                self.metrics.clone(),
                stop.clone(),
            ));
        }
        if let Some(l) = metrics_listener {
            let app = Router::new()
                .route(
                    "/metrics",
                    get(|State(m): State<Arc<Metrics>>| async move {
                        (
                            [(
                                axum::http::header::CONTENT_TYPE,
                                "application/openmetrics-text; version=1.0.0; charset=utf-8",
                            )],
                            m.encode(),
                        )
                    }),
                )
                .route(
                    "/healthz",
                    get(|| async { axum::Json(serde_json::json!({"status": "ok"})).into_response() }),
                )
                .with_state(self.metrics.clone());
            let mut stop = stop.clone();
            tasks.spawn(async move {
                axum::serve(l, app)
                    .with_graceful_shutdown(async move {
                        let _ = stop.wait_for(|s| *s).await;
                    })
                    .await
                    .map_err(|e| BackupError::io(std::path::Path::new("metrics listener"), e))
            });
        }
        let mut first_error = None;
        while let Some(r) = tasks.join_next().await {
            let r = r.map_err(|e| BackupError::Config(format!("follower task failed: {e}"))).and_then(|r| r);
            if let Err(e) = r {
                tracing::error!(error = %e, "follower task stopped");
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

/// Runs one verification, logs it and sets the metrics.
pub async fn run_verify(
    primary: &Arc<Primary>,
    client: &ReplicaClient,
    m: &Metrics,
    opts: Options,
) -> Option<crate::verify::Report> {
    run_verify_paused(primary, client, m, opts, None).await
}

/// As [`run_verify`]; `pause` (the replica's shipper's) is held while a repair batch is sent.
pub async fn run_verify_paused(
    primary: &Arc<Primary>,
    client: &ReplicaClient,
    m: &Metrics,
    opts: Options,
    pause: Option<&tokio::sync::Mutex<()>>,
) -> Option<crate::verify::Report> {
    let label = Metrics::label(&client.name);
    let started = std::time::Instant::now();
    let r = verify_paused(primary, client, opts, pause).await;
    m.verify_timestamp.get_or_create(&label).set(jiff::Timestamp::now().as_second());
    m.verify_seconds.get_or_create(&label).set(started.elapsed().as_secs_f64());
    match r {
        Ok(report) => {
            m.verify_result.get_or_create(&label).set(if report.clean() { 1 } else { 0 });
            m.verify_differences.get_or_create(&label).set(report.differences as i64);
            m.verify_in_flight.get_or_create(&label).set(report.in_flight as i64);
            if report.clean() {
                tracing::info!(replica = %client.name, files = report.files, in_flight = report.in_flight,
                    seconds = report.seconds, "verification clean");
            } else {
                tracing::warn!(replica = %client.name, differences = report.differences, unsettled = report.unsettled,
                    in_flight = report.in_flight, repaired = report.repaired_files,
                    first = ?report.findings.first(), "verification found differences");
            }
            Some(report)
        }
        Err(e) => {
            m.verify_result.get_or_create(&label).set(-1);
            tracing::error!(replica = %client.name, error = %e, "verification failed");
            None
        }
    }
}
