//! The local site file: which site of the policy this router is, and where its state lives.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::policy::{SegmentName, SiteName};

/// How segments are separated in the kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModeChoice {
    /// VRF when the kernel has it, else tables.
    Auto,
    Vrf,
    Table,
}

/// Which WireGuard implementation carries the tunnels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WireguardChoice {
    /// Kernel module when present, else userspace.
    Auto,
    Kernel,
    /// A userspace implementation speaking the cross-platform UAPI (boringtun-cli,
    /// wireguard-go), started through env `WG_USERSPACE_IMPLEMENTATION`.
    Userspace,
}

/// The site file (YAML). Every key is documented in netd/README.md.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SiteConfig {
    /// Path of the policy file (relative paths are relative to the site file). Unused once the
    /// site is enrolled with a registry: the verified view replaces it.
    #[serde(default = "default_policy")]
    pub policy: PathBuf,
    /// This router's site name in the policy.
    pub site: SiteName,
    #[serde(default = "default_key_dir")]
    pub key_dir: PathBuf,
    #[serde(default = "default_state_dir")]
    pub state_dir: PathBuf,
    /// Management address of the status API (JSON `/status`, Prometheus `/metrics`).
    #[serde(default = "default_api_listen")]
    pub api_listen: SocketAddr,
    #[serde(default = "default_mode")]
    pub mode: ModeChoice,
    #[serde(default = "default_wireguard")]
    pub wireguard: WireguardChoice,
    #[serde(default = "default_interval")]
    pub reconcile_interval_secs: u64,
    /// Enrolled sites: rotate each segment's key when it is this many days old (0: never).
    #[serde(default = "default_rotation_days")]
    pub key_rotation_days: u32,
    /// Services on this router itself that the underlay may reach, such as the centre's
    /// registry (tcp 9443) or ssh (tcp 22). The input chain admits nothing else besides the
    /// tunnels and the API, and packets from segment devices never match these.
    #[serde(default)]
    pub admit_underlay: Vec<LocalService>,
    /// The upload agent `netd run` hosts inside a segment (absent: none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<AgentConfig>,
}

/// `agent:`: a process `netd run` starts inside a segment once that segment's device exists,
/// supervises and reports (`src/agent_host.rs`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// The agent binary.
    #[serde(default = "default_agent_command")]
    pub command: PathBuf,
    /// Passed as `--config`.
    #[serde(default = "default_agent_config")]
    pub config: PathBuf,
    /// The segment whose device the agent binds to (`--bind-interface`).
    #[serde(default = "default_agent_segment")]
    pub segment: SegmentName,
    /// Run as this user and its primary group; empty: as netd.
    #[serde(default = "default_agent_user")]
    pub user: String,
    /// Backoff after an exit, doubling up to `restart_max_secs`.
    #[serde(default = "default_restart_min")]
    pub restart_min_secs: u64,
    /// Longest backoff; an agent that ran this long starts again from `restart_min_secs`.
    #[serde(default = "default_restart_max")]
    pub restart_max_secs: u64,
    /// SIGTERM, then SIGKILL after this many seconds.
    #[serde(default = "default_stop_timeout")]
    pub stop_timeout_secs: u64,
}

/// The identity the agent runs as (`agent.user`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunAs {
    pub uid: u32,
    pub gid: u32,
}

impl AgentConfig {
    /// Checks that need no policy: the backoff and timeout values. Each reason names its key.
    fn check_static(&self) -> Result<(), String> {
        if self.restart_min_secs == 0 {
            return Err("agent.restart_min_secs: must be at least 1".into());
        }
        if self.restart_max_secs < self.restart_min_secs {
            return Err(format!(
                "agent.restart_max_secs: {} is less than agent.restart_min_secs {}",
                self.restart_max_secs, self.restart_min_secs
            ));
        }
        Ok(())
    }

