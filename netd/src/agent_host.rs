//! The upload agent `netd run` hosts (site file `agent:`): started inside a segment once a pass
//! succeeded and the segment's device exists, restarted with backoff after any exit, stopped
//! (SIGTERM, then SIGKILL) before netd exits, and reported in the status.
//!
//! The supervisor is one OS thread that owns the child for its whole life. It is a thread and
//! not a tokio task because the child's parent-death signal (`PR_SET_PDEATHSIG`) fires when the
//! *thread* that forked it exits: a thread that lives exactly as long as the supervision is what
//! makes "netd gone, agent gone" hold (a tokio worker could be retired while the child runs).
//! It polls the child every 50 ms (std has no waitable process handle on stable Rust).

use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::plan::DesiredState;
use crate::policy::SegmentName;
use crate::site::{AgentConfig, RunAs};

const POLL: Duration = Duration::from_millis(50);

/// What the agent is doing now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum AgentState {
    /// Not started: why (no successful pass yet, the segment's device is missing).
    Waiting { reason: String },
    Running {
        pid: u32,
        since_unix: u64,
        /// The device passed as `--bind-interface`.
        device: String,
    },
    /// Exited (or failed to start); the next start is due at `next_attempt_unix`.
    Restarting { next_attempt_unix: u64 },
    /// Stopped with netd.
    Stopped,
    /// `netd status` could not ask the running daemon.
    Unknown { reason: String },
}

/// The agent part of `netd status` and `GET /status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentStatus {
    pub command: String,
    pub segment: String,
    /// `''`: as netd.
    pub user: String,
    #[serde(flatten)]
    pub state: AgentState,
    /// Starts after an exit (or after a failed start).
    pub restarts_total: u64,
    /// How the last run ended: `exit status 1`, `signal 9 (SIGKILL)`, `start failed: ...`.
    pub last_exit: Option<String>,
}

impl AgentStatus {
    pub fn new(cfg: &AgentConfig, state: AgentState) -> Self {
        Self {
            command: cfg.command.display().to_string(),
            segment: cfg.segment.to_string(),
            user: cfg.user.clone(),
            state,
            restarts_total: 0,
            last_exit: None,
        }
    }

    pub fn is_running(&self) -> bool {
        matches!(self.state, AgentState::Running { .. })
    }

    /// One line for `netd status`.
    pub fn describe(&self) -> String {
        let who = if self.user.is_empty() { "as netd".to_string() } else { format!("user {}", self.user) };
        let state = match &self.state {
            AgentState::Waiting { reason } => format!("waiting ({reason})"),
            AgentState::Running { pid, since_unix, device } => {
                format!("running pid {pid} since {since_unix} on {device}")
            }
            AgentState::Restarting { next_attempt_unix } => format!("restarting at {next_attempt_unix}"),
            AgentState::Stopped => "stopped".to_string(),
            AgentState::Unknown { reason } => format!("unknown ({reason})"),
        };
        let last = self.last_exit.as_ref().map_or(String::new(), |e| format!(", last exit: {e}"));
        format!(
            "{state}: {} segment {} {who}, restarts {}{last}",
            self.command, self.segment, self.restarts_total
        )
    }
}

/// The device the agent binds to in `segment`: its VRF (`kzv-SEGMENT`) in vrf mode, its
/// WireGuard device (`kzw-SEGMENT`) in table mode, where no VRF exists and the segment's table
/// is chosen by the input interface only. `None`: the plan has no such segment.
pub fn segment_device(desired: &DesiredState, segment: &SegmentName) -> Option<String> {
    desired
        .segments
        .iter()
        .find(|s| &s.name == segment)
        .map(|s| s.vrf.clone().unwrap_or_else(|| s.wireguard.clone()))
}

/// Whether a network device of that name exists in netd's network namespace.
pub fn device_exists(name: &str) -> bool {
    nix::net::if_::if_nametoindex(name).is_ok()
}

/// What the daemon wants after each pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Run { device: String },
    Wait { reason: String },
}

