//! What wakes `netd run` for a policy change: file events on the policy's name that can change
//! its content, settled so that one burst (an editor's write, rename and chmod) gives one pass.
//!
//! Reading the policy (every pass does) makes inotify report an open and a close-nowrite on its
//! name; reacting to those made each pass trigger the next, about five passes a second forever.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use notify::event::{AccessKind, AccessMode, EventKind, ModifyKind};
use notify::{RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};

use crate::error::{Error, Result};

/// Quiet time after the last event before a pass starts.
pub const SETTLE: Duration = Duration::from_millis(200);

/// At most this many quiet periods are waited for: a file written without pause still gets passes.
const MAX_SETTLE_ROUNDS: u32 = 10;

/// Whether an event of this kind can change what the file holds: created, written, renamed,
/// removed, closed after writing. Opening, reading, closing unwritten and metadata are not.
pub fn changes_content(kind: &EventKind) -> bool {
    match kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) => false,
        EventKind::Modify(ModifyKind::Metadata(_)) => false,
        EventKind::Create(_) | EventKind::Modify(_) | EventKind::Remove(_) => true,
        // Unknown to the backend: a rescan or anything else may hide a change.
        EventKind::Any | EventKind::Other => true,
    }
}

/// Watch `policy` (its directory, as editors replace files, matching its name) and send on `tx`
/// for every event that may change it (and for a watch error or a rescan, which may hide one).
pub fn watch(policy: &Path, tx: UnboundedSender<()>) -> Result<RecommendedWatcher> {
    let name: Option<OsString> = policy.file_name().map(|n| n.to_os_string());
    let mut watcher = notify::recommended_watcher(move |ev: notify::Result<notify::Event>| match ev {
        Ok(ev)
            if ev.need_rescan()
                || (changes_content(&ev.kind)
                    && ev.paths.iter().any(|p| p.file_name().map(|n| n.to_os_string()) == name)) =>
        {
            let _ = tx.send(());
        }
        Ok(_) => {}
        Err(_) => {
            let _ = tx.send(());
        }
    })
    .map_err(|e| Error::kernel("inotify", e))?;
    let dir = match policy.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if !dir.is_dir() {
        return Err(Error::Io {
            path: dir,
            source: std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "the policy's directory does not exist (netd watches it for policy changes)",
            ),
        });
    }
    watcher.watch(&dir, RecursiveMode::NonRecursive).map_err(|e| Error::Io {
        path: dir.clone(),
        source: std::io::Error::other(format!("watching it: {e}")),
    })?;
    Ok(watcher)
}

/// After an event was received: wait until no event came for [`SETTLE`] (at most
/// [`MAX_SETTLE_ROUNDS`] times), dropping those that came, so the burst gives one pass.
pub async fn settle(rx: &mut UnboundedReceiver<()>) {
    for _ in 0..MAX_SETTLE_ROUNDS {
        tokio::time::sleep(SETTLE).await;
        let mut more = false;
        while rx.try_recv().is_ok() {
            more = true;
        }
        if !more {
            break;
        }
    }
}

#[cfg(test)]
mod tests;
