//! Upload monitoring (`kizuna-monitor`, run by `kizuna admin serve`): per-site reception status from
//! the store's IndexDB (uploads, heartbeats, the agents' daily logs and quarantine), the admin
//! screen (server-rendered HTML on a loopback or management address), re-requests of quarantined
//! files, receiver settings, and alert rules mailed over SMTP. With `oidc.issuer` set the screen is
//! behind the centre's single sign-on (admins only); every login, site page and action is audited.
//! See README.md.
//!
//! - [`config`]: the YAML configuration; [`status`]: what the IndexDB says about each site;
//! - [`health`]: findings and health (the screen's colours and the alert rules share them);
//! - [`alerts`]: persisted, de-duplicated incidents; [`mail`]: SMTP; [`lag`]: the replication gauge;
//! - [`server`], [`pages`], [`csrf`]: the admin screen; [`reasons`]: readable violation codes;
//! - [`access`] and [`login`]: who may use the screen, single sign-on; [`audit`]: its audit events.

pub mod access;
pub mod alerts;
pub mod audit;
pub mod centre;
pub mod config;
pub mod csrf;
mod error;
pub mod health;
pub mod lag;
pub mod login;
pub mod mail;
pub mod pages;
pub mod reasons;
pub mod server;
pub mod status;
pub mod time;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

pub use config::Config;
pub use error::MonitorError;
use kizuna_audit::emitter::AuditEmitter;
use kizuna_store::Db;

/// The running monitor: its configuration, the store's IndexDB, the mailer, the login sessions
/// and where its audit events go.
pub struct Monitor {
    pub cfg: Config,
    pub db: Db,
    pub mailer: mail::Mailer,
    pub sessions: access::Sessions,
    pub audit: AuditEmitter,
    /// How the scheduled alert checks of [`serve_on`] fare (what `/healthz` reports).
    pub checks: std::sync::Mutex<CheckHealth>,
    /// Since when, and why, the store's `/healthz` fails (as the last scheduled check found).
    pub store_down: std::sync::Mutex<Option<(jiff::Timestamp, String)>>,
    relying_party: tokio::sync::OnceCell<kizuna_oidc_rp::RelyingParty>,
}

/// The outcome of the scheduled alert checks: `/healthz` answers 503 while the last one failed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckHealth {
    /// When the checks started failing (`None`: the last one worked, or none ran yet).
    pub failing_since: Option<jiff::Timestamp>,
    /// Checks failed in a row.
    pub failures: u64,
    /// Why the last one failed.
    pub last_error: Option<String>,
}

impl Monitor {
    /// Opens the store's IndexDB (running its migrations, as the store does). A SQLite IndexDB
    /// must already exist (see [`Config::store_database_url`]): the monitor never creates one.
    pub async fn open(cfg: Config) -> Result<Arc<Self>, MonitorError> {
        cfg.check().map_err(MonitorError::Config)?;
        let store = cfg.store()?;
        let db = Db::open(&cfg.store_database_url(&store)?).await?;
        Self::with_db(cfg, db)
    }

    /// A monitor over an IndexDB the caller already has open (e.g. the demo's in-process store).
    /// With `audit.url` set it starts delivering audit events, so it needs a Tokio runtime.
    pub fn with_db(cfg: Config, db: Db) -> Result<Arc<Self>, MonitorError> {
        let minutes = |m: u64| Duration::from_secs(m * 60);
        let sessions =
            access::sessions(minutes(cfg.oidc.session_minutes), minutes(cfg.oidc.session_idle_minutes));
        Self::with_sessions(cfg, db, sessions)
    }

    /// As [`Monitor::with_db`], with login sessions the caller made instead of those of
    /// `oidc.session_minutes` and `oidc.session_idle_minutes` (e.g. an idle timeout of seconds in
    /// a test).
    pub fn with_sessions(cfg: Config, db: Db, sessions: access::Sessions) -> Result<Arc<Self>, MonitorError> {
        cfg.check().map_err(MonitorError::Config)?;
        let mailer = mail::Mailer::new(&cfg)?;
        let audit = AuditEmitter::from_config(&cfg.audit)?;
        Ok(Arc::new(Self {
            cfg,
            db,
            mailer,
            sessions,
            audit,
            checks: std::sync::Mutex::default(),
            store_down: std::sync::Mutex::default(),
            relying_party: tokio::sync::OnceCell::new(),
        }))
    }

    /// The single sign-on provider, discovered at the first login (retried at the next one if
    /// it failed), so the screen may start before the provider does.
    pub async fn relying_party(&self) -> Result<&kizuna_oidc_rp::RelyingParty, MonitorError> {
        if !self.cfg.login_required() {
            return Err(MonitorError::Config("oidc.issuer is not configured".into()));
        }
        let reg = kizuna_oidc_rp::Registration {
            issuer: self.cfg.oidc.issuer.clone(),
            client_id: self.cfg.oidc.client_id.clone(),
            client_secret_file: self.cfg.oidc.client_secret_file.clone(),
            redirect_uri: self.cfg.redirect_uri(),
            bind_interface: String::new(),
        };
        Ok(self.relying_party.get_or_try_init(|| kizuna_oidc_rp::RelyingParty::discover(&reg)).await?)
    }

