//! Files others write into the tree. The store's own writes reach the replicas through the
//! journal; the watcher (notify) only has to catch what bypasses the store. Its events go through a
//! bounded queue; an event that does not fit is not lost: its folder is remembered and rescanned
//! (a bounded set of folders; past `rescan_max_dirs` they are replaced by their parents, so the
//! rescan widens step by step instead of jumping to the whole tree). A kernel queue overflow, whose
//! area is unknown, rescans the tree, and so does every start (what changed while no watch was in place).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use notify::{RecursiveMode, Watcher};
use sha2::{Digest, Sha256};
use tokio::sync::watch;

use crate::BackupError;
use crate::config::WatchConfig;
use crate::follow::metrics::Metrics;
use crate::manifest::Origin;
use crate::paths::TreePath;
use crate::primary::Primary;

/// Folders to rescan, bounded.
#[derive(Debug, Default)]
pub struct RescanSet {
    dirs: BTreeSet<PathBuf>,
}

impl RescanSet {
    /// Remembers `dir` (below `root`); past `max` folders, every folder is replaced by its parent
    /// (never above `root`) until the set fits.
    pub fn add(&mut self, root: &Path, dir: PathBuf, max: usize) {
        // Never above the root: a rescan outside the tree would skip the check for removed files.
        let dir = if dir.starts_with(root) { dir } else { root.to_owned() };
        if self.dirs.iter().any(|d| dir.starts_with(d)) {
            return;
        }
        self.dirs.retain(|d| !d.starts_with(&dir));
        self.dirs.insert(dir);
        while self.dirs.len() > max.max(1) {
            let widened: BTreeSet<PathBuf> = self
                .dirs
                .iter()
                .map(|d| if d.as_path() == root { d.clone() } else { d.parent().unwrap_or(root).to_owned() })
                .collect();
            let mut minimal = BTreeSet::new();
            for d in &widened {
                if !widened.iter().any(|o| o != d && d.starts_with(o)) {
                    minimal.insert(d.clone());
                }
            }
            self.dirs = minimal;
        }
    }

    pub fn take(&mut self) -> BTreeSet<PathBuf> {
        std::mem::take(&mut self.dirs)
    }
}

