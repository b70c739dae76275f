//! Walking the export folder: finding the files to take and pruning the folders the agent emptied,
//! in one pass.
//!
//! An SS-MIX2 tree has about 1.3 folders per file (patient, date, data type), and the agent moves
//! every file out. Left alone, the empty folders pile up: each is an inotify watch (a small
//! appliance allows some 10,000; after that the watcher fails and the agent relies on rescans) and
//! an entry in every rescan walk. A folder goes once it is empty and nobody has changed it (its
//! mtime, which moves whenever an entry is added or removed) for the configured grace period.
//!
//! The one race left: an EHR that reuses an old empty folder (`mkdir -p` finds it) and creates its
//! file just after the removal gets ENOENT. The grace period (a day by default) makes that a
//! folder idle for a whole day being reused within microseconds of its removal.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::intake::{is_ignored, stamp_of};
use crate::settle::Stamp;

/// What one walk found and did.
#[derive(Debug, Default)]
pub(crate) struct Walked {
    /// Regular, not-ignored files, with their size and mtime when they could be read.
    pub files: Vec<(PathBuf, Option<Stamp>)>,
    /// Folders that could not be read (`<folder>: <reason>`).
    pub errors: Vec<String>,
    /// What pruning did (nothing when it was off).
    pub pruned: Pruned,
}

/// What pruning did in one walk.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Pruned {
    /// Folders removed.
    pub removed: usize,
    /// Folders that could not be removed, with the reason (e.g. a mount point, EACCES).
    pub errors: Vec<String>,
}

/// Walks `dir` below `root` without following symbolic links. With `prune_cutoff`, it also
/// removes every folder below `root` (never `root` itself) that is empty, or holds only such
/// folders, and whose mtime is not after the cutoff, deepest first. Ignored entries (hidden or
/// temporary names, see [`is_ignored`]) are neither listed nor walked nor removed, and neither is
/// the folder `skip` (the agent's own state folder, should it lie below `root`) with all in it.
pub(crate) fn walk(root: &Path, dir: &Path, prune_cutoff: Option<SystemTime>, skip: Option<&Path>) -> Walked {
    let mut out = Walked::default();
    if skip.is_some_and(|skip| dir.starts_with(skip)) {
        return out;
    }
    visit(root, dir, prune_cutoff, skip, &mut out);
    out
}

