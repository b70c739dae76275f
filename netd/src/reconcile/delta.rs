//! The change a delta pass makes, derived from the last good record and the new plan alone (no
//! kernel dump): peers added, changed or removed, a new private key on a device, the firewall and
//! forwarding. Peers paired by public key in one merge walk, no snapshot or clone of the unchanged peers: for
//! 1,236 peers this is a small part of what building a snapshot and running [`crate::diff::diff`]
//! cost, and it gives the same changes (checked by the tests below).

use crate::diff::Change;
use crate::kernel::wireguard::same_peer;
use crate::plan::{DesiredState, pair_peers};
use crate::state::LastGood;

/// The changes from `last` to `new`, in apply order; None when anything else differs (a link,
/// an address, a route, a rule, a device's port, the mode or the site): that needs a full pass.
pub(super) fn changes(last: &LastGood, new: &DesiredState) -> Option<Vec<Change>> {
    let old = &last.desired;
    if old.site != new.site
        || old.mode != new.mode
        || old.links != new.links
        || old.addresses != new.addresses
        || old.routes != new.routes
        || old.rules != new.rules
        || old.wireguard.len() != new.wireguard.len()
    {
        return None;
    }
    let mut out = Vec::new();
    for (ow, nw) in old.wireguard.iter().zip(&new.wireguard) {
        if ow.iface != nw.iface || ow.segment != nw.segment || ow.port != nw.port {
            return None;
        }
        if ow.public_key != nw.public_key {
            out.push(Change::ConfigureWireguard {
                iface: nw.iface.clone(),
                segment: nw.segment.clone(),
                port: nw.port,
            });
        }
        let (mut removes, mut sets) = (Vec::new(), Vec::new());
        pair_peers(&ow.peers, &nw.peers, |o, n| match (o, n) {
            (Some(o), None) => {
                removes.push(Change::RemovePeer { iface: nw.iface.clone(), public_key: o.public_key.clone() })
            }
            (o, Some(n)) if !o.is_some_and(|o| same_peer(o, n)) => {
                sets.push(Change::SetPeer { iface: nw.iface.clone(), peer: Box::new(n.clone()) })
            }
            _ => {}
        });
        out.extend(removes);
        out.extend(sets);
    }
    // As `diff` sees the firewall of the record: listed as it was read back after the apply.
    if new.firewall.is_empty() {
        if !old.firewall.is_empty() {
            out.push(Change::DeleteFirewall);
        }
    } else if old.firewall != new.firewall || last.firewall_readback.is_none() {
        out.push(Change::ReplaceFirewall);
    }
    if new.forwarding && !old.forwarding {
        out.push(Change::EnableForwarding);
    }
    out.sort_by_key(Change::phase);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diff::{FirewallReference, Snapshot, diff};
    use crate::plan::{Mode, plan};
    use crate::policy::{Policy, PublicKey, ValidPolicy};
    use crate::synthetic;

    fn desired(p: Policy) -> DesiredState {
        let v = ValidPolicy::new(p).expect("valid");
        plan(&v, &synthetic::site_name(2), Mode::Vrf, "127.0.0.1:9190".parse().unwrap()).unwrap()
    }

    /// What the general diff gives against a kernel that holds exactly `old`.
    fn by_diff(old: &LastGood, new: &DesiredState) -> Vec<Change> {
        let readback = old.firewall_readback.clone().unwrap_or_default();
        let snap = Snapshot::assuming_applied(&old.desired, readback);
        let keys = new.wireguard.iter().map(|w| (w.segment.clone(), w.public_key.clone())).collect();
        let fw_ref = old
            .firewall_readback
            .as_ref()
            .map(|r| FirewallReference { applied: &old.desired.firewall, readback: r });
        diff(new, &[new, &old.desired], &snap, &keys, fw_ref)
    }

    fn record(d: DesiredState) -> LastGood {
        LastGood { desired: d, firewall_readback: Some(serde_json::json!(["listing"])) }
    }

    #[test]
    fn peer_changes_are_those_the_general_diff_finds() {
        let base = synthetic::policy(60);
        let old = record(desired(base.clone()));
        // One site more, one site less, one site moved to another endpoint, a rotated own key.
        let mut p = base.clone();
        p.sites.push(synthetic::policy(61).sites.pop().unwrap());
        p.sites.retain(|s| s.number != 17);
        p.sites.iter_mut().find(|s| s.number == 30).unwrap().endpoint = "192.0.2.99".parse().unwrap();
        let me = p.sites.iter_mut().find(|s| s.name == synthetic::site_name(2)).unwrap();
        *me.keys.values_mut().next().unwrap() = PublicKey::from_bytes(&[42; 32]);
        let new = desired(p);
        let fast = changes(&old, &new).expect("only peers and a key change");
        assert_eq!(fast, by_diff(&old, &new));
        assert!(fast.iter().any(|c| matches!(c, Change::RemovePeer { .. })));
        assert!(fast.iter().any(|c| matches!(c, Change::ConfigureWireguard { .. })));
        // Nothing changed: nothing to do.
        assert_eq!(changes(&old, &old.desired), Some(vec![]));
        // No readback on record: the firewall is replaced, as a full pass would.
        let bare = LastGood { firewall_readback: None, ..old.clone() };
        assert_eq!(changes(&bare, &old.desired), Some(vec![Change::ReplaceFirewall]));
        assert_eq!(changes(&bare, &old.desired).unwrap(), by_diff(&bare, &old.desired));
    }

    #[test]
    fn anything_but_peers_keys_firewall_and_forwarding_needs_a_full_pass() {
        let base = synthetic::policy(40);
        let old = record(desired(base.clone()));
        let mut moved = base;
        moved.segments.get_mut(&"conference".parse().unwrap()).unwrap().port = 51900;
        assert_eq!(changes(&old, &desired(moved)), None);
        let table = desired(synthetic::policy(40));
        let table = DesiredState { mode: Mode::Table, ..table };
        assert_eq!(changes(&old, &table), None);
    }
}
