//! The exclusive lock on the audit log's data folder: one writer per `data_dir`.
//!
//! Two audit services on one `data_dir` (`kizuna audit serve` started twice with one config, on
//! different ports) both appended leaf hashes to `leaves.bin` at the places their own trees
//! expected and both wrote checkpoints, so the mirror and the checkpoints no longer matched the
//! database and verify reported tampering that nobody did. [`crate::log::AuditLog::open`] takes
//! this lock before it writes anything and the log keeps it for its lifetime.
//!
//! The lock (crate `kizuna-lockfile`) is the operating system's (`flock(2)`) on
//! `<data_dir>/audit.lock`, so it ends with the process however that ends (exit, crash,
//! SIGKILL): a stale lock file never blocks a start. The holder writes its pid into the file, for
//! the refusal's message only. Readers (`kizuna audit verify`, `kizuna audit search`, the search
//! API's own connection) never take it.

use std::path::Path;

use crate::error::{AuditError, Result};

/// The lock file's name inside the data folder.
pub const LOCK_FILE: &str = "audit.lock";

/// Held while alive; dropping it (or the process ending) releases the data folder.
#[derive(Debug)]
pub struct DataDirLock {
    _lock: kizuna_lockfile::DirLock,
}

impl DataDirLock {
    /// Creates `data_dir` if needed and locks it, or fails at once (never waits) with
    /// [`AuditError::DataDirInUse`] naming the folder and, when it wrote it, the holder's pid.
    pub fn acquire(data_dir: &Path) -> Result<Self> {
        crate::durable::create_dir_all(data_dir)?;
        match kizuna_lockfile::DirLock::try_acquire(data_dir, LOCK_FILE) {
            Ok(lock) => Ok(Self { _lock: lock }),
            Err(kizuna_lockfile::LockError::Held { dir, lock_file, holder }) => {
                Err(AuditError::DataDirInUse { dir, lock_file, holder })
            }
            Err(kizuna_lockfile::LockError::Io { path, source }) => Err(AuditError::io(&path, source)),
        }
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
        let pid = std::process::id();
        assert_eq!(std::fs::read_to_string(data.join(LOCK_FILE)).unwrap(), format!("{pid}\n"));
        let err = DataDirLock::acquire(&data).unwrap_err();
        assert!(matches!(err, AuditError::DataDirInUse { holder: Some(p), .. } if p == pid), "{err:?}");
        let text = err.to_string();
        assert!(text.contains(&format!("data_dir {} is in use", data.display())), "{text}");
        assert!(text.contains(&format!("(pid {pid})")) && text.contains(LOCK_FILE), "{text}");
        drop(first);
        DataDirLock::acquire(&data).expect("free again once dropped");
    }
}
