//! One reconcile pass: observe the kernel, diff against the desired state, apply only the
//! difference, verify by observing again, and roll back to the last good state on failure.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::diff::{Change, FirewallReference, LinkState, Snapshot, WireguardState, diff};
use crate::error::{Error, Result};
use crate::kernel::{self, Kernel};
use crate::keys::{self, PrivateKey};
use crate::plan::{DesiredState, PeerSpec, RouteTarget};
use crate::policy::{PublicKey, SegmentName};
use crate::state::{self, LastGood};

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

/// What a pass did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Outcome {
    /// Changes that were needed (empty: nothing to do).
    pub changes: Vec<Change>,
    /// Kernel changes applied.
    pub applied: usize,
    pub elapsed: Duration,
}

/// Why a pass failed, and whether the rollback restored the last good state.
#[derive(Debug, thiserror::Error)]
#[error("{cause}; {}", if *.rolled_back { "rolled back to the last good state" } else { "ROLLBACK FAILED, state is mixed" })]
pub struct PassFailed {
    pub cause: Error,
    pub rolled_back: bool,
    pub rollback_error: Option<Error>,
}

/// Observe what netd cares about: all links, addresses, netd routes and rules, the WireGuard
/// devices in `wg_ifaces` or named `kzw-*`, and table `kizuna`.
pub async fn observe(k: &Kernel, wg_ifaces: &BTreeSet<String>) -> Result<Snapshot> {
    let raw_links = kernel::links::observe(&k.rt).await?;
    let names: HashMap<u32, String> = raw_links.iter().map(|l| (l.index, l.name.clone())).collect();
    let links: Vec<LinkState> = raw_links
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
    let addresses = kernel::addresses::observe(&k.rt)
        .await?
        .into_iter()
        .filter_map(|a| {
            names.get(&a.index).map(|n| crate::plan::AddressSpec { iface: n.clone(), net: a.net })
        })
        .collect();
    let routes = kernel::routes::observe(&k.rt)
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
    let rules = kernel::rules::observe(&k.rt).await?.into_iter().map(|r| r.spec).collect();
    let mut wg_names: BTreeSet<String> = wg_ifaces.clone();
    wg_names.extend(links.iter().filter(|l| l.name.starts_with("kzw-")).map(|l| l.name.clone()));
    let mut wireguard = BTreeMap::new();
    for iface in wg_names {
        if let Some(d) = kernel::wireguard::observe(&iface, k.wireguard)? {
            wireguard.insert(
                iface,
                WireguardState { listen_port: d.listen_port, public_key: d.public_key, peers: d.peers },
            );
        }
    }
    let firewall = kernel::nftables::observe()?;
    let ip_forward = kernel::forwarding::observe()?;
    Ok(Snapshot { links, addresses, routes, rules, wireguard, firewall, ip_forward })
}

