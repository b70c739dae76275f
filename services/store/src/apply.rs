//! Carrying out a committed journal entry on the tree: renames, then the staged file moved into
//! place, then fsync of every directory whose entries changed. Used live (strict: the state must be
//! exactly what the plan saw) and by recovery (idempotent: steps already done are skipped).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use ssmix2::StoragePath;

use crate::durable::{create_dirs, fsync_dir};
use crate::journal::{Change, Entry};
use crate::tree::Tree;
use crate::{FacilityId, StoreError};

/// How to treat steps that look already done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Live commit: every step must apply exactly.
    Strict,
    /// Recovery: skip steps whose effect is already there.
    Replay,
}

fn parse(entry: &Entry, p: &str) -> Result<StoragePath, StoreError> {
    StoragePath::parse(p).map_err(|e| {
        StoreError::Recovery(format!("journal entry {}: path {:?}: {e}", entry.seq, p.escape_default()))
    })
}

/// Applies one entry's changes to the tree, collecting the directories to fsync in `dirs`.
pub fn apply_to_tree(
    tree: &Tree,
    entry: &Entry,
    mode: Mode,
    dirs: &mut BTreeSet<PathBuf>,
) -> Result<(), StoreError> {
    let fac = FacilityId::new(&entry.facility)?;
    for change in &entry.changes {
        match change {
            Change::Rename { from, to, .. } => {
                let (from, to) = (parse(entry, from)?, parse(entry, to)?);
                let (src, dst) = (tree.path_of(&fac, &from), tree.path_of(&fac, &to));
                if mode == Mode::Replay && (!src.exists() || dst.exists()) {
                    continue;
                }
                std::fs::rename(&src, &dst).map_err(|e| StoreError::io(&src, e))?;
                dirs.insert(tree.dir_of(&fac, &to));
            }
            Change::Write { path, stage, .. } => {
                let p = parse(entry, path)?;
                let staged = tree.staged_path(stage)?;
                let dst = tree.path_of(&fac, &p);
                if mode == Mode::Replay && !staged.exists() {
                    // Already moved into place (and perhaps renamed since by a later entry).
                    continue;
                }
                if mode == Mode::Replay && dst.exists() {
                    std::fs::remove_file(&staged).map_err(|e| StoreError::io(&staged, e))?;
                    continue;
                }
                let dir = tree.dir_of(&fac, &p);
                dirs.extend(create_dirs(&dir)?);
                // Never over an existing file: the plan saw none there (strict), or the check
                // above found none (replay).
                rename_noreplace(&staged, &dst)?;
                dirs.insert(dir);
            }
            Change::Delete { path, .. } => {
                let p = parse(entry, path)?;
                let dst = tree.path_of(&fac, &p);
                if mode == Mode::Replay && !dst.exists() {
                    continue;
                }
                std::fs::remove_file(&dst).map_err(|e| StoreError::io(&dst, e))?;
                dirs.insert(tree.dir_of(&fac, &p));
            }
        }
    }
    Ok(())
}

/// Renames `src` to `dst`, failing with `AlreadyExists` (naming `dst`) if `dst` exists, in one
/// `renameat2(RENAME_NOREPLACE)` instead of a look and a rename. Filesystems without the flag get
/// the look and the rename.
fn rename_noreplace(src: &Path, dst: &Path) -> Result<(), StoreError> {
    use rustix::fs::{CWD, RenameFlags, renameat_with};
    let exists = || StoreError::io(dst, std::io::Error::from(std::io::ErrorKind::AlreadyExists));
    match renameat_with(CWD, src, CWD, dst, RenameFlags::NOREPLACE) {
        Ok(()) => Ok(()),
        Err(rustix::io::Errno::EXIST) => Err(exists()),
        Err(rustix::io::Errno::INVAL) => {
            if std::fs::symlink_metadata(dst).is_ok() {
                return Err(exists());
            }
            std::fs::rename(src, dst).map_err(|e| StoreError::io(src, e))
        }
        Err(e) => Err(StoreError::io(src, e.into())),
    }
}

/// fsyncs every directory in `dirs` (in parallel).
pub fn sync_dirs(dirs: &BTreeSet<PathBuf>) -> Result<(), StoreError> {
    use rayon::prelude::*;
    dirs.par_iter().try_for_each(|d| fsync_dir(d))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rename_noreplace_never_replaces_a_file() {
        let d = tempfile::tempdir().unwrap();
        let (a, b, c) = (d.path().join("a"), d.path().join("b"), d.path().join("c"));
        std::fs::write(&a, b"new").unwrap();
        std::fs::write(&b, b"stored").unwrap();
        let err = rename_noreplace(&a, &b).unwrap_err().to_string();
        assert!(err.contains(&b.display().to_string()), "{err}");
        assert_eq!(std::fs::read(&b).unwrap(), b"stored");
        assert!(a.exists(), "the source stays when the rename is refused");
        rename_noreplace(&a, &c).unwrap();
        assert_eq!(std::fs::read(&c).unwrap(), b"new");
        assert!(!a.exists());
    }
}