    /// Checks against this machine and the site's segments (`segments`: those the plan gives
    /// this site): the command is an executable file, the user exists, the segment is one of
    /// the site's. Returns the identity to run as (`None`: as netd). Each reason names its key.
    pub fn check(&self, segments: &[&SegmentName], site: &SiteName) -> Result<Option<RunAs>, String> {
        if !segments.contains(&&self.segment) {
            return Err(format!(
                "agent.segment: site {site} is not in segment {} in the policy (its segments: {})",
                self.segment,
                segments.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
            ));
        }
        self.check_host()
    }

    /// The checks that need no policy: values, the command, the user (`netd run` refuses to
    /// start without them). Returns the identity to run as.
    pub fn check_host(&self) -> Result<Option<RunAs>, String> {
        use std::os::unix::fs::PermissionsExt;
        self.check_static()?;
        match std::fs::metadata(&self.command) {
            Ok(m) if m.is_file() && m.permissions().mode() & 0o111 != 0 => {}
            Ok(_) => {
                return Err(format!("agent.command: {} is not an executable file", self.command.display()));
            }
            Err(e) => return Err(format!("agent.command: {}: {e}", self.command.display())),
        }
        self.run_as()
    }

    /// The uid and primary gid of `user`, looked up now (getpwnam); `None` for `''`.
    pub fn run_as(&self) -> Result<Option<RunAs>, String> {
        if self.user.is_empty() {
            return Ok(None);
        }
        match nix::unistd::User::from_name(&self.user) {
            Ok(Some(u)) => Ok(Some(RunAs { uid: u.uid.as_raw(), gid: u.gid.as_raw() })),
            Ok(None) => Err(format!("agent.user: no user {:?} on this system", self.user)),
            Err(e) => Err(format!("agent.user: looking up {:?}: {e}", self.user)),
        }
    }
}

/// A port on the router itself (`{proto: tcp, port: 9443}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalService {
    pub proto: crate::policy::Proto,
    pub port: u16,
}

fn default_policy() -> PathBuf {
    "/etc/netd/policy.yaml".into()
}
fn default_key_dir() -> PathBuf {
    "/var/lib/netd/keys".into()
}
fn default_state_dir() -> PathBuf {
    "/var/lib/netd".into()
}
fn default_api_listen() -> SocketAddr {
    "127.0.0.1:9190".parse().expect("literal")
}
fn default_mode() -> ModeChoice {
    ModeChoice::Auto
}
fn default_wireguard() -> WireguardChoice {
    WireguardChoice::Auto
}
fn default_interval() -> u64 {
    30
}
fn default_rotation_days() -> u32 {
    90
}
fn default_agent_command() -> PathBuf {
    "/usr/local/bin/kizuna-agent".into()
}
fn default_agent_config() -> PathBuf {
    "/etc/kizuna/agent.yaml".into()
}
fn default_agent_segment() -> SegmentName {
    "upload".parse().expect("literal")
}
fn default_agent_user() -> String {
    "kizuna".into()
}
fn default_restart_min() -> u64 {
    1
}
fn default_restart_max() -> u64 {
    60
}
fn default_stop_timeout() -> u64 {
    30
}

/// The default site file, as `netd --print-default-config` prints it.
pub const DEFAULT_CONFIG: &str = "\
# netd site file
# Path of the mesh policy (relative to this file).
policy: /etc/netd/policy.yaml
# Name of this router's site in the policy.
site: my-site
# Private keys, one file per segment, generated on first start (mode 0600, never logged).
key_dir: /var/lib/netd/keys
# Last-good state, kept for rollback.
state_dir: /var/lib/netd
# Management address of the status API (JSON /status, Prometheus /metrics).
api_listen: 127.0.0.1:9190
# auto | vrf | table  (table: a routing table per segment selected by ip rule)
mode: auto
# auto | kernel | userspace  (userspace runs $WG_USERSPACE_IMPLEMENTATION, e.g. boringtun-cli)
wireguard: auto
# Seconds between reconcile passes of `netd run`.
reconcile_interval_secs: 30
# Enrolled sites: rotate a segment's WireGuard key once it is this many days old (0: never).
# `netd rotate` rotates on command.
key_rotation_days: 90
# Services on this router that the underlay may reach (none by default), e.g. on a centre:
# admit_underlay: [{ proto: tcp, port: 9443 }, { proto: tcp, port: 22 }]
admit_underlay: []
# The upload agent netd hosts (absent: none). `netd run` starts it once a pass succeeded and the
# segment's device exists (kzv-SEGMENT in vrf mode, kzw-SEGMENT in table mode), as
# `COMMAND run --config CONFIG --bind-interface DEVICE`, restarts it after any exit and stops it
# (SIGTERM, then SIGKILL) before netd exits.
# agent:
#   command: /usr/local/bin/kizuna-agent   # the agent binary (must be executable)
#   config: /etc/kizuna/agent.yaml         # passed as --config
#   segment: upload                        # a segment this site is in
#   user: kizuna                           # run as this user and its primary group ('' = as netd)
#   restart_min_secs: 1                    # backoff after an exit, doubling ...
#   restart_max_secs: 60                   # ... up to this; reset after it ran restart_max_secs
#   stop_timeout_secs: 30                  # SIGTERM, then SIGKILL after this
";

