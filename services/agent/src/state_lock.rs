//! The exclusive lock on an agent's state folder: one agent uses a `state_dir` at a time.
//!
//! Two agents on one state folder (a `kizuna-agent run` started by hand beside the one netd
//! hosts, or two units given the same config) both uploaded the same outbox, both deleted its
//! files once acknowledged (one of them deleting what the other was still sending), and both
//! rewrote the cursor files and the daily log. [`crate::Agent::new`] now takes this lock before
//! it writes anything below `state_dir` and the agent keeps it until [`crate::Agent::run`] ends.
//!
//! The lock (crate `kizuna-lockfile`) is the operating system's (`flock(2)`) on
//! `<state_dir>/agent.lock`, so it ends with the process however that ends (exit, crash,
//! SIGKILL): a stale lock file never blocks a start. The holder writes its pid into the file,
//! for the refusal's message only. `kizuna-agent status` only reads the folder and never takes
//! it.

use std::path::Path;

use crate::AgentError;

/// The lock file's name inside the state folder.
pub const LOCK_FILE: &str = "agent.lock";

/// Held while alive; dropping it (or the process ending) releases the state folder.
#[derive(Debug)]
pub struct StateDirLock {
    _lock: kizuna_lockfile::DirLock,
}

impl StateDirLock {
    /// Creates `state_dir` if needed and locks it, or fails at once (never waits) with
    /// [`AgentError::StateDirInUse`] naming the folder and, when it wrote it, the holder's pid.
    pub fn acquire(state_dir: &Path) -> Result<Self, AgentError> {
        crate::durable::create_dir_all_synced(state_dir)
            .map_err(|e| AgentError::folder("state_dir", state_dir, e))?;
        match kizuna_lockfile::DirLock::try_acquire(state_dir, LOCK_FILE) {
            Ok(lock) => Ok(Self { _lock: lock }),
            Err(kizuna_lockfile::LockError::Held { dir, lock_file, holder }) => {
                Err(AgentError::StateDirInUse { dir, lock_file, holder })
            }
            Err(kizuna_lockfile::LockError::Io { path, source }) => Err(AgentError::io(&path, source)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_fails_at_once_naming_the_folder_and_the_holder_until_the_first_is_dropped() {
        let d = tempfile::tempdir().unwrap();
        let state = d.path().join("new").join("state");
        let first = StateDirLock::acquire(&state).unwrap();
        let pid = std::process::id();
        assert_eq!(std::fs::read_to_string(state.join(LOCK_FILE)).unwrap(), format!("{pid}\n"));
        let err = StateDirLock::acquire(&state).unwrap_err();
        assert!(matches!(err, AgentError::StateDirInUse { holder: Some(p), .. } if p == pid), "{err:?}");
        let text = err.to_string();
        assert!(text.contains(&format!("state_dir {} is in use", state.display())), "{text}");
        assert!(text.contains(&format!("(pid {pid})")) && text.contains(LOCK_FILE), "{text}");
        drop(first);
        StateDirLock::acquire(&state).expect("free again once dropped");
    }
}
