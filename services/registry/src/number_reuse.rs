//! When a site number may change hands. Addresses derive from site numbers, so a number that
//! left the policy with its site waits `number_reuse_after_days` (a policy key) before another
//! site takes it. The wait is checked against the stored policy versions: the number's last
//! holder, and the time of the first version without it.

use std::path::Path;

use netd::policy::Policy;

/// One stored version: when it was created, and its policy.
pub struct Stored {
    pub created_unix: i64,
    pub policy: Policy,
}

/// Problems with `new`'s numbers against `history` (oldest first), as `file: field: reason` lines.
pub fn check(history: &[Stored], new: &Policy, now_unix: i64, file: &Path) -> Vec<String> {
    let hold = i64::from(new.number_reuse_after_days) * 86_400;
    let mut problems = Vec::new();
    for site in &new.sites {
        // The newest version that gave this number to anyone decides.
        let Some((i, holder)) = history.iter().enumerate().rev().find_map(|(i, v)| {
            v.policy.sites.iter().find(|s| s.number == site.number).map(|h| (i, h.name.as_str()))
        }) else {
            continue;
        };
        if holder == site.name.as_str() {
            continue;
        }
        // Freed by the version after the holder's last one, or by this one.
        let freed = history.get(i + 1).map_or(now_unix, |v| v.created_unix);
        if now_unix - freed < hold {
            problems.push(format!(
                "{}: sites.{}.number: {} was {holder}'s until {}; with number_reuse_after_days: {} it can go to another site from {}",
                file.display(),
                site.name,
                site.number,
                date(freed),
                new.number_reuse_after_days,
                date(freed + hold),
            ));
        }
    }
    problems
}

fn date(unix: i64) -> String {
    jiff::Timestamp::from_second(unix)
        .map_or_else(|_| unix.to_string(), |t| t.strftime("%Y-%m-%d %H:%M UTC").to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXTURE: &str = include_str!("../../../netd/tests/fixtures/valid.yaml");
    const DAY: i64 = 86_400;

    fn policy(edit: impl FnOnce(&mut Policy)) -> Policy {
        let mut p: Policy = serde_norway::from_str(FIXTURE).unwrap();
        edit(&mut p);
        p
    }

    /// higashi-clinic (number 4) leaves the policy on day 10; nishi-pharmacy wants number 4.
    fn history() -> Vec<Stored> {
        vec![
            Stored { created_unix: 0, policy: policy(|_| {}) },
            Stored { created_unix: 10 * DAY, policy: policy(|p| p.sites.retain(|s| s.number != 4)) },
        ]
    }

    fn nishi_at_4(days: u32) -> Policy {
        policy(|p| {
            p.number_reuse_after_days = days;
            let s = p.sites.iter_mut().find(|s| s.number == 4).unwrap();
            s.name = "nishi-pharmacy".parse().unwrap();
        })
    }

    #[test]
    fn a_freed_number_waits_the_policy_s_days_from_the_version_that_freed_it() {
        let f = Path::new("p.yaml");
        let p = check(&history(), &nishi_at_4(30), 39 * DAY, f);
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(
            p[0].starts_with("p.yaml: sites.nishi-pharmacy.number: 4 was higashi-clinic's until 1970-01-11"),
            "{}",
            p[0]
        );
        assert!(p[0].contains("from 1970-02-10"), "{}", p[0]);
        assert!(check(&history(), &nishi_at_4(30), 40 * DAY, f).is_empty(), "30 days after day 10");
        assert!(check(&history(), &nishi_at_4(0), 10 * DAY, f).is_empty(), "0 = at once");
    }

    #[test]
    fn renaming_a_site_in_place_frees_its_number_now_and_its_own_number_is_no_problem() {
        let f = Path::new("p.yaml");
        // Active version still gives 4 to higashi-clinic: the rename frees it only now.
        let active = vec![Stored { created_unix: 0, policy: policy(|_| {}) }];
        assert_eq!(check(&active, &nishi_at_4(30), 400 * DAY, f).len(), 1);
        // The same sites again (or coming back to their own numbers) are fine.
        assert!(check(&history(), &policy(|_| {}), 11 * DAY, f).is_empty());
    }
}
