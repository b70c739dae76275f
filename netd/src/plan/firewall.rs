//! The nftables policy of table `kizuna`, as data: per-segment forward rules (only what the
//! policy allows), drop between segments, per-segment conntrack zones, and an input chain that
//! admits only the tunnel ports, the management API and, on a centre's router, its segments'
//! centre services. A policy may hold several centres (a standby centre beside the primary): each
//! runs the services, and sites' LANs may reach them on every one. `kernel::nftables` renders it.

use std::net::SocketAddr;

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

use crate::policy::Proto;

/// A forward rule that accepts: packets entering on any of `iifs` and leaving on `oif`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForwardRule {
    /// Segment the rule belongs to (kept as the rule's comment).
    pub segment: String,
    pub iifs: Vec<String>,
    pub oif: String,
    pub saddr: Option<Ipv4Net>,
    pub daddr: Option<Ipv4Net>,
    /// Only these destination ports (hub services).
    pub service: Option<(Proto, Vec<u16>)>,
    /// Only packets of connections already accepted (`ct state established,related`).
    pub established_only: bool,
}

/// A segment's centre services as the centre router's input chain admits them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocalService {
    pub segment: String,
    pub iifs: Vec<String>,
    pub saddr: Ipv4Net,
    pub daddr: Ipv4Net,
    pub proto: Proto,
    pub ports: Vec<u16>,
}

/// The whole ruleset. An empty `Firewall` means "no table `kizuna`".
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Firewall {
    /// Conntrack zone of every segment device (VRF, WireGuard, LAN).
    pub zones: Vec<(String, u16)>,
    /// WireGuard listen ports admitted on input.
    pub tunnel_ports: Vec<u16>,
    /// Management API admitted on input (tcp).
    pub api: Option<SocketAddr>,
    /// Local services admitted on input from anything but segment devices (the site file's
    /// `admit_underlay`).
    #[serde(default)]
    pub admit_underlay: Vec<(Proto, u16)>,
    /// Centre services that run on the centre's router itself, admitted on input from their
    /// segment only: from the segment's devices and CIDR, to the centre's own subnet, these ports.
    #[serde(default)]
    pub admit_segment: Vec<LocalService>,
    pub forward: Vec<ForwardRule>,
}

impl Firewall {
    pub fn is_empty(&self) -> bool {
        self.zones.is_empty() && self.forward.is_empty() && self.tunnel_ports.is_empty()
    }
}

/// What the planner knows about one segment when it derives the firewall.
#[derive(Debug, Clone)]
pub struct SegmentFirewall {
    pub zone: u16,
    pub port: u16,
    /// All devices of the segment (LAN, WireGuard, VRF). In VRF mode the forward hook sees
    /// the VRF device as the input interface, so input matching uses this whole set.
    pub devices: Vec<String>,
    pub lan: String,
    pub wireguard: String,
    pub own_subnet: Ipv4Net,
    pub cidr: Ipv4Net,
    pub centre_services: Vec<(Proto, u16)>,
    /// The subnets of the segment's centres (sites of kind centre that are members).
    pub centre_subnets: Vec<Ipv4Net>,
    pub is_centre: bool,
}