enum Msg {
    Target(Target),
    Stop,
}

/// A running supervisor. Dropping it stops the agent and waits for that.
pub struct AgentHost {
    tx: mpsc::Sender<Msg>,
    thread: Option<JoinHandle<()>>,
}

impl AgentHost {
    /// Starts the supervisor, waiting (no successful pass yet) until [`AgentHost::set`] says
    /// run. `publish` receives every change of the status.
    pub fn start(
        cfg: AgentConfig,
        run_as: Option<RunAs>,
        publish: impl Fn(AgentStatus) + Send + 'static,
    ) -> std::io::Result<Self> {
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("agent-host".into())
            .spawn(move || Supervisor::new(cfg, run_as, publish).run(rx))?;
        Ok(Self { tx, thread: Some(thread) })
    }

    /// Tells the supervisor to run the agent on a device, or to wait. A running agent is not
    /// stopped by a `Wait`: only a start needs the device (its uploads fail and retry until the
    /// next pass creates the device again).
    pub fn set(&self, target: Target) {
        let _ = self.tx.send(Msg::Target(target));
    }

    /// Stops the agent (SIGTERM, then SIGKILL after `stop_timeout_secs`) and the supervisor.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        let _ = self.tx.send(Msg::Stop);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for AgentHost {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn unix_at(t: Instant) -> u64 {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    let ahead = t.saturating_duration_since(Instant::now());
    (now + ahead).as_secs_f64().round() as u64
}

/// `exit status 3` or `signal 9 (SIGKILL)`.
fn describe_exit(s: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (s.code(), s.signal()) {
        (Some(c), _) => format!("exit status {c}"),
        (None, Some(sig)) => match nix::sys::signal::Signal::try_from(sig) {
            Ok(name) => format!("signal {sig} ({name})"),
            Err(_) => format!("signal {sig}"),
        },
        _ => s.to_string(),
    }
}

struct Supervisor<P> {
    cfg: AgentConfig,
    run_as: Option<RunAs>,
    publish: P,
    status: AgentStatus,
    target: Target,
    child: Option<(Child, Instant)>,
    /// When the next start is due after an exit.
    next_start: Option<Instant>,
    backoff: Duration,
}

impl<P: Fn(AgentStatus)> Supervisor<P> {
    fn new(cfg: AgentConfig, run_as: Option<RunAs>, publish: P) -> Self {
        let reason = "no successful reconcile pass yet".to_string();
        let status = AgentStatus::new(&cfg, AgentState::Waiting { reason: reason.clone() });
        let backoff = Duration::from_secs(cfg.restart_min_secs);
        publish(status.clone());
        Self {
            cfg,
            run_as,
            publish,
            status,
            target: Target::Wait { reason },
            child: None,
            next_start: None,
            backoff,
        }
    }

    fn set_state(&mut self, state: AgentState) {
        if self.status.state != state {
            self.status.state = state;
            (self.publish)(self.status.clone());
        }
    }

    fn run(mut self, rx: mpsc::Receiver<Msg>) {
        loop {
            match rx.recv_timeout(POLL) {
                Ok(Msg::Target(t)) => self.target = t,
                Ok(Msg::Stop) | Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => {}
            }
            self.reap();
            if self.child.is_none() {
                self.maybe_start();
            }
        }
        self.stop_child();
        self.set_state(AgentState::Stopped);
    }

    /// Notices an exit and schedules the next start.
    fn reap(&mut self) {
        let Some((child, started)) = &mut self.child else { return };
        let status = match child.try_wait() {
            Ok(Some(s)) => describe_exit(s),
            Ok(None) => return,
            Err(e) => format!("waiting for it failed: {e}"),
        };
        let ran = started.elapsed();
        let pid = child.id();
        self.child = None;
        tracing::warn!(pid, status = %status, ran_secs = ran.as_secs_f64(), "agent exited");
        if ran >= Duration::from_secs(self.cfg.restart_max_secs) {
            self.backoff = Duration::from_secs(self.cfg.restart_min_secs);
        }
        self.exited(status);
    }

