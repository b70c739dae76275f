//! `netd run`: reconcile when the policy file changes (notify), on a timer and on SIGHUP;
//! serve the status API meanwhile. A rejected policy leaves the running state as it is.

use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;

use crate::agent_host::{self, AgentHost};
use crate::api::{self, SharedStatus};
use crate::cli;
use crate::error::{Error, Result};
use crate::kernel::Kernel;
use crate::reconcile;
use crate::site::{AgentConfig, SiteConfig};

mod policy_watch;

/// One pass. `scope`: full on the timer (and at startup: the timer's first tick is immediate),
/// delta on a policy change or SIGHUP (only what the change touches is observed and verified).
///
/// Returns whether the pass succeeded and, when the site file hosts an agent and the plan was
/// made, the device of the agent's segment and why the agent cannot start (None: it can).
async fn pass(
    config: &std::path::Path,
    k: &Kernel,
    status: &SharedStatus,
    scope: reconcile::Scope,
) -> (bool, Option<(Option<String>, Option<String>)>) {
    let mut agent = None;
    let start = Instant::now();
    let base = status.read().await.clone();
    let mut st = base.clone();
    st.passes_total += 1;
    st.last_pass_unix = SystemTime::now().duration_since(UNIX_EPOCH).ok().map(|d| d.as_secs());
    // The agent's check is not the network's: a failing one leaves the agent waiting.
    match cli::load_network(config, k).await {
        Err(e) => {
            if matches!(e, Error::Policy(_)) {
                st.policy_rejected_total += 1;
            }
            tracing::error!(error = %e, "policy not loaded; keeping the running state");
            st.pass_failures_total += 1;
            st.last_pass_ok = Some(false);
            st.last_error = Some(e.to_string());
            st.policy_error = Some(e.to_string());
        }
        Ok(l) => {
            if let Some(a) = &l.config.agent {
                agent = Some((agent_host::segment_device(&l.desired, &a.segment), l.agent_problem()));
            }
            match reconcile::apply_scoped(k, &l.ctx, &l.desired, scope).await {
                Ok(o) => {
                    st.kernel_changes_total += o.applied as u64;
                    st.last_pass_ok = Some(true);
                    st.last_error = None;
                    let ms = o.elapsed.as_millis() as u64;
                    if o.applied > 0 {
                        tracing::info!(site = %l.config.site, changes = o.applied, scope = ?o.scope, ms, "reconciled");
                    }
                    tracing::debug!(scope = ?o.scope, ms, phases = %o.phases, "pass phases");
                }
                Err(e) => {
                    tracing::error!(site = %l.config.site, error = %e, "pass failed");
                    st.pass_failures_total += 1;
                    if e.rolled_back {
                        st.rollbacks_total += 1;
                    }
                    st.last_pass_ok = Some(false);
                    st.last_error = Some(e.to_string());
                }
            }
            st.view_version = l.view_version;
            match cli::observe_status(k, &l, st.clone()).await {
                Ok(s) => st = s,
                Err(e) => tracing::warn!(error = %e, "status observation failed"),
            }
        }
    }
    st.last_apply_seconds = start.elapsed().as_secs_f64();
    tracing::debug!(secs = st.last_apply_seconds, "pass ended (status observed)");
    let mut shared = status.write().await;
    // The registry watcher updates these meanwhile; keep its values.
    st.views_rejected_total = shared.views_rejected_total;
    st.registry_error = shared.registry_error.clone();
    // The agent's supervisor publishes its own state.
    st.agent = shared.agent.clone();
    let ok = st.last_pass_ok == Some(true);
    *shared = st;
    (ok, agent)
}

/// What the hosted agent should do after a pass: run once a pass has succeeded, the
/// segment's device exists and so does the agent's config (as the agent's own unit had
/// `ConditionPathExists`: an appliance ships the `agent:` section before the operator writes it).
fn agent_target(ever_ok: bool, device: Option<&str>, agent: &AgentConfig) -> agent_host::Target {
    use agent_host::Target;
    match device {
        _ if !ever_ok => Target::Wait { reason: "no successful reconcile pass yet".into() },
        None => Target::Wait { reason: format!("segment {} is not in this site's plan", agent.segment) },
        Some(d) if !agent_host::device_exists(d) => {
            Target::Wait { reason: format!("segment device {d} missing") }
        }
        Some(_) if !agent.config.exists() => {
            Target::Wait { reason: format!("agent.config {} missing", agent.config.display()) }
        }
        Some(d) => Target::Run { device: d.to_string() },
    }
}

/// Sleeps until UNIX time `at` (never returns for `None`), reading the clock when first polled.
async fn until_unix(at: Option<u64>) {
    match at {
        // A few milliseconds late rather than early: the pass must see the switch time passed.
        Some(t) => {
            let now = crate::registry::enrollment::unix_now_f64();
            tokio::time::sleep(Duration::from_secs_f64((t as f64 - now).max(0.0) + 0.005)).await
        }
        None => std::future::pending().await,
    }
}

