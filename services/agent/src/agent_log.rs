//! The agent's own log: one JSON object per line in `state_dir/log/YYYY-MM-DD.jsonl` (local date),
//! mirrored to `tracing`. This is the log whose previous day is summarised for the store.
//!
//! An explicit writer rather than a `tracing` layer: the library is hosted inside netd, which owns
//! the global subscriber, and the agent's log must hold only the agent's lines.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde_json::{Map, Value, json};

/// Lines kept in memory while the log cannot be written (disk full), flushed when it can again.
const BACKLOG_CAP: usize = 10_000;

/// Severity of a log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Info,
    Warn,
    Error,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Info => "INFO",
            Level::Warn => "WARN",
            Level::Error => "ERROR",
        }
    }
}

/// Local wall-clock time as (`YYYY-MM-DD`, RFC 3339 with offset).
pub fn local_now() -> (String, String) {
    let now = jiff::Zoned::now();
    (now.strftime("%Y-%m-%d").to_string(), now.strftime("%Y-%m-%dT%H:%M:%S%.3f%:z").to_string())
}

struct Open {
    date: String,
    file: File,
}

struct Inner {
    open: Option<Open>,
    /// Lines not written yet, each with its local date (`YYYY-MM-DD`): it names their file.
    backlog: Vec<(String, String)>,
    dropped: u64,
}

/// Appends the agent's log lines, one file per local day.
pub struct AgentLog {
    dir: PathBuf,
    inner: Mutex<Inner>,
}

impl AgentLog {
    pub fn new(dir: &Path) -> Self {
        Self { dir: dir.to_owned(), inner: Mutex::new(Inner { open: None, backlog: Vec::new(), dropped: 0 }) }
    }

    /// Records one event. `fields` (a JSON object, or null) are added to the line.
    pub fn record(&self, level: Level, event: &str, message: &str, fields: Value) {
        match level {
            Level::Info => tracing::info!(event, "{message}"),
            Level::Warn => tracing::warn!(event, "{message}"),
            Level::Error => tracing::error!(event, "{message}"),
        }
        let (date, time) = local_now();
        self.append(&date, &time, level, event, message, fields);
    }

    /// Writes one line dated `date` (local) at `time`.
    fn append(&self, date: &str, time: &str, level: Level, event: &str, message: &str, fields: Value) {
        let mut line = Map::new();
        line.insert("time".into(), json!(time));
        line.insert("level".into(), json!(level.as_str()));
        line.insert("event".into(), json!(event));
        line.insert("message".into(), json!(message));
        if let Value::Object(extra) = fields {
            for (k, v) in extra {
                line.entry(k).or_insert(v);
            }
        }
        let mut text = Value::Object(line).to_string();
        text.push('\n');
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.backlog.push((date.to_owned(), text));
        if let Err(e) = self.flush(&mut inner) {
            if inner.backlog.len() > BACKLOG_CAP {
                inner.backlog.remove(0);
                inner.dropped += 1;
            }
            if inner.backlog.len() == 1 {
                tracing::error!(
                    "cannot write the agent log in {}: {e}; keeping lines in memory",
                    self.dir.display()
                );
            }
        }
    }

    /// Whether lines of `date` wait in memory (their day's file is not complete yet).
    pub fn pending(&self, date: &str) -> bool {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).backlog.iter().any(|(d, _)| d == date)
    }

    /// Writes the backlog, each day's lines to that day's file, oldest first.
    fn flush(&self, inner: &mut Inner) -> std::io::Result<()> {
        while let Some((date, _)) = inner.backlog.first() {
            let date = date.clone();
            let n = inner.backlog.iter().take_while(|(d, _)| *d == date).count();
            if inner.open.as_ref().is_none_or(|o| o.date != date) {
                crate::durable::create_dir_all_synced(&self.dir)?;
                let path = self.dir.join(format!("{date}.jsonl"));
                let file = OpenOptions::new().create(true).append(true).open(path)?;
                inner.open = Some(Open { date: date.clone(), file });
            }
            let Some(open) = inner.open.as_mut() else { unreachable!("opened above") };
            let mut text = String::new();
            if inner.dropped > 0 {
                let (_, time) = local_now();
                let note = json!({"time": time, "level": "WARN", "event": "log_lines_dropped",
                    "message": format!("{} log lines were dropped while the disk was full", inner.dropped)});
                text.push_str(&format!("{note}\n"));
            }
            for (_, line) in &inner.backlog[..n] {
                text.push_str(line);
            }
            append_whole(&mut open.file, text.as_bytes())?;
            inner.dropped = 0;
            inner.backlog.drain(..n);
        }
        Ok(())
    }
}

/// Appends `bytes` whole or not at all: a write that fails part-way (ENOSPC) is cut back off, so
/// the lines kept for the next try do not end up in the file twice (best effort: if the
/// truncation fails too, the next try may repeat lines).
fn append_whole(file: &mut File, bytes: &[u8]) -> std::io::Result<()> {
    let len = file.metadata()?.len();
    let written = write_some(file, bytes);
    if written.is_err() {
        let _ = file.set_len(len);
    }
    written
}

/// `write_all`, except that a unit test can make it stop part-way with ENOSPC.
fn write_some(file: &mut File, bytes: &[u8]) -> std::io::Result<()> {
    #[cfg(test)]
    if let Some(n) = tests::FAIL_AFTER.get() {
        file.write_all(&bytes[..n.min(bytes.len())])?;
        return Err(std::io::ErrorKind::StorageFull.into());
    }
    file.write_all(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    thread_local! {
        /// Makes every write of the log on this thread stop after this many bytes, with ENOSPC.
        pub(super) static FAIL_AFTER: Cell<Option<usize>> = const { Cell::new(None) };
    }

    fn events(file: &Path) -> Vec<String> {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        text.lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .map(|v| v["event"].as_str().unwrap().to_owned())
            .collect()
    }

    #[test]
    fn a_write_that_fails_part_way_leaves_nothing_to_be_written_twice() {
        let d = tempfile::tempdir().unwrap();
        let log = AgentLog::new(d.path());
        let day = "2026-11-27";
        let at = "2026-11-27T10:00:00.000+09:00";
        FAIL_AFTER.set(Some(0));
        log.append(day, at, Level::Info, "a", "kept in memory", Value::Null);
        let a_len = log.inner.lock().unwrap().backlog[0].1.len();
        // The disk fills exactly after the first kept line: it is in the file, the second is not.
        FAIL_AFTER.set(Some(a_len));
        log.append(day, at, Level::Info, "b", "kept in memory", Value::Null);
        FAIL_AFTER.set(None);
        log.append(day, at, Level::Info, "c", "written", Value::Null);
        assert_eq!(events(&d.path().join(format!("{day}.jsonl"))), ["a", "b", "c"]);
    }

    #[test]
    fn kept_lines_are_written_to_their_own_day() {
        let d = tempfile::tempdir().unwrap();
        let log = AgentLog::new(d.path());
        FAIL_AFTER.set(Some(0));
        log.append("2026-11-26", "2026-11-26T23:59:59.900+09:00", Level::Info, "late", "", Value::Null);
        assert!(log.pending("2026-11-26"), "its summary must wait");
        FAIL_AFTER.set(None);
        log.append("2026-11-27", "2026-11-27T00:00:00.100+09:00", Level::Info, "early", "", Value::Null);
        assert_eq!(events(&d.path().join("2026-11-26.jsonl")), ["late"]);
        assert_eq!(events(&d.path().join("2026-11-27.jsonl")), ["early"]);
        assert!(!log.pending("2026-11-26"));
    }
}
