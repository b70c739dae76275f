//! The primary's side: the store's journal and tree (read only) and the follower's manifest of
//! every file with the sha256 the journal recorded at write, kept up to the applied watermark, plus
//! the log of files others wrote into the tree.

use std::path::{Path, PathBuf};

use kizuna_store::journal::{Change, Entry, JournalReader, read_applied};
use sha2::{Digest, Sha256};
use sqlx::Row;

use crate::BackupError;
use crate::config::FollowConfig;
use crate::manifest::{self, Manifest, Origin};
use crate::paths::TreePath;

/// One row of the foreign-file log.
#[derive(Debug, Clone)]
pub struct ForeignChange {
    pub id: u64,
    pub path: String,
    /// None: removed.
    pub sha256: Option<String>,
    pub size: u64,
}

/// The primary as the follower sees it.
pub struct Primary {
    pub journal_dir: PathBuf,
    pub tree: PathBuf,
    pub manifest: Manifest,
    /// One catch-up at a time.
    catch_up_lock: tokio::sync::Mutex<()>,
}

impl Primary {
    /// Opens the follower's manifest over the store's data folder, which must hold a store
    /// ([`FollowConfig::check_store`]): it is never created here.
    pub async fn open(config: &FollowConfig) -> Result<Self, BackupError> {
        config.check_store()?;
        std::fs::create_dir_all(&config.state_dir).map_err(|e| BackupError::io(&config.state_dir, e))?;
        let manifest = Manifest::open(&config.manifest_path(), false).await?;
        Ok(Self {
            journal_dir: config.journal_dir(),
            tree: config.tree_dir(),
            manifest,
            catch_up_lock: tokio::sync::Mutex::new(()),
        })
    }

    /// The store's applied watermark.
    pub fn applied(&self) -> u64 {
        read_applied(&self.journal_dir)
    }

    /// The journal entry the manifest is up to.
    pub async fn manifest_seq(&self) -> Result<u64, BackupError> {
        self.manifest.state("journal_seq").await
    }

    /// Brings the manifest up to the store's applied watermark; returns the entry it is now at.
    pub async fn catch_up(&self) -> Result<u64, BackupError> {
        let _one = self.catch_up_lock.lock().await;
        let target = self.applied();
        let mut at = self.manifest_seq().await?;
        let mut reader = JournalReader::new(&self.journal_dir, at + 1);
        while at < target {
            let entries: Vec<Entry> = reader.poll(2000)?.into_iter().filter(|e| e.seq <= target).collect();
            let Some(last) = entries.last().map(|e| e.seq) else { break };
            let mut tx = self.manifest.pool.begin().await?;
            for e in &entries {
                for c in &e.changes {
                    match c {
                        Change::Write { path, sha256, size, .. } => {
                            manifest::upsert(
                                &mut tx,
                                &TreePath::of_entry(&e.facility, path)?,
                                sha256,
                                *size,
                                0,
                                Origin::Journal,
                            )
                            .await?
                        }
                        Change::Rename { from, to, sha256, size } => {
                            manifest::remove(&mut tx, &TreePath::of_entry(&e.facility, from)?).await?;
                            manifest::upsert(
                                &mut tx,
                                &TreePath::of_entry(&e.facility, to)?,
                                sha256,
                                *size,
                                0,
                                Origin::Journal,
                            )
                            .await?
                        }
                        Change::Delete { path, .. } => {
                            manifest::remove(&mut tx, &TreePath::of_entry(&e.facility, path)?).await?
                        }
                    }
                }
            }
            manifest::set_state(&mut tx, "journal_seq", last).await?;
            tx.commit().await?;
            at = last;
        }
        Ok(at)
    }

    /// Records a change others made to the tree (content now `sha256`, or removed) and logs it for
    /// the replicas.
    pub async fn record_foreign(
        &self,
        path: &TreePath,
        content: Option<(&str, u64)>,
    ) -> Result<(), BackupError> {
        let mut tx = self.manifest.pool.begin().await?;
        match content {
            Some((sha, size)) => manifest::upsert(&mut tx, path, sha, size, 0, Origin::Foreign).await?,
            None => manifest::remove(&mut tx, path).await?,
        }
        sqlx::query("INSERT INTO foreign_log (path, sha256, size) VALUES (?1, ?2, ?3)")
            .bind(path.as_str())
            .bind(content.map(|c| c.0))
            .bind(content.map(|c| c.1 as i64).unwrap_or(0))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Foreign changes after `after`, oldest first.
    pub async fn foreign_since(&self, after: u64, limit: usize) -> Result<Vec<ForeignChange>, BackupError> {
        let rows =
            sqlx::query("SELECT id, path, sha256, size FROM foreign_log WHERE id > ?1 ORDER BY id LIMIT ?2")
                .bind(after as i64)
                .bind(limit as i64)
                .fetch_all(&self.manifest.pool)
                .await?;
        Ok(rows
            .iter()
            .map(|r| ForeignChange {
                id: r.get::<i64, _>(0) as u64,
                path: r.get(1),
                sha256: r.get(2),
                size: r.get::<i64, _>(3) as u64,
            })
            .collect())
    }

    /// The last foreign change logged.
    pub async fn foreign_last(&self) -> Result<u64, BackupError> {
        let r = sqlx::query("SELECT COALESCE(MAX(id), 0) FROM foreign_log")
            .fetch_one(&self.manifest.pool)
            .await?;
        Ok(r.get::<i64, _>(0) as u64)
    }
}

/// Reads a file of the primary's tree if its content is `sha256`. A store file that a later entry
/// renamed is found under its new name (same SS-MIX2 version, same content). None if gone or changed.
pub fn read_content(tree: &Path, path: &TreePath, sha256: &str) -> Option<Vec<u8>> {
    let p = path.under(tree);
    if let Ok(bytes) = std::fs::read(&p)
        && hex::encode(Sha256::digest(&bytes)) == sha256
    {
        return Some(bytes);
    }
    let name = p.file_name()?.to_str()?;
    let key = kizuna_store::index::version_key(&ssmix2::FileName::parse(name).ok()?);
    for item in std::fs::read_dir(p.parent()?).ok()?.flatten() {
        let other = item.file_name();
        let other = other.to_str()?;
        if ssmix2::FileName::parse(other).is_ok_and(|n| kizuna_store::index::version_key(&n) == key)
            && let Ok(bytes) = std::fs::read(item.path())
            && hex::encode(Sha256::digest(&bytes)) == sha256
        {
            return Some(bytes);
        }
    }
    None
}
