//! Deciding when an exported file is complete. Pure: the caller feeds watcher events, rescan results
//! and `stat` answers, and asks which files are ready.
//!
//! No file is ever taken on first sight: every file needs two stats at least `settle` apart with
//! the same size, mtime and inode (an mtime that is already old proves nothing: a writer that
//! paused, or an agent that just started, sees one).
//!
//! - A file the watcher saw being created or written waits for its close-after-write event; the
//!   close then starts the `settle` wait (a close is not the end: an exporter may open the file
//!   again and append). If the close is lost (queue overflow), stability decides after
//!   `close_wait_limit`.
//! - A file found by a rescan (also every file at start-up) or renamed into place is complete once
//!   it has not changed for `settle`; the caller must then also check that no process holds it
//!   open for writing ([`Ready::check_open`], see `crate::lease`).
//! - An empty file is a writer that has not written yet: it waits `close_wait_limit` unchanged.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

/// What `stat` says of a file, compared between two looks: size, modification time and inode (a
/// file replaced under the same name is another file).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    pub size: u64,
    pub mtime: SystemTime,
    pub ino: u64,
}

impl Stamp {
    /// The stamp of `meta`, when the platform reports an mtime.
    pub fn of(meta: &std::fs::Metadata) -> Option<Self> {
        use std::os::unix::fs::MetadataExt;
        Some(Self { size: meta.len(), mtime: meta.modified().ok()?, ino: meta.ino() })
    }
}

#[derive(Debug)]
struct Candidate {
    stamp: Option<Stamp>,
    /// When `stamp` was first seen unchanged.
    since: Instant,
    /// Written under the watcher's eyes: wait for the close event.
    awaiting_close: bool,
    /// Its writer's close was seen (and nothing written since): no open-for-writing check needed.
    closed: bool,
    /// Not before this time (a deferred retry).
    not_before: Option<Instant>,
}

/// A complete file, as [`Tracker::ready`] returns it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Ready {
    pub path: PathBuf,
    /// No close-after-write was seen for it (found by a rescan, renamed into place, or its close
    /// was lost): before taking it, check that no process holds it open for writing.
    pub check_open: bool,
}

/// The files being watched until they are complete.
#[derive(Debug)]
pub struct Tracker {
    files: HashMap<PathBuf, Candidate>,
    settle: Duration,
    close_wait_limit: Duration,
}

