//! Condition-flag semantics as a pure function: given the files that exist for one data key and an
//! incoming file, compute the exact renames and the write that keep the key's history right.
//!
//! - Update (incoming `_1` while a `_1` exists): the existing `_1` becomes `_2`, the new file is `_1`.
//! - Delete (incoming `_0`): every `_1` and `_2` of the key older than the delete becomes `_0`,
//!   and the delete message is stored as `_0`. A version newer than the delete (a late-arriving
//!   delete, or data re-created after it) stays: had the delete come first, it would have been
//!   stored after it as the current version.
//! - Late arrivals are placed by their timestamp: a `_1` older than the current `_1` is stored as `_2`,
//!   and anything older than the key's deletion is stored as `_0`. Replaying files in any order thus
//!   converges to the same tree.

use crate::{ConditionFlag, FileName};

/// One step of a transition, to be carried out in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Rename an existing file of the key.
    Rename { from: FileName, to: FileName },
    /// Write the incoming message under this name.
    Write { name: FileName },
}

/// What to do with an incoming file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transition {
    /// Carry out these steps: renames first, then the one write.
    Apply(Vec<Step>),
    /// A file with exactly this name (any flag) already holds this version: compare contents; the
    /// same content is a duplicate, other content a conflict.
    AlreadyStored(FileName),
}