/// Derive the ruleset from the segments this site is in.
pub fn plan_firewall(segments: &[SegmentFirewall], api: SocketAddr) -> Firewall {
    if segments.is_empty() {
        return Firewall::default();
    }
    let mut fw = Firewall { api: Some(api), ..Firewall::default() };
    for s in segments {
        let name = s.wireguard.trim_start_matches("kzw-").to_string();
        for d in &s.devices {
            fw.zones.push((d.clone(), s.zone));
        }
        fw.tunnel_ports.push(s.port);
        // Replies and related packets, but only between this segment's own devices.
        for oif in [&s.lan, &s.wireguard] {
            fw.forward.push(ForwardRule {
                segment: name.clone(),
                iifs: s.devices.clone(),
                oif: oif.clone(),
                saddr: None,
                daddr: None,
                service: None,
                established_only: true,
            });
        }
        if s.centre_services.is_empty() {
            // Members reach each other: our LAN <-> the rest of the segment.
            fw.forward.push(ForwardRule {
                segment: name.clone(),
                iifs: s.devices.clone(),
                oif: s.wireguard.clone(),
                saddr: Some(s.own_subnet),
                daddr: Some(s.cidr),
                service: None,
                established_only: false,
            });
            fw.forward.push(ForwardRule {
                segment: name.clone(),
                iifs: s.devices.clone(),
                oif: s.lan.clone(),
                saddr: Some(s.cidr),
                daddr: Some(s.own_subnet),
                service: None,
                established_only: false,
            });
        } else {
            let mut by_proto: Vec<(Proto, Vec<u16>)> = Vec::new();
            for (proto, port) in &s.centre_services {
                match by_proto.iter_mut().find(|(p, _)| p == proto) {
                    Some((_, ports)) => ports.push(*port),
                    None => by_proto.push((*proto, vec![*port])),
                }
            }
            for (proto, mut ports) in by_proto {
                ports.sort_unstable();
                ports.dedup();
                if s.is_centre {
                    // The services run on the centre's router itself (the centre image's store
                    // listens on its LAN address of the upload segment) and on its LAN.
                    fw.admit_segment.push(LocalService {
                        segment: name.clone(),
                        iifs: s.devices.clone(),
                        saddr: s.cidr,
                        daddr: s.own_subnet,
                        proto,
                        ports: ports.clone(),
                    });
                    // Sites' LANs in, to our LAN's services.
                    fw.forward.push(ForwardRule {
                        segment: name.clone(),
                        iifs: s.devices.clone(),
                        oif: s.lan.clone(),
                        saddr: Some(s.cidr),
                        daddr: Some(s.own_subnet),
                        service: Some((proto, ports)),
                        established_only: false,
                    });
                } else {
                    // Our LAN out, to each centre's services only.
                    for centre in &s.centre_subnets {
                        fw.forward.push(ForwardRule {
                            segment: name.clone(),
                            iifs: s.devices.clone(),
                            oif: s.wireguard.clone(),
                            saddr: Some(s.own_subnet),
                            daddr: Some(*centre),
                            service: Some((proto, ports.clone())),
                            established_only: false,
                        });
                    }
                }
            }
        }
    }
    fw.tunnel_ports.sort_unstable();
    fw
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segment(is_centre: bool, own: &str) -> SegmentFirewall {
        SegmentFirewall {
            zone: 51802,
            port: 51802,
            devices: vec!["lupl".into(), "kzw-upload".into(), "kzv-upload".into()],
            lan: "lupl".into(),
            wireguard: "kzw-upload".into(),
            own_subnet: own.parse().unwrap(),
            cidr: "10.20.0.0/16".parse().unwrap(),
            centre_services: vec![(Proto::Tcp, 8440)],
            centre_subnets: if is_centre {
                vec![own.parse().unwrap()]
            } else {
                vec!["10.20.1.0/24".parse().unwrap()]
            },
            is_centre,
        }
    }

    #[test]
    fn the_centre_router_admits_its_segment_services_from_that_segment_only() {
        let api = "127.0.0.1:9190".parse().unwrap();
        let centre = plan_firewall(&[segment(true, "10.20.1.0/24")], api);
        assert_eq!(
            centre.admit_segment,
            [LocalService {
                segment: "upload".into(),
                iifs: vec!["lupl".into(), "kzw-upload".into(), "kzv-upload".into()],
                saddr: "10.20.0.0/16".parse().unwrap(),
                daddr: "10.20.1.0/24".parse().unwrap(),
                proto: Proto::Tcp,
                ports: vec![8440],
            }]
        );
        // A site's router runs no centre service: its input chain admits none.
        let site = plan_firewall(&[segment(false, "10.20.2.0/24")], api);
        assert!(site.admit_segment.is_empty());
    }

    #[test]
    fn with_a_standby_centre_sites_reach_the_services_on_both_centres() {
        let api = "127.0.0.1:9190".parse().unwrap();
        let mut s = segment(false, "10.20.2.0/24");
        s.centre_subnets = vec!["10.20.1.0/24".parse().unwrap(), "10.20.6.0/24".parse().unwrap()];
        let site = plan_firewall(&[s], api);
        let out: Vec<_> = site
            .forward
            .iter()
            .filter(|r| r.service.is_some())
            .map(|r| (r.oif.as_str(), r.saddr.unwrap().to_string(), r.daddr.unwrap().to_string()))
            .collect();
        assert_eq!(
            out,
            [
                ("kzw-upload", "10.20.2.0/24".to_string(), "10.20.1.0/24".to_string()),
                ("kzw-upload", "10.20.2.0/24".to_string(), "10.20.6.0/24".to_string()),
            ]
        );
        // The standby centre admits the segment's sites to its own subnet, as the primary does.
        let standby = plan_firewall(&[segment(true, "10.20.6.0/24")], api);
        assert_eq!(standby.admit_segment[0].daddr.to_string(), "10.20.6.0/24");
        let inbound: Vec<_> = standby.forward.iter().filter(|r| r.service.is_some()).collect();
        assert_eq!(inbound.len(), 1);
        assert_eq!(
            (inbound[0].oif.as_str(), inbound[0].daddr.unwrap().to_string()),
            ("lupl", "10.20.6.0/24".into())
        );
    }
}
