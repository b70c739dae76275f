//! One batch from a site, end to end: check every file again (never trusting the agent), plan the
//! condition-flag transition per file, stage the content durably, commit to the journal, apply to
//! the tree, index, and answer per file.
//!
//! Durability at acknowledgement: staged content is fsynced before the journal entry is written;
//! the journal entry is fsynced before the tree changes; directory entries are fsynced before the
//! answer. A crash at any point either loses an unacknowledged batch (its staged files are removed
//! at the next start) or leaves committed entries that recovery finishes.

use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use kizuna_wire::{BatchFile, BatchReport, FileResult, FileStatus};
use rayon::prelude::*;
use ssmix2::condition::{Step, Transition, plan};
use ssmix2::hl7::MessageView;
use ssmix2::validate::{Code, Scratch};
use ssmix2::{FileName, NameError, StoragePath};

use crate::apply::{Mode, apply_to_tree, sync_dirs};
use crate::config::SyncMode;
use crate::extract::{Extracted, extract};
use crate::index::{self, Rejection, StoredFile, Tally};
use crate::journal::{Change, Draft};
use crate::tree::hash_file;
use crate::{FacilityId, Store, StoreError};

/// The store's own code for different content under a name that is already stored.
pub const CONTENT_CONFLICT: &str = "content-conflict";
/// The store's own code for a file the store could not parse as HL7 although it passed the checks.
pub const UNPARSEABLE: &str = "not-hl7";
const MAX_REASONS: usize = 5;

/// A file that passed every check, ready to plan.
struct Ready {
    index: usize,
    sent_path: String,
    path: StoragePath,
    sha256: String,
    bytes: Vec<u8>,
    extracted: Extracted,
}

/// Staged writes, and the outcomes (by file index) that need no write.
type Planned = (Vec<Op>, Vec<(usize, FileResult)>);

/// A planned, staged write of one incoming file.
struct Op {
    index: usize,
    sent_path: String,
    draft: Draft,
    stored: StoredFile,
    stage: String,
}

