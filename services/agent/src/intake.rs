//! Intake: watch the export folder, rescan it periodically, wait until files are complete, check
//! them, and move each into the outbox or the quarantine.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use notify::event::{AccessKind, AccessMode, CreateKind, ModifyKind, RenameMode};
use notify::{EventKind, RecommendedWatcher, RecursiveMode, Watcher};
use serde_json::json;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc::{UnboundedReceiver, unbounded_channel};
use tokio::sync::watch;

use crate::agent::Shared;
use crate::agent_log::Level;
use crate::check::{Violation, check_file};
use crate::error::is_disk_full;
use crate::lease::{self, Writers};
use crate::outbox::{Admission, Offer};
use crate::quarantine::Origin;
use crate::settle::{Ready, Stamp, Tracker};

/// Files handed to one blocking processing step (keeps the loop responsive on huge backlogs).
const CHUNK: usize = 256;

/// A running watcher and its events.
pub(crate) struct Watch {
    _watcher: RecommendedWatcher,
    events: UnboundedReceiver<notify::Result<notify::Event>>,
}

/// Starts the recursive watcher unless disabled. If it cannot start (e.g. the inotify watch limit),
/// the agent says so and relies on rescans.
pub(crate) fn start_watcher(shared: &Shared) -> Result<Option<Watch>, crate::AgentError> {
    if !shared.cfg.watch {
        return Ok(None);
    }
    let (tx, events) = unbounded_channel();
    let started = (|| {
        // Not following symlinks, as the intake walk does not: the agent moves what it finds, so
        // a link to a folder outside the export folder must not be watched either.
        let config = notify::Config::default().with_follow_symlinks(false);
        let mut w = RecommendedWatcher::new(
            move |ev| {
                let _ = tx.send(ev);
            },
            config,
        )?;
        w.watch(&shared.export_dir, RecursiveMode::Recursive)?;
        Ok::<_, notify::Error>(w)
    })();
    match started {
        Ok(w) => Ok(Some(Watch { _watcher: w, events })),
        Err(e) => {
            shared.record(
                Level::Warn,
                "watch_failed",
                &format!("cannot watch {}: {e}; relying on rescans", shared.export_dir.display()),
                serde_json::Value::Null,
            );
            Ok(None)
        }
    }
}

/// Temporary and hidden files that the EHR is still writing or that are not exports.
pub fn is_ignored(rel: &Path) -> bool {
    rel.components().any(|c| c.as_os_str().to_string_lossy().starts_with('.'))
        || rel.file_name().is_some_and(|n| {
            let n = n.to_string_lossy();
            const SUFFIXES: [&str; 7] =
                [".tmp", ".part", ".partial", ".swp", "~", ".filepart", ".crdownload"];
            SUFFIXES.iter().any(|s| n.ends_with(s))
        })
}

/// A file's size, mtime and inode, which the settle check compares.
pub(crate) fn stamp_of(meta: &std::fs::Metadata) -> Option<Stamp> {
    Stamp::of(meta)
}

/// What to do with a file after trying to process it.
pub(crate) enum Outcome {
    Done,
    RetryAfter(Duration),
}

struct Intake {
    shared: Arc<Shared>,
    tracker: Tracker,
    reported_scan_errors: HashSet<String>,
}

/// The intake loop: runs until `stop` turns true.
pub(crate) async fn run(shared: Arc<Shared>, watch: Option<Watch>, mut stop: watch::Receiver<bool>) {
    let settle = shared.cfg.settle();
    let mut me = Intake { tracker: Tracker::new(settle), shared, reported_scan_errors: HashSet::new() };
    let tick_every = (settle / 4).clamp(Duration::from_millis(20), Duration::from_millis(250));
    let mut tick = tokio::time::interval(tick_every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut rescan = tokio::time::interval(me.shared.cfg.rescan_interval());
    rescan.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let (mut events, _watcher) = match watch {
        Some(w) => (Some(w.events), Some(w._watcher)),
        None => (None, None),
    };
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            ev = async { match events.as_mut() { Some(rx) => rx.recv().await, None => std::future::pending().await } } => {
                match ev {
                    Some(ev) => {
                        let mut pending = vec![ev];
                        if let Some(rx) = events.as_mut() {
                            while let Ok(more) = rx.try_recv() {
                                pending.push(more);
                            }
                        }
                        for ev in pending {
                            me.on_event(ev).await;
                        }
                    }
                    None => events = None,
                }
            }
            _ = rescan.tick() => {
                let root = me.shared.export_dir.clone();
                me.scan(root, true).await;
            }
            _ = tick.tick() => me.process_ready(&stop).await,
        }
    }
}

