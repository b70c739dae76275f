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
pub const PROMOTED_FILE: &str = kizuna_store::PROMOTED_MARKER;

/// An open replica data folder.
pub struct Replica {
    pub data_dir: PathBuf,
    pub manifest: Manifest,
    /// Batches are applied one at a time.
    apply_lock: tokio::sync::Mutex<()>,
    journal: Arc<std::sync::Mutex<journal::ReplicaJournal>>,
    /// The store's lock on the folder (`store.lock`): one replica at a time, and no promotion
    /// (which opens a store on the folder) while it serves.
    _lock: kizuna_store::DataDirLock,
}

impl Replica {
    /// Opens (creating) the replica's folders, manifest and journal copy.
    pub async fn open(data_dir: &Path) -> Result<Arc<Self>, BackupError> {
        let lock = kizuna_store::DataDirLock::acquire(data_dir)?;
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
        let manifest = Manifest::open(&data_dir.join(kizuna_store::REPLICA_MANIFEST), true).await?;
        let journal = journal::ReplicaJournal::open(&data_dir.join("journal"))?;
        // A promoted folder's staging belongs to the store.
        if !data_dir.join(PROMOTED_FILE).exists() {
            let applied = manifest.state("applied_seq").await?;
            let dir = data_dir.to_owned();
            tokio::task::spawn_blocking(move || finish_journalled(&dir, applied))
                .await
                .map_err(|e| BackupError::BadBatch(format!("recovery task failed: {e}")))??;
        }
        Ok(Arc::new(Self {
            data_dir: data_dir.to_owned(),
            manifest,
            apply_lock: tokio::sync::Mutex::new(()),
            journal: Arc::new(std::sync::Mutex::new(journal)),
            _lock: lock,
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

/// Finishes on the tree the journalled entries after `applied` that a kill may have cut short
/// (the store's own recovery step, idempotent), then removes the staged files left over.
fn finish_journalled(data_dir: &Path, applied: u64) -> Result<(), BackupError> {
    use kizuna_store::apply::{Mode, apply_to_tree, sync_dirs};
    let (journal_dir, staging) = (data_dir.join("journal"), data_dir.join("staging"));
    let tree = kizuna_store::tree::Tree::open(&data_dir.join("tree"), &staging)?;
    let mut reader = kizuna_store::journal::JournalReader::new(&journal_dir, applied + 1);
    let (mut dirs, mut finished) = (std::collections::BTreeSet::new(), 0usize);
    loop {
        let entries = reader.poll(256)?;
        if entries.is_empty() {
            break;
        }
        for e in &entries {
            apply_to_tree(&tree, e, Mode::Replay, &mut dirs)?;
        }
        finished += entries.len();
    }
    sync_dirs(&dirs)?;
    let removed = tree.clean_staging()?;
    if finished > 0 || removed > 0 {
        tracing::warn!(applied, finished, removed, "finished journalled entries after an unclean stop");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::Builder;
    use kizuna_store::journal::{Change, Entry};
    use sha2::{Digest, Sha256};

    const FAC: &str = "1310000017";

    fn name(time: &str, flag: char) -> String {
        format!("999/901/9999013/-/ADT-00/9999013_-_ADT-00_999999999999999_{time}_-_{flag}")
    }

    fn sha(b: &[u8]) -> String {
        hex::encode(Sha256::digest(b))
    }

    fn batch(entries: Vec<Entry>, contents: &[&[u8]]) -> Batch {
        let mut b = Builder::default();
        for c in contents {
            b.add_blob(&sha(c), c);
        }
        b.header.entries = entries;
        Batch::decode(&b.encode(), 1 << 20).unwrap()
    }

    /// A replica killed inside a batch, after its first tree change (the old version renamed) and
    /// before the new version was written, with the primary lost: its start-up finishes the batch
    /// and promotion indexes both versions. It used to journal each entry after its tree changes,
    /// so the entry was missing from the journal: promotion rebuilt the index without it.
    #[tokio::test]
    async fn a_batch_cut_short_by_a_kill_is_finished_at_start_and_promoted_whole() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let (a, b) = (b"first version".as_slice(), b"second version".as_slice());
        let (old, superseded, new) =
            (name("20111220224447339", '1'), name("20111220224447339", '2'), name("20120101000000000", '1'));
        let entry = |seq: u64, changes| Entry {
            seq,
            time: "2026-11-25T00:00:00Z".into(),
            facility: FAC.into(),
            site: "s".into(),
            changes,
        };
        let write = |path: &str, c: &[u8], stage: &str| Change::Write {
            path: path.into(),
            sha256: sha(c),
            size: c.len() as u64,
            stage: stage.into(),
        };
        let replica = Replica::open(&data).await.unwrap();
        let first = batch(vec![entry(1, vec![write(&old, a, "1-1.stage")])], &[a]);
        assert_eq!(replica.apply(first).await.unwrap().applied_seq, 1);
        drop(replica);

        let second = batch(
            vec![entry(
                2,
                vec![
                    Change::Rename {
                        from: old.clone(),
                        to: superseded.clone(),
                        sha256: sha(a),
                        size: a.len() as u64,
                    },
                    write(&new, b, "1-2.stage"),
                ],
            )],
            &[b],
        );
        let (tree, staging) = (data.join("tree"), data.join("staging"));
        let mut journal = journal::ReplicaJournal::open(&data.join("journal")).unwrap();
        apply::KILL_AFTER_CHANGES.with(|k| k.set(Some(1)));
        let killed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            apply::apply_files(&tree, &staging, &mut journal, &second, 1)
        }));
        assert!(killed.is_err(), "killed after the rename");
        drop(journal);
        let at = |p: &str| tree.join(FAC).join(p);
        assert!(at(&superseded).exists() && !at(&new).exists());

        let replica = Replica::open(&data).await.unwrap();
        assert_eq!(std::fs::read(at(&new)).ok().as_deref(), Some(b), "the start finished the batch");
        assert_eq!(std::fs::read(at(&superseded)).unwrap(), a);
        assert_eq!(std::fs::read_dir(&staging).unwrap().count(), 0, "nothing left in staging");
        replica.manifest.pool.close().await;
        drop(replica);
        let promoted = crate::promote::promote(&data, "").await.unwrap();
        assert_eq!((promoted.applied_seq, promoted.records), (2, 2), "both versions indexed");
    }
}