/// Runs the watcher on the primary's tree until `stop`.
pub async fn run(
    primary: Arc<Primary>,
    config: WatchConfig,
    metrics: Arc<Metrics>,
    mut stop: watch::Receiver<bool>,
) -> Result<(), BackupError> {
    let root = primary.tree.clone();
    std::fs::create_dir_all(&root).map_err(|e| BackupError::io(&root, e))?;
    let (tx, rx) = crossbeam_channel::bounded::<PathBuf>(config.queue.max(1));
    let overflow = Arc::new(Mutex::new(RescanSet::default()));
    let (o, r, m, max) = (overflow.clone(), root.clone(), metrics.clone(), config.rescan_max_dirs);
    let mut watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        let event = match res {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!(%e, "watcher error; rescanning the tree");
                o.lock().expect("rescan set").add(&r, r.clone(), max);
                return;
            }
        };
        // Opening, reading or closing a file unchanged is no change; the follower itself opens
        // every file it checks and every folder it rescans, so reacting to those re-read the
        // whole checked tree once per `settle_ms`, for ever.
        if let notify::EventKind::Access(kind) = event.kind
            && !matches!(kind, notify::event::AccessKind::Close(notify::event::AccessMode::Write))
        {
            return;
        }
        if event.need_rescan() {
            m.watch_overflows.inc();
            o.lock().expect("rescan set").add(&r, r.clone(), max);
            return;
        }
        for p in event.paths {
            if let Err(crossbeam_channel::TrySendError::Full(p)) = tx.try_send(p) {
                m.watch_overflows.inc();
                // The folder of the event's path (`add` keeps it within the root).
                let dir = p.parent().unwrap_or(&r).to_owned();
                o.lock().expect("rescan set").add(&r, dir, max);
            }
        }
    })
    .map_err(|e| BackupError::Config(format!("watching {}: {e}", root.display())))?;
    watcher
        .watch(&root, RecursiveMode::Recursive)
        .map_err(|e| BackupError::Config(format!("watching {}: {e}", root.display())))?;
    tracing::info!(root = %root.display(), queue = config.queue, "watching the tree for files written by others");
    // Changes made while no watch was in place (follower down, or killed within `settle_ms`) give no
    // event: rescan the whole tree once now, so unknown files are recorded and vanished ones removed.
    overflow.lock().expect("rescan set").add(&root, root.clone(), config.rescan_max_dirs);
    let settle = Duration::from_millis(config.settle_ms);
    let mut dirty: BTreeMap<PathBuf, Instant> = BTreeMap::new();
    // Paths waiting for the store's watermark to reach an entry that may have written them.
    let mut waiting: BTreeMap<PathBuf, u64> = BTreeMap::new();
    loop {
        while let Ok(p) = rx.try_recv() {
            dirty.insert(p, Instant::now());
        }
        let now = Instant::now();
        let mut ready: Vec<PathBuf> =
            dirty.iter().filter(|(_, t)| now.duration_since(**t) >= settle).map(|(p, _)| p.clone()).collect();
        let applied = primary.applied();
        ready.extend(waiting.iter().filter(|(_, s)| **s <= applied).map(|(p, _)| p.clone()));
        for p in ready {
            dirty.remove(&p);
            let retried = waiting.remove(&p).is_some();
            match examine(&primary, &metrics, &overflow, config.rescan_max_dirs, &p, retried).await {
                Ok(Some(seq)) => {
                    waiting.insert(p, seq);
                }
                Ok(None) => {}
                Err(e) => tracing::warn!(path = %p.display(), error = %e, "could not examine a changed file"),
            }
        }
        let dirs = overflow.lock().expect("rescan set").take();
        for d in dirs {
            metrics.rescans.inc();
            if let Err(e) = rescan(&primary, &metrics, &d, &mut dirty).await {
                tracing::warn!(dir = %d.display(), error = %e, "rescan failed; will retry");
                overflow.lock().expect("rescan set").add(&root, d, config.rescan_max_dirs);
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(50)) => {}
            _ = stop.changed() => {}
        }
        if *stop.borrow() {
            drop(watcher);
            return Ok(());
        }
    }
}

/// Looks at one changed path: a new folder is rescanned (files may have landed before its watch);
/// a file the manifest does not know with this content is recorded as a foreign change. Returns
/// the journal entry to wait for when the store may still be committing the file (the store puts
/// an entry in its journal before the file in the tree, so once its watermark passes the journal's
/// last entry as it was now, a store file is in the manifest).
async fn examine(
    primary: &Primary,
    metrics: &Metrics,
    overflow: &Mutex<RescanSet>,
    max: usize,
    abs: &Path,
    retried: bool,
) -> Result<Option<u64>, BackupError> {
    let Ok(rel) = abs.strip_prefix(&primary.tree) else { return Ok(None) };
    let Some(rel) = rel.to_str() else { return Ok(None) };
    if rel.is_empty() {
        return Ok(None);
    }
    let path = TreePath::parse(rel)?;
    match std::fs::symlink_metadata(abs) {
        Ok(m) if m.is_dir() => {
            overflow.lock().expect("rescan set").add(&primary.tree, abs.to_owned(), max);
            Ok(None)
        }
        Ok(m) if m.is_file() => {
            let bytes = std::fs::read(abs).map_err(|e| BackupError::io(abs, e))?;
            let sha = hex::encode(Sha256::digest(&bytes));
            if known(primary, &path, &sha).await? {
                return Ok(None);
            }
            if !retried {
                let last = journal_last(primary)?;
                if last > primary.catch_up().await? {
                    return Ok(Some(last));
                }
            } else {
                primary.catch_up().await?;
            }
            if known(primary, &path, &sha).await? {
                return Ok(None);
            }
            metrics.foreign_changes.inc();
            tracing::info!(path = %path, "file written by others than the store; replicating");
            primary.record_foreign(&path, Some((&sha, m.len()))).await.map(|_| None)
        }
        Ok(_) => Ok(None),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if let Some(r) = primary.manifest.get(&path).await?
                && r.origin == Origin::Foreign as i64
            {
                metrics.foreign_changes.inc();
                primary.record_foreign(&path, None).await?;
            }
            Ok(None)
        }
        Err(e) => Err(BackupError::io(abs, e)),
    }
}

