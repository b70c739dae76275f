//! Wiring of the audit service: open the log, start the writer, bind HTTP, syslog/TLS and syslog/UDP.

use crate::api::{ApiState, router};
use crate::appender::{Appender, CheckpointPolicy};
use crate::checkpoint::load_signing_key;
use crate::config::{AuditConfig, read_token};
use crate::db::Db;
use crate::error::{AuditError, Result};
use crate::log::{AuditLog, LogSettings};
use crate::syslog;
use std::net::SocketAddr;
use std::time::Duration;

/// A running audit service.
pub struct RunningServer {
    pub http_addr: SocketAddr,
    pub syslog_tls_addr: Option<SocketAddr>,
    pub syslog_udp_addr: Option<SocketAddr>,
    pub appender: Appender,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    writer: Option<tokio::task::JoinHandle<AuditLog>>,
}

impl RunningServer {
    /// Stop listening, let the writer finish (with a final checkpoint), close the database.
    pub async fn shutdown(mut self) -> Result<()> {
        for t in &self.tasks {
            t.abort();
        }
        for t in self.tasks.drain(..) {
            let _ = t.await;
        }
        drop(self.appender);
        if let Some(w) = self.writer.take() {
            let log = w.await.map_err(|e| AuditError::Send(format!("writer task: {e}")))?;
            log.db.pool.close().await;
        }
        Ok(())
    }
}

async fn bind_tcp(addr: &str) -> Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr).await.map_err(|e| AuditError::io(addr, e))
}

/// Start every configured listener.
pub async fn start(cfg: &AuditConfig) -> Result<RunningServer> {
    // `AuditConfig::load` made these checks already; a configuration built in code gets them here
    // (a listener beyond loopback without the intake and auditor tokens is refused).
    cfg.validate(std::path::Path::new("(audit configuration)"))?;
    // Every secret file is read (and its mode checked) before anything is opened or started.
    let key = load_signing_key(&cfg.signing_key_file)?;
    let intake_token = cfg.intake_token_file.as_deref().map(read_token).transpose()?;
    let auditors = crate::auditors::AuditorTokens::load(
        cfg.auditor_token_file.as_deref(),
        cfg.auditor_tokens_file.as_deref(),
    )?;
    let tls_acceptor = match &cfg.syslog_tls_listen {
        Some(_) => Some(syslog::tls_acceptor(
            cfg.syslog_tls_cert_file.as_deref().expect("checked by config"),
            cfg.syslog_tls_key_file.as_deref().expect("checked by config"),
            cfg.syslog_tls_client_ca_file.as_deref(),
        )?),
        None => None,
    };
    let url = cfg.database_url();
    let log = AuditLog::open(LogSettings {
        database_url: url.clone(),
        data_dir: cfg.data_dir.clone(),
        signing_key: key,
        tsa_url: cfg.tsa_url.clone(),
    })
    .await?;
    tracing::info!(events = log.size(), data_dir = %cfg.data_dir.display(), "audit log open");
    let (appender, writer) = Appender::spawn(
        log,
        CheckpointPolicy {
            every_events: cfg.checkpoint_every_events,
            interval: Duration::from_secs(cfg.checkpoint_interval_secs),
        },
    );
    let read_db = Db::open(&url).await?;
    if auditors.is_none() {
        tracing::warn!(
            "auditor_token_file and auditor_tokens_file are not set: the auditor API on {} (loopback only) \
             is open to every local user",
            cfg.http_listen
        );
    }
    crate::pseudonym::adopt_table(&read_db, &appender).await?;
    let state = ApiState {
        appender: appender.clone(),
        db: read_db,
        intake_token,
        auditors,
        source_id: crate::event::SELF_SOURCE_ID.into(),
        pseudonym_lock: Default::default(),
    };
    let mut tasks = Vec::new();
    let http = bind_tcp(&cfg.http_listen).await?;
    let http_addr = http.local_addr().map_err(|e| AuditError::io(&cfg.http_listen, e))?;
    // Connect info: a pseudonym registration's security event names the sender's address.
    let app = router(state).into_make_service_with_connect_info::<SocketAddr>();
    tasks.push(tokio::spawn(async move {
        if let Err(e) = axum::serve(http, app).await {
            tracing::error!(error = %e, "HTTP server stopped");
        }
    }));
    let mut syslog_tls_addr = None;
    if let (Some(addr), Some(acceptor)) = (&cfg.syslog_tls_listen, tls_acceptor) {
        let l = bind_tcp(addr).await?;
        syslog_tls_addr = Some(l.local_addr().map_err(|e| AuditError::io(addr, e))?);
        tasks.push(tokio::spawn(syslog::serve_tls(l, acceptor, appender.clone())));
    }
    let mut syslog_udp_addr = None;
    if let Some(addr) = &cfg.syslog_udp_listen {
        let s = tokio::net::UdpSocket::bind(addr).await.map_err(|e| AuditError::io(addr, e))?;
        syslog_udp_addr = Some(s.local_addr().map_err(|e| AuditError::io(addr, e))?);
        tasks.push(tokio::spawn(syslog::serve_udp(s, appender.clone())));
    }
    tracing::info!(%http_addr, ?syslog_tls_addr, ?syslog_udp_addr, "audit service listening");
    Ok(RunningServer { http_addr, syslog_tls_addr, syslog_udp_addr, appender, tasks, writer: Some(writer) })
}

