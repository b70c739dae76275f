//! Synthetic policies of any size, for tests and the benchmark: one centre plus `sites - 1`
//! member sites, the four segments of the design (reference, upload, conference and one
//! closed group of every tenth site), deterministic keys derived from site and segment.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};

use sha2::{Digest, Sha256};

use crate::policy::document::{CentreService, Cidr, GroupSpec, Policy, Security, SegmentSpec, Site};
use crate::policy::{Proto, PublicKey, SegmentName, SiteKind, SiteName};

fn seg(s: &str) -> SegmentName {
    s.parse().expect("literal segment name")
}

/// A key that is valid base64 and unique per (site, segment); not a real keypair.
pub fn fake_key(site: u16, segment: &str) -> PublicKey {
    let digest = Sha256::digest(format!("{site}/{segment}").as_bytes());
    let mut b = [0u8; 32];
    b.copy_from_slice(&digest);
    PublicKey::from_bytes(&b)
}

/// Name of synthetic site `n` (1 is the centre).
pub fn site_name(n: u16) -> SiteName {
    if n == 1 { "centre".parse().expect("literal") } else { format!("site-{n}").parse().expect("generated") }
}

/// A valid policy with `sites` sites (numbers 1..=sites; 1 is the centre).
pub fn policy(sites: u16) -> Policy {
    let mut segments = BTreeMap::new();
    let spec = |cidr: &str, port, required, services: Vec<CentreService>| SegmentSpec {
        cidr: Cidr(cidr.parse().expect("literal")),
        port,
        security: if services.is_empty() { Security::Low } else { Security::High },
        required,
        site_prefix: 24,
        centre_services: services,
    };
    let svc = |name: &str, port| CentreService { name: name.into(), proto: Proto::Tcp, port };
    segments.insert(
        seg("reference"),
        spec("10.64.0.0/14", 51820, true, vec![svc("viewer", 443), svc("auth", 8443)]),
    );
    segments.insert(seg("upload"), spec("10.68.0.0/14", 51821, true, vec![svc("store", 8080)]));
    segments.insert(seg("conference"), spec("10.72.0.0/14", 51822, false, vec![]));
    let group_members: Vec<SiteName> = (2..=sites).filter(|n| n % 10 == 2).map(site_name).collect();
    let mut closed_groups = BTreeMap::new();
    if group_members.len() >= 2 {
        closed_groups.insert(
            seg("radiology"),
            GroupSpec {
                cidr: Cidr("10.76.0.0/14".parse().expect("literal")),
                port: 51830,
                security: Security::High,
                site_prefix: 24,
                members: group_members.clone(),
            },
        );
    }
    let all_sites = (1..=sites)
        .map(|n| {
            let name = site_name(n);
            let mut joined = vec!["reference", "upload", "conference"];
            if closed_groups.contains_key(&seg("radiology")) && group_members.contains(&name) {
                joined.push("radiology");
            }
            Site {
                number: n,
                name,
                kind: if n == 1 { SiteKind::Centre } else { SiteKind::Clinic },
                endpoint: IpAddr::V4(Ipv4Addr::new(198, 18, (n >> 8) as u8, (n & 0xff) as u8)),
                keys: joined.iter().map(|s| (seg(s), fake_key(n, s))).collect(),
                lan: joined
                    .iter()
                    .enumerate()
                    .map(|(i, s)| (seg(s), format!("lan{i}").parse().expect("generated")))
                    .collect(),
                joins: vec![seg("conference")],
            }
        })
        .collect();
    Policy {
        mesh: "synthetic".parse().expect("literal"),
        keepalive_secs: 25,
        number_reuse_after_days: 30,
        segments,
        closed_groups,
        sites: all_sites,
    }
}
