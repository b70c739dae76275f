//! The exclusive lock on the audit log's data folder: one writer per `data_dir`.
//!
//! Two audit services on one `data_dir` (`kizuna audit serve` started twice with one config, on
//! different ports) both appended leaf hashes to `leaves.bin` at the places their own trees
//! expected and both wrote checkpoints, so the mirror and the checkpoints no longer matched the
//! database and verify reported tampering that nobody did. [`crate::log::AuditLog::open`] takes
//! this lock before it writes anything and the log keeps it for its lifetime.
//!
//! The lock is the operating system's (`flock(2)` through std's `File::try_lock`) on
//! `<data_dir>/audit.lock`, so it ends with the process however that ends (exit, crash,
//! SIGKILL): a stale lock file never blocks a start. The holder writes its pid into the file, for
//! the refusal's message only. Readers (`kizuna audit verify`, `kizuna audit search`, the search
//! API's own connection) never take it.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

use crate::error::{AuditError, Result};

/// The lock file's name inside the data folder.
pub const LOCK_FILE: &str = "audit.lock";

/// Held while alive; dropping it (or the process ending) releases the data folder.
#[derive(Debug)]
pub struct DataDirLock {
    _file: File,
}

impl DataDirLock {
    /// Creates `data_dir` if needed and locks it, or fails at once (never waits) with
    /// [`AuditError::DataDirInUse`] naming the folder and, when it wrote it, the holder's pid.
    pub fn acquire(data_dir: &Path) -> Result<Self> {
        crate::durable::create_dir_all(data_dir)?;
        // Named absolute in messages: a relative data_dir is relative to the service's working
        // directory, which the operator reading the message may not know.
        let data_dir = std::path::absolute(data_dir).unwrap_or_else(|_| data_dir.to_owned());
        let path = data_dir.join(LOCK_FILE);
        let io = |e| AuditError::io(&path, e);
        let mut file =
            OpenOptions::new().read(true).write(true).create(true).truncate(false).open(&path).map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut text = String::new();
                // Best effort: the holder may not have written its pid yet.
                let _ = file.read_to_string(&mut text);
                return Err(AuditError::DataDirInUse {
                    dir: data_dir,
                    lock_file: path.clone(),
                    holder: text.trim().parse().ok(),
                });
            }
            Err(TryLockError::Error(e)) => return Err(io(e)),
        }
        file.set_len(0).map_err(io)?;
        file.seek(SeekFrom::Start(0)).map_err(io)?;
        file.write_all(format!("{}\n", std::process::id()).as_bytes()).map_err(io)?;
        Ok(Self { _file: file })
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