/// Walks `dir` and says whether `dir` itself may go: pruning is on, `dir` was idle since the
/// cutoff (its mtime read before this walk removed anything in it) and nothing is left in it.
fn visit(root: &Path, dir: &Path, cutoff: Option<SystemTime>, skip: Option<&Path>, out: &mut Walked) -> bool {
    let idle = cutoff.is_some_and(|cutoff| {
        std::fs::symlink_metadata(dir).is_ok_and(|m| m.is_dir() && m.modified().is_ok_and(|t| t <= cutoff))
    });
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            if e.kind() != std::io::ErrorKind::NotFound {
                out.errors.push(format!("{}: {e}", dir.display()));
            }
            return false;
        }
    };
    let mut left = 0usize;
    for entry in entries {
        let Ok(entry) = entry else {
            left += 1;
            continue;
        };
        let path = entry.path();
        left += 1;
        if is_ignored(path.strip_prefix(root).unwrap_or(&path)) {
            continue;
        }
        // `DirEntry::file_type` does not follow symbolic links.
        match entry.file_type() {
            Ok(t) if t.is_dir() => {
                if skip == Some(path.as_path()) || !visit(root, &path, cutoff, skip, out) {
                    continue;
                }
                match std::fs::remove_dir(&path) {
                    Ok(()) => {
                        out.pruned.removed += 1;
                        left -= 1;
                    }
                    // Gone already: nothing is left of it here either.
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => left -= 1,
                    // Something was created in it since it was read: it stays.
                    Err(e) if e.kind() == std::io::ErrorKind::DirectoryNotEmpty => {}
                    Err(e) => {
                        out.pruned
                            .errors
                            .push(format!("cannot remove the empty folder {}: {e}", path.display()));
                    }
                }
            }
            Ok(t) if t.is_file() => {
                out.files.push((path, entry.metadata().ok().as_ref().and_then(stamp_of)));
            }
            _ => {}
        }
    }
    idle && left == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::{File, FileTimes};
    use std::path::PathBuf;
    use std::time::Duration;

    /// Sets a folder's mtime to `age` ago.
    fn age(dir: &Path, age: Duration) {
        let t = SystemTime::now() - age;
        File::open(dir).unwrap().set_times(FileTimes::new().set_modified(t).set_accessed(t)).unwrap();
    }

    /// Prunes below `root` as a rescan does.
    fn prune_empty_folders(root: &Path, cutoff: SystemTime) -> Pruned {
        walk(root, root, Some(cutoff), None).pruned
    }

    /// Every path below `root`, relative, sorted.
    fn tree(root: &Path) -> Vec<String> {
        fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
            for e in std::fs::read_dir(dir).unwrap().flatten() {
                out.push(e.path().strip_prefix(root).unwrap().display().to_string());
                if e.file_type().unwrap().is_dir() {
                    walk(root, &e.path(), out);
                }
            }
        }
        let mut out = Vec::new();
        walk(root, root, &mut out);
        out.sort();
        out
    }

    /// Makes `rel` below `root` and ages every folder on the way (deepest last, so that making a
    /// child does not refresh a parent aged before it).
    fn old_dirs(root: &Path, rel: &str, how_old: Duration) -> PathBuf {
        let p = root.join(rel);
        std::fs::create_dir_all(&p).unwrap();
        let mut d = p.clone();
        while d != root {
            age(&d, how_old);
            d.pop();
        }
        p
    }

    const DAY: Duration = Duration::from_secs(86_400);

    #[test]
    fn empty_folder_chains_idle_past_the_grace_go_and_the_root_stays() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        old_dirs(root, "000/000/0000000001/20240101/OML-11", 2 * DAY);
        old_dirs(root, "000/000/0000000002/-/ADT-00", 2 * DAY);
        age(root, 2 * DAY);
        let pruned = prune_empty_folders(root, SystemTime::now() - DAY);
        assert_eq!(pruned, Pruned { removed: 8, errors: vec![] });
        assert!(tree(root).is_empty(), "{:?}", tree(root));
        assert!(root.is_dir());
    }

    #[test]
    fn folders_changed_within_the_grace_or_holding_anything_stay() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        // A file, an ignored temp file, a hidden folder, a symlink: each keeps its folder.
        let with_file = old_dirs(root, "a/file", 2 * DAY);
        std::fs::write(with_file.join("x.hl7"), b"x").unwrap();
        let with_temp = old_dirs(root, "a/temp", 2 * DAY);
        std::fs::write(with_temp.join("x.hl7.part"), b"x").unwrap();
        old_dirs(root, "a/hidden/.work", 2 * DAY);
        let outside = tempfile::tempdir().unwrap();
        let with_link = old_dirs(root, "a/link", 2 * DAY);
        std::os::unix::fs::symlink(outside.path(), with_link.join("elsewhere")).unwrap();
        // Emptied an hour ago: within the grace.
        old_dirs(root, "b/recent", Duration::from_secs(3600));
        // Old itself, but its parent changed recently (a sibling came and went).
        let parent = old_dirs(root, "c/old", 2 * DAY).parent().unwrap().to_owned();
        age(&parent, Duration::from_secs(60));
        for d in ["a/file", "a/temp", "a/hidden", "a/link", "a"] {
            age(&root.join(d), 2 * DAY);
        }
        let before = tree(root);
        let pruned = prune_empty_folders(root, SystemTime::now() - DAY);
        // Only c/old goes; c (changed a minute ago, and now by the removal) stays.
        assert_eq!(pruned, Pruned { removed: 1, errors: vec![] });
        let expected: Vec<String> = before.into_iter().filter(|p| p != "c/old").collect();
        assert_eq!(tree(root), expected);
        assert!(outside.path().is_dir());
    }

    #[test]
    fn a_folder_idle_before_a_removal_below_it_goes_in_the_same_walk() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        let leaf = old_dirs(root, "p/q/r", 2 * DAY);
        // The last file left r two days ago; removing r below q must not make q look busy.
        assert_eq!(std::fs::read_dir(&leaf).unwrap().count(), 0);
        let pruned = prune_empty_folders(root, SystemTime::now() - DAY);
        assert_eq!(pruned.removed, 3);
        // A second walk finds nothing more to do.
        assert_eq!(prune_empty_folders(root, SystemTime::now()), Pruned::default());
    }

    #[test]
    fn one_walk_lists_the_files_and_prunes_the_idle_empty_folders() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        let full = old_dirs(root, "000/000/0000000001/20240101/OML-11", 2 * DAY);
        std::fs::write(full.join("a.hl7"), b"x").unwrap();
        std::fs::write(full.join("b.hl7.part"), b"x").unwrap();
        old_dirs(root, "000/000/0000000002/-/ADT-00", 2 * DAY);
        age(&root.join("000/000"), 2 * DAY);
        let walked = walk(root, root, Some(SystemTime::now() - DAY), None);
        let files: Vec<_> = walked.files.iter().map(|(p, s)| (p.clone(), s.is_some())).collect();
        assert_eq!(files, vec![(full.join("a.hl7"), true)]);
        assert_eq!(walked.pruned, Pruned { removed: 3, errors: vec![] });
        assert!(walked.errors.is_empty());
        assert!(full.is_dir());
        assert!(!root.join("000/000/0000000002").exists());
        // Without a cutoff (a walk for a watcher event) nothing is removed.
        old_dirs(root, "000/000/0000000003/-/ADT-00", 2 * DAY);
        let walked = walk(root, root, None, None);
        assert_eq!(walked.pruned, Pruned::default());
        assert!(root.join("000/000/0000000003/-/ADT-00").is_dir());
    }

    /// Defence behind the config check: the agent's own state folder, should it lie below the
    /// export folder, is never listed (its outbox files would be taken for exports) nor pruned.
    #[test]
    fn the_state_folder_below_the_root_is_neither_listed_nor_pruned() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        let export_file = old_dirs(root, "000/000/0000000001/-/ADT-00", 2 * DAY).join("a");
        std::fs::write(&export_file, b"x").unwrap();
        let state = root.join("st");
        std::fs::create_dir_all(state.join("outbox")).unwrap();
        std::fs::write(state.join("outbox/waiting"), b"x").unwrap();
        old_dirs(root, "st/quarantine/empty", 2 * DAY);
        age(&state, 2 * DAY);
        for dir in [root.to_owned(), state.clone(), state.join("outbox")] {
            let walked = walk(root, &dir, Some(SystemTime::now() - DAY), Some(&state));
            let files: Vec<_> = walked.files.into_iter().map(|(p, _)| p).collect();
            let expected = if dir == root { vec![export_file.clone()] } else { vec![] };
            assert_eq!(files, expected, "walking {}", dir.display());
        }
        assert!(state.join("quarantine/empty").is_dir() && state.join("outbox/waiting").is_file());
    }
}
