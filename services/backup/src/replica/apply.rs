//! Applying a batch on the replica: new contents staged, then the journal copy (fsynced), then the
//! files, then one manifest transaction that records the files and the new applied position. Only
//! then is the batch acknowledged.
//!
//! Write-ahead, as the store itself: a journal entry is durable before the tree shows any of its
//! changes, and the content of each of its writes waits in `staging/` under the entry's own staged
//! name. A replica killed part-way through a batch therefore holds every entry whose changes may
//! be incomplete in its journal, and the store's recovery (`apply_to_tree` in `Mode::Replay`, run by
//! [`crate::replica::Replica::open`] and by promotion's `Store::open`) finishes them. (Journalled
//! after its tree changes, an entry cut short was missing from the journal: a promoted replica
//! indexed the tree without it.)
//!
//! Files are made durable per batch, not per file: every new content of the batch is first
//! written to a staged file in `staging` without fsync, one `syncfs(2)` makes all of them durable,
//! and only then are they renamed into the tree in journal order; after the renames, the changed
//! directories are made durable (one `syncfs` when there are more than a few, else an fsync
//! each). So the tree never shows a file whose content is not on disk, and a batch of N files
//! costs two flushes instead of 2N fsyncs. (A file whose content was not foreseen in the first
//! pass, e.g. written again after a delete in the same batch, is written the one-by-one way.)
//!
//! Idempotent: entries at or below the applied position are skipped, and a batch cut short by a
//! crash is applied again over what it had already done (a file already there with the right
//! content is not written again; a file already renamed by a later entry is recognised by its
//! SS-MIX2 version).

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use kizuna_store::journal::Change;
use sha2::{Digest, Sha256};

use crate::BackupError;
use crate::batch::Batch;
use crate::durable::{fsync_dir, mtime_ns, place, stage_unsynced, syncfs, write_file, write_unsynced};
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
    let mut staged = stage_contents(tree, staging, batch, applied)?;
    let result = journal_ahead(journal, batch, applied)
        .and_then(|()| apply_staged(tree, staging, batch, applied, &mut staged));
    // Content staged but not placed: not needed after all (the path changed again later in the
    // batch), or left by a failure; a batch that keeps failing (a full disk) must not pile up
    // temp files with every retry. After a failure, a journalled write's staged file stays: the
    // store's recovery needs it (a retry reuses it; the next start removes what is left).
    for ((_, key), tmp) in staged {
        if result.is_ok() || stage_name(&key).is_none() {
            let _ = std::fs::remove_file(tmp);
        }
    }
    result
}

/// Appends the entries after `applied` to the journal and makes them durable, before the tree.
fn journal_ahead(journal: &mut ReplicaJournal, batch: &Batch, applied: u64) -> Result<(), BackupError> {
    for entry in batch.header.entries.iter().filter(|e| e.seq > applied) {
        journal.append(entry)?;
    }
    journal.sync()
}