impl SiteConfig {
    /// Read a site file; the policy path is resolved against the file's directory.
    pub fn load(path: &Path) -> Result<Self> {
        let text =
            std::fs::read_to_string(path).map_err(|source| Error::Io { path: path.to_path_buf(), source })?;
        let mut cfg: SiteConfig = serde_norway::from_str(&text)
            .map_err(|e| Error::SiteConfig { path: path.to_path_buf(), reason: e.to_string() })?;
        if cfg.policy.is_relative()
            && let Some(dir) = path.parent()
        {
            cfg.policy = dir.join(&cfg.policy);
        }
        if let (Some(a), Some(dir)) = (cfg.agent.as_mut(), path.parent()) {
            a.command = dir.join(&a.command);
            a.config = dir.join(&a.config);
        }
        if let Some(a) = &cfg.agent {
            a.check_static().map_err(|reason| Error::SiteConfig { path: path.to_path_buf(), reason })?;
        }
        Ok(cfg)
    }

    pub fn last_good_path(&self) -> PathBuf {
        self.state_dir.join("last-good.json")
    }

    /// The lock every pass that changes the kernel or the record holds (see [`crate::pass_lock`]).
    pub fn pass_lock_path(&self) -> PathBuf {
        crate::pass_lock::path_in(&self.state_dir)
    }

    /// Enrollment with a centre registry (`netd enroll`); its presence switches the policy
    /// source from the `policy` file to the registry's signed view.
    pub fn enrollment_path(&self) -> PathBuf {
        self.state_dir.join("enrollment.json")
    }

    /// The last verified view received from the registry.
    pub fn view_path(&self) -> PathBuf {
        self.state_dir.join("view.json")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_config_parses_with_documented_defaults() {
        let cfg: SiteConfig = serde_norway::from_str(DEFAULT_CONFIG).unwrap();
        assert_eq!(cfg.key_dir, default_key_dir());
        assert_eq!(cfg.state_dir, default_state_dir());
        assert_eq!(cfg.mode, ModeChoice::Auto);
        assert_eq!(cfg.reconcile_interval_secs, 30);
        assert_eq!(cfg.key_rotation_days, default_rotation_days());
        assert_eq!(cfg.agent, None);
    }

    #[test]
    fn the_commented_agent_section_holds_the_defaults() {
        let text: String = DEFAULT_CONFIG
            .lines()
            .map(|l| if l == "# agent:" || l.starts_with("#   ") { &l[2..] } else { l })
            .map(|l| format!("{l}\n"))
            .collect();
        let cfg: SiteConfig = serde_norway::from_str(&text).unwrap();
        let a = cfg.agent.expect("agent section");
        let defaults: AgentConfig = serde_norway::from_str("{}").unwrap();
        assert_eq!(a, defaults);
        assert_eq!(a.segment.as_str(), "upload");
        assert_eq!((a.restart_min_secs, a.restart_max_secs, a.stop_timeout_secs), (1, 60, 30));
    }
}
