//! One reconcile pass: observe the kernel, diff against the desired state, apply only the
//! difference, verify by observing again, and roll back to the last good state on failure.
//!
//! A pass has a [`Scope`]. A full pass observes and verifies everything netd owns (startup, the
//! periodic reconcile, `netd apply`, every rollback). A delta pass (`netd run` on a policy change)
//! starts from the last good state, which a verified pass wrote, and observes and verifies only
//! what the change from that state to the desired one touches: the WireGuard devices whose peers
//! or private key change, and the firewall when it changes. Any other change (a link, an address,
//! a route, a rule, a device's port), or a touched device that is missing or has another port,
//! turns it into a full pass.

mod applier;
mod phases;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::diff::{Change, FirewallReference, LinkState, Snapshot, WireguardState, diff};
use crate::error::{Error, Result};
use crate::kernel::{self, Kernel};
use crate::keys::{self, PrivateKey};
use crate::plan::{DesiredState, RouteTarget};
use crate::policy::{PublicKey, SegmentName};
use crate::state::{self, LastGood};
use applier::Applier;
pub use phases::Phases;

/// Where keys and the last good state live, and the failure-injection budget.
pub struct Context {
    pub key_dir: PathBuf,
    pub last_good: PathBuf,
    /// `NETD_INJECT_FAIL_AFTER`: fail the apply after this many kernel changes.
    pub inject_fail_after: Option<usize>,
}

impl Context {
    /// Read `NETD_INJECT_FAIL_AFTER` from the environment.
    pub fn inject_from_env() -> Option<usize> {
        std::env::var("NETD_INJECT_FAIL_AFTER").ok().and_then(|v| v.parse().ok())
    }
}

/// How much of the kernel a pass observes and verifies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// Everything netd owns.
    #[default]
    Full,
    /// Only what differs between the last good state and the desired state.
    Delta,
}

/// What a pass did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Outcome {
    /// Changes that were needed (empty: nothing to do).
    pub changes: Vec<Change>,
    /// Kernel changes applied.
    pub applied: usize,
    pub elapsed: Duration,
    /// The scope the pass ran with (a delta pass may have become a full one).
    pub scope: Scope,
    /// Where the time went.
    pub phases: Phases,
}

/// Why a pass failed, and whether the rollback restored the last good state.
#[derive(Debug, thiserror::Error)]
#[error("{cause}; {}", if *.rolled_back { "rolled back to the last good state" } else { "ROLLBACK FAILED, state is mixed" })]
pub struct PassFailed {
    pub cause: Error,
    pub rolled_back: bool,
    pub rollback_error: Option<Error>,
}

/// What one observation reads from the kernel; everything else is taken from a base snapshot.
#[derive(Debug, Clone)]
struct Focus {
    /// Links, addresses, routes and rules (rtnetlink dumps); also every `kzw-*` device.
    netlink: bool,
    /// WireGuard devices to read.
    wireguard: BTreeSet<String>,
    /// Table `kizuna` (one `nft` run).
    firewall: bool,
}

impl Focus {
    fn full(wireguard: BTreeSet<String>) -> Self {
        Focus { netlink: true, wireguard, firewall: true }
    }
}

/// Observe what netd cares about: all links, addresses, netd routes and rules, the WireGuard
/// devices in `wg_ifaces` or named `kzw-*`, and table `kizuna`.
pub async fn observe(k: &Kernel, wg_ifaces: &BTreeSet<String>) -> Result<Snapshot> {
    observe_into(k, &Focus::full(wg_ifaces.clone()), Snapshot::default(), &mut Phases::default()).await
}

