//! The daily summary of the agent's log for the store, and the persisted record of which days were
//! sent, so each day is reported once even across restarts.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use kizuna_wire::{DailyLog, LogLine};
use serde::{Deserialize, Serialize};

use crate::durable::write_atomic;

/// Most ERROR/WARN lines carried in one summary.
pub const MAX_LINES: usize = 500;
/// Longest message carried per line, in characters.
pub const MAX_MESSAGE_CHARS: usize = 1000;
/// Sent days remembered (older entries are forgotten; their log files are long past).
const REMEMBERED_DAYS: usize = 400;

/// Summarises one day's log file (`YYYY-MM-DD.jsonl`). Torn or foreign lines are skipped.
pub fn summarize(date: &str, text: &str) -> DailyLog {
    let mut log = DailyLog {
        date: date.to_owned(),
        files_uploaded: 0,
        files_quarantined: 0,
        upload_errors: 0,
        nsips_converted: 0,
        lines: Vec::new(),
        truncated: false,
    };
    for line in text.lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else { continue };
        let field = |k: &str| v.get(k).and_then(|x| x.as_str()).unwrap_or("");
        match field("event") {
            "uploaded" => log.files_uploaded += v.get("files").and_then(|f| f.as_u64()).unwrap_or(0),
            "quarantined" | "rejected" => log.files_quarantined += 1,
            "upload_failed" => log.upload_errors += 1,
            "nsips_converted" | "nsips_reconverted" => log.nsips_converted += 1,
            _ => {}
        }
        let level = field("level");
        if level == "ERROR" || level == "WARN" {
            if log.lines.len() >= MAX_LINES {
                log.truncated = true;
                continue;
            }
            let message: String = field("message").chars().take(MAX_MESSAGE_CHARS).collect();
            log.lines.push(LogLine { time: field("time").to_owned(), level: level.to_owned(), message });
        }
    }
    log
}

#[derive(Default, Serialize, Deserialize)]
struct SentFile {
    sent: BTreeSet<String>,
}

/// The days whose summary the store has acknowledged, persisted in `cursor/daily-log-sent.json`.
pub struct SentDays {
    path: PathBuf,
    sent: BTreeSet<String>,
}

impl SentDays {
    pub fn load(cursor_dir: &Path) -> std::io::Result<Self> {
        let path = cursor_dir.join("daily-log-sent.json");
        let sent = match std::fs::read(&path) {
            Ok(bytes) => {
                serde_json::from_slice::<SentFile>(&bytes)
                    .map_err(|e| std::io::Error::other(format!("{}: {e}", path.display())))?
                    .sent
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeSet::new(),
            Err(e) => return Err(e),
        };
        Ok(Self { path, sent })
    }

    pub fn contains(&self, date: &str) -> bool {
        self.sent.contains(date)
    }

    pub fn days(&self) -> impl Iterator<Item = &str> {
        self.sent.iter().map(String::as_str)
    }

    /// Records `date` as sent, durably.
    pub fn mark(&mut self, date: &str) -> std::io::Result<()> {
        self.sent.insert(date.to_owned());
        while self.sent.len() > REMEMBERED_DAYS {
            self.sent.pop_first();
        }
        let file = SentFile { sent: self.sent.clone() };
        write_atomic(&self.path, &serde_json::to_vec_pretty(&file).map_err(std::io::Error::other)?)
    }
}

/// Days before `today` that have a log file and were not yet sent, oldest first.
pub fn unsent_days(log_dir: &Path, today: &str, sent: &SentDays) -> std::io::Result<Vec<String>> {
    let mut days = Vec::new();
    let entries = match std::fs::read_dir(log_dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(days),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let name = entry?.file_name();
        let Some(date) = name.to_str().and_then(|n| n.strip_suffix(".jsonl")) else { continue };
        let is_date = date.len() == 10 && date.parse::<jiff::civil::Date>().is_ok();
        if is_date && date < today && !sent.contains(date) {
            days.push(date.to_owned());
        }
    }
    days.sort();
    Ok(days)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_counts_events_and_keeps_only_warnings_and_errors() {
        let text = [
            r#"{"time":"t1","level":"INFO","event":"uploaded","message":"batch","files":3}"#,
            r#"{"time":"t2","level":"WARN","event":"quarantined","message":"bad name"}"#,
            r#"{"time":"t3","level":"WARN","event":"upload_failed","message":"503"}"#,
            r#"{"time":"t4","level":"ERROR","event":"disk_full","message":"full"}"#,
            r#"{"time":"t5","level":"INFO","event":"uploaded","message":"batch","files":2}"#,
            r#"{"time":"t5b","level":"INFO","event":"nsips_converted","message":"x.csv converted"}"#,
            r#"{"time":"t5c","level":"INFO","event":"nsips_reconverted","message":"x.csv converted again"}"#,
            r#"{"time":"t6","level":"ERR"#,
        ]
        .join("\n");
        let s = summarize("2026-11-24", &text);
        assert_eq!((s.files_uploaded, s.files_quarantined, s.upload_errors), (5, 1, 1));
        assert_eq!(s.nsips_converted, 2);
        assert_eq!(s.lines.iter().map(|l| l.time.as_str()).collect::<Vec<_>>(), ["t2", "t3", "t4"]);
        assert!(!s.truncated);
    }

    #[test]
    fn summary_is_capped() {
        let line = r#"{"time":"t","level":"ERROR","event":"x","message":"m"}"#;
        let text = vec![line; MAX_LINES + 5].join("\n");
        let s = summarize("2026-11-24", &text);
        assert_eq!(s.lines.len(), MAX_LINES);
        assert!(s.truncated);
    }

    #[test]
    fn sent_days_persist_and_today_is_never_due() {
        let d = tempfile::tempdir().unwrap();
        for day in ["2026-11-23", "2026-11-24", "2026-11-25"] {
            std::fs::write(d.path().join(format!("{day}.jsonl")), "").unwrap();
        }
        std::fs::write(d.path().join("notes.txt"), "").unwrap();
        let mut sent = SentDays::load(d.path()).unwrap();
        assert_eq!(unsent_days(d.path(), "2026-11-25", &sent).unwrap(), ["2026-11-23", "2026-11-24"]);
        sent.mark("2026-11-23").unwrap();
        let again = SentDays::load(d.path()).unwrap();
        assert_eq!(unsent_days(d.path(), "2026-11-25", &again).unwrap(), ["2026-11-24"]);
    }
}
