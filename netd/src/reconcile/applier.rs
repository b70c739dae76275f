//! Applying a list of changes to the kernel, counting them, and failing on purpose when a test
//! injects a failure.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use crate::diff::Change;
use crate::error::{Error, Result};
use crate::kernel::{self, Kernel};
use crate::keys::PrivateKey;
use crate::plan::{DesiredState, PeerSpec, RouteTarget};
use crate::policy::{PublicKey, SegmentName};
use crate::reconcile::Phases;

/// Counts kernel changes and enforces the injected-failure budget.
pub(super) struct Applier<'a> {
    pub k: &'a Kernel,
    pub keys: &'a BTreeMap<SegmentName, PrivateKey>,
    pub budget: Option<usize>,
    pub applied: usize,
    /// Link indices by name, read once and re-read only when a name is missing (after a link
    /// was created), instead of one link dump per change.
    links: Option<HashMap<String, u32>>,
    /// Time per kind of change.
    pub phases: Phases,
}

/// Phase name of a change, for [`Phases`].
fn phase_of(c: &Change) -> &'static str {
    match c {
        Change::SetPeer { .. } | Change::RemovePeer { .. } => "apply/wireguard peers",
        Change::ConfigureWireguard { .. } => "apply/wireguard devices",
        Change::ReplaceFirewall | Change::DeleteFirewall => "apply/nftables",
        Change::EnableForwarding => "apply/forwarding",
        _ => "apply/netlink",
    }
}

impl<'a> Applier<'a> {
    pub fn new(k: &'a Kernel, keys: &'a BTreeMap<SegmentName, PrivateKey>, budget: Option<usize>) -> Self {
        Self { k, keys, budget, applied: 0, links: None, phases: Phases::default() }
    }

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

    async fn read_links(&mut self) -> Result<&HashMap<String, u32>> {
        let all = kernel::links::observe(&self.k.rt).await?;
        Ok(self.links.insert(all.into_iter().map(|l| (l.name, l.index)).collect()))
    }

    async fn index_of(&mut self, name: &str) -> Result<u32> {
        if let Some(i) = self.links.as_ref().and_then(|m| m.get(name)) {
            return Ok(*i);
        }
        self.read_links()
            .await?
            .get(name)
            .copied()
            .ok_or_else(|| Error::kernel(format!("link {name}"), "does not exist"))
    }

    /// Is there a link called `name` now (always asks the kernel)?
    async fn exists(&mut self, name: &str) -> Result<bool> {
        Ok(self.read_links().await?.contains_key(name))
    }

    pub async fn apply_all(&mut self, changes: &[Change], desired: &DesiredState) -> Result<()> {
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
                let t = std::time::Instant::now();
                kernel::wireguard::apply_peers(iface, &ups, &rms, self.k.wireguard)?;
                self.phases.lap(phase_of(&changes[i]), t);
                self.applied += n;
                i += n;
                continue;
            }
            let t = std::time::Instant::now();
            self.apply_one(&changes[i], desired).await?;
            self.phases.lap(phase_of(&changes[i]), t);
            self.applied += 1;
            i += 1;
        }
        Ok(())
    }

    async fn apply_one(&mut self, change: &Change, desired: &DesiredState) -> Result<()> {
        tracing::debug!(change = %change, "applying");
        let h = self.k.rt.clone();
        let h = &h;
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
                        if !self.exists(name).await? {
                            break;
                        }
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                } else {
                    let idx = self.index_of(name).await?;
                    kernel::links::delete(h, idx, name).await?;
                }
                // Its index is gone (and a new link of that name gets a new one).
                if let Some(m) = self.links.as_mut() {
                    m.remove(name);
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
