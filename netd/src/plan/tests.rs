//! Planner tests: addressing, closed groups, no overlaps, idempotence and scale.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;

use super::*;
use crate::diff::{Change, FirewallReference, Snapshot, diff};
use crate::policy::{PublicKey, SegmentName, ValidPolicy};
use crate::synthetic;

fn api() -> SocketAddr {
    "127.0.0.1:9190".parse().unwrap()
}

fn keys_of(st: &DesiredState) -> BTreeMap<SegmentName, PublicKey> {
    st.wireguard.iter().map(|w| (w.segment.clone(), w.public_key.clone())).collect()
}

fn valid(n: u16) -> ValidPolicy {
    ValidPolicy::new(synthetic::policy(n)).expect("synthetic policy is valid")
}

#[test]
fn every_member_peers_with_every_other_member_directly() {
    let p = valid(30);
    for n in 1..=30u16 {
        let st = plan(&p, &synthetic::site_name(n), Mode::Vrf, api()).unwrap();
        for wg in &st.wireguard {
            let members = p.members(&wg.segment).unwrap();
            assert_eq!(wg.peers.len(), members.len() - 1, "site {n} segment {}", wg.segment);
            assert!(wg.peers.iter().all(|peer| members.contains(&peer.site) && peer.site != st.site));
        }
    }
}

#[test]
fn closed_group_is_planned_only_on_its_members() {
    let p = valid(30);
    let members = p.members(&"radiology".parse().unwrap()).unwrap().clone();
    assert_eq!(members.len(), 3);
    for n in 1..=30u16 {
        let name = synthetic::site_name(n);
        let st = plan(&p, &name, Mode::Vrf, api()).unwrap();
        let has = st.segments.iter().any(|s| s.name.as_str() == "radiology");
        assert_eq!(has, members.contains(&name), "site {n}");
    }
}

#[test]
fn addresses_follow_cidr_and_site_number() {
    let p = valid(12);
    let st = plan(&p, &synthetic::site_name(7), Mode::Vrf, api()).unwrap();
    let refseg = st.segments.iter().find(|s| s.name.as_str() == "reference").unwrap();
    assert_eq!(refseg.subnet.to_string(), "10.64.7.0/24");
    assert!(st.addresses.iter().any(|a| a.net.to_string() == "10.64.7.1/24" && a.iface == refseg.lan));
    let wg = st.wireguard.iter().find(|w| w.segment.as_str() == "reference").unwrap();
    let centre = wg.peers.iter().find(|p| p.site.as_str() == "centre").unwrap();
    assert_eq!(centre.allowed_ips[0].to_string(), "10.64.1.0/24");
    assert_eq!(centre.endpoint.to_string(), "198.18.0.1:51820");
}

#[test]
fn table_mode_selects_segment_tables_by_rule_and_says_so() {
    let p = valid(5);
    let st = plan(&p, &synthetic::site_name(3), Mode::Table, api()).unwrap();
    assert!(st.links.iter().all(|l| !matches!(l.kind, LinkKind::Vrf { .. })));
    for s in &st.segments {
        assert!(s.vrf.is_none());
        assert!(st.rules.contains(&RuleSpec { priority: RULE_PRIORITY, iif: s.lan.clone(), table: s.table }));
        assert!(st.rules.contains(&RuleSpec {
            priority: RULE_PRIORITY,
            iif: s.wireguard.clone(),
            table: s.table
        }));
        // A miss in the segment table must not fall through to another segment's routes.
        assert!(st.routes.iter().any(|r| r.table == s.table && r.target == RouteTarget::Unreachable));
        // The router's own address as a /32 on the WireGuard device: the source of sockets
        // bound to it (the hosted agent).
        let own = crate::plan::addressing::router_address(s.subnet).addr();
        assert!(st.addresses.iter().any(|a| a.iface == s.wireguard && a.net == Ipv4Net::from(own)));
    }
    let vrf = plan(&p, &synthetic::site_name(3), Mode::Vrf, api()).unwrap();
    assert!(vrf.addresses.iter().all(|a| !a.iface.starts_with("kzw-")));
}

#[test]
fn firewall_allows_hub_segments_only_to_centre_services() {
    let p = valid(5);
    let st = plan(&p, &synthetic::site_name(3), Mode::Vrf, api()).unwrap();
    let upload: Vec<_> =
        st.firewall.forward.iter().filter(|r| r.segment == "upload" && !r.established_only).collect();
    assert_eq!(upload.len(), 1);
    assert_eq!(upload[0].daddr.unwrap().to_string(), "10.68.1.0/24");
    assert_eq!(upload[0].service, Some((crate::policy::Proto::Tcp, vec![8080])));
    // No rule lets a segment's devices out through another segment's interfaces.
    for r in &st.firewall.forward {
        let seg = st.segments.iter().find(|s| s.name.as_str() == r.segment).unwrap();
        assert!(r.oif == seg.lan || r.oif == seg.wireguard);
        let own: BTreeSet<&str> =
            [seg.lan.as_str(), seg.wireguard.as_str()].into_iter().chain(seg.vrf.as_deref()).collect();
        assert!(r.iifs.iter().all(|i| own.contains(i.as_str())));
    }
}

