//! The planner: pure code from (policy, site, mode) to the desired kernel state. No I/O.

pub mod addressing;
pub mod firewall;

use std::net::SocketAddr;

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

use crate::policy::{PublicKey, SegmentName, SiteKind, SiteName, ValidPolicy};
pub use firewall::{Firewall, ForwardRule};

/// How segments are separated in the kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// One VRF (l3mdev) per segment.
    Vrf,
    /// One routing table per segment selected by `ip rule` (kernels without VRF).
    Table,
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Mode::Vrf => "vrf",
            Mode::Table => "table",
        })
    }
}

/// Priority of every `ip rule` netd owns (after l3mdev at 1000, before main at 32766).
pub const RULE_PRIORITY: u32 = 1500;

/// Kind of a link netd manages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LinkKind {
    Vrf {
        table: u32,
    },
    Vlan {
        parent: String,
        id: u16,
    },
    Wireguard,
    /// An existing interface netd only enslaves and brings up.
    Existing,
}

/// A link: created unless `Existing`, then enslaved to `master` and set up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkSpec {
    pub name: String,
    pub kind: LinkKind,
    pub master: Option<String>,
}

/// An address on an interface.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct AddressSpec {
    pub iface: String,
    pub net: Ipv4Net,
}

/// Where a route sends packets.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RouteTarget {
    Dev(String),
    Unreachable,
}

/// A route in a segment's table.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct RouteSpec {
    pub table: u32,
    pub dst: Ipv4Net,
    pub target: RouteTarget,
}

/// An `ip rule iif IFACE lookup TABLE` (table mode).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct RuleSpec {
    pub priority: u32,
    pub iif: String,
    pub table: u32,
}

/// One WireGuard peer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerSpec {
    pub site: SiteName,
    pub public_key: PublicKey,
    pub endpoint: SocketAddr,
    pub allowed_ips: Vec<Ipv4Net>,
    pub keepalive: u16,
}

/// A segment's WireGuard device. Its private key lives in `key_dir/<segment>.key`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireguardSpec {
    pub iface: String,
    pub segment: SegmentName,
    pub port: u16,
    /// Public key the policy lists for this site; must match the local private key.
    pub public_key: PublicKey,
    pub peers: Vec<PeerSpec>,
}

/// Summary of one segment for status output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentSummary {
    pub name: SegmentName,
    pub table: u32,
    pub vrf: Option<String>,
    pub wireguard: String,
    pub lan: String,
    pub subnet: Ipv4Net,
}

/// Everything netd wants the kernel to hold for this site.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DesiredState {
    pub site: SiteName,
    pub mode: Mode,
    pub segments: Vec<SegmentSummary>,
    pub links: Vec<LinkSpec>,
    pub addresses: Vec<AddressSpec>,
    pub routes: Vec<RouteSpec>,
    pub rules: Vec<RuleSpec>,
    pub wireguard: Vec<WireguardSpec>,
    pub firewall: Firewall,
    /// IPv4 forwarding must be on (a router with segments). False means netd leaves it alone:
    /// other services of the host may rely on it, so netd never switches it off.
    #[serde(default)]
    pub forwarding: bool,
}

impl DesiredState {
    /// The state that owns nothing: used to roll back a first apply that has no last-good
    /// state to return to.
    pub fn empty(site: SiteName, mode: Mode) -> Self {
        Self {
            site,
            mode,
            segments: Vec::new(),
            links: Vec::new(),
            addresses: Vec::new(),
            routes: Vec::new(),
            rules: Vec::new(),
            wireguard: Vec::new(),
            firewall: Firewall::default(),
            forwarding: false,
        }
    }
}

/// Interface names of a segment.
pub fn vrf_name(segment: &SegmentName) -> String {
    format!("kzv-{segment}")
}
pub fn wireguard_name(segment: &SegmentName) -> String {
    format!("kzw-{segment}")
}

/// Errors of the planner (only a site missing from the policy: the policy is already valid).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("site {0:?} is not in the policy")]
pub struct UnknownSite(pub String);

