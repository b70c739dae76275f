//! Links: VRFs, VLANs, kernel WireGuard devices, and enslaving LAN interfaces (rtnetlink).

use futures::TryStreamExt;
use netlink_packet_route::link::{
    InfoData, InfoVlan, InfoVrf, LinkAttribute, LinkFlags, LinkInfo, LinkMessage,
};
use rtnetlink::{Handle, LinkUnspec, LinkVlan, LinkVrf, LinkWireguard};

use crate::error::{Error, Result};

/// A link as the kernel reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedLink {
    pub index: u32,
    pub name: String,
    /// `vrf`, `vlan`, `wireguard`, `tun`, ... (None for plain devices)
    pub kind: Option<String>,
    pub vrf_table: Option<u32>,
    /// `(parent index, vlan id)` of a VLAN.
    pub vlan: Option<(u32, u16)>,
    pub master: Option<u32>,
    pub up: bool,
}

fn parse(msg: LinkMessage) -> ObservedLink {
    let mut link = ObservedLink {
        index: msg.header.index,
        name: String::new(),
        kind: None,
        vrf_table: None,
        vlan: None,
        master: None,
        up: msg.header.flags.contains(LinkFlags::Up),
    };
    let mut parent = None;
    let mut vlan_id = None;
    for attr in msg.attributes {
        match attr {
            LinkAttribute::IfName(n) => link.name = n,
            LinkAttribute::Controller(m) => link.master = Some(m),
            LinkAttribute::Link(p) => parent = Some(p),
            LinkAttribute::LinkInfo(infos) => {
                for info in infos {
                    match info {
                        LinkInfo::Kind(k) => link.kind = Some(k.to_string()),
                        LinkInfo::Data(InfoData::Vrf(v)) => {
                            for i in v {
                                if let InfoVrf::TableId(t) = i {
                                    link.vrf_table = Some(t);
                                }
                            }
                        }
                        LinkInfo::Data(InfoData::Vlan(v)) => {
                            for i in v {
                                if let InfoVlan::Id(id) = i {
                                    vlan_id = Some(id);
                                }
                            }
                        }
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    if let (Some(p), Some(id)) = (parent, vlan_id) {
        link.vlan = Some((p, id));
    }
    link
}

/// All links of the namespace.
pub async fn observe(h: &Handle) -> Result<Vec<ObservedLink>> {
    let mut out = Vec::new();
    let mut stream = h.link().get().execute();
    while let Some(msg) = stream.try_next().await.map_err(|e| Error::kernel("links", e))? {
        out.push(parse(msg));
    }
    Ok(out)
}

/// Create a VRF with its table, down (it is set up once its members are in place).
pub async fn create_vrf(h: &Handle, name: &str, table: u32) -> Result<()> {
    h.link()
        .add(LinkVrf::new(name, table).build())
        .execute()
        .await
        .map_err(|e| Error::kernel(format!("create vrf {name}"), e))
}

/// Create a VLAN interface on `parent_index`.
pub async fn create_vlan(h: &Handle, name: &str, parent_index: u32, id: u16) -> Result<()> {
    h.link()
        .add(LinkVlan::new(name, parent_index, id).build())
        .execute()
        .await
        .map_err(|e| Error::kernel(format!("create vlan {name}"), e))
}

/// Create a kernel WireGuard device.
pub async fn create_wireguard(h: &Handle, name: &str) -> Result<()> {
    h.link()
        .add(LinkWireguard::new(name).build())
        .execute()
        .await
        .map_err(|e| Error::kernel(format!("create wireguard {name}"), e))
}

/// Enslave a link to `master` (or release it with None) and set it up.
pub async fn set_master_up(h: &Handle, index: u32, name: &str, master: Option<u32>) -> Result<()> {
    let b = LinkUnspec::new_with_index(index);
    let b = match master {
        Some(m) => b.controller(m),
        None => b.nocontroller(),
    };
    h.link().set(b.up().build()).execute().await.map_err(|e| Error::kernel(format!("set link {name}"), e))
}

/// Release a link from its master without touching its up/down state.
pub async fn release(h: &Handle, index: u32, name: &str) -> Result<()> {
    h.link()
        .set(LinkUnspec::new_with_index(index).nocontroller().build())
        .execute()
        .await
        .map_err(|e| Error::kernel(format!("release link {name}"), e))
}

pub async fn delete(h: &Handle, index: u32, name: &str) -> Result<()> {
    h.link().del(index).execute().await.map_err(|e| Error::kernel(format!("delete link {name}"), e))
}
