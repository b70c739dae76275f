//! One reconcile pass: observe the kernel, diff against the desired state, apply only the
//! difference, verify by observing again, and roll back to the last good state on failure.
//!
//! A pass has a [`Scope`]. A full pass observes and verifies everything netd owns (startup, the
//! periodic reconcile, `netd apply`, every rollback). A delta pass (`netd run` on a policy change)
//! derives the change from the last good record and the new plan, without reading the kernel
//! first: peers are applied blind (idempotent, acknowledged by the kernel per device) and left
//! to the next full pass to verify; a device whose private key changes and a replaced firewall
//! are read before and after. Any other change (a link, an address, a route, a rule, a device's
//! port), or a re-keyed device that is missing or has another port, turns it into a full pass.

mod applier;
mod delta;
mod phases;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::diff::{Change, FirewallReference, LinkState, Snapshot, WireguardState, diff};
use crate::error::{Error, Result};
use crate::kernel::{self, Kernel};
use crate::keys::{self, PrivateKey};
use crate::pass_lock::PassLock;
use crate::plan::{DesiredState, RouteTarget};
use crate::policy::{PublicKey, SegmentName};
use crate::state::{self, LastGood};
use applier::Applier;
pub use phases::Phases;

/// Where keys, the last good state and the pass lock live, and the failure-injection budget.
pub struct Context {
    pub key_dir: PathBuf,
    pub last_good: PathBuf,
    /// `<state_dir>/pass.lock`: held by every pass ([`apply_scoped`]) from before it reads the
    /// record until it has written it or rolled back, so that passes of several processes
    /// (`netd run`, `netd apply`) take turns. See [`crate::pass_lock`].
    pub pass_lock: PathBuf,
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
#[error("{cause}; {}", if *.rolled_back {
    "rolled back to the last good state"
} else if *.unrecorded {
    "the kernel holds the new state (verified) but it is not recorded; the next pass records it"
} else if *.untouched {
    "nothing was changed"
} else {
    "ROLLBACK FAILED, state is mixed"
})]
pub struct PassFailed {
    pub cause: Error,
    pub rolled_back: bool,
    pub rollback_error: Option<Error>,
    /// The pass applied and verified its state and only writing the record failed (no rollback:
    /// the kernel is not mixed).
    pub unrecorded: bool,
    /// The pass failed before changing anything (reading the record or the keys).
    pub untouched: bool,
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
        check_listed(desired, wg, &key)?;
        out.insert(wg.segment.clone(), key);
    }
    Ok(out)
}

/// The local key must be the one the policy lists for this site.
fn check_listed(desired: &DesiredState, wg: &crate::plan::WireguardSpec, key: &PrivateKey) -> Result<()> {
    if key.public() == wg.public_key {
        return Ok(());
    }
    Err(Error::Key {
        segment: wg.segment.to_string(),
        reason: format!(
            "the policy lists public key {} for site {:?}, but the local key's public key is {}; \
             put the output of `netd keys` into the policy",
            wg.public_key,
            desired.site.as_str(),
            key.public()
        ),
    })
}

/// The public keys a pass would set ([`local_keys`]), read only (`netd plan`, `netd status`):
/// nothing is generated or promoted. A waiting key the policy lists is the one a pass switches
/// to, and is reported in the notes; a missing key is an error telling to run `netd keys`.
pub fn observed_keys(
    key_dir: &Path,
    desired: &DesiredState,
) -> Result<(BTreeMap<SegmentName, PublicKey>, Vec<String>)> {
    let mut out = BTreeMap::new();
    let mut notes = Vec::new();
    for wg in &desired.wireguard {
        if let Some(next) = keys::pending(key_dir, &wg.segment)?
            && next.public() == wg.public_key
        {
            notes.push(format!(
                "segment {}: the policy lists the waiting key {} ({}); `netd apply` (or the next pass of \
                 `netd run`) will switch to it",
                wg.segment,
                wg.public_key,
                keys::pending_path(key_dir, &wg.segment).display()
            ));
            out.insert(wg.segment.clone(), next.public());
            continue;
        }
        let Some(key) = keys::load_existing(key_dir, &wg.segment)? else {
            return Err(Error::Key {
                segment: wg.segment.to_string(),
                reason: format!(
                    "not generated yet (no {}): run `netd keys`",
                    keys::key_path(key_dir, &wg.segment).display()
                ),
            });
        };
        check_listed(desired, wg, &key)?;
        out.insert(wg.segment.clone(), key.public());
    }
    Ok((out, notes))
}