impl Intake {
    /// Walks `dir` and tracks the files found. A rescan (`prune`) also removes the emptied folders
    /// idle past `prune_empty_folders_after_secs`, in the same walk.
    async fn scan(&mut self, dir: PathBuf, prune: bool) {
        let root = self.shared.export_dir.clone();
        let own = self.shared.state_dir.clone();
        let cutoff = match self.shared.cfg.prune_after() {
            Some(grace) if prune => SystemTime::now().checked_sub(grace),
            _ => None,
        };
        let walked = tokio::task::spawn_blocking(move || crate::walk::walk(&root, &dir, cutoff, Some(&own)))
            .await
            .unwrap_or_default();
        let now = Instant::now();
        for (path, stamp) in walked.files {
            self.tracker.found(&path, stamp, now);
        }
        for e in walked.errors {
            if self.reported_scan_errors.insert(e.clone()) {
                self.shared.record(
                    Level::Warn,
                    "scan_error",
                    &format!("cannot read {e}"),
                    serde_json::Value::Null,
                );
            }
        }
        if walked.pruned.removed > 0 {
            tracing::debug!(removed = walked.pruned.removed, "removed empty folders from the export folder");
        }
        for e in walked.pruned.errors {
            if self.reported_scan_errors.insert(e.clone()) {
                self.shared.record(
                    Level::Warn,
                    "prune_error",
                    &format!("pruning the export folder: {e}"),
                    serde_json::Value::Null,
                );
            }
        }
    }

    async fn on_event(&mut self, ev: notify::Result<notify::Event>) {
        let ev = match ev {
            Ok(ev) => ev,
            Err(e) => {
                self.shared.record(
                    Level::Warn,
                    "watch_error",
                    &format!("filesystem watcher: {e}; rescanning"),
                    serde_json::Value::Null,
                );
                let root = self.shared.export_dir.clone();
                return self.scan(root, false).await;
            }
        };
        if ev.need_rescan() {
            self.shared.record(
                Level::Warn,
                "watch_overflow",
                "filesystem watcher lost events (queue overflow); rescanning the export folder",
                serde_json::Value::Null,
            );
            self.tracker.overflowed();
            let root = self.shared.export_dir.clone();
            return self.scan(root, false).await;
        }
        let now = Instant::now();
        let root = self.shared.export_dir.clone();
        let own = self.shared.state_dir.clone();
        let relevant = |p: &Path| {
            p.strip_prefix(&root).is_ok_and(|r| !r.as_os_str().is_empty() && !is_ignored(r))
                && !p.starts_with(&own)
        };
        match ev.kind {
            EventKind::Create(CreateKind::Folder) => {
                for p in ev.paths.iter().filter(|p| relevant(p)) {
                    // Files may land in a new folder before its watch is added: look inside now.
                    self.scan(p.clone(), false).await;
                }
            }
            EventKind::Create(_) | EventKind::Modify(ModifyKind::Data(_)) => {
                for p in ev.paths.iter().filter(|p| relevant(p)) {
                    if !p.is_dir() {
                        self.tracker.written(p, now);
                    }
                }
            }
            EventKind::Access(AccessKind::Close(AccessMode::Write)) => {
                for p in ev.paths.iter().filter(|p| relevant(p)) {
                    self.tracker.closed(p, now);
                }
            }
            EventKind::Modify(ModifyKind::Name(mode)) => {
                let (from, to): (Vec<&PathBuf>, Vec<&PathBuf>) = match mode {
                    RenameMode::From => (ev.paths.iter().collect(), vec![]),
                    RenameMode::To => (vec![], ev.paths.iter().collect()),
                    RenameMode::Both if ev.paths.len() == 2 => (vec![&ev.paths[0]], vec![&ev.paths[1]]),
                    _ => (vec![], ev.paths.iter().collect()),
                };
                for p in from {
                    self.tracker.removed(p);
                }
                for p in to.into_iter().filter(|p| relevant(p)) {
                    if p.is_dir() {
                        self.scan(p.clone(), false).await;
                    } else {
                        let stamp = std::fs::metadata(p).ok().as_ref().and_then(stamp_of);
                        self.tracker.found(p, stamp, now);
                    }
                }
            }
            EventKind::Remove(_) => {
                for p in &ev.paths {
                    self.tracker.removed(p);
                }
            }
            _ => {}
        }
    }

