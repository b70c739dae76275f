//! Per-folder locks: every change to one data-type folder (where the condition-flag semantics act)
//! is planned, committed and applied by one batch at a time. A batch takes all its folders' locks
//! in sorted order, so two batches never wait on each other in a cycle.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use tokio::sync::OwnedMutexGuard;

/// The lock table. Entries are dropped when no batch holds or waits for them.
#[derive(Default)]
pub struct FolderLocks {
    table: Mutex<HashMap<PathBuf, Arc<tokio::sync::Mutex<()>>>>,
}

/// Held locks; dropping it releases them.
pub struct Held {
    guards: Vec<(PathBuf, OwnedMutexGuard<()>)>,
    owner: Arc<FolderLocks>,
}

impl FolderLocks {
    /// Locks every folder in `dirs` (duplicates allowed), in sorted order.
    pub async fn lock_all(self: &Arc<Self>, mut dirs: Vec<PathBuf>) -> Held {
        dirs.sort();
        dirs.dedup();
        let mut guards = Vec::with_capacity(dirs.len());
        for d in dirs {
            let m = self.table.lock().expect("lock table").entry(d.clone()).or_default().clone();
            guards.push((d, m.lock_owned().await));
        }
        Held { guards, owner: self.clone() }
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        let mut table = self.owner.table.lock().expect("lock table");
        for (d, g) in self.guards.drain(..) {
            drop(g);
            // Only the table still refers to it: nobody holds or waits for this folder.
            if table.get(&d).is_some_and(|m| Arc::strong_count(m) == 1) {
                table.remove(&d);
            }
        }
    }
}
