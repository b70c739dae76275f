//! Table `inet kizuna` through the `nftables` crate (which runs `nft -j`). The table is
//! replaced atomically: one transaction adds, deletes and re-creates it, so no packet ever
//! sees a half-built ruleset.

use nftables::helper::{self, NftablesError};
use nftables::schema::Nftables;
use serde_json::{Value, json};

use crate::error::{Error, Result};
use crate::plan::{Firewall, ForwardRule};

pub const FAMILY: &str = "inet";
pub const TABLE: &str = "kizuna";

fn matches(left: Value, right: Value) -> Value {
    json!({ "match": { "op": "==", "left": left, "right": right } })
}
fn meta(key: &str) -> Value {
    json!({ "meta": { "key": key } })
}
fn names(v: &[String]) -> Value {
    if v.len() == 1 { json!(v[0]) } else { json!({ "set": v }) }
}
fn prefix(net: ipnet::Ipv4Net) -> Value {
    json!({ "prefix": { "addr": net.network().to_string(), "len": net.prefix_len() } })
}
fn payload(proto: &str, field: &str) -> Value {
    json!({ "payload": { "protocol": proto, "field": field } })
}
fn ct_state(states: &[&str]) -> Value {
    json!({ "match": { "op": "in", "left": { "ct": { "key": "state" } }, "right": states } })
}
fn ports(v: &[u16]) -> Value {
    if v.len() == 1 { json!(v[0]) } else { json!({ "set": v }) }
}

fn rule(chain: &str, expr: Vec<Value>, comment: Option<&str>) -> Value {
    let mut r = json!({ "family": FAMILY, "table": TABLE, "chain": chain, "expr": expr });
    if let Some(c) = comment {
        r["comment"] = json!(c);
    }
    json!({ "add": { "rule": r } })
}

fn chain(name: &str, hook: &str, prio: i32, policy: &str) -> Value {
    json!({ "add": { "chain": {
        "family": FAMILY, "table": TABLE, "name": name,
        "type": "filter", "hook": hook, "prio": prio, "policy": policy
    } } })
}

fn forward_rule(r: &ForwardRule) -> Value {
    let mut expr = vec![matches(meta("iifname"), names(&r.iifs)), matches(meta("oifname"), json!(r.oif))];
    if r.established_only {
        expr.push(ct_state(&["established", "related"]));
    }
    if let Some(s) = r.saddr {
        expr.push(matches(payload("ip", "saddr"), prefix(s)));
    }
    if let Some(d) = r.daddr {
        expr.push(matches(payload("ip", "daddr"), prefix(d)));
    }
    if let Some((proto, p)) = &r.service {
        expr.push(matches(payload(proto.as_str(), "dport"), ports(p)));
    }
    expr.push(json!({ "accept": null }));
    rule("forward", expr, Some(&format!("segment {}", r.segment)))
}