    async fn process_ready(&mut self, stop: &watch::Receiver<bool>) {
        let ready = self.tracker.ready(Instant::now(), |p| {
            std::fs::symlink_metadata(p).ok().filter(|m| m.is_file()).as_ref().and_then(stamp_of)
        });
        for chunk in ready.chunks(CHUNK) {
            if *stop.borrow() {
                return;
            }
            let shared = self.shared.clone();
            let chunk = chunk.to_vec();
            let outcomes =
                tokio::task::spawn_blocking(move || process_chunk(&shared, chunk)).await.unwrap_or_default();
            let now = Instant::now();
            for (p, o) in outcomes {
                // (A file still open for writing, or one that could not be moved.)
                if let Outcome::RetryAfter(d) = o {
                    self.tracker.defer(&p, now + d);
                }
            }
        }
    }
}

/// What to do after `moved` could not be moved into `into` (`file` names the source in the log):
/// a full disk is noted and retried soon, any other error logged and retried at the next rescan.
pub(crate) fn move_failed(
    shared: &Shared,
    moved: &str,
    into: &str,
    file: &str,
    e: &std::io::Error,
) -> Outcome {
    if is_disk_full(e) {
        shared.note_disk_full(&format!("{moved} into {into}"), e);
        return Outcome::RetryAfter(disk_retry(shared));
    }
    shared.record(
        Level::Error,
        "outbox_failed",
        &format!("cannot move {moved} into {into}: {e}"),
        json!({"file": file}),
    );
    Outcome::RetryAfter(shared.cfg.rescan_interval())
}

/// How long a file waits before another try when the state folder is full.
fn disk_retry(shared: &Shared) -> Duration {
    shared.cfg.rescan_interval().min(Duration::from_secs(5))
}

/// Checks a group of complete files, quarantines the invalid ones and moves the valid ones into
/// the outbox together (sharing directory fsyncs). Returns what to do with each file.
fn process_chunk(shared: &Shared, chunk: Vec<Ready>) -> Vec<(PathBuf, Outcome)> {
    let mut scratch = ssmix2::validate::Scratch::default();
    let mut out = Vec::with_capacity(chunk.len());
    let mut offers = Vec::new();
    let mut offered = Vec::new();
    for Ready { path: p, check_open } in chunk {
        match check_one(shared, &mut scratch, &p, check_open) {
            Step::Finished(o) => out.push((p, o)),
            Step::Offer(offer, rel_shown) => {
                // Only to retire a quarantined copy: no work while the quarantine is empty.
                let storage = (shared.quarantine.count() > 0).then(|| offer.path.components().join("/"));
                offers.push(offer);
                offered.push((p, rel_shown, storage));
            }
        }
    }
    let answers = shared.outbox.admit_many(offers);
    let mut queued = 0usize;
    for ((p, rel_shown, storage), answer) in offered.into_iter().zip(answers) {
        let o = match answer {
            Ok(a @ (Admission::Queued | Admission::AlreadyQueued)) => {
                if matches!(a, Admission::Queued) {
                    queued += 1;
                }
                if let Some(storage) = storage {
                    retire_quarantined(shared, &rel_shown, &[&rel_shown, &format!("rejected/{storage}")]);
                }
                Outcome::Done
            }
            Ok(Admission::Busy) => Outcome::RetryAfter(shared.cfg.rescan_interval()),
            Err(e) => move_failed(shared, &rel_shown, "the outbox", &rel_shown, &e),
        };
        out.push((p, o));
    }
    if queued > 0 {
        shared.note_disk_ok();
        shared.wake_uploader.notify_one();
    }
    out
}

/// The result of checking one file: finished (quarantined, gone, or to retry), or a valid file to
/// offer to the outbox.
enum Step {
    Finished(Outcome),
    Offer(Offer, String),
}

/// Removes the quarantined copies a file now taken supersedes (the same path below the export
/// folder, or the store's refusal under the same storage path): the fixed file replaces them, so
/// neither the count nor the heartbeat's list shows them, and no re-request brings them back.
/// Costs no system call unless there is such a copy (the quarantine keeps its names in memory).
pub(crate) fn retire_quarantined(shared: &Shared, shown: &str, keys: &[&str]) {
    for removed in shared.quarantine.retire(keys) {
        shared.record(
            Level::Info,
            "quarantine_superseded",
            &format!("{shown} was taken; its quarantined copy {removed} is superseded and removed"),
            json!({"file": shown, "quarantined": removed}),
        );
    }
}

