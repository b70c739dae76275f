//! The NSIPS intake (config key `nsips`): a pharmacy's dispensing system writes NSIPS files into a
//! flat folder (watched, and listed every tick); each complete file is converted with `kizuna-nsips` into SS-MIX2 prescription
//! messages (OMP-01), checked like any export, and moved through the outbox.
//!
//! The source files stay where they are (the dispensing system owns its folder). What was
//! converted is remembered in `state_dir/nsips/converted.json` (name → size, mtime, sha256), written
//! after the converted files are in the outbox, as temp file + fsync + rename. A crash before that
//! write converts the file again on restart: the conversion depends only on the bytes and the
//! facility, so the same names and bytes reach the outbox (`AlreadyQueued`) or the store
//! (`duplicate`) — never different output, never nothing.
//!
//! A file whose size or mtime changes after conversion is read again; unchanged content only
//! refreshes the record. Changed content (a re-sent export) is converted again and its files are
//! uploaded: unchanged dispensings give the same names and bytes (answered `duplicate`), new ones new
//! files, and a dispensing rewritten under the same name and header time is refused by the store
//! (SS-MIX2 never rewrites a file) and lands in `quarantine/rejected/` like any rejected file.
//!
//! A file that does not parse or convert, or whose converted messages fail the SS-MIX2 check, is
//! moved to `quarantine/nsips/<name>` with a reason naming file, line and field.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};
use tokio::sync::watch;

use crate::agent::Shared;
use crate::agent_log::Level;
use crate::check::{Violation, check_file};
use crate::durable;
use crate::intake::{Outcome, is_ignored, move_failed, open_unless_written, quarantine, retire_quarantined};
use crate::outbox::{Admission, Offer};
use crate::settle::{Ready, Stamp, Tracker};

/// The quarantine subfolder for NSIPS sources (released back into the NSIPS folder).
pub const QUARANTINE_PREFIX: &str = "nsips/";

/// What was converted, per source file name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Ledger {
    converted: BTreeMap<String, Done>,
}

/// One converted source file, as it was when converted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Done {
    size: u64,
    /// Modification time, nanoseconds since the Unix epoch.
    mtime_ns: u64,
    sha256: String,
    /// SS-MIX2 files it became.
    files: usize,
    converted_at: String,
}

fn mtime_ns(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
}

impl Ledger {
    fn path(state: &Path) -> PathBuf {
        state.join("converted.json")
    }

