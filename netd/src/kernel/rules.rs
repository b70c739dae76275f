//! `ip rule iif IFACE lookup TABLE` entries of table mode (rtnetlink). netd owns every IPv4
//! rule at priority [`crate::plan::RULE_PRIORITY`].

use futures::TryStreamExt;
use netlink_packet_route::rule::{RuleAction, RuleAttribute, RuleMessage};
use rtnetlink::{Handle, IpVersion};

use crate::error::{Error, Result};
use crate::plan::{RULE_PRIORITY, RuleSpec};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedRule {
    pub spec: RuleSpec,
    message: RuleMessage,
}

/// netd's rules (priority [`RULE_PRIORITY`]).
pub async fn observe(h: &Handle) -> Result<Vec<ObservedRule>> {
    let mut out = Vec::new();
    let mut stream = h.rule().get(IpVersion::V4).execute();
    while let Some(msg) = stream.try_next().await.map_err(|e| Error::kernel("rules", e))? {
        let mut prio = 0;
        let mut table = u32::from(msg.header.table);
        let mut iif = String::new();
        for a in &msg.attributes {
            match a {
                RuleAttribute::Priority(p) => prio = *p,
                RuleAttribute::Table(t) => table = *t,
                RuleAttribute::Iifname(n) => iif = n.clone(),
                _ => {}
            }
        }
        if prio == RULE_PRIORITY {
            out.push(ObservedRule { spec: RuleSpec { priority: prio, iif, table }, message: msg });
        }
    }
    Ok(out)
}

pub async fn add(h: &Handle, r: &RuleSpec) -> Result<()> {
    h.rule()
        .add()
        .v4()
        .input_interface(r.iif.clone())
        .table_id(r.table)
        .priority(r.priority)
        .action(RuleAction::ToTable)
        .execute()
        .await
        .map_err(|e| Error::kernel(format!("add rule iif {} table {}", r.iif, r.table), e))
}

pub async fn delete(h: &Handle, r: &ObservedRule) -> Result<()> {
    h.rule()
        .del(r.message.clone())
        .execute()
        .await
        .map_err(|e| Error::kernel(format!("delete rule iif {} table {}", r.spec.iif, r.spec.table), e))
}