/// The nft JSON commands that replace table `kizuna` with `fw` (or delete it when empty).
pub fn render(fw: &Firewall) -> Value {
    let table = json!({ "table": { "family": FAMILY, "name": TABLE } });
    let mut cmds = vec![json!({ "add": table.clone() }), json!({ "delete": table.clone() })];
    if fw.is_empty() {
        return json!({ "nftables": cmds });
    }
    cmds.push(json!({ "add": table }));
    // Conntrack zones: a segment's devices share one zone, before conntrack (raw priority).
    cmds.push(chain("zones", "prerouting", -300, "accept"));
    if !fw.zones.is_empty() {
        let map: Vec<Value> = fw.zones.iter().map(|(d, z)| json!([d, z])).collect();
        cmds.push(rule(
            "zones",
            vec![json!({ "mangle": {
                "key": { "ct": { "key": "zone" } },
                "value": { "map": { "key": meta("iifname"), "data": { "set": map } } }
            } })],
            Some("per-segment conntrack zones"),
        ));
    }
    // Locally generated packets (e.g. an upload agent on the router bound to a segment's VRF)
    // get the zone of the device they leave by, so that their replies, zoned at prerouting,
    // match their connection instead of being dropped by the input chain.
    cmds.push(chain("outzones", "output", -300, "accept"));
    if !fw.zones.is_empty() {
        let map: Vec<Value> = fw.zones.iter().map(|(d, z)| json!([d, z])).collect();
        cmds.push(rule(
            "outzones",
            vec![json!({ "mangle": {
                "key": { "ct": { "key": "zone" } },
                "value": { "map": { "key": meta("oifname"), "data": { "set": map } } }
            } })],
            Some("per-segment conntrack zones, locally generated"),
        ));
    }
    // Forward: only what the policy allows; everything else (between segments) is dropped.
    cmds.push(chain("forward", "forward", 0, "drop"));
    cmds.push(rule("forward", vec![ct_state(&["invalid"]), json!({ "drop": null })], None));
    for r in &fw.forward {
        cmds.push(forward_rule(r));
    }
    // Input: loopback, replies, tunnel ports, the management API, the centre's own services from
    // their segment and ICMP errors only.
    cmds.push(chain("input", "input", 0, "drop"));
    cmds.push(rule("input", vec![matches(meta("iifname"), json!("lo")), json!({ "accept": null })], None));
    cmds.push(rule("input", vec![ct_state(&["established", "related"]), json!({ "accept": null })], None));
    cmds.push(rule("input", vec![ct_state(&["invalid"]), json!({ "drop": null })], None));
    if !fw.tunnel_ports.is_empty() {
        cmds.push(rule(
            "input",
            vec![matches(payload("udp", "dport"), ports(&fw.tunnel_ports)), json!({ "accept": null })],
            Some("wireguard tunnels"),
        ));
    }
    // Local services on the router (the management API, `admit_underlay`) are admitted from any
    // interface but the segments' devices: a segment host or a peer over `kzw-*` that sends to
    // the router's underlay address (or any of its addresses) is delivered locally too.
    let not_segments = not_segment_devices(fw);
    if let Some(api) = fw.api.filter(|a| !a.ip().is_loopback()) {
        let mut expr: Vec<Value> = not_segments.iter().cloned().collect();
        match api.ip() {
            std::net::IpAddr::V4(v4) if !v4.is_unspecified() => {
                expr.push(matches(payload("ip", "daddr"), json!(v4.to_string())));
            }
            std::net::IpAddr::V6(v6) if !v6.is_unspecified() => {
                expr.push(matches(payload("ip6", "daddr"), json!(v6.to_string())));
            }
            _ => {}
        }
        expr.push(matches(payload("tcp", "dport"), json!(api.port())));
        expr.push(json!({ "accept": null }));
        cmds.push(rule("input", expr, Some("management api")));
    }
    for (proto, port) in &fw.admit_underlay {
        let mut expr: Vec<Value> = not_segments.iter().cloned().collect();
        expr.push(matches(payload(proto.as_str(), "dport"), json!(port)));
        expr.push(json!({ "accept": null }));
        cmds.push(rule("input", expr, Some("admit_underlay")));
    }
    for svc in &fw.admit_segment {
        cmds.push(rule(
            "input",
            vec![
                matches(meta("iifname"), names(&svc.iifs)),
                matches(payload("ip", "saddr"), prefix(svc.saddr)),
                matches(payload("ip", "daddr"), prefix(svc.daddr)),
                matches(payload(svc.proto.as_str(), "dport"), ports(&svc.ports)),
                json!({ "accept": null }),
            ],
            Some(&format!("centre services of segment {}", svc.segment)),
        ));
    }
    cmds.push(rule(
        "input",
        vec![
            matches(
                payload("icmp", "type"),
                json!({ "set": ["destination-unreachable", "time-exceeded", "parameter-problem"] }),
            ),
            json!({ "accept": null }),
        ],
        None,
    ));
    // ICMPv6: errors, and neighbour discovery from on-link senders only (hop limit 255, RFC
    // 4861); router advertisements, redirects and the rest fall to the chain's drop.
    cmds.push(rule(
        "input",
        vec![
            matches(
                payload("icmpv6", "type"),
                json!({ "set": ["destination-unreachable", "packet-too-big", "time-exceeded", "parameter-problem"] }),
            ),
            json!({ "accept": null }),
        ],
        None,
    ));
    cmds.push(rule(
        "input",
        vec![
            matches(
                payload("icmpv6", "type"),
                json!({ "set": ["nd-neighbor-solicit", "nd-neighbor-advert"] }),
            ),
            matches(payload("ip6", "hoplimit"), json!(255)),
            json!({ "accept": null }),
        ],
        None,
    ));
    json!({ "nftables": cmds })
}