    /// Every site with its findings, now (what the overview shows).
    pub async fn sites_now(&self) -> Result<Vec<(status::SiteFacts, Vec<health::Finding>)>, MonitorError> {
        let now = jiff::Timestamp::now();
        Ok(status::all_sites(&self.db, &self.cfg)
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

    /// One scheduled check, as [`serve_on`] runs them: in a task of its own, so that even a panic
    /// ends only this check (the next one runs at the next tick); the outcome goes to
    /// [`Monitor::checks`], which `/healthz` reports.
    pub async fn scheduled_check(self: &Arc<Self>) {
        let m = self.clone();
        let outcome = match tokio::spawn(async move { m.check_now().await }).await {
            Ok(Ok(r)) => {
                for e in &r.mail_errors {
                    tracing::error!("alert mail not delivered (retried at the next check): {e}");
                }
                if !r.busy {
                    let mut s = self.store_down.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                    match r.store_error {
                        None => {
                            if s.take().is_some() {
                                tracing::info!("the store's /healthz answers ok again");
                            }
                        }
                        Some(why) => match &mut *s {
                            Some((_, w)) => *w = why,
                            None => *s = Some((jiff::Timestamp::now(), why)),
                        },
                    }
                }
                Ok(())
            }
            Ok(Err(e)) => Err(e.to_string()),
            Err(e) if e.is_panic() => {
                Err(format!("the check panicked: {}", alerts::panic_message(e.into_panic().as_ref())))
            }
            Err(e) => Err(e.to_string()),
        };
        let mut h = self.checks.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        match outcome {
            Ok(()) => {
                if h.failures > 0 {
                    tracing::info!(failures = h.failures, "alert checks work again");
                }
                *h = CheckHealth::default();
            }
            Err(e) => {
                tracing::error!(error = %e, "alert check failed; /healthz answers 503 until one works");
                h.failing_since.get_or_insert_with(jiff::Timestamp::now);
                h.failures += 1;
                h.last_error = Some(e);
            }
        }
    }

    /// Everything that keeps alerting from working, for `/healthz` (503 while there is any):
    /// the alert checks failing, alert mail not delivered (relay down, a recipient refused), the
    /// store down. Empty when all is well.
    pub fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        if let Err(e) = self.check_health() {
            p.push(e);
        }
        if let Err(e) = self.mailer.health() {
            p.push(e);
        }
        if let Some((since, why)) =
            &*self.store_down.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
        {
            p.push(format!("store down since {since}: {why}"));
        }
        p
    }

    /// `Ok` while the scheduled alert checks work (or none ran yet), else since when and how
    /// often they failed.
    pub fn check_health(&self) -> Result<(), String> {
        let h = self.checks.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        match h.failing_since {
            None => Ok(()),
            Some(since) => Err(format!(
                "alert checks failing since {since} ({} in a row; the reason is in the log)",
                h.failures
            )),
        }
    }
}

/// How long shutdown waits for an alert check under way (mail delivery has its own timeouts).
const CHECK_SHUTDOWN_WAIT: Duration = Duration::from_secs(60);

/// Serves the admin screen on `listener` and checks the alert rules every `check_interval_secs`
/// until `shutdown` resolves.
pub async fn serve_on(
    listener: tokio::net::TcpListener,
    m: Arc<Monitor>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), MonitorError> {
    let addr = listener.local_addr().map_err(|e| MonitorError::Io { what: "listener".into(), source: e })?;
    let may_leave_loopback = m.cfg.allow_non_loopback && m.cfg.login_required();
    if !addr.ip().is_loopback() && !may_leave_loopback {
        return Err(MonitorError::Config(format!(
            "refusing to serve the admin screen on {addr}: not loopback, and non-loopback needs both \
             oidc.issuer (a login) and allow_non_loopback: true"
        )));
    }
    if m.cfg.login_required() {
        tracing::info!(%addr, issuer = %m.cfg.oidc.issuer, "admin screen listening; admins log in by single sign-on");
    } else {
        tracing::warn!(
            %addr,
            "admin screen listening WITHOUT login (oidc.issuer is empty): loopback only, anyone on this \
             host can use it"
        );
    }
    // The checker stops between checks: a check under way at shutdown finishes (its mail sent,
    // its incidents recorded, the check lease released) before `serve_on` returns.
    let (stop_checks, mut checks_stopped) = tokio::sync::oneshot::channel::<()>();
    let mut checker = {
        let m = m.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(m.cfg.check_interval_secs));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = tick.tick() => m.scheduled_check().await,
                    _ = &mut checks_stopped => break,
                }
            }
        })
    };
    let app = server::router(m).into_make_service_with_connect_info::<SocketAddr>();
    let r = axum::serve(listener, app).with_graceful_shutdown(shutdown).await;
    let _ = stop_checks.send(());
    if tokio::time::timeout(CHECK_SHUTDOWN_WAIT, &mut checker).await.is_err() {
        tracing::warn!(
            secs = CHECK_SHUTDOWN_WAIT.as_secs(),
            "the alert check under way did not finish in time; stopped mid-check (its lease expires by itself)"
        );
        checker.abort();
    }
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