pub async fn run(config: PathBuf) -> Result<()> {
    let cfg = SiteConfig::load(&config)?;
    // The hosted agent's command and user are checked before anything starts.
    let run_as = match &cfg.agent {
        Some(a) => Some(a.check_host().map_err(|reason| Error::SiteConfig { path: config.clone(), reason })?),
        None => None,
    };
    let k = Kernel::connect(cfg.wireguard).await?;
    let status: SharedStatus = Default::default();
    let listener = tokio::net::TcpListener::bind(cfg.api_listen)
        .await
        .map_err(|source| Error::Io { path: PathBuf::from(cfg.api_listen.to_string()), source })?;
    tracing::info!(site = %cfg.site, api = %cfg.api_listen, "netd running");
    let host = match (&cfg.agent, run_as) {
        (Some(a), Some(run_as)) => {
            let shared = status.clone();
            let host = AgentHost::start(a.clone(), run_as, move |s| shared.blocking_write().agent = Some(s))
                .map_err(|source| Error::Io { path: "agent-host thread".into(), source })?;
            Some((host, a.clone()))
        }
        _ => None,
    };
    let app = api::router(status.clone());
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "status API stopped");
        }
    });

    // Policy file changes ([`policy_watch`]), and registry views.
    let (tx, mut rx) = mpsc::unbounded_channel::<()>();
    // Enrolled with a registry: its verified views wake the loop like a policy file change.
    let enrollment = crate::registry::enrollment::Enrollment::load(&cfg.enrollment_path())
        .map_err(|e| Error::Registry(e.to_string()))?;
    if let Some(enrollment) = enrollment {
        tokio::spawn(crate::registry::watch::run(cfg.clone(), enrollment, tx.clone(), status.clone()));
    }
    let _watcher = policy_watch::watch(&cfg.policy, tx)?;

    let mut hup =
        signal(SignalKind::hangup()).map_err(|source| Error::Io { path: "SIGHUP".into(), source })?;
    let mut term =
        signal(SignalKind::terminate()).map_err(|source| Error::Io { path: "SIGTERM".into(), source })?;
    let mut tick = tokio::time::interval(Duration::from_secs(cfg.reconcile_interval_secs.max(1)));
    // When the last pass started: a key switch after it still needs a pass, even one that came
    // while that pass ran.
    let mut last_pass = crate::registry::enrollment::unix_now_f64();
    // Whether any pass succeeded, and the agent segment's device in the last plan made.
    let mut ever_ok = false;
    let mut agent_device: Option<String> = None;
    // Why the agent cannot start, by the last plan made (its command, user or segment).
    let mut agent_problem: Option<String> = None;
    loop {
        // A rotated key in the stored view: a pass at its switch time, when every router switches.
        let switch = match crate::registry::enrollment::next_key_switch(&cfg, last_pass) {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(error = %e, "reading the stored view's key switches");
                None
            }
        };
        let scope = tokio::select! {
            _ = tick.tick() => reconcile::Scope::Full,
            _ = until_unix(switch) => {
                tracing::info!(switch_unix = switch, "key switch time: switching to the rotated keys");
                reconcile::Scope::Delta
            }
            Some(()) = rx.recv() => {
                policy_watch::settle(&mut rx).await;
                tracing::info!("policy file changed");
                reconcile::Scope::Delta
            }
            _ = hup.recv() => {
                tracing::info!("SIGHUP: reloading");
                reconcile::Scope::Delta
            }
            _ = term.recv() => { tracing::info!("SIGTERM: stopping"); break; }
            _ = tokio::signal::ctrl_c() => break,
        };
        last_pass = crate::registry::enrollment::unix_now_f64();
        let (ok, planned) = pass(&config, &k, &status, scope).await;
        if let Some((host, agent)) = &host {
            ever_ok |= ok;
            if let Some((device, problem)) = planned {
                agent_device = device.or(agent_device);
                match (&problem, &agent_problem) {
                    (Some(p), last) if last.as_ref() != Some(p) => {
                        tracing::warn!(reason = %p, "hosted agent cannot start; reconciling the network without it")
                    }
                    (None, Some(_)) => tracing::info!("hosted agent check passes again"),
                    _ => {}
                }
                agent_problem = problem;
            }
            let target = match &agent_problem {
                Some(p) => agent_host::Target::Wait { reason: format!("not startable: {p}") },
                None => agent_target(ever_ok, agent_device.as_deref(), agent),
            };
            host.set(target);
        }
    }
    // Stop the agent before netd exits (SIGTERM, then SIGKILL after stop_timeout_secs).
    if let Some((host, _)) = host {
        let _ = tokio::task::spawn_blocking(move || host.stop()).await;
    }
    Ok(())
}