/// The store's staged file name of a write, if it is one (the rule of the store's
/// `Tree::staged_path`): the replica stages the write's content under it.
fn stage_name(stage: &str) -> Option<&str> {
    let stem = stage.strip_suffix(".stage")?;
    (!stem.is_empty() && stem.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-')).then_some(stage)
}

/// The key of a journal write's staged content: its staged name, or its sha256 when it has none.
fn write_key(dst: &Path, stage: &str, sha256: &str) -> (PathBuf, String) {
    (dst.to_owned(), stage_name(stage).unwrap_or(sha256).to_owned())
}

/// The ordered pass of [`apply_files`] over content already staged; takes each staged file it
/// places out of `staged`.
fn apply_staged(
    tree: &Path,
    staging: &Path,
    batch: &Batch,
    applied: u64,
    staged: &mut HashMap<(PathBuf, String), PathBuf>,
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
                Change::Write { path, sha256, size, stage } => {
                    let p = TreePath::of_entry(&entry.facility, path)?;
                    let dst = p.under(tree);
                    if !has_content(&dst, sha256, *size)? {
                        // Staged only if not renamed since (checked when staging).
                        if let Some(tmp) = staged.remove(&write_key(&dst, stage, sha256)) {
                            dirs.extend(place(&tmp, &dst)?);
                        } else if renamed_since(&dst, sha256)? {
                            continue;
                        } else {
                            let Some(bytes) = batch.content(sha256) else {
                                tracing::warn!(seq = entry.seq, path = %p, "the primary no longer has this file; not written");
                                continue;
                            };
                            dirs.extend(write_file(staging, &dst, bytes)?);
                        }
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
            kill_point();
        }
    }
    for put in &batch.header.puts {
        let p = TreePath::parse(&put.path)?;
        let dst = p.under(tree);
        if !has_content(&dst, &put.sha256, put.size)? {
            if let Some(tmp) = staged.remove(&(dst.clone(), put.sha256.clone())) {
                dirs.extend(place(&tmp, &dst)?);
            } else {
                let bytes = batch
                    .content(&put.sha256)
                    .ok_or_else(|| BackupError::BadBatch(format!("put {} without its content", put.path)))?;
                dirs.extend(write_file(staging, &dst, bytes)?);
            }
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
    if dirs.len() > FSYNC_DIRS_MAX {
        syncfs(tree)?;
    } else {
        for d in &dirs {
            fsync_dir(d)?;
        }
    }
    Ok(ops)
}

#[cfg(test)]
thread_local! {
    /// Tests: the number of journal changes after which [`kill_point`] stops the process.
    pub static KILL_AFTER_CHANGES: std::cell::Cell<Option<usize>> = const { std::cell::Cell::new(None) };
}

/// Tests: a SIGKILL after a tree change, simulated by a panic (none of what follows runs).
fn kill_point() {
    #[cfg(test)]
    KILL_AFTER_CHANGES.with(|k| match k.get() {
        Some(n) if n <= 1 => {
            k.set(None);
            panic!("simulated kill");
        }
        Some(n) => k.set(Some(n - 1)),
        None => {}
    });
}

/// Up to this many changed directories are fsynced one by one; more take one `syncfs`.
const FSYNC_DIRS_MAX: usize = 4;

/// First pass: every (destination, content) the batch writes that the tree does not hold yet, in
/// a staged file (a journal write's under its staged name, anything else in a temp file), all
/// made durable by one `syncfs`. Keyed by destination and staged name (sha256 for the others).
fn stage_contents(
    tree: &Path,
    staging: &Path,
    batch: &Batch,
    applied: u64,
) -> Result<HashMap<(PathBuf, String), PathBuf>, BackupError> {
    let mut wanted: Vec<((PathBuf, String), &str, u64)> = Vec::new();
    for entry in batch.header.entries.iter().filter(|e| e.seq > applied) {
        for change in &entry.changes {
            if let Change::Write { path, sha256, size, stage } = change {
                let dst = TreePath::of_entry(&entry.facility, path)?.under(tree);
                // Not one a later entry renamed since: recovery would bring it back.
                if !has_content(&dst, sha256, *size)? && !renamed_since(&dst, sha256)? {
                    wanted.push((write_key(&dst, stage, sha256), sha256, *size));
                }
            }
        }
    }
    for put in &batch.header.puts {
        let dst = TreePath::parse(&put.path)?.under(tree);
        if !has_content(&dst, &put.sha256, put.size)? {
            wanted.push(((dst, put.sha256.clone()), &put.sha256, put.size));
        }
    }
    let mut staged = HashMap::new();
    for (key, sha256, size) in wanted {
        if staged.contains_key(&key) {
            continue;
        }
        let Some(bytes) = batch.content(sha256) else { continue };
        let tmp = match stage_name(&key.1) {
            // Already there from an attempt cut short: kept (the journal may name it), else written.
            Some(name) => {
                let at = staging.join(name);
                if !has_content(&at, sha256, size)? {
                    write_unsynced(&at, bytes)?;
                }
                at
            }
            None => stage_unsynced(staging, bytes)?,
        };
        staged.insert(key, tmp);
    }
    if !staged.is_empty()
        && let Err(e) = syncfs(staging)
    {
        for tmp in staged.values() {
            let _ = std::fs::remove_file(tmp);
        }
        return Err(e);
    }
    Ok(staged)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::Builder;
    use kizuna_store::journal::Entry;

    fn sha(b: &[u8]) -> String {
        hex::encode(Sha256::digest(b))
    }

    fn write(path: &str, content: &[u8]) -> Change {
        Change::Write {
            path: path.into(),
            sha256: sha(content),
            size: content.len() as u64,
            stage: String::new(),
        }
    }

    fn entry(seq: u64, changes: Vec<Change>) -> Entry {
        Entry { seq, time: "2026-11-25T00:00:00Z".into(), facility: "F1".into(), site: "s".into(), changes }
    }

    /// Staged writes land in journal order; a path written, deleted and written again in one
    /// batch ends with its last content; no temp file is left; applying again changes nothing.
    #[test]
    fn staged_writes_follow_journal_order_and_reapplying_is_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        let (tree, staging) = (dir.path().join("tree"), dir.path().join("staging"));
        std::fs::create_dir_all(&staging).unwrap();
        let mut journal = ReplicaJournal::open(&dir.path().join("journal")).unwrap();
        let (a, b) = (b"first content".as_slice(), b"second content".as_slice());
        let mut builder = Builder::default();
        builder.add_blob(&sha(a), a);
        builder.add_blob(&sha(b), b);
        builder.header.entries = vec![
            entry(1, vec![write("p/1/x", a), write("p/2/y", a)]),
            entry(2, vec![Change::Delete { path: "p/1/x".into(), sha256: sha(a), size: a.len() as u64 }]),
            entry(3, vec![write("p/1/x", b)]),
            entry(
                4,
                vec![Change::Rename {
                    from: "p/2/y".into(),
                    to: "p/2/z".into(),
                    sha256: sha(a),
                    size: a.len() as u64,
                }],
            ),
        ];
        let batch = Batch::decode(&builder.encode(), 1 << 20).unwrap();
        apply_files(&tree, &staging, &mut journal, &batch, 0).unwrap();
        assert_eq!(std::fs::read(tree.join("F1/p/1/x")).unwrap(), b);
        assert_eq!(std::fs::read(tree.join("F1/p/2/z")).unwrap(), a);
        assert!(!tree.join("F1/p/2/y").exists());
        assert_eq!(std::fs::read_dir(&staging).unwrap().count(), 0, "no temp file left behind");
        // The same batch again (its acknowledgement was lost): same tree, nothing left over.
        let ops = apply_files(&tree, &staging, &mut journal, &batch, 0).unwrap();
        assert_eq!(std::fs::read(tree.join("F1/p/1/x")).unwrap(), b);
        assert_eq!(std::fs::read(tree.join("F1/p/2/z")).unwrap(), a);
        assert_eq!(std::fs::read_dir(&staging).unwrap().count(), 0);
        assert!(ops.iter().any(|o| matches!(o, Op::Upsert { path, .. } if path.as_str() == "F1/p/1/x")));
    }

    /// A batch that fails part way (here a file stands where a folder must go) leaves no staged
    /// temp file behind, so retries against a persistent fault do not fill the disk.
    #[test]
    fn a_failed_batch_leaves_no_temp_files() {
        let dir = tempfile::tempdir().unwrap();
        let (tree, staging) = (dir.path().join("tree"), dir.path().join("staging"));
        std::fs::create_dir_all(tree.join("F1")).unwrap();
        std::fs::create_dir_all(&staging).unwrap();
        std::fs::write(tree.join("F1/p"), b"a file, not a folder").unwrap();
        let mut journal = ReplicaJournal::open(&dir.path().join("journal")).unwrap();
        let (a, b) = (b"first content".as_slice(), b"second content".as_slice());
        let mut builder = Builder::default();
        builder.add_blob(&sha(a), a);
        builder.add_blob(&sha(b), b);
        builder.header.entries = vec![entry(1, vec![write("q/ok", a)]), entry(2, vec![write("p/1/x", b)])];
        let batch = Batch::decode(&builder.encode(), 1 << 20).unwrap();
        for _ in 0..3 {
            assert!(apply_files(&tree, &staging, &mut journal, &batch, 0).is_err());
            assert_eq!(std::fs::read_dir(&staging).unwrap().count(), 0, "no temp file left behind");
        }
    }
}
