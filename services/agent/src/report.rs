//! What the agent tells the store besides files: heartbeats and the daily summary of its log.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use kizuna_wire::Heartbeat;
use serde_json::json;
use tokio::sync::watch;

use crate::agent::Shared;
use crate::agent_log::{Level, local_now};
use crate::daily::{SentDays, summarize, unsent_days};
use crate::quarantine::Released;

const LAST_UPLOAD_FILE: &str = "last-upload";

/// The persisted time of the last acknowledged batch, if any.
pub fn read_last_upload(cursor_dir: &Path) -> Option<String> {
    std::fs::read_to_string(cursor_dir.join(LAST_UPLOAD_FILE))
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
}

/// Records now as the last upload time (in memory, and on disk when there is room).
pub(crate) fn write_last_upload(shared: &Shared) {
    // One writer at a time, taken before the clock is read: batches settled together
    // (`upload_concurrency`) would share the temp file, one truncating it under the other's
    // rename, and the older time could land last.
    let _writing = shared.last_upload_file.lock().unwrap_or_else(|p| p.into_inner());
    let (_, now) = local_now();
    *shared.last_upload.lock().unwrap_or_else(|p| p.into_inner()) = Some(now.clone());
    let _ = crate::durable::write_atomic(&shared.cfg.cursor_dir().join(LAST_UPLOAD_FILE), now.as_bytes());
}

/// Sends a heartbeat every `heartbeat_interval_secs` until `stop`.
pub(crate) async fn run_heartbeats(shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(Duration::from_secs(shared.cfg.heartbeat_interval_secs));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing = false;
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            _ = tick.tick() => {}
        }
        let status = shared.status();
        let lister = shared.clone();
        let quarantine = tokio::task::spawn_blocking(move || {
            lister.quarantine.list_newest(kizuna_wire::MAX_QUARANTINE_REPORT)
        })
        .await
        .ok()
        .and_then(Result::ok);
        let done = shared.rerequests_done.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let hb = Heartbeat {
            agent_version: env!("CARGO_PKG_VERSION").to_owned(),
            queue_depth: status.queue_depth,
            quarantined: status.quarantined,
            last_upload: status.last_upload,
            quarantine,
            rerequests_done: done.clone(),
        };
        match shared.store.send_heartbeat(&hb).await {
            Ok(answer) => {
                if failing {
                    failing = false;
                    shared.record(
                        Level::Info,
                        "heartbeat_ok",
                        "store reachable again",
                        serde_json::Value::Null,
                    );
                }
                // The store has the reported outcomes now.
                shared
                    .rerequests_done
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .retain(|o| !done.contains(o));
                if !answer.rerequests.is_empty() {
                    let worker = shared.clone();
                    let _ = tokio::task::spawn_blocking(move || release(&worker, answer.rerequests)).await;
                }
            }
            Err(e) if !failing => {
                failing = true;
                shared.record(
                    Level::Warn,
                    "heartbeat_failed",
                    &format!("heartbeat failed: {e}"),
                    serde_json::Value::Null,
                );
            }
            Err(_) => {}
        }
    }
}

/// Carries out the operators' re-requests: each quarantined file goes back into the export folder,
/// where intake checks it again and uploads it if it now passes. The outcome goes to the store
/// with the next heartbeat.
fn release(shared: &Shared, requests: Vec<kizuna_wire::Rerequest>) {
    for r in requests {
        let already =
            shared.rerequests_done.lock().unwrap_or_else(|p| p.into_inner()).iter().any(|o| o.id == r.id);
        if already {
            continue;
        }
        let (outcome, message) = match shared.quarantine.release(
            &r.file,
            &shared.export_dir,
            shared.nsips.as_ref().map(|n| n.dir.as_path()),
        ) {
            Released::Moved(rel) => {
                let folder = if shared.nsips.is_some() && rel.starts_with(crate::nsips::QUARANTINE_PREFIX) {
                    "NSIPS folder"
                } else {
                    "export folder"
                };
                shared.record(
                    Level::Info,
                    "rerequested",
                    &format!("the centre re-requested {}: moved back to the {folder} as {rel} to be checked and sent again", r.file),
                    json!({"file": r.file, "id": r.id}),
                );
                ("released", format!("moved back to the {folder} as {rel}"))
            }
            Released::Missing => {
                ("missing", "not in the quarantine (released before or removed by hand)".to_owned())
            }
            Released::Failed(why) => {
                shared.record(
                    Level::Warn,
                    "rerequest_failed",
                    &format!("the centre re-requested {}: {why}", r.file),
                    json!({"file": r.file, "id": r.id}),
                );
                ("failed", why)
            }
        };
        shared
            .rerequests_done
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(kizuna_wire::RerequestOutcome { id: r.id, outcome: outcome.into(), message });
    }
    shared.wake_uploader.notify_one();
}

/// Sends the summary of each past day's log that the store has not yet acknowledged, checking at
/// start and then every `heartbeat_interval_secs`. A day is marked sent (durably) only after the
/// store's success answer, so a crash in between sends it again rather than never.
pub(crate) async fn run_daily_logs(shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let cursor = shared.cfg.cursor_dir();
    let mut sent = match SentDays::load(&cursor) {
        Ok(s) => s,
        Err(e) => {
            shared.record(
                Level::Error,
                "daily_log_failed",
                &format!(
                    "cannot read the record of sent daily logs in {}: {e}; daily logs are not sent",
                    cursor.display()
                ),
                serde_json::Value::Null,
            );
            return;
        }
    };
    let mut tick = tokio::time::interval(Duration::from_secs(shared.cfg.heartbeat_interval_secs));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Days whose failure was already logged (one WARN per day and outage, not one per retry).
    let mut failure_logged = std::collections::BTreeSet::new();
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            _ = tick.tick() => {}
        }
        let (today, _) = local_now();
        let days = unsent_days(&shared.cfg.log_dir(), &today, &sent).unwrap_or_default();
        for day in days {
            // Lines of that day still kept in memory (disk full) go to its file later: wait for them.
            if shared.log.pending(&day) {
                continue;
            }
            let path = shared.cfg.log_dir().join(format!("{day}.jsonl"));
            let text = match std::fs::read(&path) {
                Ok(b) => String::from_utf8_lossy(&b).into_owned(),
                Err(_) => continue,
            };
            let summary = summarize(&day, &text);
            match shared.store.send_daily_log(&summary).await {
                Ok(()) => {
                    if let Err(e) = sent.mark(&day) {
                        shared.record(
                            Level::Error,
                            "daily_log_failed",
                            &format!("daily log for {day} was sent but cannot be recorded as sent: {e}"),
                            serde_json::Value::Null,
                        );
                    }
                    shared.record(
                        Level::Info,
                        "daily_log_sent",
                        &format!("sent the summary of {day}"),
                        json!({"date": day, "lines": summary.lines.len()}),
                    );
                }
                Err(e) => {
                    if !failure_logged.insert(day.clone()) {
                        break;
                    }
                    shared.record(
                        Level::Warn,
                        "daily_log_failed",
                        &format!("cannot send the summary of {day}: {e}; will retry"),
                        serde_json::Value::Null,
                    );
                    break;
                }
            }
        }
    }
}