    fn exited(&mut self, how: String) {
        let at = Instant::now() + self.backoff;
        self.next_start = Some(at);
        self.backoff = (self.backoff * 2).min(Duration::from_secs(self.cfg.restart_max_secs));
        self.status.last_exit = Some(how);
        self.status.state = AgentState::Restarting { next_attempt_unix: unix_at(at) };
        (self.publish)(self.status.clone());
    }

    fn maybe_start(&mut self) {
        let device = match &self.target {
            Target::Wait { reason } => {
                let reason = reason.clone();
                // A pending restart stays visible as such until its time.
                if self.next_start.is_none_or(|t| Instant::now() >= t) {
                    self.set_state(AgentState::Waiting { reason });
                }
                return;
            }
            Target::Run { device } => device.clone(),
        };
        if self.next_start.is_some_and(|t| Instant::now() < t) {
            return;
        }
        let restart = self.next_start.take().is_some();
        match self.spawn(&device) {
            Ok(child) => {
                let pid = child.id();
                tracing::info!(pid, device = %device, restart, "agent started");
                if restart {
                    self.status.restarts_total += 1;
                }
                self.child = Some((child, Instant::now()));
                let since_unix = unix_at(Instant::now());
                self.set_state(AgentState::Running { pid, since_unix, device });
            }
            Err(e) => {
                tracing::error!(error = %e, command = %self.cfg.command.display(), "agent did not start");
                if restart {
                    self.status.restarts_total += 1;
                }
                self.exited(format!("start failed: {e}"));
            }
        }
    }

    fn spawn(&self, device: &str) -> std::io::Result<Child> {
        let mut cmd = Command::new(&self.cfg.command);
        cmd.arg("run")
            .arg("--config")
            .arg(&self.cfg.config)
            .arg("--bind-interface")
            .arg(device)
            .stdin(Stdio::null())
            .stdout(Stdio::inherit())
            .stderr(Stdio::inherit());
        if let Some(r) = self.run_as {
            // With a uid and no explicit groups, std also clears the supplementary groups
            // (setgroups(0)): the agent keeps only the user's primary group.
            cmd.uid(r.uid).gid(r.gid);
        }
        let parent = nix::unistd::getpid();
        // SAFETY: the closure runs between fork and exec and makes only async-signal-safe
        // system calls (prctl, getppid) and no allocation.
        unsafe {
            cmd.pre_exec(move || {
                // After std's setuid, which clears the parent-death signal: SIGKILL when this
                // supervisor thread (and so netd) is gone, even after SIGKILL to netd.
                nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)?;
                // The agent's files: group-readable at most, as its own unit had (UMask=0027),
                // whatever netd's umask (0077 under its unit).
                nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o027));
                // netd died between fork and prctl: nobody would send the signal.
                if nix::unistd::getppid() != parent {
                    return Err(std::io::Error::from_raw_os_error(nix::libc::ESRCH));
                }
                Ok(())
            });
        }
        cmd.spawn()
    }

    /// SIGTERM, wait `stop_timeout_secs`, then SIGKILL; always reaped.
    fn stop_child(&mut self) {
        let Some((mut child, _)) = self.child.take() else { return };
        let pid = child.id();
        let _ =
            nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(self.cfg.stop_timeout_secs);
        loop {
            match child.try_wait() {
                Ok(Some(s)) => {
                    tracing::info!(pid, status = %describe_exit(s), "agent stopped");
                    self.status.last_exit = Some(describe_exit(s));
                    return;
                }
                Ok(None) if Instant::now() < deadline => std::thread::sleep(POLL),
                _ => break,
            }
        }
        tracing::warn!(pid, timeout_secs = self.cfg.stop_timeout_secs, "agent ignored SIGTERM: killing it");
        let _ = child.kill();
        if let Ok(s) = child.wait() {
            self.status.last_exit = Some(describe_exit(s));
        }
    }
}
