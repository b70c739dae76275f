//! The condition-flag history of data keys: which combinations of `_0`, `_1` and `_2` files for one
//! key (patient, care date, data type, order number) can come out of the update and delete rules of
//! [`crate::condition`], and which cannot.
//!
//! Files of one key always sit in one folder (the key fixes patient, date and data type), so this
//! runs per data-type folder and never needs more than one folder's listing.

use std::collections::BTreeMap;
use std::path::Path;

use super::{Code, Violation};
use crate::{ConditionFlag, DataKey, FileName};

/// Checks the files of one folder and returns a [`Code::FlagHistory`] violation for each file whose
/// flag its key's history rules out:
///
/// - more than one current (`_1`) file: an update renames the old `_1` to `_2`;
/// - a superseded (`_2`) file newer than the key's current file, or with no current file at all
///   (a delete turns both into `_0`);
/// - a `_1` or `_2` file not newer than the key's deletion (`_0`): the delete would have turned it
///   into `_0`;
/// - two files for the same version (same timestamp and department) under different flags.
///
/// Files of other keys are checked independently; names of other folders are not expected.
pub fn flag_history(dir: &Path, names: &[FileName]) -> Vec<Violation> {
    let mut by_key: BTreeMap<DataKey, Vec<&FileName>> = BTreeMap::new();
    for n in names {
        by_key.entry(n.key()).or_default().push(n);
    }
    let mut out = Vec::new();
    for files in by_key.values_mut() {
        files.sort_by(|a, b| (a.timestamp, &a.department, a.flag).cmp(&(b.timestamp, &b.department, b.flag)));
        let mut flag = |f: &FileName, message: String| {
            out.push(Violation {
                code: Code::FlagHistory,
                file: dir.join(f.to_string()),
                field: None,
                message,
            })
        };
        let newest = |want: ConditionFlag| files.iter().rev().find(|f| f.flag == want).copied();
        let current = newest(ConditionFlag::Current);
        let deleted = newest(ConditionFlag::Deleted);

        for f in files.iter().copied() {
            match f.flag {
                ConditionFlag::Current => {
                    // Another file, not only another time: two departments' `_1` at one time
                    // are two current versions too.
                    if let Some(c) = current
                        && !std::ptr::eq(c, f)
                    {
                        flag(f, format!("a second current (_1) version of the key; the newest is {c}"));
                    }
                }
                ConditionFlag::Superseded => match current {
                    None => flag(
                        f,
                        "a superseded (_2) version with no current (_1) version of the key".to_owned(),
                    ),
                    Some(c) if c.timestamp < f.timestamp => {
                        flag(f, format!("a superseded (_2) version newer than the current one {c}"))
                    }
                    Some(_) => {}
                },
                ConditionFlag::Deleted => {}
            }
            if f.flag != ConditionFlag::Deleted
                && let Some(d) = deleted
                && f.timestamp < d.timestamp
            {
                // Strictly older, as `condition::plan` deletes: a version at the deletion's own
                // time (another department) is stored after it as it came.
                flag(f, format!("not newer than the deletion {d}, which would have made it _0"));
            }
        }
        for pair in files.windows(2) {
            if pair[0].timestamp == pair[1].timestamp && pair[0].department == pair[1].department {
                flag(pair[1], format!("the same version as {} under another flag", pair[0]));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(order: &str, ts: &str, flag: char) -> FileName {
        format!("9999013_20111220_OMP-01_{order}_{ts}_01_{flag}").parse().unwrap()
    }
    const T1: &str = "20111220100000000";
    const T2: &str = "20111220110000000";
    const T3: &str = "20111220120000000";
    const A: &str = "000000011000185";
    const B: &str = "000000011000186";

    fn faults(names: &[FileName]) -> Vec<String> {
        let mut v: Vec<String> = flag_history(Path::new("d"), names)
            .into_iter()
            .map(|v| v.file.file_name().unwrap().to_str().unwrap().to_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn possible_histories_pass() {
        assert!(faults(&[f(A, T1, '1')]).is_empty());
        assert!(faults(&[f(A, T1, '2'), f(A, T2, '2'), f(A, T3, '1')]).is_empty());
        assert!(faults(&[f(A, T1, '0'), f(A, T2, '0')]).is_empty());
        // Re-created after a delete.
        assert!(faults(&[f(A, T1, '0'), f(A, T2, '1')]).is_empty());
        // A delete message for data never stored here.
        assert!(faults(&[f(A, T1, '0')]).is_empty());
        // Different keys are independent.
        assert!(faults(&[f(A, T1, '1'), f(B, T2, '1')]).is_empty());
    }

    #[test]
    fn two_current_versions_are_flagged() {
        assert_eq!(faults(&[f(A, T1, '1'), f(A, T2, '1')]), [f(A, T1, '1').to_string()]);
    }

    #[test]
    fn two_current_versions_at_one_time_are_flagged() {
        let other_dept: FileName = format!("9999013_20111220_OMP-01_{A}_{T1}_02_1").parse().unwrap();
        assert_eq!(faults(&[f(A, T1, '1'), other_dept.clone()]).len(), 1);
    }

    #[test]
    fn what_plan_stores_passes() {
        // A version at the deletion's own time from another department: `plan` stores it `_1`.
        let other_dept: FileName = format!("9999013_20111220_OMP-01_{A}_{T1}_02_1").parse().unwrap();
        let existing = [f(A, T1, '0')];
        let crate::condition::Transition::Apply(steps) = crate::condition::plan(&existing, &other_dept)
        else {
            panic!("not stored")
        };
        assert_eq!(steps, [crate::condition::Step::Write { name: other_dept.clone() }]);
        assert!(faults(&[f(A, T1, '0'), other_dept]).is_empty());
    }

    #[test]
    fn superseded_newer_than_current_is_flagged() {
        assert_eq!(faults(&[f(A, T1, '1'), f(A, T2, '2')]), [f(A, T2, '2').to_string()]);
    }

    #[test]
    fn superseded_without_current_is_flagged() {
        assert_eq!(faults(&[f(A, T1, '2')]), [f(A, T1, '2').to_string()]);
    }

    #[test]
    fn survivors_of_a_delete_are_flagged() {
        assert_eq!(faults(&[f(A, T1, '1'), f(A, T2, '0')]), [f(A, T1, '1').to_string()]);
    }

    #[test]
    fn one_version_under_two_flags_is_flagged() {
        assert_eq!(faults(&[f(A, T1, '2'), f(A, T1, '1')]), [f(A, T1, '2').to_string()]);
    }
}
