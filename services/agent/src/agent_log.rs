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
    backlog: Vec<String>,
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
        inner.backlog.push(text);
        if let Err(e) = self.flush(&mut inner, &date) {
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

    fn flush(&self, inner: &mut Inner, date: &str) -> std::io::Result<()> {
        if inner.open.as_ref().is_none_or(|o| o.date != date) {
            crate::durable::create_dir_all_synced(&self.dir)?;
            let path = self.dir.join(format!("{date}.jsonl"));
            let file = OpenOptions::new().create(true).append(true).open(path)?;
            inner.open = Some(Open { date: date.to_owned(), file });
        }
        let Some(open) = inner.open.as_mut() else { unreachable!("opened above") };
        if inner.dropped > 0 {
            let (_, time) = local_now();
            let note = json!({"time": time, "level": "WARN", "event": "log_lines_dropped",
                "message": format!("{} log lines were dropped while the disk was full", inner.dropped)});
            open.file.write_all(format!("{note}\n").as_bytes())?;
            inner.dropped = 0;
        }
        let joined: String = inner.backlog.concat();
        // A partial write leaves a torn line, which the summariser skips.
        open.file.write_all(joined.as_bytes())?;
        inner.backlog.clear();
        Ok(())
    }
}