async fn known(primary: &Primary, path: &TreePath, sha: &str) -> Result<bool, BackupError> {
    Ok(primary.manifest.get(path).await?.is_some_and(|r| r.sha256 == sha))
}

/// The last entry in the store's journal now (commits in progress included).
fn journal_last(primary: &Primary) -> Result<u64, BackupError> {
    let applied = primary.applied();
    let mut r = kizuna_store::journal::JournalReader::new(&primary.journal_dir, applied + 1);
    let mut last = applied;
    loop {
        let got = r.poll(10_000)?;
        match got.last() {
            Some(e) => last = e.seq,
            None => return Ok(last),
        }
    }
}

/// Examines every file below `dir`, and every foreign file recorded there that is gone.
async fn rescan(
    primary: &Primary,
    metrics: &Metrics,
    dir: &Path,
    dirty: &mut BTreeMap<PathBuf, Instant>,
) -> Result<(), BackupError> {
    let mut stack = vec![dir.to_owned()];
    let mut files = 0u64;
    while let Some(d) = stack.pop() {
        let rd = match std::fs::read_dir(&d) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(BackupError::io(&d, e)),
        };
        for item in rd {
            let item = item.map_err(|e| BackupError::io(&d, e))?;
            let t = item.file_type().map_err(|e| BackupError::io(&item.path(), e))?;
            if t.is_dir() {
                stack.push(item.path());
            } else if t.is_file() {
                files += 1;
                let p = item.path();
                let rel = p.strip_prefix(&primary.tree).ok().and_then(|r| r.to_str()).map(TreePath::parse);
                // Files the manifest knows with the same size are the store's or already recorded;
                // the rest are looked at like watcher events.
                let known_size = match rel {
                    Some(Ok(rel)) => match (primary.manifest.get(&rel).await?, item.metadata()) {
                        (Some(r), Ok(m)) => r.size == m.len() && r.origin == Origin::Journal as i64,
                        _ => false,
                    },
                    _ => true,
                };
                if !known_size {
                    dirty.insert(p, Instant::now() - Duration::from_secs(3600));
                }
            }
        }
    }
    // Foreign files recorded below `dir` that are gone.
    if let Some(rel) = dir.strip_prefix(&primary.tree).ok().and_then(|r| r.to_str()) {
        let mut gone = Vec::new();
        primary
            .manifest
            .walk(&crate::paths::dkey_of_dir(rel), |dkey, rows| {
                for r in rows {
                    if r.origin == Origin::Foreign as i64 {
                        let p = TreePath::from_key(dkey, &r.name);
                        if !p.under(&primary.tree).exists() {
                            gone.push(p);
                        }
                    }
                }
                Ok(())
            })
            .await?;
        for p in gone {
            metrics.foreign_changes.inc();
            primary.record_foreign(&p, None).await?;
        }
    }
    tracing::info!(dir = %dir.display(), files, "rescanned");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rescan_set_widens_to_parents_instead_of_growing() {
        let root = PathBuf::from("/t");
        let mut s = RescanSet::default();
        for i in 0..10 {
            s.add(&root, PathBuf::from(format!("/t/F/{}/x", i % 5)), 3);
        }
        let dirs = s.take();
        assert!(dirs.len() <= 3, "{dirs:?}");
        for i in 0..5 {
            let d = PathBuf::from(format!("/t/F/{i}/x"));
            assert!(dirs.iter().any(|c| d.starts_with(c)), "{d:?} not covered by {dirs:?}");
        }
        assert!(!dirs.contains(&PathBuf::from("/")), "never above the root");
        // An event on the root itself, or a path outside it, rescans the root, not its parent.
        let mut s = RescanSet::default();
        s.add(&root, PathBuf::from("/"), 3);
        s.add(&root, PathBuf::from("/t/F/1"), 3);
        assert_eq!(s.take(), BTreeSet::from([root.clone()]));
    }
}
