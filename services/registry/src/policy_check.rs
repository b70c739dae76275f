//! Checking a policy for the registry with netd's own checker. The registry's policy names no
//! keys (enrollment supplies them), so before netd's checks run, every site gets a distinct
//! placeholder key for each segment it joins; a policy that lists keys is refused.

use std::path::Path;

use netd::policy::source::NodePath;
use netd::policy::validate::{Problem, memberships};
use netd::policy::{Policy, PublicKey, SegmentName, SiteName};
use sha2::{Digest, Sha256};

/// A placeholder key, unique per site and segment (never a real key: nobody holds its
/// private half, and it never leaves this check).
fn placeholder(site: &SiteName, segment: &SegmentName) -> PublicKey {
    let d = Sha256::digest(format!("kizuna-registry placeholder\0{site}\0{segment}"));
    PublicKey::from_bytes(&d.into())
}

/// Parse and check registry policy text. On success, the policy as written (no keys).
pub fn check(text: &str, file: &Path) -> Result<Policy, Vec<String>> {
    let valid = netd::policy::parse_with(text, file, |p| {
        let mut problems = Vec::new();
        for (i, site) in p.sites.iter().enumerate() {
            if !site.keys.is_empty() {
                problems.push(Problem {
                    path: NodePath::root().key("sites").index(i).key("keys"),
                    reason:
                        "keys come from enrollment (`netd enroll`); remove them from the registry's policy"
                            .into(),
                    other: None,
                });
            }
        }
        if problems.is_empty() {
            for (segment, members) in memberships(p) {
                for site in p.sites.iter_mut().filter(|s| members.contains(&s.name)) {
                    let key = placeholder(&site.name, &segment);
                    site.keys.insert(segment.clone(), key);
                }
            }
        }
        problems
    })
    .map_err(|issues| issues.iter().map(|i| i.to_string()).collect::<Vec<_>>())?;
    let mut policy = valid.policy().clone();
    for s in &mut policy.sites {
        s.keys.clear();
    }
    Ok(policy)
}

/// Segments and closed groups `site` belongs to under `policy`.
pub fn site_segments(policy: &Policy, site: &SiteName) -> Vec<SegmentName> {
    memberships(policy).into_iter().filter(|(_, m)| m.contains(site)).map(|(s, _)| s).collect()
}
