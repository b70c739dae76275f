//! One writer per folder: an exclusive lock on a file in it.
//!
//! Two stores on one `data_dir` corrupted its journal; two agents on one `state_dir` deleted
//! each other's queued files; two audit services on one `data_dir` interleaved the leaf mirror;
//! two backup followers shipped every batch twice. Each of them now holds a [`DirLock`] on a file
//! in its folder (`store.lock`, `agent.lock`, `audit.lock`, `follow.lock`) for its lifetime and
//! refuses to start when another process holds it, naming that process.
//!
//! The lock is the operating system's (`flock(2)` through std's `File::try_lock`), so it ends
//! with the process however that ends (exit, crash, SIGKILL): a stale lock file never blocks a
//! start. The holder writes its pid into the file, for the refusal's message only. Readers never
//! take it. netd's pass lock waits instead of refusing and stays in netd.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// Why a folder could not be locked.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another process (or another handle in this one) holds the lock.
    #[error("{} is locked by {}", lock_file.display(), holder.map_or("another process".to_owned(), |p| format!("pid {p}")))]
    Held {
        /// The folder, absolute.
        dir: PathBuf,
        lock_file: PathBuf,
        /// The holder's pid, when it had written it.
        holder: Option<u32>,
    },
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
}

/// Held while alive; dropping it (or the process ending) releases the folder.
#[derive(Debug)]
pub struct DirLock {
    dir: PathBuf,
    _file: File,
}

impl DirLock {
    /// Locks `dir/name`, creating the file (not the folder: callers make it durably their own
    /// way), or fails at once, never waiting. The folder is named absolute in errors: a relative
    /// one is relative to the process's working directory, which the operator may not know.
    pub fn try_acquire(dir: &Path, name: &str) -> Result<Self, LockError> {
        let dir = std::path::absolute(dir).unwrap_or_else(|_| dir.to_owned());
        let path = dir.join(name);
        let io = |source| LockError::Io { path: path.clone(), source };
        let mut file =
            OpenOptions::new().read(true).write(true).create(true).truncate(false).open(&path).map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut text = String::new();
                // Best effort: the holder may not have written its pid yet.
                let _ = file.read_to_string(&mut text);
                return Err(LockError::Held {
                    dir,
                    lock_file: path.clone(),
                    holder: text.trim().parse().ok(),
                });
            }
            Err(TryLockError::Error(e)) => return Err(io(e)),
        }
        file.set_len(0).map_err(io)?;
        file.seek(SeekFrom::Start(0)).map_err(io)?;
        file.write_all(format!("{}\n", std::process::id()).as_bytes()).map_err(io)?;
        Ok(Self { dir, _file: file })
    }

    /// The locked folder, absolute.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_fails_at_once_naming_the_holder_until_the_first_is_dropped() {
        let d = tempfile::tempdir().unwrap();
        let first = DirLock::try_acquire(d.path(), "x.lock").unwrap();
        assert_eq!(first.dir(), d.path());
        let pid = std::process::id();
        assert_eq!(std::fs::read_to_string(d.path().join("x.lock")).unwrap(), format!("{pid}\n"));
        match DirLock::try_acquire(d.path(), "x.lock") {
            Err(LockError::Held { dir, lock_file, holder }) => {
                assert_eq!((dir.as_path(), holder), (d.path(), Some(pid)));
                assert_eq!(lock_file, d.path().join("x.lock"));
            }
            other => panic!("{other:?}"),
        }
        // Another name in the same folder is another lock.
        DirLock::try_acquire(d.path(), "y.lock").unwrap();
        drop(first);
        DirLock::try_acquire(d.path(), "x.lock").expect("free again once dropped");
    }

    #[test]
    fn a_folder_that_is_not_there_is_an_io_error_naming_the_file() {
        let d = tempfile::tempdir().unwrap();
        let missing = d.path().join("missing");
        match DirLock::try_acquire(&missing, "x.lock") {
            Err(e @ LockError::Io { .. }) => assert!(e.to_string().contains("missing/x.lock"), "{e}"),
            other => panic!("{other:?}"),
        }
    }
}
