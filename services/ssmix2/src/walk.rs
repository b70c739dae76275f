//! Validating a whole storage root: a walker thread streams file paths over a bounded channel to one
//! worker per core, and the caller's sink receives violations on the calling thread.
//!
//! Memory stays constant whatever the size of the tree: the walker holds one open directory per level
//! (six levels in a well-formed tree) and the parsed names of the folder it is in, for the
//! condition-flag history check, which needs nothing beyond one folder because every file of a data
//! key lives in the same data-type folder. Nothing collects the list of files.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crossbeam_channel::{Sender, bounded};
use thiserror::Error;

use crate::FileName;
use crate::validate::{Scratch, Validator, Violation, flag_history};

/// How much was validated.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TreeStats {
    pub files: u64,
    pub bytes: u64,
    pub violations: u64,
}

/// An I/O failure that stopped the walk (violations found so far have already reached the sink).
#[derive(Debug, Error)]
pub enum WalkError {
    #[error("cannot read directory {path}: {source}")]
    ReadDir { path: PathBuf, source: std::io::Error },
    #[error("cannot read file {path}: {source}")]
    ReadFile { path: PathBuf, source: std::io::Error },
}

/// Paths in flight between the walker and the workers; enough to keep both cores busy.
const JOB_QUEUE: usize = 512;
/// Violations in flight between the workers and the sink.
const VIOLATION_QUEUE: usize = 1024;

enum Event {
    Violation(Violation),
    Failed(WalkError),
}

/// Validates every file below `root`, checking paths against names, content, and the
/// condition-flag history of each folder. Violations are passed to `sink` as they are found, in no
/// particular order. Uses one worker per available core.
pub fn validate_tree(
    root: &Path,
    validator: &Validator,
    sink: impl FnMut(Violation),
) -> Result<TreeStats, WalkError> {
    run(root, Some(validator), sink)
}

/// Walks and reads every file below `root` exactly as [`validate_tree`] does, on the same threads,
/// without validating: the baseline that validation throughput is measured against.
pub fn read_tree(root: &Path) -> Result<TreeStats, WalkError> {
    run(root, None, |_| {})
}

fn run(
    root: &Path,
    validator: Option<&Validator>,
    mut sink: impl FnMut(Violation),
) -> Result<TreeStats, WalkError> {
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    let files = AtomicU64::new(0);
    let bytes = AtomicU64::new(0);
    let stop = AtomicBool::new(false);
    let (job_tx, job_rx) = bounded::<PathBuf>(JOB_QUEUE);
    let (event_tx, event_rx) = bounded::<Event>(VIOLATION_QUEUE);
    let mut stats = TreeStats::default();
    let mut failure = None;

    std::thread::scope(|s| {
        {
            let event_tx = event_tx.clone();
            let stop = &stop;
            s.spawn(move || {
                if let Err(e) = walk(root, validator, &job_tx, &event_tx, stop) {
                    let _ = event_tx.send(Event::Failed(e));
                }
            });
        }
        for _ in 0..workers {
            let (job_rx, event_tx) = (job_rx.clone(), event_tx.clone());
            let (files, bytes, stop) = (&files, &bytes, &stop);
            s.spawn(move || {
                let mut scratch = Scratch::default();
                let mut buf = Vec::new();
                let (mut n, mut total) = (0u64, 0u64);
                for path in job_rx {
                    if stop.load(Ordering::Relaxed) {
                        continue; // drain so the walker is never blocked
                    }
                    buf.clear();
                    if let Err(source) = File::open(&path).and_then(|mut f| f.read_to_end(&mut buf)) {
                        let _ = event_tx.send(Event::Failed(WalkError::ReadFile { path, source }));
                        continue;
                    }
                    n += 1;
                    total += buf.len() as u64;
                    if let Some(validator) = validator {
                        validator.check(Some(root), &path, &buf, &mut scratch, &mut |v| {
                            let _ = event_tx.send(Event::Violation(v));
                        });
                    }
                }
                files.fetch_add(n, Ordering::Relaxed);
                bytes.fetch_add(total, Ordering::Relaxed);
            });
        }
        drop((job_rx, event_tx));
        for event in event_rx {
            match event {
                Event::Violation(v) => {
                    stats.violations += 1;
                    sink(v);
                }
                Event::Failed(e) => {
                    stop.store(true, Ordering::Relaxed);
                    failure.get_or_insert(e);
                }
            }
        }
    });
    if let Some(e) = failure {
        return Err(e);
    }
    stats.files = files.into_inner();
    stats.bytes = bytes.into_inner();
    Ok(stats)
}