/// Derive the desired state of `site` from `policy`.
///
/// The routing table (and conntrack zone) of a segment is its WireGuard port: unique by
/// policy validation and stable when other segments come and go.
pub fn plan(
    policy: &ValidPolicy,
    site: &SiteName,
    mode: Mode,
    api: SocketAddr,
) -> Result<DesiredState, UnknownSite> {
    let me = policy.site(site).ok_or_else(|| UnknownSite(site.to_string()))?;
    let keepalive = policy.policy().keepalive_secs;
    let centres: Vec<_> = policy.policy().sites.iter().filter(|s| s.kind == SiteKind::Centre).collect();
    let mut st = DesiredState::empty(site.clone(), mode);
    let mut fw_segments = Vec::new();
    for seg in policy.segments() {
        let members = policy.members(&seg.name).cloned().unwrap_or_default();
        if !members.contains(site) {
            continue;
        }
        let table = u32::from(seg.port);
        let wg = wireguard_name(&seg.name);
        let vrf = (mode == Mode::Vrf).then(|| vrf_name(&seg.name));
        let lan = me.lan.get(&seg.name).expect("validated: member has a LAN").clone();
        let subnet =
            addressing::site_subnet(seg.cidr, seg.site_prefix, me.number).expect("validated: number fits");
        if let Some(v) = &vrf {
            st.links.push(LinkSpec { name: v.clone(), kind: LinkKind::Vrf { table }, master: None });
        }
        let lan_kind = match lan.vlan() {
            Some((parent, id)) => LinkKind::Vlan { parent: parent.to_string(), id },
            None => LinkKind::Existing,
        };
        st.links.push(LinkSpec { name: lan.to_string(), kind: lan_kind, master: vrf.clone() });
        st.links.push(LinkSpec { name: wg.clone(), kind: LinkKind::Wireguard, master: vrf.clone() });
        st.addresses.push(AddressSpec { iface: lan.to_string(), net: addressing::router_address(subnet) });
        st.routes.push(RouteSpec { table, dst: seg.cidr, target: RouteTarget::Dev(wg.clone()) });
        st.routes.push(RouteSpec {
            table,
            dst: "0.0.0.0/0".parse().expect("literal"),
            target: RouteTarget::Unreachable,
        });
        if mode == Mode::Table {
            st.routes.push(RouteSpec { table, dst: subnet, target: RouteTarget::Dev(lan.to_string()) });
            st.rules.push(RuleSpec { priority: RULE_PRIORITY, iif: lan.to_string(), table });
            st.rules.push(RuleSpec { priority: RULE_PRIORITY, iif: wg.clone(), table });
            // The router's address as a /32 on the WireGuard device too: a socket the router
            // itself binds to that device (the hosted upload agent) gets it as its source. With
            // no address there the kernel takes the first global address of another device
            // (the underlay's), which the peers' allowed IPs drop. (A VRF needs none: its
            // source comes from the LAN enslaved to it.)
            let own = addressing::router_address(subnet).addr();
            st.addresses.push(AddressSpec { iface: wg.clone(), net: Ipv4Net::from(own) });
        }
        let mut peers = Vec::new();
        for peer_site in policy.policy().sites.iter().filter(|s| members.contains(&s.name) && &s.name != site)
        {
            let allowed =
                addressing::site_subnet(seg.cidr, seg.site_prefix, peer_site.number).expect("validated");
            peers.push(PeerSpec {
                site: peer_site.name.clone(),
                public_key: peer_site.keys.get(&seg.name).expect("validated: member has a key").clone(),
                endpoint: SocketAddr::new(peer_site.endpoint, seg.port),
                allowed_ips: vec![allowed],
                keepalive,
            });
        }
        peers.sort_by(|a, b| a.public_key.cmp(&b.public_key));
        st.wireguard.push(WireguardSpec {
            iface: wg.clone(),
            segment: seg.name.clone(),
            port: seg.port,
            public_key: me.keys.get(&seg.name).expect("validated").clone(),
            peers,
        });
        let centre_subnets = centres
            .iter()
            .filter(|c| members.contains(&c.name))
            .filter_map(|c| addressing::site_subnet(seg.cidr, seg.site_prefix, c.number))
            .collect();
        fw_segments.push(firewall::SegmentFirewall {
            zone: seg.port,
            port: seg.port,
            devices: [Some(lan.to_string()), Some(wg.clone()), vrf.clone()].into_iter().flatten().collect(),
            lan: lan.to_string(),
            wireguard: wg.clone(),
            own_subnet: subnet,
            cidr: seg.cidr,
            centre_services: seg.centre_services.clone(),
            centre_subnets,
            is_centre: me.kind == SiteKind::Centre,
        });
        st.segments.push(SegmentSummary {
            name: seg.name.clone(),
            table,
            vrf,
            wireguard: wg,
            lan: lan.to_string(),
            subnet,
        });
    }
    st.firewall = firewall::plan_firewall(&fw_segments, api);
    st.forwarding = !st.segments.is_empty();
    Ok(st)
}

/// Call `f` with each peer of `old` and of `new` paired by public key: `(Some, None)` gone,
/// `(None, Some)` new, `(Some, Some)` in both. One merge walk when both lists are in the
/// planner's order (by public key), else through a hash map: with 1,236 peers, hashing every key
/// twice cost a one-site change about a millisecond in the lab guest.
pub fn pair_peers<'a>(
    old: &'a [PeerSpec],
    new: &'a [PeerSpec],
    mut f: impl FnMut(Option<&'a PeerSpec>, Option<&'a PeerSpec>),
) {
    use std::cmp::Ordering;
    let sorted = |v: &[PeerSpec]| v.is_sorted_by(|a, b| a.public_key < b.public_key);
    if sorted(old) && sorted(new) {
        let (mut i, mut j) = (0, 0);
        loop {
            match (old.get(i), new.get(j)) {
                (Some(o), Some(n)) => match o.public_key.cmp(&n.public_key) {
                    Ordering::Less => {
                        f(Some(o), None);
                        i += 1;
                    }
                    Ordering::Greater => {
                        f(None, Some(n));
                        j += 1;
                    }
                    Ordering::Equal => {
                        f(Some(o), Some(n));
                        i += 1;
                        j += 1;
                    }
                },
                (Some(o), None) => {
                    f(Some(o), None);
                    i += 1;
                }
                (None, Some(n)) => {
                    f(None, Some(n));
                    j += 1;
                }
                (None, None) => return,
            }
        }
    }
    let by_key: std::collections::HashMap<&PublicKey, &PeerSpec> =
        new.iter().map(|p| (&p.public_key, p)).collect();
    let olds: std::collections::HashSet<&PublicKey> = old.iter().map(|p| &p.public_key).collect();
    for o in old {
        f(Some(o), by_key.get(&o.public_key).copied());
    }
    for n in new.iter().filter(|n| !olds.contains(&n.public_key)) {
        f(None, Some(n));
    }
}

/// Loopback-only API addresses need no input rule beyond `iif lo`.
pub fn api_needs_input_rule(api: SocketAddr) -> bool {
    !api.ip().is_loopback()
}

#[cfg(test)]
mod tests;
