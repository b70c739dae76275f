//! Crash-safe output. Every file is written to a temporary name in its folder and renamed into place,
//! so no half-written file is ever visible under its final name. Syncing each of 100,000 files would
//! cost ~0.5 ms apiece here, so the corpus is made durable once at the end with `syncfs`, and
//! `manifest.json` is written last (fsync, rename, directory fsync): a corpus with a manifest is complete.

use std::fs::{self, File};
use std::io::Write;
use std::path::Path;

use crate::SynthError;

/// Writes `bytes` to `path` through a temporary file in the same folder and a rename.
pub fn atomic(path: &Path, bytes: &[u8]) -> Result<(), SynthError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp"));
    let mut f = File::create(&tmp).map_err(|e| SynthError::io(&tmp, e))?;
    f.write_all(bytes).map_err(|e| SynthError::io(&tmp, e))?;
    drop(f);
    fs::rename(&tmp, path).map_err(|e| SynthError::io(path, e))
}

/// Like [`atomic`], and durable before it returns: file fsync, rename, directory fsync.
pub fn durable(path: &Path, bytes: &[u8]) -> Result<(), SynthError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp"));
    let mut f = File::create(&tmp).map_err(|e| SynthError::io(&tmp, e))?;
    f.write_all(bytes).map_err(|e| SynthError::io(&tmp, e))?;
    f.sync_all().map_err(|e| SynthError::io(&tmp, e))?;
    drop(f);
    fs::rename(&tmp, path).map_err(|e| SynthError::io(path, e))?;
    File::open(dir).and_then(|d| d.sync_all()).map_err(|e| SynthError::io(dir, e))
}

/// Flushes the whole filesystem holding `root` to disk.
pub fn sync_filesystem(root: &Path) -> Result<(), SynthError> {
    let d = File::open(root).map_err(|e| SynthError::io(root, e))?;
    rustix::fs::syncfs(&d).map_err(|e| SynthError::io(root, e.into()))
}

/// Creates `dir` and its parents.
pub fn ensure_dir(dir: &Path) -> Result<(), SynthError> {
    fs::create_dir_all(dir).map_err(|e| SynthError::io(dir, e))
}