/// Polls the auditor search API at `base` (`http://host:port`, no auditor token) until at least
/// `n` events match `query` (a `/v1/events` query string such as `patient=KZ…&event_type=110110`),
/// for up to 15 s; for other crates' tests and demos, whose events arrive through the spool.
/// The audit service's own events (each poll is an auditor search, recorded with the patient it
/// names) are left out of the answer.
pub async fn events_when(base: &str, query: &str, n: usize) -> Result<Vec<serde_json::Value>> {
    let limit = if query.split('&').any(|kv| kv.starts_with("limit=")) { "" } else { "&limit=10000" };
    let url = format!("{base}/v1/events?{query}{limit}");
    let fail = |reason: String| AuditError::Search { url: url.clone(), reason };
    let mut last = 0;
    for _ in 0..150 {
        let r = reqwest::get(&url).await.map_err(|e| fail(e.to_string()))?;
        if !r.status().is_success() {
            return Err(fail(format!("HTTP {}", r.status())));
        }
        let mut v: Vec<serde_json::Value> = r.json().await.map_err(|e| fail(e.to_string()))?;
        v.retain(|e| e["source_id"] != crate::event::SELF_SOURCE_ID);
        if v.len() >= n {
            return Ok(v);
        }
        last = v.len();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(fail(format!("{last} of the {n} events expected arrived within 15 s")))
}

/// A self-contained configuration under `dir` for demos and other crates' tests: SQLite and the
/// leaf mirror in `dir/data`, a signing key `dir/signing.key` made on first use, HTTP on
/// `http_listen`, no intake or auditor token (loopback only), checkpoints every second, time stamps
/// from `tsa` (a [`crate::lab_tsa::LabTsa`]) when given.
pub fn local_config(
    dir: &std::path::Path,
    http_listen: &str,
    tsa: Option<&crate::lab_tsa::LabTsa>,
) -> Result<AuditConfig> {
    crate::durable::create_dir_all(dir)?;
    let key = dir.join("signing.key");
    if !key.exists() {
        crate::checkpoint::generate_key(&key)?;
    }
    Ok(AuditConfig {
        data_dir: dir.join("data"),
        database_url: String::new(),
        signing_key_file: key,
        tsa_url: tsa.map(|t| t.url.clone()),
        tsa_ca_file: tsa.map(|t| t.ca_cert.clone()),
        http_listen: http_listen.into(),
        syslog_tls_listen: None,
        syslog_tls_cert_file: None,
        syslog_tls_key_file: None,
        syslog_tls_client_ca_file: None,
        syslog_udp_listen: None,
        checkpoint_every_events: 10_000,
        checkpoint_interval_secs: 1,
        intake_token_file: None,
        auditor_token_file: None,
        auditor_tokens_file: None,
    })
}