/// `iifname != { every segment device }`; None when the firewall has no segment device.
fn not_segment_devices(fw: &Firewall) -> Option<Value> {
    let mut devices: Vec<String> = fw.zones.iter().map(|(d, _)| d.clone()).collect();
    devices.sort();
    devices.dedup();
    (!devices.is_empty())
        .then(|| json!({ "match": { "op": "!=", "left": meta("iifname"), "right": { "set": devices } } }))
}

/// Replace (or delete) the table in one `nft` transaction.
pub fn apply(fw: &Firewall) -> Result<()> {
    let doc = render(fw);
    let parsed: Nftables = serde_json::from_value(doc)
        .map_err(|e| Error::kernel("nftables", format!("ruleset does not fit the nft schema: {e}")))?;
    helper::apply_ruleset(&parsed).map_err(|e| Error::kernel("nftables", e))
}

/// The table as nft lists it, without handles or counters, so that two listings of the same
/// ruleset compare equal. None when the table does not exist. Listing spawns `nft`; when the
/// ruleset generation ([`super::nft_generation`]) is where it was at the last listing in this
/// network namespace, nothing in any table has changed since, and that listing is the answer.
pub fn observe() -> Result<Option<Value>> {
    let now = generation_here();
    {
        let last = LAST_LISTING.lock().unwrap_or_else(|p| p.into_inner());
        if let (Some(now), Some(last)) = (now, last.as_ref())
            && last.at == now
        {
            return Ok(last.table.clone());
        }
    }
    let table = list()?;
    if let Some(at) = now {
        // Read before the listing: a change in between moves the generation past `at`, so the
        // next observation lists again.
        *LAST_LISTING.lock().unwrap_or_else(|p| p.into_inner()) = Some(Listing { at, table: table.clone() });
    }
    Ok(table)
}

/// The last listing of the table and where the ruleset was just before it.
struct Listing {
    /// Network namespace (inode of `/proc/thread-self/ns/net`) and ruleset generation.
    at: (u64, u32),
    table: Option<Value>,
}

static LAST_LISTING: std::sync::Mutex<Option<Listing>> = std::sync::Mutex::new(None);

/// This thread's network namespace and its ruleset generation; None (always list) when either
/// cannot be read.
fn generation_here() -> Option<(u64, u32)> {
    use std::os::unix::fs::MetadataExt;
    let netns = std::fs::metadata("/proc/thread-self/ns/net").ok()?.ino();
    match super::nft_generation::generation() {
        Ok(g) => Some((netns, g)),
        Err(e) => {
            tracing::debug!(error = %e, "nftables generation unreadable; listing the table");
            None
        }
    }
}

fn list() -> Result<Option<Value>> {
    let args = ["list", "table", FAMILY, TABLE];
    match helper::get_current_ruleset_raw(helper::DEFAULT_NFT, args) {
        Ok(raw) => {
            let v: Value = serde_json::from_str(&raw).map_err(|e| Error::kernel("nftables", e))?;
            Ok(Some(canonical(v)))
        }
        Err(NftablesError::NftFailed { stderr, .. }) if stderr.contains("No such file") => Ok(None),
        Err(e) => Err(Error::kernel("nftables", e)),
    }
}

