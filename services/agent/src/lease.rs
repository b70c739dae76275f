//! Is another process writing this file? Asked before taking a file that was found by a rescan
//! (also every file at start-up) or renamed into place, where no close-after-write was seen.
//!
//! On Linux the answer comes from a read lease: `fcntl(F_SETLEASE, F_RDLCK)` on a read-only
//! descriptor fails with `EAGAIN` while any process (this one included) has the file open for
//! writing. The lease is released at once. Where it cannot be taken for another reason (not the
//! file's owner and without `CAP_LEASE`, a filesystem without leases such as NFS, CIFS or FUSE,
//! `fs.leases-enable = 0`) the answer is [`Writers::Unknown`] and the caller relies on the
//! two-stats rule of `crate::settle` alone: unchanged size, mtime and inode over `settle_ms`.
//!
//! Holding a lease makes another process's open for writing break it, which signals the holder
//! (`SIGIO` by default, whose default action ends the process). Before taking the lease the
//! descriptor's signal is therefore set to `SIGURG` (`F_SETSIG`), whose default action is to
//! ignore it: a writer that opens the file in the microseconds the lease is held waits for its
//! release and nothing else happens.

use std::fs::File;

/// What the lease said about other writers.
#[derive(Debug)]
pub enum Writers {
    /// Nobody has the file open for writing.
    None,
    /// Some process has the file open for writing: do not take it yet.
    Some,
    /// The lease could not be taken for another reason (the error says which): unknown.
    Unknown(std::io::Error),
}

/// Asks whether any process has `file` (opened read-only) open for writing. Costs three `fcntl`
/// calls on the descriptor the caller reads the file through.
#[cfg(target_os = "linux")]
pub fn writers(file: &File) -> Writers {
    use nix::libc;
    use std::os::fd::AsRawFd;
    /// `F_SETSIG` (Linux, all architectures but PA-RISC; not exported by `libc` for them).
    const F_SETSIG: libc::c_int = 10;
    let fd = file.as_raw_fd();
    // SAFETY: `fcntl` with integer arguments on a descriptor `file` keeps open for this call; no
    // memory is passed to the kernel.
    unsafe {
        if libc::fcntl(fd, F_SETSIG, libc::SIGURG) == -1 {
            return Writers::Unknown(std::io::Error::last_os_error());
        }
        if libc::fcntl(fd, libc::F_SETLEASE, libc::F_RDLCK) == -1 {
            let e = std::io::Error::last_os_error();
            return match e.raw_os_error() {
                Some(libc::EAGAIN | libc::EBUSY) => Writers::Some,
                _ => Writers::Unknown(e),
            };
        }
        libc::fcntl(fd, libc::F_SETLEASE, libc::F_UNLCK);
    }
    Writers::None
}

/// Without leases: unknown, so the two-stats rule decides.
#[cfg(not(target_os = "linux"))]
pub fn writers(_file: &File) -> Writers {
    Writers::Unknown(std::io::Error::from(std::io::ErrorKind::Unsupported))
}

/// Logs once per process that leases are unavailable (the two-stats rule decides alone), naming
/// the first file and error.
pub fn note_unknown(shown: &str, e: &std::io::Error) {
    static NOTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if !NOTED.swap(true, std::sync::atomic::Ordering::Relaxed) {
        tracing::info!(
            "cannot take a read lease on {shown} ({e}); whether another process still writes files found \
             by a rescan is judged by size, mtime and inode unchanged for settle_ms alone"
        );
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn a_file_open_for_writing_has_writers_and_none_once_closed() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f");
        let mut w = File::create(&p).unwrap();
        w.write_all(b"part").unwrap();
        let r = File::open(&p).unwrap();
        match writers(&r) {
            Writers::Some => {}
            other => panic!("open for writing, yet {other:?}"),
        }
        drop(w);
        match writers(&r) {
            Writers::None => {}
            // Without CAP_LEASE on a file owned by someone else (not the case here) or leases off.
            Writers::Unknown(e) => eprintln!("leases unavailable here: {e}"),
            Writers::Some => panic!("closed, yet writers"),
        }
        // The lease was released: opening for writing does not wait for a lease break.
        let started = std::time::Instant::now();
        drop(std::fs::OpenOptions::new().append(true).open(&p).unwrap());
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
        drop(r);
    }
}
