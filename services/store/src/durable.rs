//! The few filesystem moves that make writes crash-safe: fsync of files and directories, directory
//! creation whose new entries are made durable, and atomic replacement of small files.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex};

use crate::StoreError;

/// Makes the entries of directory `dir` (creations, renames, removals) durable.
/// An empty path (the parent of a plain relative name) is the current directory.
pub fn fsync_dir(dir: &Path) -> Result<(), StoreError> {
    let dir = if dir.as_os_str().is_empty() { Path::new(".") } else { dir };
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
            // Nothing to climb to (the root, or a relative name whose parent, the current
            // directory, is gone): the error names the path.
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
    changed.push(parent_of(dir).to_owned());
    Ok(())
}

/// The folder holding `path`: for a plain relative name (`d`, `d/`), whose `Path::parent` is the
/// empty path, the current directory `.` (an empty path cannot be opened or fsynced; a relative
/// `data_dir: d` failed with "store: : No such file or directory").
fn parent_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        // `/` (no parent) holds itself; a relative name lives in the current directory.
        None if path.has_root() => path,
        _ => Path::new("."),
    }
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
    if sync {
        fsync_dir(parent_of(path))?;
    }
    Ok(())
}

/// Flushes the whole filesystem holding `path` (`syncfs(2)`): one call makes every file and
/// directory entry written so far durable.
pub fn syncfs(path: &Path) -> Result<(), StoreError> {
    let f = File::open(path).map_err(|e| StoreError::io(path, e))?;
    rustix::fs::syncfs(&f).map_err(|e| StoreError::io(path, e.into()))
}

/// `syncfs(2)` shared by concurrent callers (group commit): each caller needs a flush that started
/// after its call (one already running may have missed its writes); whoever finds none running
/// starts one, and every caller waiting then is answered by it. Concurrent batches thus share one
/// flush, a disk cache flush included, instead of queueing one each.
#[derive(Debug)]
pub struct SharedSyncfs {
    path: PathBuf,
    state: Mutex<FlushState>,
    finished: Condvar,
}

#[derive(Debug, Default)]
struct FlushState {
    /// Flushes started and finished so far (each numbered by `started` when it starts).
    started: u64,
    finished: u64,
    running: bool,
    /// The error of the last finished flush, if it failed.
    failed: Option<(std::io::ErrorKind, String)>,
}

impl SharedSyncfs {
    /// Flushes the filesystem holding `path`.
    pub fn new(path: &Path) -> Self {
        Self { path: path.to_owned(), state: Mutex::default(), finished: Condvar::new() }
    }

    /// Returns once a flush that started after this call has finished (blocking).
    pub fn flush(&self) -> Result<(), StoreError> {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let need = s.started + 1;
        loop {
            if s.finished >= need {
                // The last finished flush started after this call too.
                return match &s.failed {
                    None => Ok(()),
                    Some((kind, msg)) => {
                        Err(StoreError::io(&self.path, std::io::Error::new(*kind, msg.clone())))
                    }
                };
            }
            if !s.running {
                s.running = true;
                s.started += 1;
                let number = s.started;
                drop(s);
                let result = syncfs(&self.path);
                let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
                s.running = false;
                s.finished = number;
                s.failed = result.as_ref().err().map(|e| match e {
                    StoreError::Io { source, .. } => (source.kind(), source.to_string()),
                    other => (std::io::ErrorKind::Other, other.to_string()),
                });
                self.finished.notify_all();
                return result;
            }
            s = self.finished.wait(s).unwrap_or_else(|p| p.into_inner());
        }
    }

    /// Flushes started so far.
    pub fn flushes(&self) -> u64 {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).started
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sequential callers each get a flush of their own (one running at the call may have missed
    /// their writes); callers arriving together share flushes; a failure reaches every caller
    /// that shared it, naming the path.
    #[test]
    fn shared_syncfs_flushes_after_each_call_and_shares_concurrent_ones() {
        let d = tempfile::tempdir().unwrap();
        let group = SharedSyncfs::new(d.path());
        for n in 1..=3 {
            group.flush().unwrap();
            assert_eq!(group.flushes(), n);
        }
        // Dirty data makes each flush take a while; 16 callers released at once.
        std::fs::write(d.path().join("dirty"), vec![7u8; 16 << 20]).unwrap();
        let group = std::sync::Arc::new(SharedSyncfs::new(d.path()));
        let gate = std::sync::Arc::new(std::sync::Barrier::new(16));
        let callers: Vec<_> = (0..16)
            .map(|_| {
                let (group, gate) = (group.clone(), gate.clone());
                std::thread::spawn(move || {
                    gate.wait();
                    group.flush()
                })
            })
            .collect();
        for c in callers {
            c.join().unwrap().unwrap();
        }
        assert!(group.flushes() < 16, "16 callers at once made {} flushes", group.flushes());

        let gone = SharedSyncfs::new(&d.path().join("gone"));
        let err = gone.flush().unwrap_err().to_string();
        assert!(err.contains("gone"), "{err}");
    }

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

    #[test]
    fn the_parent_of_a_plain_relative_name_is_the_current_directory() {
        // `data_dir: d` or `d/`: its parent was the empty path, which cannot be fsynced.
        assert_eq!(parent_of(Path::new("d")), Path::new("."));
        assert_eq!(parent_of(Path::new("d/")), Path::new("."));
        assert_eq!(parent_of(Path::new("d/tree")), Path::new("d"));
        assert_eq!(parent_of(Path::new("/srv")), Path::new("/"));
        assert_eq!(parent_of(Path::new("/")), Path::new("/"));
        fsync_dir(Path::new("")).expect("the empty path is the current directory");
    }
}
