//! IPv4 forwarding (`net.ipv4.ip_forward`) of the current network namespace. Writing 1 there
//! also switches on `forwarding` of every existing interface and of `default` (which new
//! interfaces inherit), so the one switch covers the VRF, LAN and WireGuard devices.

use crate::error::{Error, Result};

pub const PATH: &str = "/proc/sys/net/ipv4/ip_forward";

/// Is IPv4 forwarding on?
pub fn observe() -> Result<bool> {
    let v = std::fs::read_to_string(PATH).map_err(|e| Error::kernel(PATH, e))?;
    Ok(v.trim() == "1")
}

/// Switch IPv4 forwarding on.
pub fn enable() -> Result<()> {
    std::fs::write(PATH, "1\n").map_err(|e| Error::kernel(PATH, e))
}