/// Read what `focus` names into `snap` (IPv4 forwarding is always read: one small file).
async fn observe_into(
    k: &Kernel,
    focus: &Focus,
    mut snap: Snapshot,
    phases: &mut Phases,
) -> Result<Snapshot> {
    let mut t = Instant::now();
    let mut wg_names = focus.wireguard.clone();
    if focus.netlink {
        let raw_links = kernel::links::observe(&k.rt).await?;
        let names: HashMap<u32, String> = raw_links.iter().map(|l| (l.index, l.name.clone())).collect();
        snap.links = raw_links
            .iter()
            .map(|l| LinkState {
                name: l.name.clone(),
                kind: l.kind.clone(),
                vrf_table: l.vrf_table,
                vlan: l.vlan.and_then(|(p, id)| names.get(&p).map(|n| (n.clone(), id))),
                master: l.master.and_then(|m| names.get(&m).cloned()),
                up: l.up,
            })
            .collect();
        t = phases.lap("observe/links", t);
        snap.addresses = kernel::addresses::observe(&k.rt)
            .await?
            .into_iter()
            .filter_map(|a| {
                names.get(&a.index).map(|n| crate::plan::AddressSpec { iface: n.clone(), net: a.net })
            })
            .collect();
        t = phases.lap("observe/addresses", t);
        snap.routes = kernel::routes::observe(&k.rt)
            .await?
            .into_iter()
            .map(|r| crate::plan::RouteSpec {
                table: r.table,
                dst: r.dst,
                target: match (r.unreachable, r.oif.and_then(|i| names.get(&i))) {
                    (false, Some(n)) => RouteTarget::Dev(n.clone()),
                    _ => RouteTarget::Unreachable,
                },
            })
            .collect();
        t = phases.lap("observe/routes", t);
        snap.rules = kernel::rules::observe(&k.rt).await?.into_iter().map(|r| r.spec).collect();
        t = phases.lap("observe/rules", t);
        wg_names.extend(snap.links.iter().filter(|l| l.name.starts_with("kzw-")).map(|l| l.name.clone()));
        snap.wireguard.clear();
    }
    for iface in wg_names {
        match kernel::wireguard::observe(&iface, k.wireguard)? {
            Some(d) => {
                snap.wireguard.insert(
                    iface,
                    WireguardState { listen_port: d.listen_port, public_key: d.public_key, peers: d.peers },
                );
            }
            None => {
                snap.wireguard.remove(&iface);
            }
        }
    }
    t = phases.lap("observe/wireguard", t);
    if focus.firewall {
        snap.firewall = kernel::nftables::observe()?;
        t = phases.lap("observe/nftables", t);
    }
    snap.ip_forward = kernel::forwarding::observe()?;
    phases.lap("observe/forwarding", t);
    Ok(snap)
}

/// Load (or generate) the private keys of every segment in `desired`, and check each matches
/// the public key the policy lists for this site. A rotated key waiting in `key_dir` becomes the
/// key in use here, once the policy lists it.
pub fn local_keys(key_dir: &Path, desired: &DesiredState) -> Result<BTreeMap<SegmentName, PrivateKey>> {
    let mut out = BTreeMap::new();
    for wg in &desired.wireguard {
        keys::promote_if_listed(key_dir, &wg.segment, &wg.public_key)?;
        let key = keys::load_or_generate(key_dir, &wg.segment)?;
        if key.public() != wg.public_key {
            return Err(Error::Key {
                segment: wg.segment.to_string(),
                reason: format!(
                    "the policy lists public key {} for site {:?}, but the local key's public key is {}; \
                     put the output of `netd keys` into the policy",
                    wg.public_key,
                    desired.site.as_str(),
                    key.public()
                ),
            });
        }
        out.insert(wg.segment.clone(), key);
    }
    Ok(out)
}

fn public_keys(keys: &BTreeMap<SegmentName, PrivateKey>) -> BTreeMap<SegmentName, PublicKey> {
    keys.iter().map(|(s, k)| (s.clone(), k.public())).collect()
}

fn wg_ifaces(states: &[&DesiredState]) -> BTreeSet<String> {
    states.iter().flat_map(|s| s.wireguard.iter().map(|w| w.iface.clone())).collect()
}

/// Count of rules `fw` renders into, to verify the table nft lists back.
fn rendered_rule_count(fw: &crate::plan::Firewall) -> usize {
    let doc = kernel::nftables::render(fw);
    doc["nftables"].as_array().map_or(0, |a| a.iter().filter(|c| c["add"].get("rule").is_some()).count())
}

fn listed_rule_count(readback: &serde_json::Value) -> usize {
    readback.as_array().map_or(0, |a| a.iter().filter(|o| o.get("rule").is_some()).count())
}

/// Plan only: the changes a pass would make now.
pub async fn pending(k: &Kernel, ctx: &Context, desired: &DesiredState) -> Result<Vec<Change>> {
    let last = state::load(&ctx.last_good)?;
    let keys = local_keys(&ctx.key_dir, desired)?;
    let mut owned: Vec<&DesiredState> = vec![desired];
    if let Some(l) = &last {
        owned.push(&l.desired);
    }
    let snap = observe(k, &wg_ifaces(&owned)).await?;
    let fw_ref = last.as_ref().and_then(|l| {
        l.firewall_readback.as_ref().map(|r| FirewallReference { applied: &l.desired.firewall, readback: r })
    });
    Ok(diff(desired, &owned, &snap, &public_keys(&keys), fw_ref))
}

