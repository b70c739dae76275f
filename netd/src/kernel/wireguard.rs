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

/// Directory of userspace UAPI sockets (the same one wireguard-control uses).
fn uapi_socket(iface: &str) -> std::path::PathBuf {
    let dir = if std::path::Path::new("/var/run/wireguard").exists() {
        "/var/run/wireguard"
    } else {
        "/run/wireguard"
    };
    std::path::Path::new(dir).join(format!("{iface}.sock"))
}

fn hex_key(v: &str) -> Option<[u8; 32]> {
    let b = hex::decode(v).ok()?;
    b.try_into().ok()
}

/// Read a userspace device over its UAPI socket.
///
/// Hand-written because wireguard-control's UAPI parser does not understand boringtun's
/// `own_public_key` line (boringtun never reports its private key), prints to stdout for
/// every line it does not know, and so could not tell which key a boringtun device holds.
fn observe_uapi(iface: &str) -> Result<Option<ObservedDevice>> {
    use std::io::{BufRead, BufReader, Write};
    let mut sock = match std::os::unix::net::UnixStream::connect(uapi_socket(iface)) {
        Ok(s) => s,
        Err(e)
            if matches!(e.kind(), std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused) =>
        {
            return Ok(None);
        }
        Err(e) => return Err(Error::kernel(format!("read wireguard {iface}"), e)),
    };
    let err = |e: std::io::Error| Error::kernel(format!("read wireguard {iface}"), e);
    // A wedged implementation must not hang netd.
    sock.set_read_timeout(Some(std::time::Duration::from_secs(5))).map_err(err)?;
    sock.set_write_timeout(Some(std::time::Duration::from_secs(5))).map_err(err)?;
    sock.write_all(b"get=1\n\n").map_err(err)?;
    let mut dev =
        ObservedDevice { iface: iface.to_string(), listen_port: None, public_key: None, peers: Vec::new() };
    let mut hs_sec: u64 = 0;
    let mut hs_nsec: u32 = 0;
    let finish = |peer: &mut ObservedPeer, sec: u64, nsec: u32| {
        // The UAPI says seconds since the epoch; boringtun 0.7 reports seconds since the
        // handshake instead. No real handshake predates 2001, so small values are ages.
        if sec >= 1_000_000_000 {
            peer.last_handshake = Some(SystemTime::UNIX_EPOCH + std::time::Duration::new(sec, nsec));
        } else if sec > 0 || nsec > 0 {
            peer.last_handshake = SystemTime::now().checked_sub(std::time::Duration::new(sec, nsec));
        }
    };
    for line in BufReader::new(sock).lines() {
        let line = line.map_err(err)?;
        if line.is_empty() {
            break;
        }
        let Some((k, v)) = line.split_once('=') else { continue };
        match k {
            "private_key" => {
                dev.public_key = hex_key(v).map(|b| PublicKey::from_bytes(&Key(b).get_public().0));
            }
            "own_public_key" => dev.public_key = hex_key(v).map(|b| PublicKey::from_bytes(&b)),
            "listen_port" => dev.listen_port = v.parse().ok(),
            "public_key" => {
                if let Some(p) = dev.peers.last_mut() {
                    finish(p, hs_sec, hs_nsec);
                }
                hs_sec = 0;
                hs_nsec = 0;
                if let Some(b) = hex_key(v) {
                    dev.peers.push(ObservedPeer {
                        public_key: PublicKey::from_bytes(&b),
                        endpoint: None,
                        allowed_ips: Vec::new(),
                        keepalive: 0,
                        last_handshake: None,
                        rx_bytes: 0,
                        tx_bytes: 0,
                    });
                }
            }
            _ => {
                let Some(p) = dev.peers.last_mut() else { continue };
                match k {
                    "endpoint" => p.endpoint = v.parse().ok(),
                    "allowed_ip" => p.allowed_ips.extend(v.parse::<Ipv4Net>().ok()),
                    "persistent_keepalive_interval" => p.keepalive = v.parse().unwrap_or(0),
                    "rx_bytes" => p.rx_bytes = v.parse().unwrap_or(0),
                    "tx_bytes" => p.tx_bytes = v.parse().unwrap_or(0),
                    "last_handshake_time_sec" => hs_sec = v.parse().unwrap_or(0),
                    "last_handshake_time_nsec" => hs_nsec = v.parse().unwrap_or(0),
                    _ => {}
                }
            }
        }
    }
    if let Some(p) = dev.peers.last_mut() {
        finish(p, hs_sec, hs_nsec);
    }
    Ok(Some(dev))
}

