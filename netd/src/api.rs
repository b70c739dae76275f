//! Status and metrics: the data behind `netd status`, and the axum API serving it as JSON
//! (`/status`) and Prometheus text (`/metrics`).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use serde::Serialize;
use tokio::sync::RwLock;

use crate::agent_host::AgentStatus;
use crate::diff::Snapshot;
use crate::plan::{DesiredState, Mode};

/// One peer's live state.
#[derive(Debug, Clone, Serialize)]
pub struct PeerStatus {
    pub site: String,
    pub public_key: String,
    pub endpoint: String,
    /// Seconds since the UNIX epoch of the last handshake, if any.
    pub last_handshake_unix: Option<u64>,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    /// Configured on the device as planned.
    pub configured: bool,
}

/// One segment's live state.
#[derive(Debug, Clone, Serialize)]
pub struct SegmentStatus {
    pub name: String,
    pub table: u32,
    pub vrf: Option<String>,
    pub wireguard: String,
    pub lan: String,
    pub subnet: String,
    pub peers: Vec<PeerStatus>,
}

/// Everything `netd status` and the API report.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Status {
    pub site: String,
    pub mode: Option<Mode>,
    pub wireguard_backend: String,
    pub segments: Vec<SegmentStatus>,
    /// Changes the next pass would make (drift or a new policy), as text.
    pub drift: Vec<String>,
    /// What else the next pass would do (switch to a waiting key), or where the segments shown
    /// come from when the policy could not be planned.
    pub notes: Vec<String>,
    /// Why the policy could not be planned here (invalid, missing, a key this router does not
    /// hold); the segments are then the last good record's, and the drift is unknown.
    pub policy_error: Option<String>,
    pub last_pass_unix: Option<u64>,
    pub last_pass_ok: Option<bool>,
    pub last_error: Option<String>,
    pub passes_total: u64,
    pub pass_failures_total: u64,
    pub rollbacks_total: u64,
    pub kernel_changes_total: u64,
    pub policy_rejected_total: u64,
    pub last_apply_seconds: f64,
    /// Version of the registry view in use (enrolled sites only).
    pub view_version: Option<u64>,
    /// Views from the registry refused (bad signature, replay, invalid policy).
    pub views_rejected_total: u64,
    /// Last problem reaching or believing the registry; None while it answers.
    pub registry_error: Option<String>,
    /// The hosted upload agent (site file `agent:`); None when netd hosts none.
    pub agent: Option<AgentStatus>,
}

fn unix(t: SystemTime) -> Option<u64> {
    t.duration_since(UNIX_EPOCH).ok().map(|d| d.as_secs())
}

/// Fill the segment part of a status from the plan and an observation.
pub fn describe(desired: &DesiredState, snap: &Snapshot) -> Vec<SegmentStatus> {
    desired
        .segments
        .iter()
        .map(|s| {
            let wg = desired.wireguard.iter().find(|w| w.iface == s.wireguard);
            let seen = snap.wireguard.get(&s.wireguard);
            let peers = wg
                .map(|w| {
                    w.peers
                        .iter()
                        .map(|p| {
                            let o = seen.and_then(|d| d.peers.iter().find(|x| x.public_key == p.public_key));
                            PeerStatus {
                                site: p.site.to_string(),
                                public_key: p.public_key.to_string(),
                                endpoint: p.endpoint.to_string(),
                                last_handshake_unix: o
                                    .and_then(|o| o.last_handshake)
                                    .and_then(unix)
                                    .filter(|&t| t > 0),
                                rx_bytes: o.map_or(0, |o| o.rx_bytes),
                                tx_bytes: o.map_or(0, |o| o.tx_bytes),
                                configured: o.is_some_and(|o| crate::kernel::wireguard::peer_matches(o, p)),
                            }
                        })
                        .collect()
                })
                .unwrap_or_default();
            SegmentStatus {
                name: s.name.to_string(),
                table: s.table,
                vrf: s.vrf.clone(),
                wireguard: s.wireguard.clone(),
                lan: s.lan.clone(),
                subnet: s.subnet.to_string(),
                peers,
            }
        })
        .collect()
}