/// Changes a delta pass may make, judged against the snapshot they came from: peers, the
/// firewall, forwarding, and a new private key on a device that exists with its planned port (a
/// key rotation: the rotating site then switches as fast as its peers do). Anything else (a
/// device to create, a new port) needs a full pass.
fn delta_change(c: &Change, snap: &Snapshot) -> bool {
    match c {
        Change::ConfigureWireguard { iface, port, .. } => {
            snap.wireguard.get(iface).is_some_and(|w| w.listen_port == Some(*port) && w.public_key.is_some())
        }
        _ => matches!(
            c,
            Change::SetPeer { .. }
                | Change::RemovePeer { .. }
                | Change::ReplaceFirewall
                | Change::DeleteFirewall
                | Change::EnableForwarding
        ),
    }
}

fn touches_firewall(changes: &[Change]) -> bool {
    changes.iter().any(|c| matches!(c, Change::ReplaceFirewall | Change::DeleteFirewall))
}

/// WireGuard devices whose peers or key the changes touch.
fn device_ifaces(changes: &[Change]) -> BTreeSet<String> {
    changes
        .iter()
        .filter_map(|c| match c {
            Change::SetPeer { iface, .. }
            | Change::RemovePeer { iface, .. }
            | Change::ConfigureWireguard { iface, .. } => Some(iface.clone()),
            _ => None,
        })
        .collect()
}

/// Where a pass starts: a full observation, or (delta) the last good state as applied, with the
/// devices the change touches read from the kernel.
struct Start {
    snap: Snapshot,
    /// What to observe again to verify: None = everything.
    verify: Option<Focus>,
}

/// The delta pass's starting point, or None when the change needs a full pass.
async fn delta_start(
    k: &Kernel,
    target: &DesiredState,
    owned: &[&DesiredState],
    last: &LastGood,
    pubs: &BTreeMap<SegmentName, PublicKey>,
    fw_ref: Option<FirewallReference<'_>>,
    phases: &mut Phases,
) -> Result<Option<Start>> {
    if last.desired.site != target.site || last.desired.mode != target.mode {
        return Ok(None);
    }
    let t = Instant::now();
    let assumed =
        Snapshot::assuming_applied(&last.desired, last.firewall_readback.clone().unwrap_or_default());
    let expected = diff(target, owned, &assumed, pubs, fw_ref);
    phases.lap("delta/plan", t);
    if !expected.iter().all(|c| delta_change(c, &assumed)) {
        return Ok(None);
    }
    let focus = Focus { netlink: false, wireguard: device_ifaces(&expected), firewall: false };
    let snap = observe_into(k, &focus, assumed, phases).await?;
    Ok(Some(Start { snap, verify: Some(focus) }))
}

/// Bring the kernel to `target` from `start`, verify, and return the new last-good record.
/// `Ok(None)`: a delta start met a change it cannot make (nothing was applied).
#[allow(clippy::too_many_arguments)]
async fn converge(
    k: &Kernel,
    target: &DesiredState,
    owned: &[&DesiredState],
    keys: &BTreeMap<SegmentName, PrivateKey>,
    fw_ref: Option<FirewallReference<'_>>,
    budget: Option<usize>,
    applied: &mut usize,
    start: Start,
    phases: &mut Phases,
) -> Result<Option<(Vec<Change>, LastGood)>> {
    let pubs = public_keys(keys);
    let t = Instant::now();
    let changes = diff(target, owned, &start.snap, &pubs, fw_ref);
    phases.lap("diff", t);
    let verify = match start.verify {
        None => Focus::full(wg_ifaces(owned)),
        Some(_) if !changes.iter().all(|c| delta_change(c, &start.snap)) => return Ok(None),
        Some(f) => Focus { firewall: touches_firewall(&changes), ..f },
    };
    let mut applier = Applier::new(k, keys, budget);
    let res = applier.apply_all(&changes, target).await;
    *applied += applier.applied;
    phases.0.extend(applier.phases.totals());
    res?;
    // Verify: the kernel now matches, with the firewall checked against nft's own listing.
    let base = if verify.netlink { Snapshot::default() } else { start.snap };
    let after = observe_into(k, &verify, base, phases).await?;
    let t = Instant::now();
    let readback = after.firewall.clone();
    if !target.firewall.is_empty() {
        let want = rendered_rule_count(&target.firewall);
        let got = readback.as_ref().map_or(0, listed_rule_count);
        if want != got {
            return Err(Error::Verify(format!("table kizuna lists {got} rules, {want} were applied")));
        }
    }
    let reference = readback.as_ref().map(|r| FirewallReference { applied: &target.firewall, readback: r });
    let left = diff(target, owned, &after, &pubs, reference);
    phases.lap("verify/diff", t);
    if !left.is_empty() {
        let list: Vec<String> = left.iter().take(5).map(|c| c.to_string()).collect();
        return Err(Error::Verify(format!("{} changes still pending: {}", left.len(), list.join("; "))));
    }
    Ok(Some((changes, LastGood { desired: target.clone(), firewall_readback: readback })))
}

