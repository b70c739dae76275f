//! Upload monitoring (`kizuna-monitor`, run by `kizuna admin serve`): per-site reception status from
//! the store's IndexDB (uploads, heartbeats, the agents' daily logs and quarantine), the admin
//! screen (server-rendered HTML on a loopback or management address), re-requests of quarantined
//! files, receiver settings, and alert rules mailed over SMTP. See README.md.
//!
//! - [`config`]: the YAML configuration; [`status`]: what the IndexDB says about each site;
//! - [`health`]: findings and health (the screen's colours and the alert rules share them);
//! - [`alerts`]: persisted, de-duplicated incidents; [`mail`]: SMTP; [`lag`]: the replication gauge;
//! - [`server`], [`pages`], [`csrf`]: the admin screen; [`reasons`]: readable violation codes.

pub mod alerts;
pub mod config;
pub mod csrf;
mod error;
pub mod health;
pub mod lag;
pub mod mail;
pub mod pages;
pub mod reasons;
pub mod server;
pub mod status;
pub mod time;

use std::sync::Arc;
use std::time::Duration;

pub use config::Config;
pub use error::MonitorError;
use kizuna_store::Db;

/// The running monitor: its configuration, the store's IndexDB and the mailer.
pub struct Monitor {
    pub cfg: Config,
    pub db: Db,
    pub mailer: mail::Mailer,
}

impl Monitor {
    /// Opens the store's IndexDB (running its migrations, as the store does).
    pub async fn open(cfg: Config) -> Result<Arc<Self>, MonitorError> {
        cfg.check().map_err(MonitorError::Config)?;
        let store = cfg.store()?;
        let db = Db::open(&store.effective_database_url()).await?;
        let mailer = mail::Mailer::new(&cfg)?;
        Ok(Arc::new(Self { cfg, db, mailer }))
    }

    /// A monitor over an IndexDB the caller already has open (e.g. the demo's in-process store).
    pub fn with_db(cfg: Config, db: Db) -> Result<Arc<Self>, MonitorError> {
        cfg.check().map_err(MonitorError::Config)?;
        let mailer = mail::Mailer::new(&cfg)?;
        Ok(Arc::new(Self { cfg, db, mailer }))
    }

    /// Every site with its findings, now (what the overview shows).
    pub async fn sites_now(&self) -> Result<Vec<(status::SiteFacts, Vec<health::Finding>)>, MonitorError> {
        let now = jiff::Timestamp::now();
        Ok(status::all_sites(&self.db)
            .await?
            .into_iter()
            .map(|f| {
                let fs = health::findings(&f, &self.cfg, now);
                (f, fs)
            })
            .collect())
    }

    /// Evaluates the alert rules once, now.
    pub async fn check_now(&self) -> Result<alerts::CheckReport, MonitorError> {
        alerts::check(&self.db, &self.cfg, &self.mailer, jiff::Timestamp::now()).await
    }
}

/// Serves the admin screen on `listener` and checks the alert rules every `check_interval_secs`
/// until `shutdown` resolves.
pub async fn serve_on(
    listener: tokio::net::TcpListener,
    m: Arc<Monitor>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), MonitorError> {
    let addr = listener.local_addr().map_err(|e| MonitorError::Io { what: "listener".into(), source: e })?;
    if !addr.ip().is_loopback() && !m.cfg.allow_non_loopback {
        return Err(MonitorError::Config(format!(
            "refusing to serve the admin screen on {addr}: not loopback and allow_non_loopback is false"
        )));
    }
    tracing::info!(%addr, "admin screen listening");
    let checker = {
        let m = m.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(m.cfg.check_interval_secs));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                match m.check_now().await {
                    Ok(r) => {
                        for e in &r.mail_errors {
                            tracing::warn!("alert mail not sent (retried at the next check): {e}");
                        }
                    }
                    Err(e) => tracing::error!(%e, "alert check failed"),
                }
            }
        })
    };
    let r = axum::serve(listener, server::router(m)).with_graceful_shutdown(shutdown).await;
    checker.abort();
    r.map_err(|e| MonitorError::Io { what: addr.to_string(), source: e })
}

/// Binds the configured address and serves until `shutdown`.
pub async fn serve(
    m: Arc<Monitor>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), MonitorError> {
    let listen = m.cfg.listen;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| MonitorError::Io { what: format!("binding {listen}"), source: e })?;
    serve_on(listener, m, shutdown).await
}