impl Tracker {
    pub fn new(settle: Duration) -> Self {
        let close_wait_limit = (settle * 60).max(Duration::from_secs(30));
        Self { files: HashMap::new(), settle, close_wait_limit }
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    fn entry(&mut self, path: &Path, now: Instant) -> &mut Candidate {
        self.files.entry(path.to_owned()).or_insert(Candidate {
            stamp: None,
            since: now,
            awaiting_close: false,
            closed: false,
            not_before: None,
        })
    }

    /// The watcher saw the file created or written: wait for its close.
    pub fn written(&mut self, path: &Path, now: Instant) {
        let c = self.entry(path, now);
        c.awaiting_close = true;
        c.closed = false;
        c.stamp = None;
        c.since = now;
    }

    /// The watcher saw the file closed after writing: from now on it must stay unchanged for
    /// `settle` (its writer may open it again and append).
    pub fn closed(&mut self, path: &Path, now: Instant) {
        let c = self.entry(path, now);
        c.closed = true;
        c.awaiting_close = false;
        c.stamp = None;
        c.since = now;
    }

    /// A rescan (or a rename into the folder) found the file with `stamp` (its first stat); it is
    /// tracked by stability unless already tracked.
    pub fn found(&mut self, path: &Path, stamp: Option<Stamp>, now: Instant) {
        if !self.files.contains_key(path) {
            let c = self.entry(path, now);
            c.stamp = stamp;
        }
    }

    pub fn removed(&mut self, path: &Path) {
        self.files.remove(path);
    }

    /// Events may have been lost. Files written under the watcher's eyes keep waiting for their
    /// close: a lost close is covered by `close_wait_limit` (see [`Tracker::ready`]), while dropping
    /// the wait here would move a file whose writer merely paused longer than `settle`.
    pub fn overflowed(&mut self) {}

    /// Try `path` again no earlier than `at` (it could not be moved, e.g. the disk was full, or it
    /// was still open for writing); it then needs `settle` of stability again.
    pub fn defer(&mut self, path: &Path, at: Instant) {
        let c = self.entry(path, at);
        c.not_before = Some(at);
        c.closed = false;
        c.awaiting_close = false;
        c.stamp = None;
        c.since = at;
    }

    /// Files that are complete now; they stop being tracked. `stat` gives a file's current stamp, or
    /// `None` when it is gone.
    pub fn ready(&mut self, now: Instant, stat: impl Fn(&Path) -> Option<Stamp>) -> Vec<Ready> {
        let mut out = Vec::new();
        let mut gone = Vec::new();
        for (path, c) in self.files.iter_mut() {
            if c.not_before.is_some_and(|t| now < t) {
                continue;
            }
            if c.awaiting_close {
                if now.duration_since(c.since) < self.close_wait_limit {
                    continue;
                }
                // No close within the limit (lost, e.g. to a queue overflow): from now on stability
                // decides, and the caller checks for writers.
                c.awaiting_close = false;
                c.stamp = None;
            }
            if c.stamp.is_some() && now.duration_since(c.since) < self.settle {
                // A stable stamp cannot be confirmed before `settle` has passed; skip the stat.
                continue;
            }
            let Some(stamp) = stat(path) else {
                gone.push(path.clone());
                continue;
            };
            if c.stamp != Some(stamp) {
                // First look, or it changed: the wait starts (again) now.
                c.stamp = Some(stamp);
                c.since = now;
                continue;
            }
            if stamp.size == 0 && now.duration_since(c.since) < self.close_wait_limit {
                // Empty: its writer has not written yet (`touch` first, content later).
                continue;
            }
            out.push(Ready { path: path.clone(), check_open: !c.closed });
        }
        for p in gone.iter().chain(out.iter().map(|r| &r.path)) {
            self.files.remove(p);
        }
        out.sort();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    const SETTLE: Duration = Duration::from_millis(500);

    fn st(size: u64, mtime: SystemTime) -> Stamp {
        Stamp { size, mtime, ino: 7 }
    }

    fn ready(path: &Path, check_open: bool) -> Ready {
        Ready { path: path.to_owned(), check_open }
    }

    #[test]
    fn growing_file_waits_until_stable() {
        let t0 = Instant::now();
        let w0 = SystemTime::now();
        let mut t = Tracker::new(SETTLE);
        let p = Path::new("/e/f");
        let size = Cell::new(10u64);
        let mtime = Cell::new(w0);
        let stat = |_: &Path| Some(st(size.get(), mtime.get()));
        t.found(p, Some(st(10, w0)), t0);
        assert!(t.ready(t0 + SETTLE / 2, stat).is_empty());
        size.set(20);
        mtime.set(w0 + SETTLE / 2);
        assert!(t.ready(t0 + SETTLE, stat).is_empty(), "it grew: the clock restarts");
        assert!(t.ready(t0 + SETTLE * 2 - Duration::from_millis(1), stat).is_empty());
        assert_eq!(t.ready(t0 + SETTLE * 2, stat), [ready(p, true)]);
        assert!(t.is_empty());
    }

    /// Review finding 1: a file found by a rescan (at start-up every file is) with an mtime already
    /// older than `settle` was taken at the first stat, though its writer may only have paused.
    #[test]
    fn an_old_file_found_by_a_rescan_needs_two_stats_settle_apart_and_a_writer_check() {
        let w0 = SystemTime::now();
        let old = w0 - SETTLE * 20;
        let mut t = Tracker::new(SETTLE);
        let now = Instant::now();
        let p = Path::new("/e/old");
        t.found(p, Some(st(5, old)), now);
        assert!(t.ready(now, |_| Some(st(5, old))).is_empty(), "taken on first sight");
        assert!(t.ready(now + SETTLE - Duration::from_millis(1), |_| Some(st(5, old))).is_empty());
        // Replaced under the same name (another inode): the wait starts again.
        let other = Stamp { ino: 8, ..st(5, old) };
        assert!(t.ready(now + SETTLE, |_| Some(other)).is_empty(), "another file under the name");
        assert_eq!(t.ready(now + SETTLE * 2, |_| Some(other)), [ready(p, true)]);
    }

    /// Review finding 2: a file written in two open/close steps was taken at the first close.
    #[test]
    fn a_close_starts_the_settle_wait_and_an_append_after_it_waits_for_the_next_close() {
        let w0 = SystemTime::now();
        let t0 = Instant::now();
        let mut t = Tracker::new(SETTLE);
        let p = Path::new("/e/partial");
        t.written(p, t0);
        t.found(p, Some(st(3, w0)), t0);
        let size = Cell::new(3u64);
        let stat = |_: &Path| Some(st(size.get(), w0));
        assert!(t.ready(t0 + SETTLE * 10, stat).is_empty(), "open for writing: not complete");
        let closed_at = t0 + SETTLE * 10;
        t.closed(p, closed_at);
        assert!(t.ready(closed_at, stat).is_empty(), "taken at its close");
        // Opened again and appended before `settle` passed.
        t.written(p, closed_at + SETTLE / 2);
        size.set(6);
        assert!(t.ready(closed_at + SETTLE * 2, stat).is_empty(), "taken while written again");
        let closed_again = closed_at + SETTLE * 3;
        t.closed(p, closed_again);
        assert!(t.ready(closed_again, stat).is_empty());
        assert!(t.ready(closed_again + SETTLE / 2, stat).is_empty());
        assert_eq!(t.ready(closed_again + SETTLE, stat), [ready(p, false)], "closed: no writer check");
    }

    /// Review finding 5: an empty file (made first, filled later) was quarantined at its close.
    #[test]
    fn an_empty_file_waits_for_content_up_to_the_close_wait_limit() {
        let w0 = SystemTime::now();
        let t0 = Instant::now();
        let mut t = Tracker::new(SETTLE);
        let limit = Duration::from_secs(30);
        let (p, q) = (Path::new("/e/touched"), Path::new("/e/never"));
        t.written(p, t0);
        t.closed(p, t0);
        t.found(q, Some(st(0, w0)), t0);
        let size = Cell::new(0u64);
        let stat = |x: &Path| Some(st(if x == p { size.get() } else { 0 }, w0));
        assert!(t.ready(t0, stat).is_empty());
        assert!(t.ready(t0 + SETTLE * 4, stat).is_empty(), "an empty file taken");
        t.written(p, t0 + SETTLE * 5);
        size.set(9);
        t.closed(p, t0 + SETTLE * 6);
        assert!(t.ready(t0 + SETTLE * 6, stat).is_empty());
        assert_eq!(t.ready(t0 + SETTLE * 7, stat), [ready(p, false)]);
        assert!(t.ready(t0 + limit - Duration::from_millis(1), stat).is_empty());
        assert_eq!(t.ready(t0 + limit, stat), [ready(q, true)], "empty for the whole limit: taken");
    }

    #[test]
    fn overflow_falls_back_to_stability_after_the_close_wait_limit_and_defer_waits() {
        let w0 = SystemTime::now();
        let t0 = Instant::now();
        let mut t = Tracker::new(SETTLE);
        let limit = Duration::from_secs(30); // max(60 × 500 ms, 30 s)
        let p = Path::new("/e/x");
        t.written(p, t0);
        t.overflowed();
        let stat = |_: &Path| Some(st(3, w0));
        assert!(t.ready(t0, stat).is_empty());
        // Its writer may still hold it open and pause: settle alone is not enough.
        assert!(t.ready(t0 + SETTLE * 2, stat).is_empty(), "moved while maybe open");
        let just_before = t0 + limit - Duration::from_millis(1);
        assert!(t.ready(just_before, stat).is_empty());
        // Then stability decides: two stats `settle` apart, and the caller checks for writers.
        assert!(t.ready(t0 + limit, stat).is_empty());
        assert_eq!(t.ready(t0 + limit + SETTLE, stat), [ready(p, true)]);
        let base = t0 + limit + SETTLE;
        t.defer(p, base + SETTLE * 4);
        assert!(t.ready(base + SETTLE * 3, stat).is_empty());
        assert!(t.ready(base + SETTLE * 4, stat).is_empty(), "a deferred file needs settle again");
        assert_eq!(t.ready(base + SETTLE * 5, stat), [ready(p, true)]);
        t.defer(p, base + SETTLE * 6);
        assert!(t.ready(base + SETTLE * 6, |_| None).is_empty());
        assert!(t.is_empty(), "a file gone is forgotten");
    }

    #[test]
    fn a_file_still_changing_after_the_close_wait_limit_waits_for_settle() {
        let w0 = SystemTime::now();
        let t0 = Instant::now();
        let mut t = Tracker::new(SETTLE);
        let limit = Duration::from_secs(30);
        let p = Path::new("/e/y");
        t.written(p, t0);
        t.overflowed();
        let fresh = w0 + limit;
        assert!(t.ready(t0 + limit, |_| Some(st(3, fresh))).is_empty(), "first look");
        let fresher = fresh + SETTLE / 2;
        assert!(t.ready(t0 + limit + SETTLE, |_| Some(st(3, fresher))).is_empty(), "changed");
        assert_eq!(t.ready(t0 + limit + SETTLE * 2, |_| Some(st(3, fresher))), [ready(p, true)]);
    }
}