/// Observe everything netd owns, then converge.
#[allow(clippy::too_many_arguments)]
async fn full_converge(
    k: &Kernel,
    target: &DesiredState,
    owned: &[&DesiredState],
    keys: &BTreeMap<SegmentName, PrivateKey>,
    fw_ref: Option<FirewallReference<'_>>,
    budget: Option<usize>,
    applied: &mut usize,
    phases: &mut Phases,
) -> Result<Option<(Vec<Change>, LastGood)>> {
    // A firewall that will be replaced anyway (no record of it, or a new plan) need not be listed
    // first: the replacement is one atomic transaction whether or not the table exists.
    let replace_fw = !target.firewall.is_empty() && !fw_ref.is_some_and(|r| r.applied == &target.firewall);
    let focus = Focus { firewall: !replace_fw, ..Focus::full(wg_ifaces(owned)) };
    let snap = observe_into(k, &focus, Snapshot::default(), phases).await?;
    converge(k, target, owned, keys, fw_ref, budget, applied, Start { snap, verify: None }, phases).await
}

/// One full pass towards `desired`. On failure, rolls back to the last good state (or to
/// nothing, when there is none) and reports both.
pub async fn apply(
    k: &Kernel,
    ctx: &Context,
    desired: &DesiredState,
) -> std::result::Result<Outcome, PassFailed> {
    apply_scoped(k, ctx, desired, Scope::Full).await
}

