//! The guests' underlay: a bridge inside a network namespace that the lab creates and deletes, with one
//! tap device per guest. Nothing in it is routed to the host, so guest traffic cannot leave it.

use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::error::{LabError, Result};

/// Namespace names start with this, followed by the test process id, so that stale ones can be found.
pub const NETNS_PREFIX: &str = "kzlab-";

static NEXT: AtomicU32 = AtomicU32::new(0);

/// A namespace holding bridge `br0`; deleted (with every tap in it) on drop.
pub struct Underlay {
    netns: String,
}

impl Underlay {
    /// Creates the namespace and its bridge.
    pub fn create() -> Result<Self> {
        let netns = format!("{NETNS_PREFIX}{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
        run_ip(&["netns", "add", &netns])?;
        let underlay = Underlay { netns };
        underlay.ip(&["link", "set", "lo", "up"])?;
        underlay.ip(&["link", "add", "br0", "type", "bridge", "stp_state", "0"])?;
        underlay.ip(&["link", "set", "br0", "up"])?;
        Ok(underlay)
    }

    pub fn netns(&self) -> &str {
        &self.netns
    }

    /// Adds tap device `tap` to the bridge, ready for QEMU's `-netdev tap,ifname=...`.
    pub fn add_tap(&self, tap: &str) -> Result<()> {
        self.ip(&["tuntap", "add", "dev", tap, "mode", "tap"])?;
        self.ip(&["link", "set", tap, "master", "br0"])?;
        self.ip(&["link", "set", tap, "up"])
    }

    /// Adds `cidr` to the bridge (inside the namespace only).
    pub fn add_bridge_address(&self, cidr: &str) -> Result<()> {
        self.ip(&["addr", "add", cidr, "dev", "br0"])
    }

    /// Takes a guest's tap off the bridge (`up == false`) or puts it back: a cut underlay link.
    pub fn set_tap_up(&self, tap: &str, up: bool) -> Result<()> {
        self.ip(&["link", "set", tap, if up { "up" } else { "down" }])
    }

    fn ip(&self, args: &[&str]) -> Result<()> {
        let mut full = vec!["-n", self.netns.as_str()];
        full.extend_from_slice(args);
        run_ip(&full)
    }
}

impl Drop for Underlay {
    fn drop(&mut self) {
        if let Err(e) = run_ip(&["netns", "delete", &self.netns]) {
            eprintln!("kizuna-lab: cannot delete namespace {}: {e}", self.netns);
        }
    }
}

fn run_ip(args: &[&str]) -> Result<()> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| LabError::io("running ip (package iproute2)", e))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(LabError::Setup {
            step: format!("ip {}", args.join(" ")),
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}