#[test]
fn output_chain_zones_locally_generated_packets_by_outgoing_interface() {
    let p = valid(5);
    for mode in [Mode::Vrf, Mode::Table] {
        let st = plan(&p, &synthetic::site_name(3), mode, api()).unwrap();
        let doc = crate::kernel::nftables::render(&st.firewall);
        let cmds = doc["nftables"].as_array().unwrap();
        let chain = cmds
            .iter()
            .filter_map(|c| c["add"].get("chain"))
            .find(|c| c["hook"] == "output")
            .unwrap_or_else(|| panic!("{mode}: no output chain in {doc}"));
        assert_eq!(chain["prio"], -300, "{mode}: zones must be set before conntrack (raw priority)");
        let name = chain["name"].as_str().unwrap();
        let rules: Vec<&serde_json::Value> =
            cmds.iter().filter_map(|c| c["add"].get("rule")).filter(|r| r["chain"] == name).collect();
        assert_eq!(rules.len(), 1, "{mode}");
        let mangle = &rules[0]["expr"][0]["mangle"];
        assert_eq!(mangle["key"]["ct"]["key"], "zone");
        assert_eq!(mangle["value"]["map"]["key"]["meta"]["key"], "oifname");
        let map: BTreeMap<String, u64> = mangle["value"]["map"]["data"]["set"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| (e[0].as_str().unwrap().to_string(), e[1].as_u64().unwrap()))
            .collect();
        // Every device of every segment leaves in that segment's zone (its WireGuard port).
        let ports: BTreeMap<&str, u16> = st.wireguard.iter().map(|w| (w.iface.as_str(), w.port)).collect();
        for seg in &st.segments {
            let zone = u64::from(ports[seg.wireguard.as_str()]);
            for dev in [Some(&seg.lan), Some(&seg.wireguard), seg.vrf.as_ref()].into_iter().flatten() {
                assert_eq!(map.get(dev.as_str()), Some(&zone), "{mode}: device {dev}");
            }
        }
        let devices = st.segments.iter().map(|s| 2 + usize::from(s.vrf.is_some())).sum::<usize>();
        assert_eq!(map.len(), devices, "{mode}: {map:?}");
    }
}

#[test]
fn a_router_with_segments_wants_forwarding_and_an_empty_state_leaves_it_alone() {
    let p = valid(5);
    let st = plan(&p, &synthetic::site_name(2), Mode::Vrf, api()).unwrap();
    assert!(st.forwarding);
    let readback = serde_json::json!(["listing"]);
    let mut snap = Snapshot::assuming_applied(&st, readback.clone());
    let fw_ref = FirewallReference { applied: &st.firewall, readback: &readback };
    snap.ip_forward = false;
    let changes = diff(&st, &[&st], &snap, &keys_of(&st), Some(fw_ref));
    assert_eq!(changes, vec![Change::EnableForwarding]);
    // Applied after the firewall, so nothing is forwarded unfiltered, and both before the first
    // peer, so no tunnel carries a packet before its isolation is in place.
    let scratch = diff(&st, &[&st], &Snapshot::default(), &keys_of(&st), None);
    let at = |f: fn(&Change) -> bool| scratch.iter().position(f).unwrap();
    let firewall = at(|c| matches!(c, Change::ReplaceFirewall));
    let forwarding = at(|c| matches!(c, Change::EnableForwarding));
    let first_peer = at(|c| matches!(c, Change::SetPeer { .. }));
    assert!(firewall < forwarding && forwarding < first_peer, "{scratch:?}");
    assert!(scratch[first_peer..].iter().all(|c| matches!(c, Change::SetPeer { .. })));
    // Rolling back to nothing never switches forwarding off.
    let empty = DesiredState::empty(st.site.clone(), Mode::Vrf);
    snap.ip_forward = true;
    let back = diff(&empty, &[&st], &snap, &BTreeMap::new(), Some(fw_ref));
    assert!(!back.iter().any(|c| matches!(c, Change::EnableForwarding)));
    assert!(!empty.forwarding);
}

#[test]
fn second_apply_of_the_same_policy_changes_nothing() {
    let p = valid(40);
    for mode in [Mode::Vrf, Mode::Table] {
        let st = plan(&p, &synthetic::site_name(2), mode, api()).unwrap();
        let readback = serde_json::json!(["listing"]);
        let snap = Snapshot::assuming_applied(&st, readback.clone());
        let fw_ref = FirewallReference { applied: &st.firewall, readback: &readback };
        let changes = diff(&st, &[&st], &snap, &keys_of(&st), Some(fw_ref));
        assert!(changes.is_empty(), "{mode}: {changes:?}");
        let from_scratch = diff(&st, &[&st], &Snapshot::default(), &keys_of(&st), None);
        assert!(from_scratch.iter().any(|c| matches!(c, Change::ReplaceFirewall)));
    }
}

