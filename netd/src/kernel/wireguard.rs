//! WireGuard devices and peers through `wireguard-control` (kernel or userspace UAPI). This
//! crate pins its own older netlink types, so nothing from it leaks into the rtnetlink modules.

use std::net::{IpAddr, SocketAddr};
use std::time::SystemTime;

use ipnet::Ipv4Net;
use wireguard_control::{Backend, Device, DeviceUpdate, InterfaceName, Key, PeerConfigBuilder};

use crate::error::{Error, Result};
use crate::keys::PrivateKey;
use crate::plan::PeerSpec;
use crate::policy::PublicKey;

/// A peer as the device reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedPeer {
    pub public_key: PublicKey,
    pub endpoint: Option<SocketAddr>,
    pub allowed_ips: Vec<Ipv4Net>,
    pub keepalive: u16,
    pub last_handshake: Option<SystemTime>,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
}

/// A WireGuard device as observed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedDevice {
    pub iface: String,
    pub listen_port: Option<u16>,
    /// Public key of the device's private key.
    pub public_key: Option<PublicKey>,
    pub peers: Vec<ObservedPeer>,
}

fn ifname(iface: &str) -> Result<InterfaceName> {
    iface.parse().map_err(|_| Error::kernel(format!("wireguard {iface}"), "invalid interface name"))
}

/// Read a device; None when it does not exist.
pub fn observe(iface: &str, backend: Backend) -> Result<Option<ObservedDevice>> {
    let dev = match Device::get(&ifname(iface)?, backend) {
        Ok(d) => d,
        Err(e)
            if matches!(e.kind(), std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused)
                || e.raw_os_error() == Some(19) =>
        {
            return Ok(None);
        }
        Err(e) => return Err(Error::kernel(format!("read wireguard {iface}"), e)),
    };
    let peers = dev
        .peers
        .iter()
        .map(|p| ObservedPeer {
            public_key: PublicKey::from_bytes(&p.config.public_key.0),
            endpoint: p.config.endpoint,
            allowed_ips: p
                .config
                .allowed_ips
                .iter()
                .filter_map(|a| match a.address {
                    IpAddr::V4(v) => Ipv4Net::new(v, a.cidr).ok(),
                    IpAddr::V6(_) => None,
                })
                .collect(),
            keepalive: p.config.persistent_keepalive_interval.unwrap_or(0),
            last_handshake: p.stats.last_handshake_time,
            rx_bytes: p.stats.rx_bytes,
            tx_bytes: p.stats.tx_bytes,
        })
        .collect();
    Ok(Some(ObservedDevice {
        iface: iface.to_string(),
        listen_port: dev.listen_port,
        public_key: dev.private_key.as_ref().map(|k| PublicKey::from_bytes(&k.get_public().0)),
        peers,
    }))
}

/// Create the device if needed and set its private key and listen port.
pub fn configure_device(iface: &str, key: &PrivateKey, port: u16, backend: Backend) -> Result<()> {
    DeviceUpdate::new()
        .set_private_key(key.wireguard_key())
        .set_listen_port(port)
        .apply(&ifname(iface)?, backend)
        .map_err(|e| Error::kernel(format!("configure wireguard {iface}"), e))
}

fn peer_builder(p: &PeerSpec) -> PeerConfigBuilder {
    let mut b =
        PeerConfigBuilder::new(&Key(p.public_key.bytes())).set_endpoint(p.endpoint).replace_allowed_ips();
    b = if p.keepalive > 0 {
        b.set_persistent_keepalive_interval(p.keepalive)
    } else {
        b.unset_persistent_keepalive()
    };
    for net in &p.allowed_ips {
        b = b.add_allowed_ip(IpAddr::V4(net.network()), net.prefix_len());
    }
    b
}

/// Add or update `upserts` and remove `removes`, in one batch (one netlink/UAPI transaction
/// instead of one call per peer).
pub fn apply_peers(
    iface: &str,
    upserts: &[&PeerSpec],
    removes: &[&PublicKey],
    backend: Backend,
) -> Result<()> {
    if upserts.is_empty() && removes.is_empty() {
        return Ok(());
    }
    let mut update = DeviceUpdate::new();
    let builders: Vec<PeerConfigBuilder> = upserts.iter().map(|p| peer_builder(p)).collect();
    update = update.add_peers(&builders);
    for k in removes {
        update = update.remove_peer_by_key(&Key(k.bytes()));
    }
    update
        .apply(&ifname(iface)?, backend)
        .map_err(|e| Error::kernel(format!("set peers on wireguard {iface}"), e))
}

/// Delete a device (userspace: removes its UAPI socket, which stops the implementation).
pub fn delete_device(iface: &str, backend: Backend) -> Result<()> {
    let name = ifname(iface)?;
    match Device::get(&name, backend) {
        Ok(d) => d.delete().map_err(|e| Error::kernel(format!("delete wireguard {iface}"), e)),
        Err(_) => Ok(()),
    }
}

/// Does this peer as observed match the plan?
pub fn peer_matches(observed: &ObservedPeer, want: &PeerSpec) -> bool {
    let mut a = observed.allowed_ips.clone();
    a.sort();
    let mut b = want.allowed_ips.clone();
    b.sort();
    observed.endpoint == Some(want.endpoint) && observed.keepalive == want.keepalive && a == b
}