/// Opens `path` for reading. With `check_open` (no close-after-write was seen), a file another
/// process still has open for writing is not read: `Ok(None)`.
pub(crate) fn open_unless_written(
    path: &Path,
    shown: &str,
    check_open: bool,
) -> std::io::Result<Option<std::fs::File>> {
    let f = std::fs::File::open(path)?;
    if check_open {
        match lease::writers(&f) {
            Writers::None => {}
            Writers::Some => {
                tracing::debug!("{shown} is still open for writing; waiting");
                return Ok(None);
            }
            Writers::Unknown(e) => lease::note_unknown(shown, &e),
        }
    }
    Ok(Some(f))
}

/// Reads and checks one complete file; quarantines it when invalid.
fn check_one(
    shared: &Shared,
    scratch: &mut ssmix2::validate::Scratch,
    path: &Path,
    check_open: bool,
) -> Step {
    // The agent's own files (outbox, quarantine, log) are never exports, wherever they lie.
    if path.starts_with(&shared.state_dir) {
        return Step::Finished(Outcome::Done);
    }
    let rel_path = path.strip_prefix(&shared.export_dir).unwrap_or(path);
    let rel_utf8 = rel_path.to_str().map(|s| s.replace(std::path::MAIN_SEPARATOR, "/"));
    let rel_shown = rel_path.to_string_lossy().into_owned();
    let read = open_unless_written(path, &rel_shown, check_open).and_then(|f| {
        let Some(mut f) = f else { return Ok(None) };
        let mut b = Vec::with_capacity(f.metadata().map_or(0, |m| m.len() as usize));
        std::io::Read::read_to_end(&mut f, &mut b)?;
        Ok(Some(b))
    });
    let bytes = match read {
        Ok(Some(b)) => b,
        // Still written by another process: tried again after `settle` of stability.
        Ok(None) => return Step::Finished(Outcome::RetryAfter(shared.cfg.settle())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Step::Finished(Outcome::Done),
        Err(e) => {
            shared.record(
                Level::Error,
                "read_failed",
                &format!("cannot read {rel_shown}: {e}"),
                json!({"file": rel_shown}),
            );
            return Step::Finished(Outcome::RetryAfter(shared.cfg.rescan_interval()));
        }
    };
    let sha: [u8; 32] = Sha256::digest(&bytes).into();
    let checked = match &rel_utf8 {
        Some(rel) => {
            check_file(&shared.validator, scratch, &shared.export_dir, &shared.cfg.facility, rel, &bytes)
        }
        None => Err(vec![Violation {
            code: ssmix2::validate::Code::BadFileName.as_str().into(),
            field: None,
            message: format!("path {rel_shown:?} is not valid UTF-8"),
        }]),
    };
    let violations = match checked {
        Ok(storage_path) => {
            let offer =
                Offer { src: path.to_owned(), path: storage_path, size: bytes.len() as u64, sha256: sha };
            return Step::Offer(offer, rel_shown);
        }
        Err(v) => v,
    };
    Step::Finished(quarantine(shared, path, &rel_shown, &hex::encode(sha), violations))
}

/// Moves a refused source file into the quarantine with its reason (SS-MIX2 here, NSIPS from `nsips`).
pub(crate) fn quarantine(
    shared: &Shared,
    path: &Path,
    shown: &str,
    sha: &str,
    violations: Vec<Violation>,
) -> Outcome {
    let codes: Vec<&str> = violations.iter().map(|v| v.code.as_str()).collect();
    match shared.quarantine.put(path, shown, Origin::Agent, sha, &violations) {
        Ok(_) => {
            shared.note_disk_ok();
            let detail: Vec<String> =
                violations.iter().map(|v| format!("{}: {}", v.code, v.message)).collect();
            shared.record(
                Level::Warn,
                "quarantined",
                &format!("{shown} quarantined: {}", detail.join("; ")),
                json!({"file": shown, "codes": codes}),
            );
            Outcome::Done
        }
        Err(e) if is_disk_full(&e) => {
            shared.note_disk_full(&format!("{shown} into the quarantine"), &e);
            Outcome::RetryAfter(disk_retry(shared))
        }
        Err(e) => {
            shared.record(
                Level::Error,
                "quarantine_failed",
                &format!("cannot quarantine {shown}: {e}"),
                json!({"file": shown, "codes": codes}),
            );
            Outcome::RetryAfter(shared.cfg.rescan_interval())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temp_and_hidden_files_are_ignored() {
        for p in [".x", "a/.hidden/f", "f.tmp", "f.part", "f~", "d/f.swp"] {
            assert!(is_ignored(Path::new(p)), "{p}");
        }
        assert!(!is_ignored(Path::new("999/901/9999013/-/ADT-00/9999013_-_ADT-00_1_20111220224447339_-_1")));
    }
}
