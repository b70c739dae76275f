//! The sender every Kizuna service uses to emit audit events: `send` writes the event to a disk
//! spool (temp file, fsync, rename, fsync dir) and returns; delivery POSTs spooled events in order to
//! the audit service and deletes them only after it answered. Events survive the audit service being
//! down and the sender crashing; the audit service dedups on event id, so delivery is exactly once.

use crate::durable;
use crate::error::{AuditError, Result};
use crate::event::AuditEvent;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Events per HTTP request.
const DELIVERY_BATCH: usize = 500;

/// A spooling audit event sender.
#[derive(Clone)]
pub struct AuditSender {
    spool: PathBuf,
    url: String,
    token: Option<String>,
    client: reqwest::Client,
    counter: Arc<AtomicU64>,
    wake: Arc<tokio::sync::Notify>,
}

/// Whether a temp file's name (`.<name>.tmp-<pid>`, `durable::write_atomic`) names a process that
/// is running (this one included).
fn written_by_a_live_process(name: &str) -> bool {
    name.rsplit_once(".tmp-")
        .and_then(|(_, pid)| pid.parse::<u32>().ok())
        .is_some_and(|pid| pid == std::process::id() || Path::new(&format!("/proc/{pid}")).exists())
}

impl AuditSender {
    /// `url` is the audit service's event intake, e.g. `http://audit.centre:7460/v1/events`.
    pub fn new(spool_dir: impl AsRef<Path>, url: &str) -> Result<Self> {
        let spool = spool_dir.as_ref().to_path_buf();
        durable::create_dir_all(&spool)?;
        // Remove temp files a crash left behind; complete spool files are kept, and so are the
        // temp files of live processes: a spool is shared (the store and `kizuna site` write
        // into the same one), and removing another process's file mid-write lost its event.
        for ent in std::fs::read_dir(&spool).map_err(|e| AuditError::io(&spool, e))?.flatten() {
            let name = ent.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') && !written_by_a_live_process(&name) {
                let _ = std::fs::remove_file(ent.path());
            }
        }
        Ok(AuditSender {
            spool,
            url: url.to_string(),
            token: None,
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .map_err(|e| AuditError::Send(e.to_string()))?,
            counter: Arc::new(AtomicU64::new(0)),
            wake: Arc::new(tokio::sync::Notify::new()),
        })
    }

    /// Send `Authorization: Bearer <token>` with every delivery.
    pub fn with_token(mut self, token: &str) -> Self {
        self.token = Some(token.to_string());
        self
    }

    /// Durably spool `event` for delivery. Returns once it is on disk.
    pub fn send(&self, event: &AuditEvent) -> Result<()> {
        event.validate()?;
        let nanos = jiff::Timestamp::now().as_nanosecond();
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let name = format!("{nanos:024}-{n:08}-{}.json", event.id);
        durable::write_atomic(&self.spool.join(name), &event.canonical_bytes())?;
        self.wake.notify_one();
        Ok(())
    }

    /// Spooled events not yet delivered, oldest first.
    pub fn pending(&self) -> Result<Vec<PathBuf>> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(&self.spool)
            .map_err(|e| AuditError::io(&self.spool, e))?
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                let n = p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                !n.starts_with('.') && n.ends_with(".json")
            })
            .collect();
        v.sort();
        Ok(v)
    }

    /// Deliver everything spooled now. Returns how many events the service accepted (new or
    /// duplicate); on error the undelivered events stay spooled.
    pub async fn flush(&self) -> Result<usize> {
        let mut delivered = 0;
        loop {
            let files = self.pending()?;
            if files.is_empty() {
                return Ok(delivered);
            }
            let batch = &files[..files.len().min(DELIVERY_BATCH)];
            let mut events = Vec::with_capacity(batch.len());
            for p in batch {
                let bytes = match std::fs::read(p) {
                    Ok(b) => b,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(AuditError::io(p, e)),
                };
                match AuditEvent::from_json(&bytes) {
                    Ok(e) => events.push(e),
                    Err(err) => {
                        // A spool file that no longer parses cannot ever be delivered: set it aside.
                        tracing::error!(file = %p.display(), error = %err, "unreadable spool file moved aside");
                        let _ = std::fs::rename(p, p.with_extension("bad"));
                    }
                }
            }
            if events.is_empty() {
                continue; // every file of this batch was delivered by someone else or set aside
            }
            let mut req = self.client.post(&self.url).json(&events);
            if let Some(t) = &self.token {
                req = req.bearer_auth(t);
            }
            let resp = req.send().await.map_err(|e| AuditError::Send(format!("{}: {e}", self.url)))?;
            if !resp.status().is_success() {
                let status = resp.status();
                let body = resp.text().await.unwrap_or_default();
                return Err(AuditError::Send(format!("{}: HTTP {status}: {body}", self.url)));
            }
            for p in batch {
                match std::fs::remove_file(p) {
                    // Another process sharing the spool (a CLI flushing) delivered it too: the
                    // service dedups by id, so it is stored once either way.
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(AuditError::io(p, e)),
                    _ => {}
                }
            }
            durable::sync_dir(&self.spool)?;
            delivered += batch.len();
        }
    }

    /// Run delivery in the background: on every `send`, and every `retry` while events are pending.
    pub fn spawn_delivery(&self, retry: Duration) -> tokio::task::JoinHandle<()> {
        let me = self.clone();
        tokio::spawn(async move {
            loop {
                match me.flush().await {
                    Ok(_) => {
                        let _ = tokio::time::timeout(retry.max(Duration::from_secs(30)), me.wake.notified())
                            .await;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "audit delivery failed; events stay spooled");
                        tokio::time::sleep(retry).await;
                    }
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Opening a spool removes the temp files of dead writers only: another live process sharing
    /// the spool may be writing its own.
    #[test]
    fn a_live_writers_temp_file_survives_opening_the_spool() {
        let dir = tempfile::tempdir().unwrap();
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        let live = std::process::Command::new("sleep").arg("30").spawn().unwrap();
        let files = [
            (format!(".a.json.tmp-{}", live.id()), true),
            (format!(".b.json.tmp-{dead}"), false),
            (".c.json.tmp-x".to_owned(), false),
            ("000001-event.json".to_owned(), true),
        ];
        for (name, _) in &files {
            std::fs::write(dir.path().join(name), b"{}").unwrap();
        }
        let _sender = AuditSender::new(dir.path(), "http://127.0.0.1:9/v1/events").unwrap();
        for (name, kept) in &files {
            assert_eq!(dir.path().join(name).exists(), *kept, "{name}");
        }
        let mut live = live;
        let _ = live.kill();
        let _ = live.wait();
    }
}
