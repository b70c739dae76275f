//! The registry's audit events (the config's `audit:` key). Every change to who is in the mesh
//! is a 110113 Security Alert / 110129 Security Configuration event whose object is the site;
//! every refused token or site credential is a 110126 Node Authentication failure. Events made
//! by the site API name the site (`site:NAME`) as the requestor and carry its address; events
//! made by the `kizuna policy` and `kizuna site` commands name the operating-system account that
//! ran them (`os:USER`).

use kizuna_audit::AuditEvent;
use kizuna_audit::emitter::{AdminChanges, SenderConfig};
use kizuna_audit::event::presets::Source;

/// AuditSourceID of the registry's site API.
pub const SOURCE_API: &str = "registry@centre";
/// AuditSourceID of the registry's administration commands.
pub const SOURCE_ADMIN: &str = "kizuna-registry-admin";

/// A site's identity as an audit requestor.
pub fn site_user(site: &str) -> String {
    format!("site:{site}")
}

/// The site API changed the mesh on a site's request (enrollment, key registration).
pub fn site_change(site: &str, ip: &str, change: &str) -> AuditEvent {
    AuditEvent::security_change(&Source::new(SOURCE_API).ip(ip), &site_user(site), site, change)
}

/// The site API refused a token or credential; `claimed` is the site name presented, if any.
pub fn refused(claimed: Option<&str>, ip: &str, reason: &str) -> AuditEvent {
    let who = claimed.map(site_user).unwrap_or_else(|| "unknown".into());
    AuditEvent::node_auth_failure(&Source::new(SOURCE_API).ip(ip), &who, reason)
}

/// The sender of the `kizuna policy` and `kizuna site` commands' events, opened before their
/// change: a bad `audit:` key refuses the command with nothing changed, and the event of a change
/// made is then recorded without fail ([`AdminChanges::record`]).
pub fn admin_changes(cfg: &SenderConfig) -> Result<AdminChanges, kizuna_audit::AuditError> {
    AdminChanges::open(cfg, SOURCE_ADMIN)
}
