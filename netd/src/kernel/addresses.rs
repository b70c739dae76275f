//! IPv4 addresses on interfaces (rtnetlink).

use std::net::IpAddr;

use futures::TryStreamExt;
use ipnet::Ipv4Net;
use netlink_packet_route::address::{AddressAttribute, AddressMessage};
use rtnetlink::Handle;

use crate::error::{Error, Result};

/// An IPv4 address on the link with `index`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedAddress {
    pub index: u32,
    pub net: Ipv4Net,
    message: AddressMessage,
}

pub async fn observe(h: &Handle) -> Result<Vec<ObservedAddress>> {
    let mut out = Vec::new();
    let mut stream = h.address().get().execute();
    while let Some(msg) = stream.try_next().await.map_err(|e| Error::kernel("addresses", e))? {
        let mut local = None;
        let mut addr = None;
        for a in &msg.attributes {
            match a {
                AddressAttribute::Local(IpAddr::V4(v)) => local = Some(*v),
                AddressAttribute::Address(IpAddr::V4(v)) => addr = Some(*v),
                _ => {}
            }
        }
        if let Some(ip) = local.or(addr)
            && let Ok(net) = Ipv4Net::new(ip, msg.header.prefix_len)
        {
            out.push(ObservedAddress { index: msg.header.index, net, message: msg });
        }
    }
    Ok(out)
}

pub async fn add(h: &Handle, index: u32, iface: &str, net: Ipv4Net) -> Result<()> {
    h.address()
        .add(index, IpAddr::V4(net.addr()), net.prefix_len())
        .execute()
        .await
        .map_err(|e| Error::kernel(format!("add address {net} on {iface}"), e))
}

pub async fn delete(h: &Handle, observed: &ObservedAddress, iface: &str) -> Result<()> {
    h.address()
        .del(observed.message.clone())
        .execute()
        .await
        .map_err(|e| Error::kernel(format!("delete address {} on {iface}", observed.net), e))
}
