//! Applying a batch on the replica: files first (each written atomically and fsynced, every
//! changed directory fsynced), then the journal copy (fsynced), then one manifest transaction that
//! records the files and the new applied position. Only then is the batch acknowledged.
//!
//! Idempotent: entries at or below the applied position are skipped, and a batch cut short by a
//! crash is applied again over what it had already done (a file already there with the right
//! content is not written again; a file already renamed by a later entry is recognised by its
//! SS-MIX2 version).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use kizuna_store::journal::Change;
use sha2::{Digest, Sha256};

use crate::BackupError;
use crate::batch::Batch;
use crate::durable::{fsync_dir, mtime_ns, write_file};
use crate::manifest::Origin;
use crate::paths::TreePath;
use crate::replica::journal::ReplicaJournal;

/// A change to the manifest, decided while applying files.
#[derive(Debug)]
pub enum Op {
    Upsert { path: TreePath, sha256: String, size: u64, mtime_ns: i64, origin: Origin },
    Remove(TreePath),
    RemoveTree(TreePath),
}

/// Carries out `batch` (entries after `applied` only) on the tree under `tree` and appends the
/// entries to `journal`; everything is durable when it returns.
pub fn apply_files(
    tree: &Path,
    staging: &Path,
    journal: &mut ReplicaJournal,
    batch: &Batch,
    applied: u64,
) -> Result<Vec<Op>, BackupError> {
    let mut ops = Vec::new();
    let mut dirs = BTreeSet::new();
    for entry in batch.header.entries.iter().filter(|e| e.seq > applied) {
        for change in &entry.changes {
            match change {
                Change::Rename { from, to, sha256, size } => {
                    let (from, to) = (
                        TreePath::of_entry(&entry.facility, from)?,
                        TreePath::of_entry(&entry.facility, to)?,
                    );
                    let (src, dst) = (from.under(tree), to.under(tree));
                    if src.exists() {
                        if dst.exists() {
                            std::fs::remove_file(&src).map_err(|e| BackupError::io(&src, e))?;
                        } else {
                            std::fs::rename(&src, &dst).map_err(|e| BackupError::io(&src, e))?;
                        }
                        dirs.insert(parent(&dst));
                    }
                    ops.push(Op::Remove(from));
                    if let Ok(meta) = std::fs::symlink_metadata(&dst) {
                        ops.push(Op::Upsert {
                            path: to,
                            sha256: sha256.clone(),
                            size: *size,
                            mtime_ns: mtime_ns(&meta),
                            origin: Origin::Journal,
                        });
                    }
                }
                Change::Write { path, sha256, size, .. } => {
                    let p = TreePath::of_entry(&entry.facility, path)?;
                    let dst = p.under(tree);
                    if !has_content(&dst, sha256, *size)? {
                        if renamed_since(&dst, sha256)? {
                            continue;
                        }
                        let Some(bytes) = batch.content(sha256) else {
                            tracing::warn!(seq = entry.seq, path = %p, "the primary no longer has this file; not written");
                            continue;
                        };
                        dirs.extend(write_file(staging, &dst, bytes)?);
                    }
                    let meta = std::fs::symlink_metadata(&dst).map_err(|e| BackupError::io(&dst, e))?;
                    ops.push(Op::Upsert {
                        path: p,
                        sha256: sha256.clone(),
                        size: *size,
                        mtime_ns: mtime_ns(&meta),
                        origin: Origin::Journal,
                    });
                }
                Change::Delete { path, .. } => {
                    let p = TreePath::of_entry(&entry.facility, path)?;
                    remove_file(&p.under(tree), &mut dirs)?;
                    ops.push(Op::Remove(p));
                }
            }
        }
        journal.append(entry)?;
    }
    for put in &batch.header.puts {
        let p = TreePath::parse(&put.path)?;
        let dst = p.under(tree);
        if !has_content(&dst, &put.sha256, put.size)? {
            let bytes = batch
                .content(&put.sha256)
                .ok_or_else(|| BackupError::BadBatch(format!("put {} without its content", put.path)))?;
            dirs.extend(write_file(staging, &dst, bytes)?);
        }
        let meta = std::fs::symlink_metadata(&dst).map_err(|e| BackupError::io(&dst, e))?;
        ops.push(Op::Upsert {
            path: p,
            sha256: put.sha256.clone(),
            size: put.size,
            mtime_ns: mtime_ns(&meta),
            origin: Origin::Foreign,
        });
    }
    for r in &batch.header.removes {
        let p = TreePath::parse(&r.path)?;
        let at = p.under(tree);
        if r.tree {
            if at.is_dir() {
                std::fs::remove_dir_all(&at).map_err(|e| BackupError::io(&at, e))?;
                dirs.insert(parent(&at));
            }
            ops.push(Op::RemoveTree(p));
        } else {
            remove_file(&at, &mut dirs)?;
            ops.push(Op::Remove(p));
        }
    }
    for d in &dirs {
        fsync_dir(d)?;
    }
    journal.sync()?;
    Ok(ops)
}

fn parent(p: &Path) -> PathBuf {
    p.parent().expect("tree paths have parents").to_owned()
}

fn remove_file(at: &Path, dirs: &mut BTreeSet<PathBuf>) -> Result<(), BackupError> {
    match std::fs::remove_file(at) {
        Ok(()) => {
            dirs.insert(parent(at));
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(BackupError::io(at, e)),
    }
}

/// True if `path` holds exactly this content.
fn has_content(path: &Path, sha256: &str, size: u64) -> Result<bool, BackupError> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_file() && m.len() == size => Ok(hash_file(path)? == sha256),
        Ok(_) => Ok(false),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(BackupError::io(path, e)),
    }
}

/// True if the SS-MIX2 file `path` is absent because a later entry already renamed it (a batch
/// applied again after a crash): a file of the same version with this content is in its folder.
fn renamed_since(path: &Path, sha256: &str) -> Result<bool, BackupError> {
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else { return Ok(false) };
    let Ok(parsed) = ssmix2::FileName::parse(name) else { return Ok(false) };
    let key = kizuna_store::index::version_key(&parsed);
    let dir = parent(path);
    let Ok(rd) = std::fs::read_dir(&dir) else { return Ok(false) };
    for item in rd {
        let item = item.map_err(|e| BackupError::io(&dir, e))?;
        let other = item.file_name();
        let Some(other) = other.to_str() else { continue };
        if other != name
            && ssmix2::FileName::parse(other).is_ok_and(|n| kizuna_store::index::version_key(&n) == key)
            && hash_file(&item.path())? == sha256
        {
            return Ok(true);
        }
    }
    Ok(false)
}

/// The sha256 (hex) of a file's content.
pub fn hash_file(path: &Path) -> Result<String, BackupError> {
    let bytes = std::fs::read(path).map_err(|e| BackupError::io(path, e))?;
    Ok(hex::encode(Sha256::digest(&bytes)))
}
