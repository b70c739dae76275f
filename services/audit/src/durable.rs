//! Crash-safe file writes: temp file, fsync, rename, fsync of the directory; and fsynced appends.

use crate::error::{AuditError, Result};
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::Path;

/// Fsync a directory so a rename or create inside it survives a crash.
pub fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(|e| AuditError::io(dir, e))
}

/// Create `dir` and its parents, syncing each parent.
pub fn create_dir_all(dir: &Path) -> Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    fs::create_dir_all(dir).map_err(|e| AuditError::io(dir, e))?;
    if let Some(p) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        sync_dir(p)?;
    }
    Ok(())
}

/// Replace `path` with `bytes` atomically: readers see the old or the new file, never half of one.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let mut f = File::create(&tmp).map_err(|e| AuditError::io(&tmp, e))?;
    f.write_all(bytes).and_then(|_| f.sync_all()).map_err(|e| AuditError::io(&tmp, e))?;
    drop(f);
    fs::rename(&tmp, path).map_err(|e| AuditError::io(path, e))?;
    sync_dir(dir)
}

/// Write `bytes` at `offset` of `path` (creating it), first cutting the file to `offset` (whatever
/// a failed earlier write left past it goes), and fsync.
pub fn write_at_synced(path: &Path, offset: u64, bytes: &[u8]) -> Result<()> {
    use std::os::unix::fs::FileExt;
    let f = OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(false)
        .open(path)
        .map_err(|e| AuditError::io(path, e))?;
    f.set_len(offset)
        .and_then(|()| f.write_all_at(bytes, offset))
        .and_then(|()| f.sync_data())
        .map_err(|e| AuditError::io(path, e))
}

/// Append `bytes` to `path` (creating it) and fsync.
pub fn append_synced(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut f =
        OpenOptions::new().create(true).append(true).open(path).map_err(|e| AuditError::io(path, e))?;
    f.write_all(bytes).and_then(|_| f.sync_data()).map_err(|e| AuditError::io(path, e))
}