/// Plans the storage of `incoming`, given every existing file of the same key (any flag).
///
/// Files of other keys in `existing` are ignored, so callers may pass a whole folder listing.
pub fn plan(existing: &[FileName], incoming: &FileName) -> Transition {
    let key = incoming.key();
    let same_key: Vec<&FileName> = existing.iter().filter(|f| f.key() == key).collect();

    // The same version (same timestamp) already stored, whatever its flag now.
    if let Some(f) =
        same_key.iter().find(|f| f.timestamp == incoming.timestamp && f.department == incoming.department)
    {
        return Transition::AlreadyStored((*f).clone());
    }

    let deleted_at = same_key.iter().filter(|f| f.flag == ConditionFlag::Deleted).map(|f| f.timestamp).max();
    let mut steps = Vec::new();
    match incoming.flag {
        ConditionFlag::Deleted => {
            // Strictly older, as a late arrival is deleted only when strictly older (below).
            for f in same_key
                .iter()
                .filter(|f| f.flag != ConditionFlag::Deleted && f.timestamp < incoming.timestamp)
            {
                steps.push(Step::Rename { from: (*f).clone(), to: f.with_flag(ConditionFlag::Deleted) });
            }
            steps.push(Step::Write { name: incoming.clone() });
        }
        _ if deleted_at.is_some_and(|d| incoming.timestamp < d) => {
            steps.push(Step::Write { name: incoming.with_flag(ConditionFlag::Deleted) });
        }
        ConditionFlag::Superseded => steps.push(Step::Write { name: incoming.clone() }),
        ConditionFlag::Current => {
            let newest_current =
                same_key.iter().filter(|f| f.flag == ConditionFlag::Current).map(|f| f.timestamp).max();
            if newest_current.is_some_and(|t| t > incoming.timestamp) {
                steps.push(Step::Write { name: incoming.with_flag(ConditionFlag::Superseded) });
            } else {
                for f in same_key.iter().filter(|f| f.flag == ConditionFlag::Current) {
                    steps.push(Step::Rename {
                        from: (*f).clone(),
                        to: f.with_flag(ConditionFlag::Superseded),
                    });
                }
                steps.push(Step::Write { name: incoming.clone() });
            }
        }
    }
    Transition::Apply(steps)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(ts: &str, flag: char) -> FileName {
        format!("9999013_20111220_OMP-01_000000011000185_{ts}_01_{flag}").parse().unwrap()
    }
    const T1: &str = "20111220100000000";
    const T2: &str = "20111220110000000";
    const T3: &str = "20111220120000000";

    #[test]
    fn new_data_is_written_as_current() {
        assert_eq!(plan(&[], &f(T1, '1')), Transition::Apply(vec![Step::Write { name: f(T1, '1') }]));
    }

    #[test]
    fn update_renames_current_to_superseded() {
        let t = plan(&[f(T1, '1')], &f(T2, '1'));
        assert_eq!(
            t,
            Transition::Apply(vec![
                Step::Rename { from: f(T1, '1'), to: f(T1, '2') },
                Step::Write { name: f(T2, '1') },
            ])
        );
    }

    #[test]
    fn delete_marks_every_version_deleted() {
        let t = plan(&[f(T1, '2'), f(T2, '1')], &f(T3, '0'));
        assert_eq!(
            t,
            Transition::Apply(vec![
                Step::Rename { from: f(T1, '2'), to: f(T1, '0') },
                Step::Rename { from: f(T2, '1'), to: f(T2, '0') },
                Step::Write { name: f(T3, '0') },
            ])
        );
    }

    #[test]
    fn late_update_is_stored_superseded() {
        let t = plan(&[f(T2, '1')], &f(T1, '1'));
        assert_eq!(t, Transition::Apply(vec![Step::Write { name: f(T1, '2') }]));
    }

    #[test]
    fn update_older_than_delete_is_stored_deleted() {
        let t = plan(&[f(T1, '0'), f(T3, '0')], &f(T2, '1'));
        assert_eq!(t, Transition::Apply(vec![Step::Write { name: f(T2, '0') }]));
    }

    #[test]
    fn same_version_is_already_stored_whatever_its_flag() {
        assert_eq!(plan(&[f(T1, '2'), f(T2, '1')], &f(T1, '1')), Transition::AlreadyStored(f(T1, '2')));
    }

    #[test]
    fn a_late_delete_leaves_the_versions_newer_than_it() {
        let t = plan(&[f(T1, '2'), f(T3, '1')], &f(T2, '0'));
        assert_eq!(
            t,
            Transition::Apply(vec![
                Step::Rename { from: f(T1, '2'), to: f(T1, '0') },
                Step::Write { name: f(T2, '0') },
            ])
        );
    }

    /// Carries out a plan on a folder listing.
    fn apply(tree: &mut Vec<FileName>, incoming: &FileName) {
        if let Transition::Apply(steps) = plan(tree, incoming) {
            for s in steps {
                match s {
                    Step::Rename { from, to } => {
                        let i = tree.iter().position(|f| *f == from).unwrap();
                        tree[i] = to;
                    }
                    Step::Write { name } => tree.push(name),
                }
            }
        }
        tree.sort_by_key(|f| f.to_string());
    }

    /// Every order of `files` gives the same folder.
    fn converges(files: &[FileName]) {
        fn permutations(n: usize) -> Vec<Vec<usize>> {
            if n == 0 {
                return vec![vec![]];
            }
            let mut out = Vec::new();
            for p in permutations(n - 1) {
                for i in 0..=p.len() {
                    let mut q = p.clone();
                    q.insert(i, n - 1);
                    out.push(q);
                }
            }
            out
        }
        let mut results = std::collections::BTreeMap::new();
        for order in permutations(files.len()) {
            let mut tree = Vec::new();
            for &i in &order {
                apply(&mut tree, &files[i]);
            }
            let names: Vec<String> = tree.iter().map(|f| f.to_string()).collect();
            results.entry(names).or_insert(order);
        }
        assert_eq!(results.len(), 1, "orders give different folders: {results:#?}");
    }

    #[test]
    fn any_arrival_order_gives_the_same_folder() {
        const T4: &str = "20111220130000000";
        const T5: &str = "20111220140000000";
        // Writes around a delete, two deletes, and a delete older than everything.
        converges(&[f(T1, '1'), f(T2, '0'), f(T3, '1')]);
        converges(&[f(T1, '1'), f(T2, '0'), f(T3, '1'), f(T4, '0'), f(T5, '1')]);
        converges(&[f(T1, '0'), f(T2, '1'), f(T3, '1'), f(T4, '1')]);
        converges(&[f(T1, '1'), f(T2, '1'), f(T3, '0'), f(T4, '1')]);
    }

    #[test]
    fn other_keys_are_ignored() {
        let other: FileName = format!("9999013_20111220_OMP-01_000000011000186_{T1}_01_1").parse().unwrap();
        assert_eq!(plan(&[other], &f(T2, '1')), Transition::Apply(vec![Step::Write { name: f(T2, '1') }]));
    }
}
