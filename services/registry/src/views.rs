//! One site's view of the mesh, derived from the active policy and the enrolled sites' keys.
//!
//! The view is the policy restricted to what the site needs: the segments and closed groups it
//! belongs to and has a key for, and the enrolled peers in them, with their keys filled in.
//! Peers that are not enrolled (or revoked, or removed) are simply absent, so every view passes
//! netd's own policy checks, which run again on the result before it is signed.

use std::collections::{BTreeMap, BTreeSet};

use netd::policy::validate::memberships;
use netd::policy::{Policy, PublicKey, SegmentName, SiteKind, SiteName, ValidPolicy};

/// Enrolled sites and their registered keys.
pub type EnrolledKeys = BTreeMap<SiteName, BTreeMap<SegmentName, PublicKey>>;

/// Why a site has no view.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ViewError {
    #[error("site {0:?} is not in the active policy")]
    NotInPolicy(String),
    #[error("site {0:?} is not enrolled")]
    NotEnrolled(String),
    #[error(
        "no view yet for site {site:?}: the centre site {centre:?} has not enrolled (enroll the centre router first)"
    )]
    CentreMissing { site: String, centre: String },
    #[error("the view of site {site:?} fails netd's checks: {problems}")]
    Invalid { site: String, problems: String },
}

/// The view policy of `site` and the segments it still has to register keys for.
pub fn build(
    policy: &Policy,
    enrolled: &EnrolledKeys,
    site: &SiteName,
) -> Result<(Policy, Vec<SegmentName>), ViewError> {
    if !policy.sites.iter().any(|s| &s.name == site) {
        return Err(ViewError::NotInPolicy(site.to_string()));
    }
    let my_keys = enrolled.get(site).ok_or_else(|| ViewError::NotEnrolled(site.to_string()))?;
    let members = memberships(policy);
    let ready = |s: &SiteName, seg: &SegmentName| {
        members.get(seg).is_some_and(|m| m.contains(s))
            && enrolled.get(s).is_some_and(|k| k.contains_key(seg))
    };
    let mut missing = Vec::new();
    let mut segments: BTreeSet<SegmentName> = BTreeSet::new();
    for (seg, m) in &members {
        if !m.contains(site) {
            continue;
        }
        if my_keys.contains_key(seg) {
            segments.insert(seg.clone());
        } else {
            missing.push(seg.clone());
        }
    }
    // Peers: enrolled sites ready in every required segment of the view.
    let required: Vec<&SegmentName> =
        policy.segments.iter().filter(|(n, s)| s.required && segments.contains(*n)).map(|(n, _)| n).collect();
    let included: BTreeSet<&SiteName> = policy
        .sites
        .iter()
        .map(|s| &s.name)
        .filter(|n| *n == site || (enrolled.contains_key(*n) && required.iter().all(|r| ready(n, r))))
        .collect();
    // Closed groups with fewer than two ready members have nothing to carry yet.
    for g in policy.closed_groups.keys() {
        if segments.contains(g) {
            let n = included.iter().filter(|s| ready(s, g)).count();
            if n < 2 {
                segments.remove(g);
            }
        }
    }
    let mut view = policy.clone();
    view.segments.retain(|n, _| segments.contains(n));
    view.closed_groups.retain(|n, _| segments.contains(n));
    for (g, spec) in view.closed_groups.iter_mut() {
        spec.members.retain(|m| included.contains(m) && ready(m, g));
    }
    view.sites.retain(|s| included.contains(&s.name));
    for s in view.sites.iter_mut() {
        let keys = enrolled.get(&s.name).cloned().unwrap_or_default();
        let in_view = |seg: &SegmentName| segments.contains(seg) && ready(&s.name, seg);
        s.joins.retain(|j| in_view(j));
        s.lan.retain(|seg, _| in_view(seg));
        s.keys = keys.into_iter().filter(|(seg, _)| in_view(seg)).collect();
    }
    let has_hub = view.segments.values().any(|s| !s.centre_services.is_empty());
    if has_hub && !view.sites.iter().any(|s| s.kind == SiteKind::Centre) {
        let centre = policy.sites.iter().find(|s| s.kind == SiteKind::Centre).map(|s| s.name.to_string());
        return Err(ViewError::CentreMissing { site: site.to_string(), centre: centre.unwrap_or_default() });
    }
    ValidPolicy::new(view.clone()).map_err(|p| ViewError::Invalid {
        site: site.to_string(),
        problems: p.iter().map(|p| format!("{}: {}", p.path, p.reason)).collect::<Vec<_>>().join("; "),
    })?;
    Ok((view, missing))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture() -> (Policy, EnrolledKeys) {
        let text = include_str!("../../../netd/tests/fixtures/valid.yaml");
        let mut p: Policy = serde_norway::from_str(text).unwrap();
        let mut enrolled = EnrolledKeys::new();
        for s in &mut p.sites {
            enrolled.insert(s.name.clone(), std::mem::take(&mut s.keys));
        }
        (p, enrolled)
    }

    fn name(s: &str) -> SiteName {
        s.parse().unwrap()
    }

    #[test]
    fn full_enrollment_gives_each_site_its_segments_and_peers() {
        let (p, e) = fixture();
        let (v, missing) = build(&p, &e, &name("minami-hospital")).unwrap();
        assert!(missing.is_empty());
        // minami does not join conference: not in its view.
        assert!(!v.segments.contains_key(&"conference".parse().unwrap()));
        assert!(v.closed_groups.contains_key(&"radiology".parse().unwrap()));
        assert_eq!(v.sites.len(), 4);
        let kita = v.sites.iter().find(|s| s.name == name("kita-hospital")).unwrap();
        assert!(!kita.keys.contains_key(&"conference".parse().unwrap()));
    }

    #[test]
    fn unenrolled_peers_are_absent_and_lonely_groups_dropped() {
        let (p, mut e) = fixture();
        e.remove(&name("kita-hospital"));
        let (v, _) = build(&p, &e, &name("minami-hospital")).unwrap();
        assert!(v.sites.iter().all(|s| s.name != name("kita-hospital")));
        assert!(v.closed_groups.is_empty(), "radiology has one ready member left");
        assert_eq!(
            build(&p, &e, &name("kita-hospital")),
            Err(ViewError::NotEnrolled("kita-hospital".into()))
        );
    }

    #[test]
    fn a_missing_key_is_reported_and_the_centre_is_needed() {
        let (p, mut e) = fixture();
        e.get_mut(&name("kita-hospital")).unwrap().remove(&"conference".parse().unwrap());
        let (v, missing) = build(&p, &e, &name("kita-hospital")).unwrap();
        assert_eq!(missing, vec!["conference".parse::<SegmentName>().unwrap()]);
        assert!(!v.segments.contains_key(&"conference".parse().unwrap()));
        e.remove(&name("centre"));
        assert!(matches!(build(&p, &e, &name("kita-hospital")), Err(ViewError::CentreMissing { .. })));
    }
}
