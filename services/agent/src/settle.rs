//! Deciding when an exported file is complete. Pure: the caller feeds watcher events, rescan results
//! and `stat` answers, and asks which files are ready.
//!
//! - A file the watcher saw being created or written is complete at its close-after-write event.
//!   If that event is lost (queue overflow), it falls back to stability after `close_wait_limit`.
//! - A file found by a rescan or renamed into place is complete once its size and mtime have not
//!   changed for `settle` (an mtime already older than `settle` counts as stable).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

/// Size and modification time, as `stat` reports them.
pub type Stamp = (u64, SystemTime);

#[derive(Debug)]
struct Candidate {
    stamp: Option<Stamp>,
    /// When `stamp` was first seen unchanged.
    since: Instant,
    /// Written under the watcher's eyes: wait for the close event.
    awaiting_close: bool,
    closed: bool,
    /// Not before this time (a deferred retry).
    not_before: Option<Instant>,
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

    /// The watcher saw the file closed after writing.
    pub fn closed(&mut self, path: &Path, now: Instant) {
        self.entry(path, now).closed = true;
    }

    /// A rescan (or a rename into the folder) found the file with `stamp`; it is tracked by
    /// stability unless already tracked.
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

    /// Try `path` again no earlier than `at` (it could not be moved, e.g. the disk was full).
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
    pub fn ready(
        &mut self,
        now: Instant,
        wall: SystemTime,
        stat: impl Fn(&Path) -> Option<Stamp>,
    ) -> Vec<PathBuf> {
        let mut out = Vec::new();
        let mut gone = Vec::new();
        for (path, c) in self.files.iter_mut() {
            if c.not_before.is_some_and(|t| now < t) {
                continue;
            }
            if c.awaiting_close && !c.closed {
                if now.duration_since(c.since) < self.close_wait_limit {
                    continue;
                }
                // No close within the limit (lost, e.g. to a queue overflow): from now on stability
                // decides, without restarting the wait when the stamp is first seen below.
                c.awaiting_close = false;
            }
            if !c.closed && c.stamp.is_some() && now.duration_since(c.since) < self.settle {
                // A stable stamp cannot be confirmed before `settle` has passed; skip the stat.
                let mtime_old =
                    c.stamp.is_some_and(|(_, m)| wall.duration_since(m).is_ok_and(|age| age >= self.settle));
                if !mtime_old {
                    continue;
                }
            }
            let Some(stamp) = stat(path) else {
                gone.push(path.clone());
                continue;
            };
            if c.closed {
                out.push(path.clone());
                continue;
            }
            let mtime_old = wall.duration_since(stamp.1).is_ok_and(|age| age >= self.settle);
            if c.stamp == Some(stamp) && (mtime_old || now.duration_since(c.since) >= self.settle) {
                out.push(path.clone());
            } else if c.stamp != Some(stamp) {
                c.stamp = Some(stamp);
                c.since = now;
                if mtime_old && !c.awaiting_close {
                    out.push(path.clone());
                }
            }
        }
        for p in gone.iter().chain(&out) {
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

    #[test]
    fn growing_file_waits_until_stable() {
        let t0 = Instant::now();
        let w0 = SystemTime::now();
        let mut t = Tracker::new(SETTLE);
        let p = Path::new("/e/f");
        let size = Cell::new(10u64);
        let mtime = Cell::new(w0);
        let stat = |_: &Path| Some((size.get(), mtime.get()));
        t.found(p, Some((10, w0)), t0);
        assert!(t.ready(t0 + SETTLE / 2, w0 + SETTLE / 2, stat).is_empty());
        size.set(20);
        mtime.set(w0 + SETTLE / 2);
        assert!(t.ready(t0 + SETTLE, w0 + SETTLE, stat).is_empty(), "it grew: the clock restarts");
        assert!(t.ready(t0 + SETTLE * 3 / 2 - Duration::from_millis(1), w0 + SETTLE, stat).is_empty());
        assert_eq!(t.ready(t0 + SETTLE * 2, w0 + SETTLE * 2, stat), [p]);
        assert!(t.is_empty());
    }

    #[test]
    fn old_file_found_by_rescan_is_ready_at_once() {
        let w0 = SystemTime::now();
        let old = w0 - SETTLE * 2;
        let mut t = Tracker::new(SETTLE);
        let now = Instant::now();
        t.found(Path::new("/e/old"), Some((5, old)), now);
        assert_eq!(t.ready(now, w0, |_| Some((5, old))), [Path::new("/e/old")]);
    }

    #[test]
    fn written_file_waits_for_close_even_when_idle() {
        let w0 = SystemTime::now();
        let t0 = Instant::now();
        let mut t = Tracker::new(SETTLE);
        let p = Path::new("/e/partial");
        t.written(p, t0);
        t.found(p, Some((3, w0)), t0);
        let stat = |_: &Path| Some((3, w0));
        assert!(
            t.ready(t0 + SETTLE * 10, w0 + SETTLE * 10, stat).is_empty(),
            "open for writing: not complete"
        );
        t.closed(p, t0 + SETTLE * 10);
        assert_eq!(t.ready(t0 + SETTLE * 10, w0 + SETTLE * 10, stat), [p]);
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
        let stat = |_: &Path| Some((3, w0));
        assert!(t.ready(t0, w0, stat).is_empty());
        // Its writer may still hold it open and pause: settle alone is not enough.
        assert!(t.ready(t0 + SETTLE * 2, w0 + SETTLE * 2, stat).is_empty(), "moved while maybe open");
        let just_before = t0 + limit - Duration::from_millis(1);
        assert!(t.ready(just_before, w0 + limit, stat).is_empty());
        // Then stability decides: unchanged for `settle` (here its mtime is that old already).
        assert_eq!(t.ready(t0 + limit, w0 + limit, stat), [p]);
        t.defer(p, t0 + limit + SETTLE * 4);
        assert!(t.ready(t0 + limit + SETTLE * 3, w0 + limit + SETTLE * 3, stat).is_empty());
        assert_eq!(t.ready(t0 + limit + SETTLE * 4, w0 + limit + SETTLE * 4, stat), [p]);
        assert!(t.ready(t0 + limit + SETTLE * 5, w0 + limit + SETTLE * 5, |_| None).is_empty());
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
        assert!(t.ready(t0 + limit, fresh, |_| Some((3, fresh))).is_empty(), "mtime younger than settle");
        assert!(t.ready(t0 + limit + SETTLE / 2, fresh + SETTLE / 2, |_| Some((3, fresh))).is_empty());
        assert_eq!(t.ready(t0 + limit + SETTLE, fresh + SETTLE, |_| Some((3, fresh))), [p]);
    }
}