/// Human-readable status.
pub fn render_text(st: &Status) -> String {
    let mut out = String::new();
    let mode = st.mode.map_or("unknown".to_string(), |m| m.to_string());
    let how = match st.mode {
        Some(Mode::Vrf) => "one VRF per segment",
        Some(Mode::Table) => {
            "no VRF in this kernel or chosen: one routing table per segment, selected by ip rule"
        }
        None => "",
    };
    let how = if how.is_empty() { String::new() } else { format!(" ({how})") };
    let _ = writeln!(out, "site: {}\nmode: {mode}{how}\nwireguard: {}", st.site, st.wireguard_backend);
    for s in &st.segments {
        let _ = writeln!(
            out,
            "segment {}: table {} {}wireguard {} lan {} subnet {} peers {}",
            s.name,
            s.table,
            s.vrf.as_ref().map_or(String::new(), |v| format!("vrf {v} ")),
            s.wireguard,
            s.lan,
            s.subnet,
            s.peers.len()
        );
        for p in &s.peers {
            let hs = p.last_handshake_unix.map_or("never".to_string(), |t| t.to_string());
            let _ = writeln!(
                out,
                "  peer {} {} endpoint {} handshake {} rx {} tx {}{}",
                p.site,
                p.public_key,
                p.endpoint,
                hs,
                p.rx_bytes,
                p.tx_bytes,
                if p.configured { "" } else { " (NOT CONFIGURED)" }
            );
        }
    }
    if let Some(a) = &st.agent {
        let _ = writeln!(out, "agent: {}", a.describe());
    }
    if let Some(e) = &st.policy_error {
        let _ = writeln!(out, "policy: NOT APPLIED HERE: {}", e.replace('\n', "\n  "));
        let _ = writeln!(out, "drift: unknown (no plan without the policy)");
    } else if st.drift.is_empty() {
        let _ = writeln!(out, "drift: none");
    } else {
        let _ = writeln!(out, "drift: {} changes pending", st.drift.len());
        for d in &st.drift {
            let _ = writeln!(out, "  {d}");
        }
    }
    for n in &st.notes {
        let _ = writeln!(out, "note: {n}");
    }
    out
}

/// Prometheus text exposition.
pub fn render_metrics(st: &Status) -> String {
    let mut o = String::new();
    let mut counter = |name: &str, help: &str, v: u64| {
        let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}");
    };
    counter("netd_passes_total", "Reconcile passes run.", st.passes_total);
    counter("netd_pass_failures_total", "Reconcile passes that failed.", st.pass_failures_total);
    counter("netd_rollbacks_total", "Rollbacks to the last good state.", st.rollbacks_total);
    counter("netd_kernel_changes_total", "Kernel changes applied.", st.kernel_changes_total);
    counter("netd_policy_rejected_total", "Policy loads rejected as invalid.", st.policy_rejected_total);
    counter("netd_views_rejected_total", "Registry views refused.", st.views_rejected_total);
    if let Some(a) = &st.agent {
        counter("netd_agent_restarts_total", "Starts of the hosted agent after an exit.", a.restarts_total);
        let _ = writeln!(
            o,
            "# HELP netd_agent_up Whether the hosted agent runs.\n# TYPE netd_agent_up gauge\nnetd_agent_up {}",
            u8::from(a.is_running())
        );
    }
    if let Some(v) = st.view_version {
        let _ = writeln!(
            o,
            "# HELP netd_view_version Registry view version in use.\n# TYPE netd_view_version gauge\nnetd_view_version {v}"
        );
    }
    let _ = writeln!(
        o,
        "# HELP netd_apply_seconds Duration of the last reconcile pass.\n# TYPE netd_apply_seconds gauge\nnetd_apply_seconds {}",
        st.last_apply_seconds
    );
    let _ = writeln!(
        o,
        "# HELP netd_drift_changes Changes the next pass would make.\n# TYPE netd_drift_changes gauge\nnetd_drift_changes {}",
        st.drift.len()
    );
    if let Some(m) = st.mode {
        let _ = writeln!(
            o,
            "# HELP netd_mode Separation mode in use.\n# TYPE netd_mode gauge\nnetd_mode{{mode=\"{m}\"}} 1"
        );
    }
    let _ = writeln!(o, "# HELP netd_peers Configured peers per segment.\n# TYPE netd_peers gauge");
    for s in &st.segments {
        let _ = writeln!(o, "netd_peers{{segment=\"{}\"}} {}", s.name, s.peers.len());
    }
    let mut by_metric: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for s in &st.segments {
        for p in &s.peers {
            let labels = format!("segment=\"{}\",peer=\"{}\"", s.name, p.site);
            by_metric
                .entry("netd_peer_rx_bytes_total")
                .or_default()
                .push(format!("{{{labels}}} {}", p.rx_bytes));
            by_metric
                .entry("netd_peer_tx_bytes_total")
                .or_default()
                .push(format!("{{{labels}}} {}", p.tx_bytes));
            if let Some(t) = p.last_handshake_unix {
                by_metric
                    .entry("netd_peer_last_handshake_seconds")
                    .or_default()
                    .push(format!("{{{labels}}} {t}"));
            }
        }
    }
    for (name, lines) in by_metric {
        let kind = if name.ends_with("_total") { "counter" } else { "gauge" };
        let _ = writeln!(o, "# TYPE {name} {kind}");
        for l in lines {
            let _ = writeln!(o, "{name}{l}");
        }
    }
    o
}

/// Shared status, updated by the daemon after each pass.
pub type SharedStatus = Arc<RwLock<Status>>;

async fn status_json(State(st): State<SharedStatus>) -> impl IntoResponse {
    axum::Json(st.read().await.clone())
}

async fn metrics(State(st): State<SharedStatus>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], render_metrics(&*st.read().await))
}

/// The API router: `GET /status` (JSON) and `GET /metrics` (Prometheus).
pub fn router(st: SharedStatus) -> Router {
    Router::new().route("/status", get(status_json)).route("/metrics", get(metrics)).with_state(st)
}
