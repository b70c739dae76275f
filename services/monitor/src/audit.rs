//! The admin screen's audit events (source `admin@centre`): logins and logouts (110114), each
//! site page viewed (110112 Query, `site page NAME`: it lists quarantined files whose SS-MIX2
//! names hold patient IDs) and each action (110113 Security Alert / 110129 Security
//! Configuration, the site as subject, the change in words). The user is the provider's pairwise
//! subject for the admin screen, or `loopback` when the screen runs without login.

use kizuna_audit::AuditEvent;
use kizuna_audit::event::EventOutcome;
use kizuna_audit::event::presets::Source;

use crate::access::Actor;

/// AuditSourceID of the admin screen.
pub const SOURCE_ID: &str = "admin@centre";

fn source(ip: Option<&str>) -> Source {
    let s = Source::new(SOURCE_ID);
    match ip {
        Some(ip) => s.ip(ip),
        None => s,
    }
}

/// A login (`ok`), or one refused because the user is not an admin.
pub fn login(subject: &str, ip: Option<&str>, ok: bool) -> AuditEvent {
    let outcome = if ok { EventOutcome::Success } else { EventOutcome::SeriousFailure };
    AuditEvent::user_login(&source(ip), subject, true, outcome)
}

/// A logout.
pub fn logout(subject: &str, ip: Option<&str>) -> AuditEvent {
    AuditEvent::user_login(&source(ip), subject, false, EventOutcome::Success)
}

/// A site's page was shown.
pub fn site_page(who: &Actor, site: &str) -> AuditEvent {
    AuditEvent::query(&source(who.ip.as_deref()), &who.user, &format!("site page {site}"), None)
}

/// An action changed a site (`change`: `re-request of file X`, `site disabled`, …).
pub fn site_change(who: &Actor, site: &str, change: &str) -> AuditEvent {
    AuditEvent::security_change(&source(who.ip.as_deref()), &who.user, site, change)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_name_the_admin_the_site_and_the_change() {
        let who = Actor { user: "pw-admin".into(), ip: Some("127.0.0.1".into()) };
        let q = site_page(&who, "clinic-a");
        q.validate().unwrap();
        assert_eq!((q.event.id.code.as_str(), q.requestor_id()), ("110112", Some("pw-admin")));
        let c = site_change(&who, "clinic-a", "upload token rotated");
        c.validate().unwrap();
        assert_eq!(c.event.types[0].code, "110129");
        assert_eq!(c.objects[0].id, "clinic-a");
        assert_eq!(c.objects[0].details, vec![("change".to_string(), "upload token rotated".to_string())]);
        let refused = login("pw-doc", None, false);
        assert_eq!(refused.event.outcome, EventOutcome::SeriousFailure);
        assert_eq!(logout("pw-admin", None).event.id.code, "110114");
    }
}