/// Read a device; None when it does not exist.
pub fn observe(iface: &str, backend: Backend) -> Result<Option<ObservedDevice>> {
    if backend == Backend::Userspace {
        return observe_uapi(iface);
    }
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
///
/// When a kernel device that already has peers gets a new private key (a rotation), the kernel
/// expires every session, and the device would start a new handshake only when it has traffic of
/// its own to send; peers that switched to the new key first would meanwhile wait for their
/// handshake retry (REKEY_TIMEOUT, 5 s). So each peer with a persistent keepalive gets it set to 0
/// and back, which makes the kernel send a keepalive at once and with it a handshake initiation.
/// Not on userspace devices: boringtun wedges when an existing peer is modified.
pub fn configure_device(iface: &str, key: &PrivateKey, port: u16, backend: Backend) -> Result<()> {
    let rekeyed = match backend {
        Backend::Kernel => observe(iface, backend)?
            .filter(|d| d.public_key.as_ref() != Some(&key.public()) && d.public_key.is_some()),
        _ => None,
    };
    DeviceUpdate::new()
        .set_private_key(key.wireguard_key())
        .set_listen_port(port)
        .apply(&ifname(iface)?, backend)
        .map_err(|e| Error::kernel(format!("configure wireguard {iface}"), e))?;
    if let Some(dev) = rekeyed {
        let kick: Vec<(&PublicKey, u16)> =
            dev.peers.iter().filter(|p| p.keepalive > 0).map(|p| (&p.public_key, p.keepalive)).collect();
        if !kick.is_empty() {
            let off: Vec<PeerConfigBuilder> = kick
                .iter()
                .map(|(k, _)| PeerConfigBuilder::new(&Key(k.bytes())).unset_persistent_keepalive())
                .collect();
            let on: Vec<PeerConfigBuilder> = kick
                .iter()
                .map(|(k, secs)| {
                    PeerConfigBuilder::new(&Key(k.bytes())).set_persistent_keepalive_interval(*secs)
                })
                .collect();
            for builders in [off, on] {
                DeviceUpdate::new()
                    .add_peers(&builders)
                    .apply(&ifname(iface)?, backend)
                    .map_err(|e| Error::kernel(format!("start handshakes on wireguard {iface}"), e))?;
            }
            tracing::info!(iface, peers = kick.len(), "new private key: handshakes started with every peer");
        }
    }
    Ok(())
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
    let mut removes: Vec<&PublicKey> = removes.to_vec();
    if backend == Backend::Userspace {
        // boringtun 0.7 wedges when a request modifies a peer it already has, so a userspace
        // peer is replaced: removed, then added again in the same request.
        // Removing a peer it does not have is an error to boringtun (the kernel ignores it, and
        // a delta pass removes peers without reading the device), so ask first.
        let existing: std::collections::HashSet<PublicKey> = observe_uapi(iface)?
            .map(|d| d.peers.into_iter().map(|p| p.public_key).collect())
            .unwrap_or_default();
        for p in upserts.iter().filter(|p| existing.contains(&p.public_key)) {
            update = update.remove_peer_by_key(&Key(p.public_key.bytes()));
        }
        removes.retain(|k| existing.contains(*k));
    }
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
    if backend == Backend::Userspace {
        return match std::fs::remove_file(uapi_socket(iface)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(Error::kernel(format!("delete wireguard {iface}"), e))
            }
            _ => Ok(()),
        };
    }
    let name = ifname(iface)?;
    match Device::get(&name, backend) {
        Ok(d) => d.delete().map_err(|e| Error::kernel(format!("delete wireguard {iface}"), e)),
        Err(_) => Ok(()),
    }
}

/// Do two planned peers configure the kernel alike (the site's name is not in the kernel)?
pub fn same_peer(a: &PeerSpec, b: &PeerSpec) -> bool {
    a.endpoint == b.endpoint && a.keepalive == b.keepalive && same_nets(&a.allowed_ips, &b.allowed_ips)
}

fn same_nets(a: &[Ipv4Net], b: &[Ipv4Net]) -> bool {
    if a == b {
        return true;
    }
    let (mut a, mut b) = (a.to_vec(), b.to_vec());
    a.sort();
    b.sort();
    a == b
}

/// Does this peer as observed match the plan?
pub fn peer_matches(observed: &ObservedPeer, want: &PeerSpec) -> bool {
    observed.endpoint == Some(want.endpoint)
        && observed.keepalive == want.keepalive
        && same_nets(&observed.allowed_ips, &want.allowed_ips)
}
