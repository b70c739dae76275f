//! The exclusive lock on a store's data folder: one process writes a `data_dir` at a time.
//!
//! Two stores on one `data_dir` (started on different ports) both appended to the newest journal
//! segment; their frames interleaved, and the next start cut the journal off at the first broken
//! frame, dropping entries whose uploads had been acknowledged. Whatever writes the journal, the
//! tree or the staging folder holds a [`DataDirLock`] first: [`crate::Store::open`] takes it and
//! keeps it for the store's lifetime; [`crate::journal::Journal::open`] and
//! [`crate::recover::recover`] ask for it as proof.
//!
//! The lock is the operating system's (`flock(2)` through std's `File::try_lock`) on
//! `<data_dir>/store.lock`, so it ends with the process however that ends (exit, crash, SIGKILL):
//! a stale lock file never blocks a start. The holder writes its pid into the file, for the
//! refusal's message only. Readers (the viewer, the admin screen, `kizuna site …`, the backup
//! following the journal) open the IndexDB or read the journal and never take it.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::StoreError;
use crate::durable::create_dirs_synced;

/// The lock file's name inside the data folder.
pub const LOCK_FILE: &str = "store.lock";

/// Held while alive; dropping it (or the process ending) releases the data folder.
#[derive(Debug)]
pub struct DataDirLock {
    dir: PathBuf,
    _file: File,
}

impl DataDirLock {
    /// Creates `data_dir` if needed and locks it, or fails at once (never waits) with
    /// [`StoreError::DataDirInUse`] naming the folder and, when it wrote it, the holder's pid.
    pub fn acquire(data_dir: &Path) -> Result<Self, StoreError> {
        create_dirs_synced(data_dir)?;
        // Named absolute in messages: a relative data_dir is relative to the store's working
        // directory, which the operator reading the message may not know.
        let data_dir = &std::path::absolute(data_dir).unwrap_or_else(|_| data_dir.to_owned());
        let path = data_dir.join(LOCK_FILE);
        let io = |e| StoreError::io(&path, e);
        let mut file =
            OpenOptions::new().read(true).write(true).create(true).truncate(false).open(&path).map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut text = String::new();
                // Best effort: the holder may not have written its pid yet.
                let _ = file.read_to_string(&mut text);
                return Err(StoreError::DataDirInUse {
                    dir: data_dir.to_owned(),
                    lock_file: path.clone(),
                    holder: text.trim().parse().ok(),
                });
            }
            Err(TryLockError::Error(e)) => return Err(io(e)),
        }
        file.set_len(0).map_err(io)?;
        file.seek(SeekFrom::Start(0)).map_err(io)?;
        file.write_all(format!("{}\n", std::process::id()).as_bytes()).map_err(io)?;
        Ok(Self { dir: data_dir.to_owned(), _file: file })
    }

    /// The locked data folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_fails_at_once_naming_the_folder_and_the_holder_until_the_first_is_dropped() {
        let d = tempfile::tempdir().unwrap();
        let data = d.path().join("new").join("data");
        let first = DataDirLock::acquire(&data).unwrap();
        assert_eq!(first.dir(), data);
        let pid = std::process::id();
        assert_eq!(std::fs::read_to_string(data.join(LOCK_FILE)).unwrap(), format!("{pid}\n"));
        let err = DataDirLock::acquire(&data).unwrap_err();
        assert!(matches!(err, StoreError::DataDirInUse { holder: Some(p), .. } if p == pid), "{err:?}");
        let text = err.to_string();
        assert!(text.contains(&data.display().to_string()), "{text}");
        assert!(text.contains(&format!("pid {pid}")), "{text}");
        drop(first);
        DataDirLock::acquire(&data).expect("free again once dropped");
    }
}
