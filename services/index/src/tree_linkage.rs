//! Linking a store's SS-MIX2 tree (`tree/<facility>/…`): every patient folder the registry does not
//! know yet is read and enrolled. `kizuna index link` and `kizuna demo` both run this.
//!
//! The matcher: with none installed, or only the built-in one, and new patients to enroll, a model is
//! trained on every patient of the tree and installed first. While the register is too small for
//! that (fewer than 50 patients, too few shared birth dates), the built-in model
//! ([`crate::matcher::builtin`], trained on a large generated corpus) is installed and scores the
//! new patients, so a person registered at several facilities gets one common ID from the first
//! pass; each later pass with new patients tries training again, and once it succeeds the trained
//! model scores every enrollment from then on. Links keep the id of the model that scored them.
//!
//! Incremental and idempotent: a patient already enrolled is skipped without reading their files,
//! so a second pass over an unchanged tree enrolls nothing, and after an upload only the new
//! patients are read. Patients already enrolled are not re-scored when a trained model replaces the
//! built-in one (an admin links them: `Registry::link`, or the review queue).

use std::collections::{BTreeSet, HashSet};
use std::path::Path;

use crate::matcher::{Matcher, Prepared, Thresholds, TrainingConfig, builtin, train};
use crate::registry::{Outcome, Registry};
use crate::source::read_storage_root_lenient;
use crate::{Demographics, IndexError, RecordKey};

/// What happened to the matcher during a pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MatcherState {
    /// A trained one was installed before (its id).
    Installed(i64),
    /// Trained on every patient of the tree and installed in this pass (its id).
    Trained(i64),
    /// The built-in model (its id) scored this pass's patients: no model could be trained on the
    /// register. `why` is the training error of this pass; `None` when no training was tried (no
    /// new patient). `installed_now` when this pass installed it.
    BuiltIn { id: i64, installed_now: bool, why: Option<String> },
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
    /// Files (or patient folders) that could not be read, each error naming its path: left out of
    /// this pass, tried again by the next.
    pub skipped: Vec<String>,
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
/// that must stay responsive. A file that cannot be read or decoded is skipped, logged and listed
/// in [`LinkPass::skipped`] (a patient with no readable file waits for the next pass); only a tree
/// that cannot be listed or a database error fails the pass.
pub async fn link_tree(reg: &Registry, tree: &Path) -> Result<LinkPass, IndexError> {
    let facilities = facilities(tree)?;
    let known: HashSet<RecordKey> = reg.all_links().await?.into_iter().map(|(k, _)| k).collect();
    let mut new: Vec<(RecordKey, Demographics)> = Vec::new();
    let mut unreadable = Vec::new();
    for f in &facilities {
        let skip = |pid: &str| RecordKey::new(f, pid).is_ok_and(|k| known.contains(&k));
        new.extend(read_storage_root_lenient(&tree.join(f), f, skip, &mut unreadable)?);
    }
    new.sort_by(|a, b| a.0.cmp(&b.0));
    let installed = match reg.matcher().await? {
        Some((id, _)) => {
            let is_builtin = reg.matcher_report(id).await?.is_some_and(|r| r.builtin.is_some());
            Some((id, is_builtin))
        }
        None => None,
    };
    let matcher = match installed {
        Some((id, false)) => MatcherState::Installed(id),
        Some((id, true)) if new.is_empty() => MatcherState::BuiltIn { id, installed_now: false, why: None },
        None if new.is_empty() => MatcherState::NotNeeded,
        builtin_or_none => match train_on_tree(tree, &facilities, &mut unreadable)? {
            Ok((m, report)) => MatcherState::Trained(reg.install_matcher(&m, &report).await?),
            Err(why) => {
                let (id, installed_now) = match builtin_or_none {
                    Some((id, _)) => (id, false),
                    None => {
                        let b = builtin();
                        (reg.install_matcher(&b.matcher, &b.install_report()).await?, true)
                    }
                };
                MatcherState::BuiltIn { id, installed_now, why: Some(why) }
            }
        },
    };
    let mut pass = LinkPass {
        facilities: facilities.len(),
        known: known.len(),
        enrolled: 0,
        auto_linked: 0,
        new_ids: 0,
        reviews: 0,
        matcher,
        // Training reads the new patients' files a second time: each error once.
        skipped: unreadable.iter().map(ToString::to_string).collect::<BTreeSet<_>>().into_iter().collect(),
    };
    for s in &pass.skipped {
        tracing::warn!("skipped in this linkage pass: {s}");
    }
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

/// A matcher trained on every patient of the tree, enrolled or not; the training error as text when
/// the register is too small. Files that cannot be read are left out and go to `unreadable`.
fn train_on_tree(
    tree: &Path,
    facilities: &[String],
    unreadable: &mut Vec<IndexError>,
) -> Result<Result<(Matcher, crate::matcher::TrainingReport), String>, IndexError> {
    let mut all = Vec::new();
    for f in facilities {
        all.extend(read_storage_root_lenient(&tree.join(f), f, |_| false, unreadable)?);
    }
    all.sort_by(|a, b| a.0.cmp(&b.0));
    let prepared: Vec<Prepared> = all.iter().map(|(_, d)| Prepared::new(d)).collect();
    Ok(train(&prepared, &TrainingConfig::default())
        .map(|(model, report)| (Matcher { model, thresholds: Thresholds::default() }, report))
        .map_err(|e| e.to_string()))
}
