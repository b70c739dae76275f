//! Routes in segment tables (rtnetlink). netd marks its routes with its own protocol number,
//! so it never touches routes others made.

use std::net::Ipv4Addr;

use futures::TryStreamExt;
use ipnet::Ipv4Net;
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use rtnetlink::{Handle, RouteMessageBuilder};

use crate::error::{Error, Result};

/// Route protocol number of routes netd owns (`ip route show proto 77`; unassigned in
/// iproute2's rt_protos).
pub const NETD_PROTO: u8 = 77;

/// A netd route as the kernel reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedRoute {
    pub table: u32,
    pub dst: Ipv4Net,
    /// Output interface index, None for unreachable routes.
    pub oif: Option<u32>,
    pub unreachable: bool,
    message: RouteMessage,
}

/// Every IPv4 route carrying netd's protocol number, in any table.
pub async fn observe(h: &Handle) -> Result<Vec<ObservedRoute>> {
    let mut out = Vec::new();
    let mut stream = h.route().get(RouteMessageBuilder::<Ipv4Addr>::new().build()).execute();
    while let Some(msg) = stream.try_next().await.map_err(|e| Error::kernel("routes", e))? {
        if msg.header.protocol != RouteProtocol::Other(NETD_PROTO) {
            continue;
        }
        let mut table = u32::from(msg.header.table);
        let mut dst = Ipv4Addr::UNSPECIFIED;
        let mut oif = None;
        for a in &msg.attributes {
            match a {
                RouteAttribute::Table(t) => table = *t,
                RouteAttribute::Destination(RouteAddress::Inet(d)) => dst = *d,
                RouteAttribute::Oif(i) => oif = Some(*i),
                _ => {}
            }
        }
        let Ok(dst) = Ipv4Net::new(dst, msg.header.destination_prefix_length) else { continue };
        out.push(ObservedRoute {
            table,
            dst,
            oif,
            unreachable: msg.header.kind == RouteType::Unreachable,
            message: msg,
        });
    }
    Ok(out)
}

/// Add `dst dev oif` (Some) or `unreachable dst` (None) to `table`.
pub async fn add(h: &Handle, table: u32, dst: Ipv4Net, oif: Option<u32>) -> Result<()> {
    let mut b = RouteMessageBuilder::<Ipv4Addr>::new()
        .destination_prefix(dst.network(), dst.prefix_len())
        .table_id(table)
        .protocol(RouteProtocol::Other(NETD_PROTO));
    b = match oif {
        Some(i) => b.output_interface(i).scope(RouteScope::Link),
        None => b.kind(RouteType::Unreachable),
    };
    h.route()
        .add(b.build())
        .execute()
        .await
        .map_err(|e| Error::kernel(format!("add route {dst} table {table}"), e))
}

pub async fn delete(h: &Handle, r: &ObservedRoute) -> Result<()> {
    h.route()
        .del(r.message.clone())
        .execute()
        .await
        .map_err(|e| Error::kernel(format!("delete route {} table {}", r.dst, r.table), e))
}