#[test]
fn adding_one_site_to_400_changes_exactly_one_peer_per_joined_segment() {
    let before = synthetic::policy(400);
    let after_policy = synthetic::policy(401);
    // Site 401 is not in the closed group (401 % 10 != 2), so it joins three segments.
    let new_site = after_policy.sites.last().unwrap().clone();
    let mut after_raw = before.clone();
    after_raw.sites.push(new_site);
    let before = ValidPolicy::new(before).unwrap();
    let after = ValidPolicy::new(after_raw).unwrap();
    for n in [1u16, 2, 57, 400] {
        let site = synthetic::site_name(n);
        let old = plan(&before, &site, Mode::Vrf, api()).unwrap();
        let new = plan(&after, &site, Mode::Vrf, api()).unwrap();
        let readback = serde_json::json!(["listing"]);
        let snap = Snapshot::assuming_applied(&old, readback.clone());
        let fw_ref = FirewallReference { applied: &old.firewall, readback: &readback };
        let changes = diff(&new, &[&new, &old], &snap, &keys_of(&new), Some(fw_ref));
        let peers: Vec<&String> = changes
            .iter()
            .map(|c| match c {
                Change::SetPeer { iface, peer } => {
                    assert_eq!(peer.site.as_str(), "site-401");
                    iface
                }
                other => panic!("site {n}: unexpected change {other}"),
            })
            .collect();
        assert_eq!(peers.len(), 3, "site {n}: {peers:?}");
        let ifaces: BTreeSet<&String> = peers.into_iter().collect();
        assert_eq!(ifaces.len(), 3, "one peer on each of reference, upload, conference");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]
    #[test]
    fn planned_subnets_never_overlap_and_peers_cover_all_members(sites in 3u16..120, pick in 0u16..1000) {
        let p = valid(sites);
        let n = 1 + pick % sites;
        let st = plan(&p, &synthetic::site_name(n), Mode::Vrf, api()).unwrap();
        for wg in &st.wireguard {
            let seg = st.segments.iter().find(|s| s.wireguard == wg.iface).unwrap();
            let mut nets: Vec<ipnet::Ipv4Net> = wg.peers.iter().flat_map(|p| p.allowed_ips.clone()).collect();
            nets.push(seg.subnet);
            for (i, a) in nets.iter().enumerate() {
                for b in &nets[i + 1..] {
                    prop_assert!(!a.contains(&b.network()) && !b.contains(&a.network()), "{a} overlaps {b}");
                }
            }
            let keys: BTreeSet<_> = wg.peers.iter().map(|p| &p.public_key).collect();
            prop_assert_eq!(keys.len(), wg.peers.len());
        }
        // Segment address spaces are disjoint too.
        for (i, a) in st.segments.iter().enumerate() {
            for b in &st.segments[i + 1..] {
                prop_assert!(!a.subnet.contains(&b.subnet.network()));
            }
        }
    }
}

#[test]
fn peers_pair_by_public_key_in_order_or_not() {
    let st = plan(&valid(40), &synthetic::site_name(2), Mode::Vrf, api()).unwrap();
    let old = st.wireguard[0].peers.clone();
    let mut new = old.clone();
    let gone = new.remove(3).public_key;
    new[7].endpoint = "192.0.2.99:1".parse().unwrap();
    let mut added = new[0].clone();
    added.public_key = PublicKey::from_bytes(&[42; 32]);
    new.push(added.clone());
    new.sort_by(|a, b| a.public_key.cmp(&b.public_key));
    let pairs = |old: &[PeerSpec], new: &[PeerSpec]| {
        let mut out = BTreeSet::new();
        pair_peers(old, new, |o, n| {
            out.insert((
                o.map(|p| (p.public_key.clone(), p.endpoint)),
                n.map(|p| (p.public_key.clone(), p.endpoint)),
            ));
        });
        out
    };
    let walked = pairs(&old, &new);
    assert_eq!(walked.len(), old.len() + 1);
    assert!(walked.iter().any(|(o, n)| o.as_ref().is_some_and(|o| o.0 == gone) && n.is_none()));
    assert!(walked.iter().any(|(o, n)| o.is_none() && n.as_ref().is_some_and(|n| n.0 == added.public_key)));
    assert_eq!(walked.iter().filter(|(o, n)| o.is_some() && n.is_some() && o != n).count(), 1);
    // Out of order, the hash-map path pairs them the same.
    let (mut rold, mut rnew) = (old.clone(), new.clone());
    rold.reverse();
    rnew.reverse();
    assert_eq!(pairs(&rold, &rnew), walked);
}