/// One directory being listed: its open iterator and the names of the files seen so far.
struct Level {
    dir: PathBuf,
    entries: std::fs::ReadDir,
    /// Names are parsed only when the folder holds more than one file, the only case where the
    /// flag-history check has anything to compare.
    names: Vec<std::ffi::OsString>,
}

fn open(dir: PathBuf) -> Result<Level, WalkError> {
    match std::fs::read_dir(&dir) {
        Ok(entries) => Ok(Level { dir, entries, names: Vec::new() }),
        Err(source) => Err(WalkError::ReadDir { path: dir, source }),
    }
}

/// Depth-first over `root`, sending every regular file to the workers and running the flag-history
/// check when a folder is finished. Symbolic links to directories are not followed.
fn walk(
    root: &Path,
    validator: Option<&Validator>,
    jobs: &Sender<PathBuf>,
    events: &Sender<Event>,
    stop: &AtomicBool,
) -> Result<(), WalkError> {
    let mut stack = vec![open(root.to_owned())?];
    while let Some(level) = stack.last_mut() {
        if stop.load(Ordering::Relaxed) {
            return Ok(());
        }
        match level.entries.next() {
            Some(entry) => {
                let entry = entry.map_err(|source| WalkError::ReadDir { path: level.dir.clone(), source })?;
                let path = entry.path();
                let ty =
                    entry.file_type().map_err(|source| WalkError::ReadDir { path: path.clone(), source })?;
                let is_file = ty.is_file() || (ty.is_symlink() && path.metadata().is_ok_and(|m| m.is_file()));
                if ty.is_dir() {
                    stack.push(open(path)?);
                } else if is_file {
                    if validator.is_some() {
                        level.names.push(entry.file_name());
                    }
                    if jobs.send(path).is_err() {
                        return Ok(());
                    }
                }
            }
            None => {
                let done = stack.pop().expect("non-empty");
                if done.names.len() > 1 {
                    let names: Vec<FileName> =
                        done.names.iter().filter_map(|n| FileName::parse(n.to_str()?).ok()).collect();
                    for v in flag_history(&done.dir, &names) {
                        let _ = events.send(Event::Violation(v));
                    }
                }
            }
        }
    }
    Ok(())
}

/// The storage root a lone file would belong to if it sits where its name says: its sixth ancestor
/// (`ROOT/PID3/PID3/PID/date/type/FILE`). `None` when the path is not that deep.
pub fn infer_root(file: &Path) -> Option<&Path> {
    file.ancestors().nth(6)
}

/// Validates one file. The path is checked against the name below `root`, or below the root
/// [`infer_root`] infers when `root` is `None`; a file too shallow to have a root gets no path check.
/// (The flag-history check needs a folder and is not made here.)
pub fn validate_file(
    validator: &Validator,
    root: Option<&Path>,
    file: &Path,
    mut sink: impl FnMut(Violation),
) -> Result<TreeStats, WalkError> {
    let bytes =
        std::fs::read(file).map_err(|source| WalkError::ReadFile { path: file.to_owned(), source })?;
    let root = root.or_else(|| infer_root(file));
    let mut stats = TreeStats { files: 1, bytes: bytes.len() as u64, violations: 0 };
    validator.check(root, file, &bytes, &mut Scratch::default(), &mut |v| {
        stats.violations += 1;
        sink(v);
    });
    Ok(stats)
}
