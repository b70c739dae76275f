//! Semantic checks of a policy. Each problem names the path of the offending node, which the
//! loader turns into file:line:column.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use ipnet::Ipv4Net;

use super::document::{Policy, SiteKind};
use super::names::{SegmentName, SiteName};
use super::source::NodePath;

/// One semantic problem of a policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub path: NodePath,
    pub reason: String,
    /// The other node of a clash (overlap, duplicate); the loader reports whichever of the
    /// two comes later in the file, the way a reader meets the clash.
    pub other: Option<NodePath>,
}

/// The parts of a segment or closed group the rest of netd needs, in one shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentView {
    pub name: SegmentName,
    pub cidr: Ipv4Net,
    pub port: u16,
    pub site_prefix: u8,
    pub is_group: bool,
    pub required: bool,
    /// `(proto, port)` the LANs may reach on the centre; empty means members reach each other.
    pub centre_services: Vec<(super::document::Proto, u16)>,
}

impl SegmentView {
    /// Every segment and closed group of `policy`, segments first, each sorted by name.
    pub fn all(policy: &Policy) -> Vec<SegmentView> {
        let mut v: Vec<SegmentView> = policy
            .segments
            .iter()
            .map(|(name, s)| SegmentView {
                name: name.clone(),
                cidr: s.cidr.0,
                port: s.port,
                site_prefix: s.site_prefix,
                is_group: false,
                required: s.required,
                centre_services: s.centre_services.iter().map(|c| (c.proto, c.port)).collect(),
            })
            .collect();
        v.extend(policy.closed_groups.iter().map(|(name, g)| SegmentView {
            name: name.clone(),
            cidr: g.cidr.0,
            port: g.port,
            site_prefix: g.site_prefix,
            is_group: true,
            required: false,
            centre_services: Vec::new(),
        }));
        v
    }

    fn path(&self) -> NodePath {
        let section = if self.is_group { "closed_groups" } else { "segments" };
        NodePath::root().key(section).key(self.name.as_str())
    }
}

/// Which sites belong to which segment: required segments hold every site, optional ones
/// the sites that list them in `joins`, closed groups their `members`.
pub fn memberships(policy: &Policy) -> BTreeMap<SegmentName, BTreeSet<SiteName>> {
    let mut out: BTreeMap<SegmentName, BTreeSet<SiteName>> = BTreeMap::new();
    for (name, seg) in &policy.segments {
        let members = out.entry(name.clone()).or_default();
        for site in &policy.sites {
            if seg.required || site.joins.contains(name) {
                members.insert(site.name.clone());
            }
        }
    }
    for (name, g) in &policy.closed_groups {
        out.insert(name.clone(), g.members.iter().cloned().collect());
    }
    out
}

const MANDATORY: [&str; 2] = ["reference", "upload"];

