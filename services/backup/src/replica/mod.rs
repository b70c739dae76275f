//! The replica (`kizuna backup serve`): receives batches, applies them durably, answers digests.
//!
//! Its data folder is laid out like the store's (`tree/`, `journal/`, `staging/`, the linkage
//! database `linkage.sqlite`) plus `backup/manifest.sqlite`, so that `kizuna backup promote` can
//! turn it into a centre.

pub mod apply;
pub mod digests;
pub mod journal;
pub mod linkage;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::BackupError;
use crate::batch::{Ack, Batch};
use crate::manifest::{self, Manifest};

/// Marker file: the replica was promoted and must take no more batches.
pub const PROMOTED_FILE: &str = "PROMOTED";

/// An open replica data folder.
pub struct Replica {
    pub data_dir: PathBuf,
    pub manifest: Manifest,
    /// Batches are applied one at a time.
    apply_lock: tokio::sync::Mutex<()>,
    journal: Arc<std::sync::Mutex<journal::ReplicaJournal>>,
}

impl Replica {
    /// Opens (creating) the replica's folders, manifest and journal copy.
    pub async fn open(data_dir: &Path) -> Result<Arc<Self>, BackupError> {
        for d in ["tree", "staging", "backup"] {
            let p = data_dir.join(d);
            std::fs::create_dir_all(&p).map_err(|e| BackupError::io(&p, e))?;
        }
        // Temp files of a batch cut short by a crash.
        let staging = data_dir.join("staging");
        for item in std::fs::read_dir(&staging).map_err(|e| BackupError::io(&staging, e))?.flatten() {
            if item.file_name().to_string_lossy().ends_with(".backup-tmp") {
                let _ = std::fs::remove_file(item.path());
            }
        }
        let manifest = Manifest::open(&data_dir.join("backup/manifest.sqlite"), true).await?;
        let journal = journal::ReplicaJournal::open(&data_dir.join("journal"))?;
        Ok(Arc::new(Self {
            data_dir: data_dir.to_owned(),
            manifest,
            apply_lock: tokio::sync::Mutex::new(()),
            journal: Arc::new(std::sync::Mutex::new(journal)),
        }))
    }

    pub fn tree(&self) -> PathBuf {
        self.data_dir.join("tree")
    }

    /// True once `kizuna backup promote` ran here.
    pub fn promoted(&self) -> bool {
        self.data_dir.join(PROMOTED_FILE).exists()
    }

    /// What the replica holds durably.
    pub async fn ack(&self) -> Result<Ack, BackupError> {
        Ok(Ack {
            applied_seq: self.manifest.state("applied_seq").await?,
            foreign_applied: self.manifest.state("foreign_applied").await?,
        })
    }

    /// Applies a batch; returns once it is durable. Batches are applied one at a time.
    pub async fn apply(self: &Arc<Self>, batch: Batch) -> Result<Ack, BackupError> {
        let _one_at_a_time = self.apply_lock.lock().await;
        if self.promoted() {
            return Err(BackupError::Promoted);
        }
        let before = self.ack().await?;
        let mut expect = before.applied_seq + 1;
        for e in batch.header.entries.iter().filter(|e| e.seq > before.applied_seq) {
            if e.seq != expect {
                return Err(BackupError::Gap { seq: e.seq, applied: before.applied_seq });
            }
            expect += 1;
        }
        let last = expect - 1;
        let (tree, staging) = (self.tree(), self.data_dir.join("staging"));
        let batch = Arc::new(batch);
        let b = batch.clone();
        let journal = self.journal.clone();
        let ops = tokio::task::spawn_blocking(move || {
            let mut j = journal.lock().expect("journal lock");
            apply::apply_files(&tree, &staging, &mut j, &b, before.applied_seq)
        })
        .await
        .map_err(|e| BackupError::BadBatch(format!("apply task failed: {e}")))??;
        let mut tx = self.manifest.pool.begin().await?;
        for op in &ops {
            match op {
                apply::Op::Upsert { path, sha256, size, mtime_ns, origin } => {
                    manifest::upsert(&mut tx, path, sha256, *size, *mtime_ns, *origin).await?
                }
                apply::Op::Remove(p) => manifest::remove(&mut tx, p).await?,
                apply::Op::RemoveTree(p) => {
                    manifest::remove_tree(&mut tx, &crate::paths::dkey_of_dir(p.as_str())).await?
                }
            }
        }
        manifest::set_state(&mut tx, "applied_seq", last).await?;
        if batch.header.foreign_upto > before.foreign_applied {
            manifest::set_state(&mut tx, "foreign_applied", batch.header.foreign_upto).await?;
        }
        tx.commit().await?;
        Ok(Ack { applied_seq: last, foreign_applied: before.foreign_applied.max(batch.header.foreign_upto) })
    }
}