/// One pass towards `desired` with `scope` (a delta pass without a last good state, or whose
/// change is more than peers and the firewall, runs as a full pass). Rollbacks are full passes.
pub async fn apply_scoped(
    k: &Kernel,
    ctx: &Context,
    desired: &DesiredState,
    scope: Scope,
) -> std::result::Result<Outcome, PassFailed> {
    let start = Instant::now();
    let mut phases = Phases::default();
    let fail = |cause| PassFailed { cause, rolled_back: false, rollback_error: None };
    let last = state::load(&ctx.last_good).map_err(fail)?;
    let keys = local_keys(&ctx.key_dir, desired).map_err(fail)?;
    let pubs = public_keys(&keys);
    let mut owned: Vec<&DesiredState> = vec![desired];
    if let Some(l) = &last {
        owned.push(&l.desired);
    }
    let fw_ref = last.as_ref().and_then(|l| {
        l.firewall_readback.as_ref().map(|r| FirewallReference { applied: &l.desired.firewall, readback: r })
    });
    phases.lap("load", start);
    let mut applied = 0;
    let budget = ctx.inject_fail_after;
    let mut ran = Scope::Full;
    let mut result = None;
    if scope == Scope::Delta
        && let Some(l) = &last
    {
        result = match delta_start(k, desired, &owned, l, &pubs, fw_ref, &mut phases).await {
            Ok(Some(s)) => {
                ran = Scope::Delta;
                converge(k, desired, &owned, &keys, fw_ref, budget, &mut applied, s, &mut phases)
                    .await
                    .transpose()
            }
            Ok(None) => None,
            Err(e) => Some(Err(e)),
        };
    }
    if result.is_none() {
        ran = Scope::Full;
        result = full_converge(k, desired, &owned, &keys, fw_ref, budget, &mut applied, &mut phases)
            .await
            .transpose();
    }
    match result.expect("a full pass always converges or fails") {
        Ok((changes, record)) => {
            if !changes.is_empty() || last.is_none() {
                let t = Instant::now();
                state::save(&ctx.last_good, record).map_err(fail)?;
                phases.lap("save", t);
            }
            tracing::debug!(scope = ?ran, applied, %phases, "pass done");
            Ok(Outcome { changes, applied, elapsed: start.elapsed(), scope: ran, phases })
        }
        Err(cause) => {
            tracing::error!(error = %cause, applied, "apply failed; rolling back");
            let empty = DesiredState::empty(desired.site.clone(), desired.mode);
            let target = last.as_ref().map_or(&empty, |l| &l.desired);
            let mut rb = 0;
            let rollback =
                full_converge(k, target, &owned, &keys, None, None, &mut rb, &mut Phases::default()).await;
            match rollback {
                Ok(_) => {
                    tracing::warn!(changes = rb, "rolled back to the last good state");
                    Err(PassFailed { cause, rolled_back: true, rollback_error: None })
                }
                Err(e) => Err(PassFailed { cause, rolled_back: false, rollback_error: Some(e) }),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{Mode, plan};
    use crate::policy::ValidPolicy;
    use crate::synthetic;

    fn desired(p: crate::policy::Policy) -> DesiredState {
        let v = ValidPolicy::new(p).expect("valid");
        plan(&v, &synthetic::site_name(2), Mode::Vrf, "127.0.0.1:9190".parse().unwrap()).unwrap()
    }

    fn expected(old: &DesiredState, new: &DesiredState) -> Vec<Change> {
        let readback = serde_json::json!(["listing"]);
        let snap = Snapshot::assuming_applied(old, readback.clone());
        let keys = new.wireguard.iter().map(|w| (w.segment.clone(), w.public_key.clone())).collect();
        diff(
            new,
            &[new, old],
            &snap,
            &keys,
            Some(FirewallReference { applied: &old.firewall, readback: &readback }),
        )
    }

    #[test]
    fn a_new_site_is_a_delta_on_three_devices_and_a_new_port_needs_a_full_pass() {
        let base = synthetic::policy(40);
        let mut grown = base.clone();
        grown.sites.push(synthetic::policy(41).sites.pop().unwrap());
        let (old, new) = (desired(base.clone()), desired(grown));
        let changes = expected(&old, &new);
        let assumed = Snapshot::assuming_applied(&old, serde_json::json!(["listing"]));
        assert!(changes.iter().all(|c| delta_change(c, &assumed)), "{changes:?}");
        assert_eq!(device_ifaces(&changes).len(), 3);
        assert!(!touches_firewall(&changes));

        // A segment moved to another port changes its device, table and firewall: full pass.
        let mut moved = base;
        moved.segments.get_mut(&"conference".parse().unwrap()).unwrap().port = 51900;
        let changes = expected(&old, &desired(moved));
        assert!(!changes.iter().all(|c| delta_change(c, &assumed)), "{changes:?}");
        assert!(touches_firewall(&changes));
    }

    #[test]
    fn a_rotated_key_is_a_delta_on_its_device_but_a_missing_device_is_not() {
        let base = synthetic::policy(40);
        let old = desired(base.clone());
        let mut rotated = base;
        let me = rotated.sites.iter_mut().find(|s| s.name == synthetic::site_name(2)).unwrap();
        let (segment, key) = me.keys.iter_mut().next().unwrap();
        let segment = segment.clone();
        *key = PublicKey::from_bytes(&[42; 32]);
        let new = desired(rotated);
        let changes = expected(&old, &new);
        let iface = new.wireguard.iter().find(|w| w.segment == segment).unwrap().iface.clone();
        assert!(
            matches!(changes.as_slice(), [Change::ConfigureWireguard { iface: i, .. }] if *i == iface),
            "{changes:?}"
        );
        let assumed = Snapshot::assuming_applied(&old, serde_json::json!(["listing"]));
        assert!(changes.iter().all(|c| delta_change(c, &assumed)));
        assert_eq!(device_ifaces(&changes), BTreeSet::from([iface.clone()]));
        // Observed without that device (deleted by hand): creating it needs a full pass.
        let mut gone = assumed;
        gone.wireguard.remove(&iface);
        assert!(!changes.iter().all(|c| delta_change(c, &gone)));
    }
}
