//! Linking a store's SS-MIX2 tree (`tree/<facility>/…`): every patient folder the registry does not
//! know yet is read and enrolled; a matcher is trained and installed first when none is installed
//! and there are enough patients. `kizuna index link` and `kizuna demo` both run this.
//!
//! Incremental and idempotent: a patient already enrolled is skipped without reading their files,
//! so a second pass over an unchanged tree enrolls nothing, and after an upload only the new
//! patients are read. Patients enrolled before any matcher could be trained each got their own
//! common ID; later patients are still matched against them, but two of them are never linked to
//! each other afterwards (an admin links them: `Registry::link`, or the review queue).

use std::collections::HashSet;
use std::path::Path;

use crate::matcher::{Matcher, Prepared, Thresholds, TrainingConfig, train};
use crate::registry::{Outcome, Registry};
use crate::source::{read_storage_root, read_storage_root_except};
use crate::{Demographics, IndexError, RecordKey};

/// What happened to the matcher during a pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MatcherState {
    /// One was installed before (its id).
    Installed(i64),
    /// Trained on every patient of the tree and installed in this pass (its id).
    Trained(i64),
    /// None installed and none could be trained (e.g. too few patients): new patients each got
    /// their own common ID. The training error says why.
    Untrained(String),
    /// None installed, and no new patient to enroll, so no training was tried.
    NotNeeded,
}

/// The result of one [`link_tree`] pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkPass {
    /// Facility folders in the tree.
    pub facilities: usize,
    /// Patients already enrolled before this pass (skipped).
    pub known: usize,
    /// Patients enrolled in this pass.
    pub enrolled: usize,
    /// Of those, linked to an existing common ID by the matcher.
    pub auto_linked: usize,
    /// Of those, given a new common ID.
    pub new_ids: usize,
    /// Review items queued (possible links for an admin to decide).
    pub reviews: usize,
    pub matcher: MatcherState,
}

/// The facility folders below `tree` (the store's `tree/`), in name order; a missing tree has none.
pub fn facilities(tree: &Path) -> Result<Vec<String>, IndexError> {
    let entries = match std::fs::read_dir(tree) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => return Err(IndexError::Io { path: tree.to_owned(), source }),
    };
    let mut out = Vec::new();
    for e in entries {
        let e = e.map_err(|source| IndexError::Io { path: tree.to_owned(), source })?;
        let is_dir = e.file_type().map_err(|source| IndexError::Io { path: e.path(), source })?.is_dir();
        match e.file_name().into_string() {
            Ok(name) if is_dir && !name.starts_with('.') => out.push(name),
            _ => {}
        }
    }
    out.sort();
    Ok(out)
}

/// Enrolls every patient of `tree` that `reg` does not know yet (see the module doc). Reading the
/// files runs on the calling thread: call it from `spawn_blocking`/`block_in_place` in a runtime
/// that must stay responsive.
pub async fn link_tree(reg: &Registry, tree: &Path) -> Result<LinkPass, IndexError> {
    let facilities = facilities(tree)?;
    let known: HashSet<RecordKey> = reg.all_links().await?.into_iter().map(|(k, _)| k).collect();
    let mut new: Vec<(RecordKey, Demographics)> = Vec::new();
    for f in &facilities {
        let skip = |pid: &str| RecordKey::new(f, pid).is_ok_and(|k| known.contains(&k));
        new.extend(read_storage_root_except(&tree.join(f), f, skip)?);
    }
    new.sort_by(|a, b| a.0.cmp(&b.0));
    let matcher = match reg.matcher().await? {
        Some((id, _)) => MatcherState::Installed(id),
        None if new.is_empty() => MatcherState::NotNeeded,
        None => {
            // Trained on every patient of the tree, enrolled or not, as the demo always did.
            let mut all = Vec::new();
            for f in &facilities {
                all.extend(read_storage_root(&tree.join(f), f)?);
            }
            all.sort_by(|a, b| a.0.cmp(&b.0));
            let prepared: Vec<Prepared> = all.iter().map(|(_, d)| Prepared::new(d)).collect();
            match train(&prepared, &TrainingConfig::default()) {
                Ok((model, report)) => {
                    let m = Matcher { model, thresholds: Thresholds::default() };
                    MatcherState::Trained(reg.install_matcher(&m, &report).await?)
                }
                Err(e) => MatcherState::Untrained(e.to_string()),
            }
        }
    };
    let mut pass = LinkPass {
        facilities: facilities.len(),
        known: known.len(),
        enrolled: 0,
        auto_linked: 0,
        new_ids: 0,
        reviews: 0,
        matcher,
    };
    for (key, d) in &new {
        match reg.enroll(key, d).await?.outcome {
            Outcome::AutoLinked { .. } => pass.auto_linked += 1,
            Outcome::NewId { review } => {
                pass.new_ids += 1;
                pass.reviews += review.len();
            }
            // Enrolled meanwhile by someone else: nothing new.
            Outcome::Updated => continue,
        }
        pass.enrolled += 1;
    }
    Ok(pass)
}
