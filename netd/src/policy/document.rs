//! The policy document as written by the network admins (YAML), with its JSON Schema.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnet::Ipv4Net;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::names::{LanInterface, MeshName, PublicKey, SegmentName, SiteName};

/// The whole mesh: segments, closed groups and sites.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// Name of the mesh.
    pub mesh: MeshName,
    /// WireGuard persistent keepalive towards every peer, in seconds (0 = off).
    #[serde(default = "default_keepalive")]
    pub keepalive_secs: u16,
    /// Days a number freed by a site that left the policy stays unused before the centre
    /// registry lets another site take it (0 = at once). Addresses derive from numbers, so the
    /// wait keeps an old holder's addresses from meaning a new site in logs and audit trails
    /// of that time. netd alone, without the registry's history, cannot check it.
    #[serde(default = "default_number_reuse")]
    pub number_reuse_after_days: u32,
    /// Segments every site (or each site that opts in) joins. `reference` and `upload` are
    /// mandatory and must be `required: true`.
    pub segments: BTreeMap<SegmentName, SegmentSpec>,
    /// Closed groups: segments whose members are listed explicitly.
    #[serde(default)]
    pub closed_groups: BTreeMap<SegmentName, GroupSpec>,
    /// The sites, including the centre.
    pub sites: Vec<Site>,
}

fn default_keepalive() -> u16 {
    25
}

fn default_number_reuse() -> u32 {
    30
}

/// An IPv4 network in CIDR notation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Cidr(pub Ipv4Net);

impl TryFrom<String> for Cidr {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        let net: Ipv4Net =
            s.parse().map_err(|_| format!("invalid IPv4 CIDR {s:?}, expected e.g. 10.10.0.0/16"))?;
        if net.trunc() != net {
            return Err(format!("CIDR {s:?} has host bits set; did you mean {}?", net.trunc()));
        }
        Ok(Self(net))
    }
}
impl From<Cidr> for String {
    fn from(c: Cidr) -> String {
        c.0.to_string()
    }
}
impl JsonSchema for Cidr {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Cidr".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "pattern": "^([0-9]{1,3}\\.){3}[0-9]{1,3}/[0-9]{1,2}$"
        })
    }
}

/// How sensitive the traffic of a segment is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Security {
    High,
    Low,
}

/// Transport protocol of a centre service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Proto {
    Tcp,
    Udp,
}

impl Proto {
    pub fn as_str(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        }
    }
}

/// A centre service that sites' LANs on a segment may reach (for example viewer tcp/443).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CentreService {
    pub name: String,
    pub proto: Proto,
    pub port: u16,
}

/// A segment every site joins (`required: true`) or sites opt into through `joins`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SegmentSpec {
    /// Address space of the segment; site N gets the N-th `/site_prefix` subnet.
    pub cidr: Cidr,
    /// WireGuard listen port of the segment's interface on every site.
    pub port: u16,
    pub security: Security,
    /// Every site must join this segment.
    #[serde(default)]
    pub required: bool,
    /// Prefix length of each site's LAN subnet (default 24).
    #[serde(default = "default_site_prefix")]
    pub site_prefix: u8,
    /// When non-empty, sites' LANs may reach only these services on the centre's LAN, and
    /// nothing else (hub services). When empty, members reach each other freely.
    #[serde(default)]
    pub centre_services: Vec<CentreService>,
}

/// A named closed group: a segment whose members are exactly the listed sites.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GroupSpec {
    pub cidr: Cidr,
    pub port: u16,
    pub security: Security,
    #[serde(default = "default_site_prefix")]
    pub site_prefix: u8,
    pub members: Vec<SiteName>,
}

fn default_site_prefix() -> u8 {
    24
}

/// What kind of organisation runs a site.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SiteKind {
    Hospital,
    Clinic,
    Pharmacy,
    CareHome,
    Centre,
}

/// One site router.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Site {
    /// Stable number; addresses derive from it, so never change it. Once the site leaves the
    /// policy, its number may go to a new site after `number_reuse_after_days`.
    pub number: u16,
    pub name: SiteName,
    pub kind: SiteKind,
    /// Underlay address peers send WireGuard packets to (port comes from the segment).
    pub endpoint: IpAddr,
    /// WireGuard public key of this site for each segment it joins (`netd keys` prints them).
    /// Omitted in a policy held by the centre registry, which fills it from enrollment.
    #[serde(default)]
    pub keys: BTreeMap<SegmentName, PublicKey>,
    /// LAN interface (or `parent.vlan`) of each segment it joins.
    pub lan: BTreeMap<SegmentName, LanInterface>,
    /// Optional segments this site joins (closed groups are joined through their `members`).
    #[serde(default)]
    pub joins: Vec<SegmentName>,
}

/// The JSON Schema of the policy document.
pub fn policy_schema() -> serde_json::Value {
    let schema = schemars::schema_for!(Policy);
    serde_json::to_value(schema).expect("schema serialises")
}