fn rejected(f: &BatchFile, codes: Vec<String>, reason: String) -> FileResult {
    FileResult {
        path: f.path.clone(),
        sha256: f.sha256_hex(),
        status: FileStatus::Rejected,
        codes,
        reason: Some(reason),
    }
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

/// Checks one file: its path, name and content. `Err` is the rejection to report.
fn check_file(store: &Store, facility: &FacilityId, index: usize, f: BatchFile) -> Result<Ready, FileResult> {
    let path = match StoragePath::parse(&f.path) {
        Ok(p) => p,
        Err(e) => {
            let code = match e {
                NameError::PathDepth { .. } | NameError::PathMismatch { .. } => Code::PathMismatch,
                _ => Code::BadFileName,
            };
            return Err(rejected(&f, vec![code.as_str().into()], format!("{}: {e}", code.describe())));
        }
    };
    // The validator sees the file where it will live, below a root named for the facility.
    let root = Path::new(facility.as_str());
    let mut violations = Vec::new();
    // The validator decodes the file into its scratch text; a valid file is read from there.
    let parsed = SCRATCH.with(|s| {
        let mut s = s.borrow_mut();
        store
            .validator
            .check(Some(root), &root.join(path.relative()), &f.content, &mut s, &mut |v| violations.push(v));
        if !violations.is_empty() {
            return None;
        }
        Some(MessageView::parse(s.decoded()).map(|m| extract(&m, &path.name)))
    });
    let Some(parsed) = parsed else {
        let mut codes: Vec<String> = violations.iter().map(|v| v.code.as_str().to_owned()).collect();
        codes.sort();
        codes.dedup();
        let mut reason: Vec<String> = violations
            .iter()
            .take(MAX_REASONS)
            .map(|v| match &v.field {
                Some(field) => format!("{} at {field}: {}", v.code, v.message),
                None => format!("{}: {}", v.code, v.message),
            })
            .collect();
        if violations.len() > MAX_REASONS {
            reason.push(format!("and {} more", violations.len() - MAX_REASONS));
        }
        return Err(rejected(&f, codes, reason.join("; ")));
    };
    let extracted = match parsed {
        Ok(x) => x,
        Err(e) => {
            return Err(rejected(&f, vec![UNPARSEABLE.into()], format!("the message cannot be parsed: {e}")));
        }
    };
    Ok(Ready { index, sha256: f.sha256_hex(), sent_path: f.path, path, bytes: f.content, extracted })
}

/// Receives one batch for `facility` from `site` (already authenticated) and reports per file.
pub async fn ingest_batch(
    store: &Arc<Store>,
    site: &str,
    facility: &FacilityId,
    files: Vec<BatchFile>,
) -> Result<BatchReport, StoreError> {
    let started = Instant::now();
    let n = files.len();
    let mut results: Vec<Option<FileResult>> = vec![None; n];
    let mut tally = Tally::default();

    // 1. Check every file, in parallel, off the async runtime.
    let checked: Vec<Result<Ready, FileResult>> = {
        let (s, fac) = (store.clone(), facility.clone());
        tokio::task::spawn_blocking(move || {
            files.into_par_iter().enumerate().map(|(i, f)| check_file(&s, &fac, i, f)).collect()
        })
        .await
        .map_err(|e| StoreError::Recovery(format!("check task failed: {e}")))?
    };
    let mut ready = Vec::new();
    for (i, c) in checked.into_iter().enumerate() {
        match c {
            Ok(r) => ready.push(r),
            Err(r) => {
                note_rejection(&mut tally, facility, &r);
                results[i] = Some(r);
            }
        }
    }

    let t_checked = started.elapsed();
    // 2. Lock the folders, then plan and stage.
    let dirs: Vec<PathBuf> = ready.iter().map(|r| store.tree.dir_of(facility, &r.path)).collect();
    let _held = store.locks.lock_all(dirs).await;
    // A batch that failed to apply its committed entries while this one waited for the folders
    // left the tree behind its journal: planning on it could make two current versions.
    if let Some(why) = store.degraded() {
        return Err(StoreError::IndexWrite(format!("store degraded: {why}")));
    }
    let (ops, planned_results) = {
        let (s, fac, site) = (store.clone(), facility.clone(), site.to_owned());
        tokio::task::spawn_blocking(move || plan_and_stage(&s, &fac, &site, ready))
            .await
            .map_err(|e| StoreError::Recovery(format!("plan task failed: {e}")))??
    };
    for (i, r) in planned_results {
        match r.status {
            FileStatus::Duplicate => tally.duplicate += 1,
            FileStatus::Rejected => note_rejection(&mut tally, facility, &r),
            FileStatus::Stored => {}
        }
        results[i] = Some(r);
    }

    let t_staged = started.elapsed();
    // 3. Commit: the journal entries are the commit record.
    let drafts: Vec<Draft> = ops.iter().map(|o| o.draft.clone()).collect();
    let entries = match store.journal.append(drafts).await {
        Ok(e) => e,
        Err(e) => {
            // Part of the group may have reached the segment before the failure, and replaying
            // such an entry at the next start needs its staged file: the files stay (recovery
            // removes those no entry names). The journal refuses everything until a restart.
            store.set_degraded(format!("journal write failed; restart the store: {e}"));
            return Err(e);
        }
    };
    store.metrics.journal_seq.set(store.journal.last_seq() as i64);

    let t_committed = started.elapsed();
    // 4. Apply to the tree and make the directory entries durable.
    if !entries.is_empty() {
        let (s, e2) = (store.clone(), entries.clone());
        let applied = tokio::task::spawn_blocking(move || -> Result<(), StoreError> {
            let mut dirs = BTreeSet::new();
            for e in &e2 {
                apply_to_tree(&s.tree, e, Mode::Strict, &mut dirs)?;
            }
            match s.config.commit.sync {
                SyncMode::Fsync => sync_dirs(&dirs),
                // One flush of the filesystem makes every new directory entry durable at once.
                SyncMode::Syncfs => s.tree.syncfs(),
            }
        })
        .await
        .map_err(|e| StoreError::Recovery(format!("apply task failed: {e}")))
        .and_then(|r| r);
        if let Err(e) = applied {
            store.set_degraded(format!("committed journal entries could not be applied to the tree: {e}"));
            return Err(e);
        }
    }

    let t_applied = started.elapsed();
    // 5. Index, counters and rejections in one transaction.
    for o in &ops {
        tally.stored += 1;
        tally.bytes += o.stored.size;
        results[o.index] = Some(FileResult {
            path: o.sent_path.clone(),
            sha256: o.stored.sha256.clone(),
            status: FileStatus::Stored,
            codes: Vec::new(),
            reason: None,
        });
    }
    // The records, counters and rejections, committed with those of the batches waiting beside
    // this one (`crate::records_commit`); the search rows follow behind (`crate::search`).
    let seqs: Vec<u64> = entries.iter().map(|e| e.seq).collect();
    let stored = ops.into_iter().map(|o| o.stored).collect();
    let committed =
        match store.records.write(site, entries, stored, tally.clone(), store.applied_watermark()).await {
            Ok(c) => c,
            Err(e) => {
                // The entries are in the journal and the tree but not the index, and the applied
                // watermark cannot pass them (the backup ships only up to it): until a restart
                // finishes them, the store says so and takes no uploads.
                store.set_degraded(format!(
                    "records could not be written to the index ({}); restart the store: {e}",
                    store.db.location()
                ));
                return Err(e);
            }
        };
    store.mark_applied(seqs);

    // 6. Metrics and the answer, in the order sent.
    let m = &store.metrics;
    for (status, count) in
        [("stored", tally.stored), ("duplicate", tally.duplicate), ("rejected", tally.rejected)]
    {
        if count > 0 {
            m.files
                .get_or_create(&crate::metrics::SiteStatus { site: site.into(), status: status.into() })
                .inc_by(count);
        }
    }
    for (code, count) in &tally.codes {
        m.rejects
            .get_or_create(&crate::metrics::SiteCode { site: site.into(), code: code.clone() })
            .inc_by(*count);
    }
    m.bytes.get_or_create(&crate::metrics::SiteLabel { site: site.into() }).inc_by(tally.bytes);
    m.batch_seconds.observe(started.elapsed().as_secs_f64());
    tracing::info!(site, facility = %facility, files = n, stored = tally.stored, duplicate = tally.duplicate,
        rejected = tally.rejected, ms = started.elapsed().as_millis() as u64,
        check_ms = t_checked.as_millis() as u64, stage_ms = (t_staged - t_checked).as_millis() as u64,
        journal_ms = (t_committed - t_staged).as_millis() as u64, apply_ms = (t_applied - t_committed).as_millis() as u64,
        index_ms = (started.elapsed() - t_applied).as_millis() as u64, index_wait_ms = committed.waited.as_millis() as u64,
        index_commit_ms = committed.commit.as_millis() as u64, index_batches = committed.batches, "batch");
    let results = results.into_iter().map(|r| r.expect("every file has a result")).collect::<Vec<_>>();
    Ok(BatchReport { results })
}

fn note_rejection(tally: &mut Tally, facility: &FacilityId, r: &FileResult) {
    tally.rejected += 1;
    for c in &r.codes {
        *tally.codes.entry(c.clone()).or_default() += 1;
    }
    tally.rejections.push(Rejection {
        facility: facility.to_string(),
        path: r.path.clone(),
        sha256: r.sha256.clone(),
        codes: r.codes.clone(),
        reason: r.reason.clone().unwrap_or_default(),
    });
}

/// Plans each file against its folder (as this batch has changed it so far), stages the writes
/// and makes the staged content durable. Returns the staged operations and the outcomes that need
/// no write (duplicates and conflicts).
fn plan_and_stage(
    store: &Store,
    facility: &FacilityId,
    site: &str,
    ready: Vec<Ready>,
) -> Result<Planned, StoreError> {
    let tree = &store.tree;
    let mut listings: HashMap<PathBuf, Vec<FileName>> = HashMap::new();
    // sha256 and size of files this batch wrote or renamed, by current name.
    let mut pending: HashMap<FileName, (String, u64)> = HashMap::new();
    let mut ops = Vec::new();
    let mut others = Vec::new();
    let result = (|| -> Result<(), StoreError> {
        for r in ready {
            let dir = tree.dir_of(facility, &r.path);
            if !listings.contains_key(&dir) {
                listings.insert(dir.clone(), tree.list(&dir)?);
            }
            let listing = listings.get_mut(&dir).expect("inserted above");
            let content_of =
                |name: &FileName, pending: &HashMap<FileName, (String, u64)>| match pending.get(name) {
                    Some(v) => Ok(v.clone()),
                    None => hash_file(&tree.path_of(facility, &StoragePath::of(name.clone()))),
                };
            match plan(listing, &r.path.name) {
                Transition::AlreadyStored(existing) => {
                    let (sha, _) = content_of(&existing, &pending)?;
                    let result = if sha == r.sha256 {
                        FileResult {
                            path: r.sent_path,
                            sha256: r.sha256,
                            status: FileStatus::Duplicate,
                            codes: Vec::new(),
                            reason: None,
                        }
                    } else {
                        FileResult {
                            path: r.sent_path,
                            sha256: r.sha256,
                            status: FileStatus::Rejected,
                            codes: vec![CONTENT_CONFLICT.into()],
                            reason: Some(format!(
                                "content conflict: {existing} is already stored with different content (sha256 {sha}); \
                                 SS-MIX2 files are never overwritten, send changes as a new version with a later timestamp"
                            )),
                        }
                    };
                    others.push((r.index, result));
                }
                Transition::Apply(steps) => {
                    let mut changes = Vec::new();
                    let mut superseded = false;
                    let mut written = None;
                    let mut stage = String::new();
                    let size = r.bytes.len() as u64;
                    for step in steps {
                        match step {
                            Step::Rename { from, to } => {
                                let (sha, fsize) = content_of(&from, &pending)?;
                                pending.remove(&from);
                                changes.push(Change::Rename {
                                    from: StoragePath::of(from.clone()).to_string(),
                                    to: StoragePath::of(to.clone()).to_string(),
                                    sha256: sha.clone(),
                                    size: fsize,
                                });
                                if let Some(slot) = listing.iter_mut().find(|n| **n == from) {
                                    *slot = to.clone();
                                }
                                pending.insert(to, (sha, fsize));
                                superseded = true;
                            }
                            Step::Write { name } => {
                                stage = tree.stage(&r.bytes)?;
                                changes.push(Change::Write {
                                    path: StoragePath::of(name.clone()).to_string(),
                                    sha256: r.sha256.clone(),
                                    size,
                                    stage: stage.clone(),
                                });
                                listing.push(name.clone());
                                pending.insert(name.clone(), (r.sha256.clone(), size));
                                written = Some(name);
                            }
                        }
                    }
                    let written = written.ok_or_else(|| {
                        StoreError::Recovery(format!("plan for {} has no write step", r.path))
                    })?;
                    let processing_type = index::processing_type(&written, superseded);
                    ops.push(Op {
                        index: r.index,
                        sent_path: r.sent_path,
                        draft: Draft { facility: facility.to_string(), site: site.to_owned(), changes },
                        stored: StoredFile {
                            facility: facility.clone(),
                            path: StoragePath::of(written),
                            sha256: r.sha256,
                            size,
                            site: site.to_owned(),
                            processing_type,
                            extracted: r.extracted,
                        },
                        stage,
                    });
                }
            }
        }
        let staged: Vec<String> = ops.iter().map(|o| o.stage.clone()).collect();
        if !staged.is_empty() {
            match store.config.commit.sync {
                SyncMode::Fsync => tree.sync_staged(&staged)?,
                SyncMode::Syncfs => tree.syncfs()?,
            }
        }
        Ok(())
    })();
    if let Err(e) = result {
        for o in &ops {
            let _ = std::fs::remove_file(tree.staging().join(&o.stage));
        }
        return Err(e);
    }
    Ok((ops, others))
}