/// All semantic problems of `policy` (empty when it is valid).
pub fn check(policy: &Policy) -> Vec<Problem> {
    let mut problems = Vec::new();
    let mut clashes: Vec<Problem> = Vec::new();
    let mut clash = |path: NodePath, other: NodePath, reason: String| {
        clashes.push(Problem { path, reason, other: Some(other) })
    };
    let mut push = |path: NodePath, reason: String| problems.push(Problem { path, reason, other: None });
    let root = NodePath::root();

    for m in MANDATORY {
        match policy.segments.iter().find(|(n, _)| n.as_str() == m) {
            None => push(root.key("segments"), format!("mandatory segment {m:?} is missing")),
            Some((n, s)) if !s.required => push(
                root.key("segments").key(n.as_str()).key("required"),
                format!("mandatory segment {m:?} must have required: true"),
            ),
            _ => {}
        }
    }

    let views = SegmentView::all(policy);
    // Names shared by a segment and a closed group.
    for g in policy.closed_groups.keys() {
        if policy.segments.contains_key(g) {
            push(
                root.key("closed_groups").key(g.as_str()),
                format!("closed group {:?} has the same name as a segment", g.as_str()),
            );
        }
    }
    // Per-segment shape, overlaps and ports.
    let mut ports: HashMap<u16, &SegmentView> = HashMap::new();
    for (i, v) in views.iter().enumerate() {
        // Site N gets the N-th subnet and number 0 is reserved: a site_prefix equal to the
        // CIDR's leaves no subnet for any site.
        if v.site_prefix <= v.cidr.prefix_len() || v.site_prefix > 30 {
            push(
                v.path().key("site_prefix"),
                format!(
                    "site_prefix /{} must be longer than the CIDR's /{} (each site gets one of its subnets) and at most /30",
                    v.site_prefix,
                    v.cidr.prefix_len()
                ),
            );
        }
        if v.port == 0 {
            push(v.path().key("port"), "port 0 is not a usable WireGuard port".into());
        }
        // The port is also the segment's routing table id; these are the kernel's own tables.
        if (252..=255).contains(&v.port) {
            push(
                v.path().key("port"),
                format!(
                    "port {} is also the segment's routing table id, and tables 252-255 are the \
                     kernel's (compat, default, main, local): its unreachable default would cut \
                     the router off; choose another port",
                    v.port
                ),
            );
        }
        for other in &views[..i] {
            if other.cidr.contains(&v.cidr.network()) || v.cidr.contains(&other.cidr.network()) {
                clash(
                    v.path().key("cidr"),
                    other.path().key("cidr"),
                    format!(
                        "CIDRs overlap: {} of {:?} and {} of {:?}",
                        v.cidr,
                        v.name.as_str(),
                        other.cidr,
                        other.name.as_str()
                    ),
                );
            }
        }
        if let Some(other) = ports.get(&v.port) {
            clash(
                v.path().key("port"),
                other.path().key("port"),
                format!("duplicate port {} (also used by {:?})", v.port, other.name.as_str()),
            );
        } else {
            ports.insert(v.port, v);
        }
    }

    // Centre services: usable ports, each service once.
    for (name, seg) in &policy.segments {
        let sp = root.key("segments").key(name.as_str()).key("centre_services");
        let mut seen: BTreeMap<(super::document::Proto, u16), usize> = BTreeMap::new();
        let mut service_names: HashMap<&str, usize> = HashMap::new();
        for (j, svc) in seg.centre_services.iter().enumerate() {
            if svc.port == 0 {
                push(sp.index(j).key("port"), format!("service {:?}: port 0 is not a usable port", svc.name));
            } else if let Some(first) = seen.insert((svc.proto, svc.port), j) {
                push(
                    sp.index(j).key("port"),
                    format!(
                        "{} port {} is listed twice (also centre_services[{first}])",
                        svc.proto.as_str(),
                        svc.port
                    ),
                );
            }
            if let Some(first) = service_names.insert(svc.name.as_str(), j) {
                push(
                    sp.index(j).key("name"),
                    format!("service {:?} is listed twice (also centre_services[{first}])", svc.name),
                );
            }
        }
    }

    // Sites: unique numbers, names, endpoints and keys.
    let sites = root.key("sites");
    let mut numbers: HashMap<u16, &SiteName> = HashMap::new();
    let mut names: HashMap<&SiteName, usize> = HashMap::new();
    let mut keys: HashMap<&str, (&SiteName, &SegmentName)> = HashMap::new();
    let mut endpoints: HashMap<std::net::IpAddr, usize> = HashMap::new();
    let mut centres = 0;
    for (i, site) in policy.sites.iter().enumerate() {
        let sp = sites.index(i);
        if site.kind == SiteKind::Centre {
            centres += 1;
        }
        if site.number == 0 {
            push(sp.key("number"), "site number 0 is reserved; numbers start at 1".into());
        }
        if let Some(other) = numbers.insert(site.number, &site.name) {
            push(
                sp.key("number"),
                format!("duplicate site number {} (also site {:?})", site.number, other.as_str()),
            );
        }
        if names.insert(&site.name, i).is_some() {
            push(sp.key("name"), format!("duplicate site name {:?}", site.name.as_str()));
        }
        if site.endpoint.is_unspecified() || site.endpoint.is_loopback() || site.endpoint.is_multicast() {
            push(
                sp.key("endpoint"),
                format!("endpoint {} must be a concrete unicast address the peers can reach", site.endpoint),
            );
        } else if let Some(first) = endpoints.insert(site.endpoint, i) {
            // Every segment's port is the same at every site: one address holds one site.
            clash(
                sp.key("endpoint"),
                sites.index(first).key("endpoint"),
                format!(
                    "endpoint {} is also site {:?}'s; peers reach a site at its endpoint and the segment's port, so each site needs its own",
                    site.endpoint,
                    policy.sites[first].name.as_str()
                ),
            );
        }
        for (seg, key) in &site.keys {
            if let Some((other_site, other_seg)) = keys.insert(key.as_str(), (&site.name, seg)) {
                push(
                    sp.key("keys").key(seg.as_str()),
                    format!(
                        "duplicate public key (also site {:?} segment {:?}); every site and segment needs its own keypair",
                        other_site.as_str(),
                        other_seg.as_str()
                    ),
                );
            }
        }
        for (j, joined) in site.joins.iter().enumerate() {
            if policy.closed_groups.contains_key(joined) {
                push(
                    sp.key("joins").index(j),
                    format!(
                        "{:?} is a closed group; list the site in closed_groups.{}.members instead",
                        joined.as_str(),
                        joined.as_str()
                    ),
                );
            } else if !policy.segments.contains_key(joined) {
                push(sp.key("joins").index(j), format!("unknown segment {:?}", joined.as_str()));
            }
        }
    }
    let has_hub = views.iter().any(|v| !v.centre_services.is_empty());
    if has_hub && centres == 0 {
        push(
            sites.clone(),
            "segments with centre_services need a site of kind centre (several: each runs the services, e.g. a standby centre)".into(),
        );
    }

    // Closed-group members.
    for (g, spec) in &policy.closed_groups {
        let gp = root.key("closed_groups").key(g.as_str()).key("members");
        let mut seen = BTreeSet::new();
        for (j, m) in spec.members.iter().enumerate() {
            if !names.contains_key(m) {
                push(gp.index(j), format!("member {:?} is not a site of this policy", m.as_str()));
            }
            if !seen.insert(m) {
                push(gp.index(j), format!("member {:?} is listed twice", m.as_str()));
            }
        }
        if seen.len() < 2 {
            push(gp, "a closed group needs at least two members".into());
        }
    }

    // Per-site segment data: keys and LANs exactly for the joined segments.
    let members = memberships(policy);
    for (i, site) in policy.sites.iter().enumerate() {
        let sp = sites.index(i);
        let joined: Vec<&SegmentView> =
            views.iter().filter(|v| members.get(&v.name).is_some_and(|m| m.contains(&site.name))).collect();
        for v in &joined {
            let what = if v.required { "mandatory segment" } else { "segment" };
            if !site.keys.contains_key(&v.name) {
                push(
                    sp.key("keys"),
                    format!(
                        "site {:?} lacks a public key for {what} {:?}",
                        site.name.as_str(),
                        v.name.as_str()
                    ),
                );
            }
            if !site.lan.contains_key(&v.name) {
                push(
                    sp.key("lan"),
                    format!(
                        "site {:?} lacks a LAN interface for {what} {:?}",
                        site.name.as_str(),
                        v.name.as_str()
                    ),
                );
            }
            let slots = 1u64 << (v.site_prefix.saturating_sub(v.cidr.prefix_len())).min(32);
            if v.site_prefix > v.cidr.prefix_len() && v.site_prefix <= 30 && u64::from(site.number) >= slots {
                push(
                    sp.key("number"),
                    format!(
                        "site number {} does not fit segment {:?}: {} holds only {} /{} subnets (numbers 1-{})",
                        site.number,
                        v.name.as_str(),
                        v.cidr,
                        slots,
                        v.site_prefix,
                        slots - 1
                    ),
                );
            }
        }
        for (field, map_keys) in
            [("keys", site.keys.keys().collect::<Vec<_>>()), ("lan", site.lan.keys().collect())]
        {
            for seg in map_keys {
                if !joined.iter().any(|v| &v.name == seg) {
                    push(
                        sp.key(field).key(seg.as_str()),
                        format!("site {:?} does not join segment {:?}", site.name.as_str(), seg.as_str()),
                    );
                }
            }
        }
        // VLAN ids are canonical (`names::check_lan`), so one spelling is one interface.
        let mut lans: HashMap<&str, &SegmentName> = HashMap::new();
        for (seg, lan) in &site.lan {
            if let Some(other) = lans.insert(lan.as_str(), seg) {
                push(
                    sp.key("lan").key(seg.as_str()),
                    format!(
                        "LAN interface {:?} is already used by segment {:?}",
                        lan.as_str(),
                        other.as_str()
                    ),
                );
            }
        }
    }
    problems.extend(clashes);
    problems
}
