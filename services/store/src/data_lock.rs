//! The exclusive lock on a store's data folder: one process writes a `data_dir` at a time.
//!
//! Two stores on one `data_dir` (started on different ports) both appended to the newest journal
//! segment; their frames interleaved, and the next start cut the journal off at the first broken
//! frame, dropping entries whose uploads had been acknowledged. Whatever writes the journal, the
//! tree or the staging folder holds a [`DataDirLock`] first: [`crate::Store::open`] takes it and
//! keeps it for the store's lifetime; [`crate::journal::Journal::open`] and
//! [`crate::recover::recover`] ask for it as proof.
//!
//! The lock (crate `kizuna-lockfile`) is the operating system's (`flock(2)`) on
//! `<data_dir>/store.lock`, so it ends with the process however that ends (exit, crash, SIGKILL):
//! a stale lock file never blocks a start. The holder writes its pid into the file, for the
//! refusal's message only. Readers (the viewer, the admin screen, `kizuna site …`, the backup
//! following the journal) open the IndexDB or read the journal and never take it.

use std::path::Path;

use crate::StoreError;
use crate::durable::create_dirs_synced;

/// The lock file's name inside the data folder.
pub const LOCK_FILE: &str = "store.lock";

/// Held while alive; dropping it (or the process ending) releases the data folder.
#[derive(Debug)]
pub struct DataDirLock {
    lock: kizuna_lockfile::DirLock,
}

impl DataDirLock {
    /// Creates `data_dir` if needed and locks it, or fails at once (never waits) with
    /// [`StoreError::DataDirInUse`] naming the folder and, when it wrote it, the holder's pid.
    pub fn acquire(data_dir: &Path) -> Result<Self, StoreError> {
        create_dirs_synced(data_dir)?;
        match kizuna_lockfile::DirLock::try_acquire(data_dir, LOCK_FILE) {
            Ok(lock) => Ok(Self { lock }),
            Err(kizuna_lockfile::LockError::Held { dir, lock_file, holder }) => {
                Err(StoreError::DataDirInUse { dir, lock_file, holder })
            }
            Err(kizuna_lockfile::LockError::Io { path, source }) => Err(StoreError::io(&path, source)),
        }
    }

    /// The locked data folder.
    pub fn dir(&self) -> &Path {
        self.lock.dir()
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
