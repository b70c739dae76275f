//! The kernel side: one module per kernel object, each able to observe and apply.

pub mod addresses;
pub mod forwarding;
pub mod links;
pub mod nft_generation;
pub mod nftables;
pub mod routes;
pub mod rules;
pub mod wireguard;

use crate::error::{Error, Result};
use crate::plan::Mode;
use crate::site::{ModeChoice, WireguardChoice};

/// A netlink connection to the current network namespace.
pub struct Kernel {
    pub rt: rtnetlink::Handle,
    pub wireguard: wireguard_control::Backend,
}

impl Kernel {
    /// Connect (must be called inside a tokio runtime) and choose the WireGuard backend.
    pub async fn connect(wg: WireguardChoice) -> Result<Self> {
        let (conn, rt, _) = rtnetlink::new_connection().map_err(|e| Error::kernel("netlink", e))?;
        tokio::spawn(conn);
        let wireguard = match wg {
            WireguardChoice::Kernel => wireguard_control::Backend::Kernel,
            WireguardChoice::Userspace => wireguard_control::Backend::Userspace,
            WireguardChoice::Auto => {
                if kernel_has_module("wireguard") {
                    wireguard_control::Backend::Kernel
                } else {
                    wireguard_control::Backend::Userspace
                }
            }
        };
        Ok(Self { rt, wireguard })
    }

    /// Resolve `auto` by probing for VRF support.
    pub async fn resolve_mode(&self, choice: ModeChoice) -> Mode {
        match choice {
            ModeChoice::Vrf => Mode::Vrf,
            ModeChoice::Table => Mode::Table,
            ModeChoice::Auto => {
                if kernel_has_module("vrf") {
                    Mode::Vrf
                } else {
                    Mode::Table
                }
            }
        }
    }
}

/// Does the running kernel have `module` (loaded, built in, or loadable)? Reads /sys and
/// /lib/modules only, so that `netd plan` and `netd status` change nothing.
pub fn kernel_has_module(module: &str) -> bool {
    if std::path::Path::new("/sys/module").join(module).exists() {
        return true;
    }
    let Ok(release) = std::fs::read_to_string("/proc/sys/kernel/osrelease") else { return false };
    let base = std::path::Path::new("/lib/modules").join(release.trim());
    let needle = format!("/{module}.ko");
    ["modules.dep", "modules.builtin"].iter().any(|f| {
        std::fs::read_to_string(base.join(f))
            .is_ok_and(|t| t.lines().any(|l| l.split(':').next().is_some_and(|p| p.contains(&needle))))
    })
}