    fn load(state: &Path) -> std::io::Result<Self> {
        let path = Self::path(state);
        match std::fs::read(&path) {
            Ok(b) => serde_json::from_slice(&b)
                .map_err(|e| std::io::Error::other(format!("{}: {e}", path.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(e),
        }
    }

    fn save(&self, state: &Path) -> std::io::Result<()> {
        let bytes = serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?;
        durable::write_atomic(&Self::path(state), &bytes)
    }

    /// True when `name` was converted and still has this size and mtime (no need to read it).
    fn unchanged(&self, name: &str, stamp: Stamp) -> bool {
        self.converted.get(name).is_some_and(|d| d.size == stamp.size && d.mtime_ns == mtime_ns(stamp.mtime))
    }
}

/// The NSIPS intake's folders, set up by [`Nsips::open`] when the config has `nsips`.
pub(crate) struct Nsips {
    /// The watched folder (canonical).
    pub dir: PathBuf,
    /// `state_dir/nsips`: `converted.json` and `staging/`.
    state: PathBuf,
}

impl Nsips {
    /// Checks the folder, creates the state folder and clears what a crash left in `staging/`.
    pub fn open(cfg: &crate::Config) -> Result<Option<Self>, crate::AgentError> {
        let Some(n) = &cfg.nsips else { return Ok(None) };
        let dir = n.dir.canonicalize().map_err(|e| crate::AgentError::folder("nsips.dir", &n.dir, e))?;
        if !dir.is_dir() {
            return Err(crate::AgentError::Config {
                file: n.dir.clone(),
                message: "nsips.dir is not a directory".into(),
            });
        }
        let state = cfg.nsips_state_dir();
        let staging = state.join("staging");
        durable::create_dir_all_synced(&staging).map_err(|e| crate::AgentError::io(&staging, e))?;
        // Staged files not yet in the outbox: their sources are not in the ledger, so they are
        // converted again.
        for e in std::fs::read_dir(&staging).map_err(|e| crate::AgentError::io(&staging, e))? {
            let p = e.map_err(|e| crate::AgentError::io(&staging, e))?.path();
            std::fs::remove_file(&p).map_err(|e| crate::AgentError::io(&p, e))?;
        }
        durable::remove_temp_files(&state).map_err(|e| crate::AgentError::io(&state, e))?;
        Ledger::load(&state).map_err(|e| crate::AgentError::io(&Ledger::path(&state), e))?;
        Ok(Some(Self { dir, state }))
    }
}

/// The NSIPS intake loop: lists the folder every tick (it is flat and small), waits until files
/// are settled, converts them. Runs until `stop` turns true.
pub(crate) async fn run(shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let Some(nsips) = shared.nsips.as_ref() else { return };
    let (dir, state) = (nsips.dir.clone(), nsips.state.clone());
    let mut ledger = match Ledger::load(&state) {
        Ok(l) => l,
        Err(e) => {
            shared.record(
                Level::Error,
                "nsips_failed",
                &format!("cannot read the NSIPS record {}: {e}", Ledger::path(&state).display()),
                serde_json::Value::Null,
            );
            return;
        }
    };
    let settle = shared.cfg.settle();
    let mut tracker = Tracker::new(settle);
    let mut tick =
        tokio::time::interval((settle / 4).clamp(Duration::from_millis(50), Duration::from_secs(1)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut reported_list_error = false;
    let (mut events, _watcher) = match watch_folder(&shared, &dir) {
        Some((rx, w)) => (Some(rx), Some(w)),
        None => (None, None),
    };
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            _ = tick.tick() => {}
            ev = async { match events.as_mut() { Some(rx) => rx.recv().await, None => std::future::pending().await } } => {
                match ev {
                    Some(ev) => on_event(&mut tracker, &dir, ev),
                    None => events = None,
                }
                continue;
            }
        }
        let listed = {
            let dir = dir.clone();
            tokio::task::spawn_blocking(move || list(&dir)).await
        };
        let found = match listed {
            Ok(Ok(found)) => {
                reported_list_error = false;
                found
            }
            Ok(Err(e)) => {
                if !std::mem::replace(&mut reported_list_error, true) {
                    shared.record(
                        Level::Warn,
                        "scan_error",
                        &format!("cannot read the NSIPS folder {}: {e}", dir.display()),
                        serde_json::Value::Null,
                    );
                }
                continue;
            }
            Err(_) => continue,
        };
        let now = Instant::now();
        // Forget files the dispensing system removed: the record stays as small as the folder. A
        // file truncated to be rewritten in place is still there (empty) and keeps its record, so
        // its new content is converted as a re-send of the same file.
        let before = ledger.converted.len();
        let present: std::collections::HashSet<&str> = found.iter().map(|(n, _)| n.as_str()).collect();
        ledger.converted.retain(|name, _| present.contains(name.as_str()));
        if ledger.converted.len() != before
            && let Err(e) = ledger.save(&state)
        {
            tracing::debug!("cannot prune the NSIPS record: {e}");
        }
        for (name, stamp) in &found {
            // An empty file is a writer that has not written yet (or a truncation): never an export.
            if stamp.size > 0 && !ledger.unchanged(name, *stamp) {
                tracker.found(&dir.join(name), Some(*stamp), now);
            }
        }
        let ready = tracker.ready(Instant::now(), |p| {
            std::fs::symlink_metadata(p).ok().filter(|m| m.is_file()).and_then(|m| stamp_of(&m))
        });
        for Ready { path, check_open } in ready {
            if *stop.borrow() {
                return;
            }
            let worker = shared.clone();
            let (state, mut l) = (state.clone(), ledger.clone());
            let p = path.clone();
            let Ok((outcome, l)) = tokio::task::spawn_blocking(move || {
                let o = convert_one(&worker, &state, &mut l, &p, check_open);
                (o, l)
            })
            .await
            else {
                continue;
            };
            ledger = l;
            if let Outcome::RetryAfter(d) = outcome {
                tracker.defer(&path, Instant::now() + d);
            }
        }
    }
}

type Events = tokio::sync::mpsc::UnboundedReceiver<notify::Result<notify::Event>>;

/// Watches the NSIPS folder (not recursively) so that a file written in place is taken at its
/// close-after-write, not while a slow writer pauses. Without the watcher (`watch: false`, or it
/// cannot start) the folder is only listed, and a file is taken once stable for `settle_ms`.
fn watch_folder(shared: &Shared, dir: &Path) -> Option<(Events, notify::RecommendedWatcher)> {
    use notify::Watcher;
    if !shared.cfg.watch {
        return None;
    }
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let started = notify::recommended_watcher(move |ev| {
        let _ = tx.send(ev);
    })
    .and_then(|mut w| w.watch(dir, notify::RecursiveMode::NonRecursive).map(|()| w));
    match started {
        Ok(w) => Some((rx, w)),
        Err(e) => {
            shared.record(
                Level::Warn,
                "watch_failed",
                &format!("cannot watch the NSIPS folder {}: {e}; listing it only", dir.display()),
                serde_json::Value::Null,
            );
            None
        }
    }
}

/// Feeds a watcher event to the tracker (the listing on every tick catches everything else).
fn on_event(tracker: &mut Tracker, dir: &Path, ev: notify::Result<notify::Event>) {
    use notify::EventKind;
    use notify::event::{AccessKind, AccessMode, ModifyKind};
    let Ok(ev) = ev else { return };
    if ev.need_rescan() {
        tracker.overflowed();
        return;
    }
    let now = Instant::now();
    let ours =
        |p: &&PathBuf| p.parent() == Some(dir) && p.file_name().is_some_and(|n| !is_ignored(Path::new(n)));
    for p in ev.paths.iter().filter(ours) {
        match ev.kind {
            EventKind::Create(_) | EventKind::Modify(ModifyKind::Data(_)) => tracker.written(p, now),
            EventKind::Access(AccessKind::Close(AccessMode::Write)) => tracker.closed(p, now),
            EventKind::Remove(_) => tracker.removed(p),
            _ => {}
        }
    }
}

fn stamp_of(meta: &std::fs::Metadata) -> Option<Stamp> {
    Stamp::of(meta)
}

/// The folder's regular, not-ignored files by name, with their stamps (empty files included).
fn list(dir: &Path) -> std::io::Result<Vec<(String, Stamp)>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let Ok(name) = entry.file_name().into_string() else { continue };
        if is_ignored(Path::new(&name)) || !entry.file_type()?.is_file() {
            continue;
        }
        if let Some(stamp) = entry.metadata().ok().as_ref().and_then(stamp_of) {
            out.push((name, stamp));
        }
    }
    Ok(out)
}

/// Converts one settled source file and moves its SS-MIX2 files into the outbox, or quarantines it.
/// With `check_open` (no close-after-write was seen) a file another process still has open for
/// writing is left for later.
fn convert_one(shared: &Shared, state: &Path, ledger: &mut Ledger, path: &Path, check_open: bool) -> Outcome {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let shown = format!("{QUARANTINE_PREFIX}{name}");
    let (bytes, stamp) = match open_unless_written(path, &shown, check_open).and_then(|f| {
        let Some(mut f) = f else { return Ok(None) };
        let meta = f.metadata()?;
        let mut b = Vec::with_capacity(meta.len() as usize);
        std::io::Read::read_to_end(&mut f, &mut b)?;
        Ok(Some((b, stamp_of(&meta))))
    }) {
        Ok(Some((b, Some(stamp)))) => (b, stamp),
        // Still written by another process: tried again after `settle` of stability.
        Ok(None) => return Outcome::RetryAfter(shared.cfg.settle()),
        Ok(Some((_, None))) => return Outcome::RetryAfter(shared.cfg.rescan_interval()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Outcome::Done,
        Err(e) => {
            shared.record(
                Level::Error,
                "read_failed",
                &format!("cannot read {shown}: {e}"),
                json!({"file": shown}),
            );
            return Outcome::RetryAfter(shared.cfg.rescan_interval());
        }
    };
    if bytes.is_empty() {
        // Not written yet (or truncated for a rewrite): taken up again once it has content.
        return Outcome::Done;
    }
    let sha = hex::encode(Sha256::digest(&bytes));
    let previous = ledger.converted.get(&name).cloned();
    if let Some(done) = &previous
        && done.sha256 == sha
    {
        // Touched but not changed: remember the new stamp so it is not read again.
        let refreshed = Done { size: stamp.size, mtime_ns: mtime_ns(stamp.mtime), ..done.clone() };
        ledger.converted.insert(name, refreshed);
        let _ = ledger.save(state);
        return Outcome::Done;
    }

    let conversion = match kizuna_nsips::convert_bytes(&bytes, path, &shared.cfg.facility) {
        Ok(c) => c,
        Err(e) => return quarantine(shared, path, &shown, &sha, vec![violation_of(&e)]),
    };
    // A dispensing that does not parse or convert is held back alone: it goes into the quarantine
    // as an NSIPS file of its own (`nsips/<name>.d<first line>`: the header and its lines, bytes
    // as exported; the reason names the line in `<name>`), the rest of the file is converted.
    for h in &conversion.held_back {
        let part = format!("{name}.d{}", h.lines.start());
        let part_shown = format!("{QUARANTINE_PREFIX}{part}");
        if std::fs::read(shared.quarantine.dir().join(&part_shown)).is_ok_and(|b| b == h.export) {
            continue; // already quarantined by an earlier conversion of this file
        }
        let part_sha = hex::encode(Sha256::digest(&h.export));
        let tmp = state.join("staging").join(&part);
        if let Err(e) = durable::write_atomic(&tmp, &h.export) {
            return io_failure(shared, &shown, "staging", &e);
        }
        if let Outcome::RetryAfter(d) =
            quarantine(shared, &tmp, &part_shown, &part_sha, vec![violation_of(&h.error)])
        {
            clear(&[&tmp]);
            return Outcome::RetryAfter(d);
        }
    }
    if !conversion.replaced.is_empty() {
        let lines: Vec<String> = conversion.replaced.iter().map(|r| r.to_string()).collect();
        shared.record(
            Level::Warn,
            "nsips_replaced",
            &format!(
                "{shown}: {} value(s) converted with a stand-in or without a code (see each): {}",
                lines.len(),
                lines.join("; ")
            ),
            json!({ "file": shown, "replaced": lines }),
        );
    }
    let mut scratch = ssmix2::validate::Scratch::default();
    let mut offers = Vec::with_capacity(conversion.files.len());
    let mut bad = Vec::new();
    for (storage_path, hl7) in &conversion.files {
        let rel = storage_path.components().join("/");
        match check_file(&shared.validator, &mut scratch, &shared.export_dir, &shared.cfg.facility, &rel, hl7)
        {
            Ok(checked) => offers.push((checked, hl7)),
            Err(vs) => bad.extend(vs.into_iter().map(|v| Violation {
                message: format!("converted message {}: {}", storage_path.name, v.message),
                ..v
            })),
        }
    }
    if !bad.is_empty() {
        return quarantine(shared, path, &shown, &sha, bad);
    }

    // Stage each converted file durably, then hand them to the outbox together.
    let staging = state.join("staging");
    let mut staged = Vec::with_capacity(offers.len());
    for (storage_path, hl7) in offers {
        let src = staging.join(storage_path.name.to_string());
        if let Err(e) = durable::write_atomic(&src, hl7) {
            clear(&staged.iter().map(|o: &Offer| o.src.clone()).collect::<Vec<_>>());
            return io_failure(shared, &shown, "staging", &e);
        }
        staged.push(Offer {
            src,
            path: storage_path,
            size: hl7.len() as u64,
            sha256: Sha256::digest(hl7).into(),
        });
    }
    let sources: Vec<PathBuf> = staged.iter().map(|o| o.src.clone()).collect();
    let answers = shared.outbox.admit_many(staged);
    // Every offer got an answer: those queued (before or after a refused one) are in the outbox.
    let queued = answers.iter().filter(|a| matches!(a, Ok(Admission::Queued))).count();
    if queued > 0 {
        shared.wake_uploader.notify_one();
    }
    for answer in answers {
        match answer {
            Ok(Admission::Queued | Admission::AlreadyQueued) => {}
            Ok(Admission::Busy) => {
                // Other bytes under one of these names wait for upload: the file stays out of the
                // record, so it is converted (and logged) again once they left.
                tracing::debug!("{shown}: an SS-MIX2 name waits in the outbox with other bytes; retrying");
                clear(&sources);
                return Outcome::RetryAfter(shared.cfg.rescan_interval());
            }
            Err(e) => {
                clear(&sources);
                return io_failure(shared, &shown, "the outbox", &e);
            }
        }
    }
    if queued > 0 {
        shared.note_disk_ok();
    }
    let n = conversion.files.len();
    ledger.converted.insert(
        name.clone(),
        Done {
            size: stamp.size,
            mtime_ns: mtime_ns(stamp.mtime),
            sha256: sha.clone(),
            files: n,
            converted_at: crate::agent_log::local_now().1,
        },
    );
    if let Err(e) = ledger.save(state) {
        // The files are in the outbox; without the record the file is converted again later, to
        // the same names and bytes (answered `AlreadyQueued` or `duplicate`).
        shared.record(
            Level::Warn,
            "nsips_record_failed",
            &format!("{shown} converted but not recorded ({e}); it will be converted again"),
            json!({"file": shown}),
        );
    }
    retire_quarantined(shared, &shown, &[&shown]);
    let (event, what) = match &previous {
        Some(p) => (
            "nsips_reconverted",
            format!("changed after conversion (sha256 {} → {sha}); converted again", p.sha256),
        ),
        None => ("nsips_converted", "converted".to_owned()),
    };
    shared.record(
        Level::Info,
        event,
        &format!(
            "{shown} {what}: {} dispensings, {n} SS-MIX2 prescriptions ({queued} new in the outbox)",
            conversion.dispensings
        ),
        json!({"file": shown, "dispensings": conversion.dispensings, "files": n, "queued": queued}),
    );
    Outcome::Done
}

/// Removes staged files that did not reach the outbox (they are made again next time).
fn clear(paths: &[impl AsRef<Path>]) {
    for p in paths {
        let _ = std::fs::remove_file(p);
    }
}

fn io_failure(shared: &Shared, shown: &str, what: &str, e: &std::io::Error) -> Outcome {
    move_failed(shared, &format!("the SS-MIX2 files of {shown}"), what, shown, e)
}

/// The quarantine reason for an NSIPS error; its message names the file, line and field.
fn violation_of(e: &kizuna_nsips::NsipsError) -> Violation {
    use kizuna_nsips::NsipsError as E;
    let (code, field) = match e {
        E::Field { line, record, field, name, .. } => {
            ("nsips-field", Some(format!("line {line} record {record} field {field} ({name})")))
        }
        E::Line { line, .. } => ("nsips-line", Some(format!("line {line}"))),
        E::Encoding { .. } => ("nsips-encoding", None),
        E::Convert { line, .. } => ("nsips-convert", Some(format!("line {line}"))),
        E::Io { .. } => ("nsips-read", None),
    };
    Violation { code: code.into(), field, message: e.to_string() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ledger_round_trips_and_knows_unchanged_files() {
        let d = tempfile::tempdir().unwrap();
        let t = UNIX_EPOCH + Duration::from_nanos(1_700_000_000_123_456_789);
        let mut l = Ledger::default();
        l.converted.insert(
            "a.csv".into(),
            Done { size: 10, mtime_ns: mtime_ns(t), sha256: "00".into(), files: 2, converted_at: "x".into() },
        );
        l.save(d.path()).unwrap();
        let back = Ledger::load(d.path()).unwrap();
        assert_eq!(back, l);
        let st = |size, mtime| Stamp { size, mtime, ino: 1 };
        assert!(back.unchanged("a.csv", st(10, t)));
        assert!(!back.unchanged("a.csv", st(11, t)), "size changed");
        assert!(!back.unchanged("a.csv", st(10, t + Duration::from_nanos(1))), "mtime changed");
        assert!(!back.unchanged("b.csv", st(10, t)));
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 1, "no temp file left");
    }
}