/// The keys a rollback to `last` needs: this pass's, plus those of the segments only `last` has
/// (a segment the new plan dropped), from existing key files only: a rollback neither generates
/// keys nor promotes waiting ones.
fn rollback_keys(
    key_dir: &Path,
    last: Option<&LastGood>,
    mut keys: BTreeMap<SegmentName, PrivateKey>,
) -> Result<BTreeMap<SegmentName, PrivateKey>> {
    for wg in last.iter().flat_map(|l| &l.desired.wireguard) {
        if !keys.contains_key(&wg.segment)
            && let Some(key) = keys::load_existing(key_dir, &wg.segment)?
        {
            keys.insert(wg.segment.clone(), key);
        }
    }
    Ok(keys)
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

/// What `netd plan` and `netd status` find: the changes a pass would make now, and notes on
/// what else it would do (switch to a waiting key).
#[derive(Debug, Default)]
pub struct Pending {
    pub changes: Vec<Change>,
    pub notes: Vec<String>,
}

/// Plan only: the changes a pass would make now. Reads the record, the keys and the kernel and
/// writes nothing (no key is generated or promoted, no lock is taken).
pub async fn pending(k: &Kernel, ctx: &Context, desired: &DesiredState) -> Result<Pending> {
    let last = state::load(&ctx.last_good)?;
    let (keys, notes) = observed_keys(&ctx.key_dir, desired)?;
    let mut owned: Vec<&DesiredState> = vec![desired];
    if let Some(l) = &last {
        owned.push(&l.desired);
    }
    let snap = observe(k, &wg_ifaces(&owned)).await?;
    let fw_ref = last.as_ref().and_then(|l| {
        l.firewall_readback.as_ref().map(|r| FirewallReference { applied: &l.desired.firewall, readback: r })
    });
    Ok(Pending { changes: diff(desired, &owned, &snap, &keys, fw_ref), notes })
}

fn touches_firewall(changes: &[Change]) -> bool {
    changes.iter().any(|c| matches!(c, Change::ReplaceFirewall | Change::DeleteFirewall))
}

/// A delta pass: the change from the last good record to `target` ([`delta::changes`]), applied
/// without reading the devices first, and the new record. `Ok(None)`: the change needs a full
/// pass (nothing was applied).
///
/// WireGuard's netlink interface reads a device only whole (a dump of every peer), so reading
/// and verifying the touched devices cost a one-site change more than the rest of it. Setting a
/// peer is idempotent (endpoint, keepalive and allowed IPs are replaced) and removing a peer the
/// device does not have is not an error, so applying the planned peers blind converges whatever
/// the device held; the kernel acknowledges each device's batch or the pass fails and rolls back.
/// Drift on the devices (a peer removed by hand) is left to the next full pass, the timer's.
/// A new private key (a rotation) and a replaced firewall are still read before and after: the
/// device must exist with its port, and the firewall's listing is part of the record.
#[allow(clippy::too_many_arguments)]
async fn delta_converge(
    k: &Kernel,
    target: &DesiredState,
    owned: &[&DesiredState],
    last: &LastGood,
    keys: &BTreeMap<SegmentName, PrivateKey>,
    budget: Option<usize>,
    applied: &mut usize,
    phases: &mut Phases,
) -> Result<Option<(Vec<Change>, LastGood)>> {
    let t = Instant::now();
    let Some(changes) = delta::changes(last, target) else { return Ok(None) };
    let rekeyed: BTreeMap<&str, u16> = changes
        .iter()
        .filter_map(|c| match c {
            Change::ConfigureWireguard { iface, port, .. } => Some((iface.as_str(), *port)),
            _ => None,
        })
        .collect();
    phases.lap("delta/plan", t);
    for (iface, port) in &rekeyed {
        let t = Instant::now();
        let dev = kernel::wireguard::observe(iface, k.wireguard)?;
        phases.lap("observe/wireguard", t);
        if !dev.is_some_and(|d| d.listen_port == Some(*port) && d.public_key.is_some()) {
            return Ok(None);
        }
    }
    let mut applier = Applier::new(k, keys, budget);
    let res = applier.apply_all(&changes, target).await;
    *applied += applier.applied;
    phases.0.extend(applier.phases.totals());
    res?;
    let firewall = touches_firewall(&changes);
    let mut readback = last.firewall_readback.clone();
    if firewall || !rekeyed.is_empty() {
        let focus =
            Focus { netlink: false, wireguard: rekeyed.keys().map(|i| i.to_string()).collect(), firewall };
        let base = Snapshot::assuming_applied(target, readback.clone().unwrap_or_default());
        let after = observe_into(k, &focus, base, phases).await?;
        let t = Instant::now();
        if firewall {
            readback = after.firewall.clone();
            check_rule_count(target, readback.as_ref())?;
        }
        let reference =
            readback.as_ref().map(|r| FirewallReference { applied: &target.firewall, readback: r });
        check_nothing_left(&diff(target, owned, &after, &public_keys(keys), reference))?;
        phases.lap("verify/diff", t);
    }
    let t = Instant::now();
    let record = LastGood { desired: target.clone(), firewall_readback: readback };
    phases.lap("record", t);
    Ok(Some((changes, record)))
}

fn check_rule_count(target: &DesiredState, readback: Option<&serde_json::Value>) -> Result<()> {
    if !target.firewall.is_empty() {
        let want = rendered_rule_count(&target.firewall);
        let got = readback.map_or(0, listed_rule_count);
        if want != got {
            return Err(Error::Verify(format!("table kizuna lists {got} rules, {want} were applied")));
        }
    }
    Ok(())
}

fn check_nothing_left(left: &[Change]) -> Result<()> {
    if !left.is_empty() {
        let list: Vec<String> = left.iter().take(5).map(|c| c.to_string()).collect();
        return Err(Error::Verify(format!("{} changes still pending: {}", left.len(), list.join("; "))));
    }
    Ok(())
}

/// Bring the kernel to `target` from the full observation `snap`, verify by observing everything
/// again, and return the new last-good record.
#[allow(clippy::too_many_arguments)]
async fn converge(
    k: &Kernel,
    target: &DesiredState,
    owned: &[&DesiredState],
    keys: &BTreeMap<SegmentName, PrivateKey>,
    fw_ref: Option<FirewallReference<'_>>,
    budget: Option<usize>,
    applied: &mut usize,
    snap: Snapshot,
    phases: &mut Phases,
) -> Result<(Vec<Change>, LastGood)> {
    let pubs = public_keys(keys);
    let t = Instant::now();
    let changes = diff(target, owned, &snap, &pubs, fw_ref);
    phases.lap("diff", t);
    let mut applier = Applier::new(k, keys, budget);
    let res = applier.apply_all(&changes, target).await;
    *applied += applier.applied;
    phases.0.extend(applier.phases.totals());
    res?;
    // Verify: the kernel now matches, with the firewall checked against nft's own listing.
    let after = observe_into(k, &Focus::full(wg_ifaces(owned)), Snapshot::default(), phases).await?;
    let t = Instant::now();
    let readback = after.firewall.clone();
    check_rule_count(target, readback.as_ref())?;
    let reference = readback.as_ref().map(|r| FirewallReference { applied: &target.firewall, readback: r });
    check_nothing_left(&diff(target, owned, &after, &pubs, reference))?;
    phases.lap("verify/diff", t);
    let t = Instant::now();
    let record = LastGood { desired: target.clone(), firewall_readback: readback };
    phases.lap("record", t);
    Ok((changes, record))
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
) -> Result<(Vec<Change>, LastGood)> {
    // A firewall that will be replaced anyway (no record of it, or a new plan) need not be listed
    // first: the replacement is one atomic transaction whether or not the table exists.
    let replace_fw = !target.firewall.is_empty() && !fw_ref.is_some_and(|r| r.applied == &target.firewall);
    let focus = Focus { firewall: !replace_fw, ..Focus::full(wg_ifaces(owned)) };
    let snap = observe_into(k, &focus, Snapshot::default(), phases).await?;
    converge(k, target, owned, keys, fw_ref, budget, applied, snap, phases).await
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
///
/// The pass holds `ctx.pass_lock` throughout (waiting for another process's pass first; see
/// [`crate::pass_lock`]), and reads the last good record only once it holds it, so that it
/// starts from what the pass before it recorded.
pub async fn apply_scoped(
    k: &Kernel,
    ctx: &Context,
    desired: &DesiredState,
    scope: Scope,
) -> std::result::Result<Outcome, PassFailed> {
    let fail = |cause| PassFailed {
        cause,
        rolled_back: false,
        rollback_error: None,
        unrecorded: false,
        untouched: false,
    };
    let before_any_change = |cause| PassFailed { untouched: true, ..fail(cause) };
    // Released when this function returns: after the save, or after the rollback.
    let _turn = PassLock::acquire(&ctx.pass_lock).await.map_err(before_any_change)?;
    // The pass's own time, not the wait for another's.
    let start = Instant::now();
    let mut phases = Phases::default();
    let last = state::load(&ctx.last_good).map_err(before_any_change)?;
    let keys = local_keys(&ctx.key_dir, desired).map_err(before_any_change)?;
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
        result = match delta_converge(k, desired, &owned, l, &keys, budget, &mut applied, &mut phases).await {
            Ok(r) => r.map(Ok),
            Err(e @ Error::Injected(_)) => Some(Err(e)),
            // The kernel refused a blind change (a device deleted by hand since the record was
            // written): the full pass observes what is there and converges, or rolls back.
            Err(e) => {
                tracing::warn!(error = %e, "delta pass failed; running a full pass");
                None
            }
        };
        if result.is_some() {
            ran = Scope::Delta;
        }
    }
    let result = match result {
        Some(r) => r,
        None => full_converge(k, desired, &owned, &keys, fw_ref, budget, &mut applied, &mut phases).await,
    };
    match result {
        Ok((changes, record)) => {
            // Whenever the record differs, not only after changes: a pass killed between verify
            // and save, or whose save failed, left the kernel ahead of the record.
            if last.as_deref() != Some(&record) {
                let t = Instant::now();
                match &last {
                    Some(l) => state::save_after(&ctx.last_good, l, record).map(|_| ()),
                    None => state::save(&ctx.last_good, record),
                }
                .map_err(|cause| PassFailed { unrecorded: true, ..fail(cause) })?;
                phases.lap("save", t);
            }
            // The record this pass replaced is freed here (1,236 peers: part of a pass's cost).
            let t = Instant::now();
            drop(owned);
            drop(last);
            phases.lap("free old record", t);
            tracing::debug!(scope = ?ran, applied, %phases, "pass done");
            Ok(Outcome { changes, applied, elapsed: start.elapsed(), scope: ran, phases })
        }
        Err(cause) => {
            tracing::error!(error = %cause, applied, "apply failed; rolling back");
            let empty = DesiredState::empty(desired.site.clone(), desired.mode);
            let target = last.as_ref().map_or(&empty, |l| &l.desired);
            let mut rb = 0;
            let rollback = match rollback_keys(&ctx.key_dir, last.as_deref(), keys) {
                Ok(keys) => {
                    full_converge(k, target, &owned, &keys, None, None, &mut rb, &mut Phases::default()).await
                }
                Err(e) => Err(e),
            };
            match rollback {
                Ok(_) => {
                    tracing::warn!(changes = rb, "rolled back to the last good state");
                    Err(PassFailed { rolled_back: true, ..fail(cause) })
                }
                Err(e) => Err(PassFailed { rollback_error: Some(e), ..fail(cause) }),
            }
        }
    }
}

#[cfg(test)]
mod pass_failed_tests {
    use super::*;

    /// What `netd apply` prints names what happened to the kernel, never "mixed" when nothing ran.
    #[test]
    fn the_message_says_what_state_the_kernel_is_in() {
        let fail = |rolled_back, rollback_error: Option<Error>, unrecorded, untouched| {
            PassFailed { cause: Error::Injected(3), rolled_back, rollback_error, unrecorded, untouched }
                .to_string()
        };
        assert!(fail(false, None, false, true).ends_with("; nothing was changed"));
        assert!(fail(true, None, false, false).ends_with("; rolled back to the last good state"));
        assert!(fail(false, None, true, false).contains("not recorded"));
        assert!(
            fail(false, Some(Error::Injected(1)), false, false).ends_with("ROLLBACK FAILED, state is mixed")
        );
    }
}
