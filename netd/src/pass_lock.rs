//! Passes that change the kernel or the last good record run one at a time across processes.
//!
//! `netd apply` run by hand while `netd run` is running made two passes at once: both observed
//! the same kernel, both applied their difference (one failing on what the other had just made,
//! and rolling back over it), and both wrote `last-good.json` and its journal, the one whose
//! record was older last. Every pass that may change either (`netd apply`, the daemon's passes,
//! and a failed pass's rollback, which runs inside it) now holds an exclusive lock on
//! `<state_dir>/pass.lock` from before it reads the record until it has written it (or rolled
//! back). A pass that finds the lock held waits for it — `netd apply` is never refused — saying
//! after [`NOTICE_AFTER`] whose pass it waits for, and gives up after [`GIVE_UP_AFTER`] with
//! nothing changed. `netd plan` and `netd status` only observe and never take it.
//!
//! The lock is the operating system's (`flock(2)` through std's `File::try_lock`, tried every
//! [`POLL`] so that the wait is bounded and the runtime keeps serving the status API meanwhile),
//! so it ends with the process however that ends (exit, crash, SIGKILL): a stale lock file never
//! blocks a pass. The holder writes its pid into the file, for the waiting message only.
//!
//! The pass that waited then reads the record the other one wrote: [`crate::state::load`] re-reads
//! the files whenever the inode, size or modification time of the base or the journal changed,
//! which every save changes (a whole save renames a new file into place; a patch appends a line).

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

/// The lock file's name inside the state folder.
pub const LOCK_FILE: &str = "pass.lock";

/// How long a pass waits silently before it logs whose pass it waits for.
pub const NOTICE_AFTER: Duration = Duration::from_secs(1);

/// How long a pass waits at most: a full pass over a thousand peers takes seconds, so a lock
/// held this long belongs to a pass that is stuck (on a wedged netlink request, a hung `nft`).
pub const GIVE_UP_AFTER: Duration = Duration::from_secs(300);

/// How often the lock is tried while another pass holds it.
const POLL: Duration = Duration::from_millis(25);

/// Held for the duration of one pass; dropping it (or the process ending) lets the next one run.
#[derive(Debug)]
pub struct PassLock {
    _file: File,
}

impl PassLock {
    /// Takes the lock at `path` (creating its folder and the file), waiting while another pass
    /// holds it: after [`NOTICE_AFTER`] a warning names the holder's pid, after [`GIVE_UP_AFTER`]
    /// it fails with [`Error::PassBusy`].
    pub async fn acquire(path: &Path) -> Result<Self> {
        Self::acquire_with(path, NOTICE_AFTER, GIVE_UP_AFTER, |holder| {
            tracing::warn!(
                "waiting for another netd pass{} to finish (it holds {}); `netd apply` and `netd run` \
                 take turns",
                holder_text(holder),
                path.display()
            )
        })
        .await
    }

    /// [`PassLock::acquire`] with its times and its notice (called once, with the holder's pid
    /// as the lock file says it) given.
    pub async fn acquire_with(
        path: &Path,
        notice_after: Duration,
        give_up_after: Duration,
        notice: impl FnOnce(Option<u32>),
    ) -> Result<Self> {
        let io = |source| Error::Io { path: path.to_path_buf(), source };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| Error::Io { path: dir.to_path_buf(), source })?;
        }
        let mut file =
            OpenOptions::new().read(true).write(true).create(true).truncate(false).open(path).map_err(io)?;
        let start = Instant::now();
        let mut notice = Some(notice);
        loop {
            match file.try_lock() {
                Ok(()) => break,
                Err(TryLockError::WouldBlock) => {}
                Err(TryLockError::Error(e)) => return Err(io(e)),
            }
            let waited = start.elapsed();
            if waited >= give_up_after {
                return Err(Error::PassBusy {
                    path: path.to_path_buf(),
                    holder: holder(&mut file),
                    secs: waited.as_secs(),
                });
            }
            if waited >= notice_after
                && let Some(n) = notice.take()
            {
                n(holder(&mut file));
            }
            tokio::time::sleep(POLL).await;
        }
        if notice.is_none() {
            tracing::info!(waited_ms = start.elapsed().as_millis() as u64, "the other netd pass finished");
        }
        file.set_len(0).map_err(io)?;
        file.seek(SeekFrom::Start(0)).map_err(io)?;
        file.write_all(format!("{}\n", std::process::id()).as_bytes()).map_err(io)?;
        Ok(Self { _file: file })
    }
}

/// The pid the holder wrote into the lock file (best effort: it may not have written it yet).
fn holder(file: &mut File) -> Option<u32> {
    let mut text = String::new();
    file.seek(SeekFrom::Start(0)).ok()?;
    file.read_to_string(&mut text).ok()?;
    text.trim().parse().ok()
}

/// ` (pid N)`, or nothing when the holder is not known.
pub fn holder_text(holder: Option<u32>) -> String {
    holder.map(|p| format!(" (pid {p})")).unwrap_or_default()
}

/// The lock file of `state_dir`.
pub fn path_in(state_dir: &Path) -> PathBuf {
    state_dir.join(LOCK_FILE)
}

#[cfg(test)]
mod tests;
