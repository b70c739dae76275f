//! The local site file: which site of the policy this router is, and where its state lives.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::policy::SiteName;

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
        Ok(cfg)
    }

    pub fn last_good_path(&self) -> PathBuf {
        self.state_dir.join("last-good.json")
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
    }
}