/// Load (or generate) the private keys of every segment in `desired`, and check each matches
/// the public key the policy lists for this site.
pub fn local_keys(key_dir: &Path, desired: &DesiredState) -> Result<BTreeMap<SegmentName, PrivateKey>> {
    let mut out = BTreeMap::new();
    for wg in &desired.wireguard {
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

/// Counts kernel changes and enforces the injected-failure budget.
struct Applier<'a> {
    k: &'a Kernel,
    keys: &'a BTreeMap<SegmentName, PrivateKey>,
    budget: Option<usize>,
    applied: usize,
}

impl Applier<'_> {
    /// How many of `n` changes may still be applied before the injected failure.
    fn allow(&self, n: usize) -> usize {
        match self.budget {
            Some(b) => n.min(b.saturating_sub(self.applied)),
            None => n,
        }
    }

    fn check_budget(&self) -> Result<()> {
        match self.budget {
            Some(b) if self.applied >= b => Err(Error::Injected(self.applied)),
            _ => Ok(()),
        }
    }

    async fn index_of(&self, name: &str) -> Result<u32> {
        kernel::links::observe(&self.k.rt)
            .await?
            .into_iter()
            .find(|l| l.name == name)
            .map(|l| l.index)
            .ok_or_else(|| Error::kernel(format!("link {name}"), "does not exist"))
    }

    async fn apply_all(&mut self, changes: &[Change], desired: &DesiredState) -> Result<()> {
        let mut i = 0;
        while i < changes.len() {
            self.check_budget()?;
            // Peers of one device go in one batch.
            if let Change::SetPeer { iface, .. } | Change::RemovePeer { iface, .. } = &changes[i] {
                let mut j = i;
                while j < changes.len()
                    && matches!(&changes[j], Change::SetPeer { iface: f, .. } | Change::RemovePeer { iface: f, .. } if f == iface)
                {
                    j += 1;
                }
                let n = self.allow(j - i);
                let batch = &changes[i..i + n];
                let ups: Vec<&PeerSpec> = batch
                    .iter()
                    .filter_map(|c| match c {
                        Change::SetPeer { peer, .. } => Some(peer.as_ref()),
                        _ => None,
                    })
                    .collect();
                let rms: Vec<&PublicKey> = batch
                    .iter()
                    .filter_map(|c| match c {
                        Change::RemovePeer { public_key, .. } => Some(public_key),
                        _ => None,
                    })
                    .collect();
                kernel::wireguard::apply_peers(iface, &ups, &rms, self.k.wireguard)?;
                self.applied += n;
                i += n;
                continue;
            }
            self.apply_one(&changes[i], desired).await?;
            self.applied += 1;
            i += 1;
        }
        Ok(())
    }

    async fn apply_one(&self, change: &Change, desired: &DesiredState) -> Result<()> {
        tracing::debug!(change = %change, "applying");
        let h = &self.k.rt;
        match change {
            Change::DeleteRule(spec) => {
                for r in kernel::rules::observe(h).await? {
                    if &r.spec == spec {
                        kernel::rules::delete(h, &r).await?;
                    }
                }
            }
            Change::AddRule(spec) => kernel::rules::add(h, spec).await?,
            Change::DeleteRoute(spec) => {
                let idx = match &spec.target {
                    RouteTarget::Dev(d) => self.index_of(d).await.ok(),
                    RouteTarget::Unreachable => None,
                };
                for r in kernel::routes::observe(h).await? {
                    if r.table == spec.table && r.dst == spec.dst && r.oif == idx {
                        kernel::routes::delete(h, &r).await?;
                    }
                }
            }
            Change::AddRoute(spec) => {
                let oif = match &spec.target {
                    RouteTarget::Dev(d) => Some(self.index_of(d).await?),
                    RouteTarget::Unreachable => None,
                };
                kernel::routes::add(h, spec.table, spec.dst, oif).await?;
            }
            Change::DeleteAddress(a) => {
                let idx = self.index_of(&a.iface).await?;
                for o in kernel::addresses::observe(h).await? {
                    if o.index == idx && o.net == a.net {
                        kernel::addresses::delete(h, &o, &a.iface).await?;
                    }
                }
            }
            Change::AddAddress(a) => {
                let idx = self.index_of(&a.iface).await?;
                kernel::addresses::add(h, idx, &a.iface, a.net).await?;
            }
            Change::ReleaseLink { name } => {
                let idx = self.index_of(name).await?;
                kernel::links::release(h, idx, name).await?;
            }
            Change::DeleteLink { name, kind } => {
                if kind.as_deref() == Some("tun") {
                    // A userspace WireGuard device: closing its UAPI socket ends it.
                    kernel::wireguard::delete_device(name, self.k.wireguard)?;
                    // The implementation removes its TUN device once it notices; wait for it.
                    for _ in 0..50 {
                        if self.index_of(name).await.is_err() {
                            break;
                        }
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                } else {
                    let idx = self.index_of(name).await?;
                    kernel::links::delete(h, idx, name).await?;
                }
            }
            Change::CreateVrf { name, table } => kernel::links::create_vrf(h, name, *table).await?,
            Change::CreateVlan { name, parent, id } => {
                let p = self.index_of(parent).await?;
                kernel::links::create_vlan(h, name, p, *id).await?;
            }
            Change::ConfigureWireguard { iface, segment, port } => {
                let key = self.keys.get(segment).ok_or_else(|| Error::Key {
                    segment: segment.to_string(),
                    reason: "no local key".into(),
                })?;
                if self.k.wireguard == wireguard_control::Backend::Kernel
                    && self.index_of(iface).await.is_err()
                {
                    kernel::links::create_wireguard(h, iface).await?;
                }
                kernel::wireguard::configure_device(iface, key, *port, self.k.wireguard)?;
            }
            Change::SetLink { name, master } => {
                let idx = self.index_of(name).await?;
                let m = match master {
                    Some(m) => Some(self.index_of(m).await?),
                    None => None,
                };
                kernel::links::set_master_up(h, idx, name, m).await?;
            }
            Change::SetPeer { .. } | Change::RemovePeer { .. } => unreachable!("batched in apply_all"),
            Change::ReplaceFirewall => kernel::nftables::apply(&desired.firewall)?,
            Change::DeleteFirewall => kernel::nftables::apply(&crate::plan::Firewall::default())?,
            Change::EnableForwarding => kernel::forwarding::enable()?,
        }
        Ok(())
    }
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

/// Bring the kernel to `target`, verify, and return the new last-good record.
async fn converge(
    k: &Kernel,
    target: &DesiredState,
    owned: &[&DesiredState],
    keys: &BTreeMap<SegmentName, PrivateKey>,
    fw_ref: Option<FirewallReference<'_>>,
    budget: Option<usize>,
    applied: &mut usize,
) -> Result<(Vec<Change>, LastGood)> {
    let pubs = public_keys(keys);
    let snap = observe(k, &wg_ifaces(owned)).await?;
    let changes = diff(target, owned, &snap, &pubs, fw_ref);
    let mut applier = Applier { k, keys, budget, applied: 0 };
    let res = applier.apply_all(&changes, target).await;
    *applied += applier.applied;
    res?;
    // Verify: the kernel now matches, with the firewall checked against nft's own listing.
    let after = observe(k, &wg_ifaces(owned)).await?;
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
    if !left.is_empty() {
        let list: Vec<String> = left.iter().take(5).map(|c| c.to_string()).collect();
        return Err(Error::Verify(format!("{} changes still pending: {}", left.len(), list.join("; "))));
    }
    Ok((changes, LastGood { desired: target.clone(), firewall_readback: readback }))
}

/// One full pass towards `desired`. On failure, rolls back to the last good state (or to
/// nothing, when there is none) and reports both.
pub async fn apply(
    k: &Kernel,
    ctx: &Context,
    desired: &DesiredState,
) -> std::result::Result<Outcome, PassFailed> {
    let start = Instant::now();
    let fail = |cause| PassFailed { cause, rolled_back: false, rollback_error: None };
    let last = state::load(&ctx.last_good).map_err(fail)?;
    let keys = local_keys(&ctx.key_dir, desired).map_err(fail)?;
    let mut owned: Vec<&DesiredState> = vec![desired];
    if let Some(l) = &last {
        owned.push(&l.desired);
    }
    let fw_ref = last.as_ref().and_then(|l| {
        l.firewall_readback.as_ref().map(|r| FirewallReference { applied: &l.desired.firewall, readback: r })
    });
    let mut applied = 0;
    match converge(k, desired, &owned, &keys, fw_ref, ctx.inject_fail_after, &mut applied).await {
        Ok((changes, record)) => {
            if !changes.is_empty() || last.is_none() {
                state::save(&ctx.last_good, &record).map_err(fail)?;
            }
            Ok(Outcome { changes, applied, elapsed: start.elapsed() })
        }
        Err(cause) => {
            tracing::error!(error = %cause, applied, "apply failed; rolling back");
            let empty = DesiredState::empty(desired.site.clone(), desired.mode);
            let target = last.as_ref().map_or(&empty, |l| &l.desired);
            let mut rb = 0;
            let rollback = converge(k, target, &owned, &keys, None, None, &mut rb).await;
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
