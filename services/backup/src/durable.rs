//! Crash-safe writes on the replica: temp file, fsync, rename, fsync of the directory; and the
//! batched form used when a batch holds many files: temp files written without fsync, one
//! `syncfs(2)` for all of them, then the renames, then one more `syncfs` for the directory entries. Also [`write_new`], for the new files the commands
//! make (tokens, certificates and keys).

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::BackupError;

/// Makes the entries of directory `dir` durable.
pub fn fsync_dir(dir: &Path) -> Result<(), BackupError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(|e| BackupError::io(dir, e))
}

/// Writes a new file with `mode` (an existing one is never replaced: `create_new`), fsynced, and
/// its folder's entry too: secrets and certificates the commands make.
pub fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<(), BackupError> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(|e| BackupError::io(path, e))?;
    f.write_all(bytes).and_then(|_| f.sync_all()).map_err(|e| BackupError::io(path, e))?;
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    fsync_dir(dir)
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// Flushes the whole filesystem holding `path` (`syncfs(2)`): every file and directory entry
/// written before the call is durable when it returns, in one call instead of one per file.
pub fn syncfs(path: &Path) -> Result<(), BackupError> {
    let f = File::open(path).map_err(|e| BackupError::io(path, e))?;
    rustix::fs::syncfs(&f).map_err(|e| BackupError::io(path, std::io::Error::from(e)))
}

/// A fresh temp file name in `staging`.
fn temp_name(staging: &Path) -> PathBuf {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    staging.join(format!("{:x}-{n:x}.backup-tmp", std::process::id()))
}

/// Writes `bytes` to a new temp file in `staging` without syncing it; the caller makes it
/// durable (with [`syncfs`]) before renaming it anywhere.
pub fn stage_unsynced(staging: &Path, bytes: &[u8]) -> Result<PathBuf, BackupError> {
    let tmp = temp_name(staging);
    write_unsynced(&tmp, bytes)?;
    Ok(tmp)
}

/// Writes `bytes` to the file `path` (created or truncated) without syncing it.
pub fn write_unsynced(path: &Path, bytes: &[u8]) -> Result<(), BackupError> {
    let mut f = File::create(path).map_err(|e| BackupError::io(path, e))?;
    f.write_all(bytes).map_err(|e| BackupError::io(path, e))
}

/// Renames the durable temp file `tmp` to `dst`, creating missing parents; returns the
/// directories whose entries changed.
pub fn place(tmp: &Path, dst: &Path) -> Result<Vec<PathBuf>, BackupError> {
    let mut changed = create_dirs(dst.parent().expect("a file path has a parent"))?;
    std::fs::rename(tmp, dst).map_err(|e| BackupError::io(dst, e))?;
    changed.push(dst.parent().expect("parent").to_owned());
    Ok(changed)
}

/// Writes `bytes` to `dst` atomically: a temp file in `staging` (same filesystem) is written and
/// fsynced, then renamed over `dst`. Creates missing parents; returns the directories whose entries
/// changed (the caller fsyncs them before acknowledging).
pub fn write_file(staging: &Path, dst: &Path, bytes: &[u8]) -> Result<Vec<PathBuf>, BackupError> {
    let tmp = temp_name(staging);
    let mut f = File::create(&tmp).map_err(|e| BackupError::io(&tmp, e))?;
    f.write_all(bytes).and_then(|_| f.sync_data()).map_err(|e| BackupError::io(&tmp, e))?;
    drop(f);
    let mut changed = create_dirs(dst.parent().expect("a file path has a parent"))?;
    std::fs::rename(&tmp, dst).map_err(|e| BackupError::io(dst, e))?;
    changed.push(dst.parent().expect("parent").to_owned());
    Ok(changed)
}

/// Creates `dir` and missing parents; returns the parents whose entries changed.
pub fn create_dirs(dir: &Path) -> Result<Vec<PathBuf>, BackupError> {
    let mut missing = Vec::new();
    let mut at = dir;
    while !at.is_dir() {
        missing.push(at.to_owned());
        match at.parent() {
            Some(p) => at = p,
            None => break,
        }
    }
    let mut changed = Vec::new();
    for d in missing.iter().rev() {
        match std::fs::create_dir(d) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(BackupError::io(d, e)),
        }
        if let Some(p) = d.parent() {
            changed.push(p.to_owned());
        }
    }
    Ok(changed)
}

/// Replaces a small file atomically and durably (cursors, markers).
pub fn replace_file(path: &Path, bytes: &[u8]) -> Result<(), BackupError> {
    let tmp = path.with_extension("tmp");
    let mut f = File::create(&tmp).map_err(|e| BackupError::io(&tmp, e))?;
    f.write_all(bytes).and_then(|_| f.sync_all()).map_err(|e| BackupError::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| BackupError::io(path, e))?;
    fsync_dir(path.parent().unwrap_or(Path::new(".")))
}

/// Modification time of a file in ns since the epoch.
pub fn mtime_ns(meta: &std::fs::Metadata) -> i64 {
    use std::os::unix::fs::MetadataExt;
    meta.mtime() * 1_000_000_000 + meta.mtime_nsec()
}