fn canonical(v: Value) -> Value {
    let mut out = Vec::new();
    if let Some(items) = v.get("nftables").and_then(|n| n.as_array()) {
        for item in items {
            if item.get("metainfo").is_some() {
                continue;
            }
            let mut item = item.clone();
            strip(&mut item);
            out.push(item);
        }
    }
    Value::Array(out)
}

fn strip(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.remove("handle");
            m.remove("counter");
            for (_, x) in m.iter_mut() {
                strip(x);
            }
        }
        Value::Array(a) => a.iter_mut().for_each(strip),
        _ => {}
    }
}

/// Is the `nft` binary usable?
pub fn available() -> bool {
    std::process::Command::new("nft").arg("--version").output().is_ok_and(|o| o.status.success())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn firewall(api: &str) -> Firewall {
        Firewall {
            zones: vec![("kzw-upload".into(), 51821), ("lan1".into(), 51821)],
            tunnel_ports: vec![51821],
            api: Some(api.parse().unwrap()),
            ..Firewall::default()
        }
    }

    fn input_rules(fw: &Firewall) -> Vec<Value> {
        let doc = render(fw);
        doc["nftables"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|c| c["add"].get("rule"))
            .filter(|r| r["chain"] == "input")
            .cloned()
            .collect()
    }

    #[test]
    fn the_management_api_is_admitted_from_non_segment_devices_only() {
        for (api, daddr) in [
            ("0.0.0.0:9190", None),
            ("[::]:9190", None),
            ("192.0.2.1:9190", Some(("ip", "192.0.2.1"))),
            ("[2001:db8::1]:9190", Some(("ip6", "2001:db8::1"))),
        ] {
            let rules = input_rules(&firewall(api));
            let rule = rules
                .iter()
                .find(|r| r["comment"] == "management api")
                .unwrap_or_else(|| panic!("{api}: no api rule"));
            let expr = rule["expr"].as_array().unwrap();
            let not_segments = json!({ "match": { "op": "!=", "left": meta("iifname"),
                "right": { "set": ["kzw-upload", "lan1"] } } });
            assert!(expr.contains(&not_segments), "{api}: segment devices not excluded: {rule}");
            if let Some((family, addr)) = daddr {
                assert!(expr.contains(&matches(payload(family, "daddr"), json!(addr))), "{api}: {rule}");
            }
            assert!(expr.contains(&matches(payload("tcp", "dport"), json!(9190))), "{api}: {rule}");
        }
        // Loopback needs no rule (the `lo` rule admits it).
        for api in ["[2001:db8::1]:9190", "0.0.0.0:9190"] {
            let doc = render(&firewall(api));
            serde_json::from_value::<Nftables>(doc).expect("fits the nft schema");
        }
        assert!(!input_rules(&firewall("127.0.0.1:9190")).iter().any(|r| r["comment"] == "management api"));
    }

    #[test]
    fn icmpv6_admits_errors_and_neighbour_discovery_only() {
        let rules = input_rules(&firewall("127.0.0.1:9190"));
        let text = serde_json::to_string(&rules).unwrap();
        assert!(!text.contains(r#""right":"ipv6-icmp""#), "every ICMPv6 type admitted: {text}");
        let v6: Vec<&Value> = rules.iter().filter(|r| r.to_string().contains("icmpv6")).collect();
        assert_eq!(v6.len(), 2, "{text}");
        let errors = json!({ "set": ["destination-unreachable", "packet-too-big", "time-exceeded", "parameter-problem"] });
        assert!(
            v6[0]["expr"].as_array().unwrap().contains(&matches(payload("icmpv6", "type"), errors)),
            "{text}"
        );
        let nd = &v6[1]["expr"];
        assert!(
            nd.as_array().unwrap().contains(&matches(
                payload("icmpv6", "type"),
                json!({ "set": ["nd-neighbor-solicit", "nd-neighbor-advert"] })
            )),
            "{nd}"
        );
        assert!(nd.as_array().unwrap().contains(&matches(payload("ip6", "hoplimit"), json!(255))), "{nd}");
    }
}
