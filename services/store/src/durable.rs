//! The few filesystem moves that make writes crash-safe: fsync of files and directories, directory
//! creation whose new entries are made durable, and atomic replacement of small files.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::StoreError;

/// Makes the entries of directory `dir` (creations, renames, removals) durable.
pub fn fsync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(|e| StoreError::io(dir, e))
}

/// Creates `dir` and any missing parents, and returns the parents whose entries changed (to be
/// fsynced before anything below them is relied on), topmost first.
///
/// Tries `mkdir` first and climbs only on `NotFound`: an existing folder costs one failed
/// `mkdir`, a new one below an existing parent one `mkdir`, instead of a `stat` per level.
pub fn create_dirs(dir: &Path) -> Result<Vec<PathBuf>, StoreError> {
    let mut changed = Vec::new();
    create_dirs_into(dir, &mut changed)?;
    Ok(changed)
}

fn create_dirs_into(dir: &Path, changed: &mut Vec<PathBuf>) -> Result<(), StoreError> {
    match std::fs::create_dir(dir) {
        Ok(()) => {}
        // There already (made before, or by another writer in between): nothing changed. (Were
        // it a file, what is put below it fails, naming the path.)
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let parent = dir.parent().filter(|p| !p.as_os_str().is_empty());
            let Some(parent) = parent else { return Err(StoreError::io(dir, e)) };
            create_dirs_into(parent, changed)?;
            match std::fs::create_dir(dir) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(()),
                Err(e) => return Err(StoreError::io(dir, e)),
            }
        }
        Err(e) => return Err(StoreError::io(dir, e)),
    }
    if let Some(p) = dir.parent() {
        changed.push(p.to_owned());
    }
    Ok(())
}

/// Creates `dir` (and parents) and makes the creation durable.
pub fn create_dirs_synced(dir: &Path) -> Result<(), StoreError> {
    for p in create_dirs(dir)? {
        fsync_dir(&p)?;
    }
    Ok(())
}

/// Replaces the small file `path` atomically: temp file, fsync (when `sync`), rename, fsync dir.
pub fn replace_file(path: &Path, bytes: &[u8], sync: bool) -> Result<(), StoreError> {
    let tmp = path.with_extension("tmp");
    let mut f = File::create(&tmp).map_err(|e| StoreError::io(&tmp, e))?;
    f.write_all(bytes).map_err(|e| StoreError::io(&tmp, e))?;
    if sync {
        f.sync_all().map_err(|e| StoreError::io(&tmp, e))?;
    }
    std::fs::rename(&tmp, path).map_err(|e| StoreError::io(path, e))?;
    if sync && let Some(dir) = path.parent() {
        fsync_dir(dir)?;
    }
    Ok(())
}

/// Flushes the whole filesystem holding `path` (`syncfs(2)`): one call makes every file and
/// directory entry written so far durable.
pub fn syncfs(path: &Path) -> Result<(), StoreError> {
    let f = File::open(path).map_err(|e| StoreError::io(path, e))?;
    rustix::fs::syncfs(&f).map_err(|e| StoreError::io(path, e.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_dirs_reports_each_parent_whose_entries_changed_topmost_first() {
        let d = tempfile::tempdir().unwrap();
        let top = d.path().join("a");
        std::fs::create_dir(&top).unwrap();
        let deep = top.join("b").join("c");
        assert_eq!(create_dirs(&deep).unwrap(), vec![top.clone(), top.join("b")]);
        assert!(deep.is_dir());
        // Already there: nothing changed, nothing to fsync.
        assert_eq!(create_dirs(&deep).unwrap(), Vec::<PathBuf>::new());
        assert_eq!(create_dirs(&top.join("b").join("e")).unwrap(), vec![top.join("b")]);
        // Below a file: the error names the path.
        std::fs::write(top.join("f"), b"x").unwrap();
        let err = create_dirs(&top.join("f").join("g")).unwrap_err().to_string();
        assert!(err.contains("f/g") || err.contains("/f"), "{err}");
    }
}
