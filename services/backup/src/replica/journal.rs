//! The replica's copy of the store's change journal, in the store's own format and with the
//! primary's sequence numbers and times, so that a promoted replica's store rebuilds its IndexDB
//! from it exactly as the primary's was built. The store's `Journal` writer numbers and stamps
//! entries itself, so the replica appends frames with `kizuna_store::journal::encode_frame`.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use kizuna_store::journal::{Entry, MAGIC, Tail, encode_frame, list_segments, read_frames, segment_name};

use crate::BackupError;

/// Segments are started past this size.
const SEGMENT_BYTES: u64 = 64 << 20;

/// The open replica journal.
pub struct ReplicaJournal {
    dir: PathBuf,
    file: File,
    size: u64,
    last_seq: u64,
    dirty: bool,
    /// A failed append could not cut its partial frame: refuse appends until reopened (which cuts it).
    torn: bool,
}

impl ReplicaJournal {
    /// Opens (creating) the journal in `dir`, cutting off a torn frame at its end.
    pub fn open(dir: &Path) -> Result<Self, BackupError> {
        std::fs::create_dir_all(dir).map_err(|e| BackupError::io(dir, e))?;
        let segments = list_segments(dir)?;
        let Some((first, path)) = segments.last().cloned() else {
            let (file, size) = create_segment(dir, 1)?;
            return Ok(Self { dir: dir.to_owned(), file, size, last_seq: 0, dirty: false, torn: false });
        };
        let mut last = first - 1;
        let (end, tail) = read_frames(&path, 0, |e| {
            last = e.seq;
            Ok(true)
        })?;
        let mut file = OpenOptions::new().write(true).open(&path).map_err(|e| BackupError::io(&path, e))?;
        let len = file.metadata().map_err(|e| BackupError::io(&path, e))?.len();
        if len < MAGIC.len() as u64 {
            // A header torn at creation: write it whole (`set_len` alone would pad it with zeros).
            tracing::warn!(segment = %path.display(), "completing a torn journal segment header");
            file.set_len(0).map_err(|e| BackupError::io(&path, e))?;
            file.write_all(MAGIC).map_err(|e| BackupError::io(&path, e))?;
            file.sync_all().map_err(|e| BackupError::io(&path, e))?;
        }
        let end = end.max(MAGIC.len() as u64);
        if len > end || tail != Tail::Clean {
            tracing::warn!(segment = %path.display(), dropped = len.saturating_sub(end), "cutting a torn journal tail");
            file.set_len(end).map_err(|e| BackupError::io(&path, e))?;
            file.sync_all().map_err(|e| BackupError::io(&path, e))?;
        }
        let mut j = Self { dir: dir.to_owned(), file, size: end, last_seq: last, dirty: false, torn: false };
        use std::io::Seek;
        j.file.seek(std::io::SeekFrom::Start(end)).map_err(|e| BackupError::io(&path, e))?;
        Ok(j)
    }

    /// The last entry in the journal.
    pub fn last_seq(&self) -> u64 {
        self.last_seq
    }

    /// Appends `entry` unless it is already there; entries must come in order without gaps.
    pub fn append(&mut self, entry: &Entry) -> Result<(), BackupError> {
        if entry.seq <= self.last_seq {
            return Ok(());
        }
        if entry.seq != self.last_seq + 1 {
            return Err(BackupError::Gap { seq: entry.seq, applied: self.last_seq });
        }
        if self.torn {
            let e =
                std::io::Error::other("a partly written frame is at the end; reopen the journal to cut it");
            return Err(BackupError::io(&self.dir, e));
        }
        if self.size >= SEGMENT_BYTES {
            self.sync()?;
            let (file, size) = create_segment(&self.dir, entry.seq)?;
            self.file = file;
            self.size = size;
        }
        let mut buf = Vec::new();
        encode_frame(entry, &mut buf);
        if let Err(e) = self.file.write_all(&buf) {
            // A write cut short (disk full) may leave part of the frame: cut it off and move back, so
            // a retry appends right after the last whole frame.
            use std::io::Seek;
            let undone = self
                .file
                .set_len(self.size)
                .and_then(|()| self.file.seek(std::io::SeekFrom::Start(self.size)));
            if let Err(u) = undone {
                tracing::error!(error = %u, "could not cut a partly written journal frame");
                self.torn = true;
            }
            return Err(BackupError::io(&self.dir, e));
        }
        self.size += buf.len() as u64;
        self.last_seq = entry.seq;
        self.dirty = true;
        Ok(())
    }

    /// Makes everything appended durable.
    pub fn sync(&mut self) -> Result<(), BackupError> {
        if self.dirty {
            self.file.sync_data().map_err(|e| BackupError::io(&self.dir, e))?;
            self.dirty = false;
        }
        Ok(())
    }
}

fn create_segment(dir: &Path, first: u64) -> Result<(File, u64), BackupError> {
    let path = dir.join(segment_name(first));
    let mut f = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(&path)
        .map_err(|e| BackupError::io(&path, e))?;
    f.write_all(MAGIC).map_err(|e| BackupError::io(&path, e))?;
    f.sync_all().map_err(|e| BackupError::io(&path, e))?;
    crate::durable::fsync_dir(dir)?;
    Ok((f, MAGIC.len() as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(seq: u64) -> Entry {
        Entry {
            seq,
            time: "2026-11-25T00:00:00Z".into(),
            facility: "F1".into(),
            site: "s".repeat(200),
            changes: vec![],
        }
    }

    /// Set in the child process of `a_failed_append_leaves_no_partial_frame` (its journal folder).
    const FSIZE_CHILD: &str = "KIZUNA_BACKUP_TEST_FSIZE_CHILD";

    /// A write that fails part-way (here at the file size limit, as on a full disk) leaves no part of
    /// a frame behind: the retry and every later entry survive a reopen.
    #[test]
    fn a_failed_append_leaves_no_partial_frame() {
        if let Ok(dir) = std::env::var(FSIZE_CHILD) {
            return fsize_child(Path::new(&dir));
        }
        let dir = tempfile::tempdir().unwrap();
        // RLIMIT_FSIZE is per process, so the appends run in a child of this test binary, with SIGXFSZ
        // ignored: a write past the limit then writes what fits and fails with EFBIG.
        let out = std::process::Command::new("sh")
            .args(["-c", "trap '' XFSZ; exec \"$0\" \"$@\""])
            .arg(std::env::current_exe().unwrap())
            .args(["--exact", "replica::journal::tests::a_failed_append_leaves_no_partial_frame"])
            .args(["--test-threads=1", "--nocapture"])
            .env(FSIZE_CHILD, dir.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "child: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let j = ReplicaJournal::open(dir.path()).unwrap();
        assert_eq!(j.last_seq(), 3, "every appended entry survives the reopen");
    }

    fn fsize_child(dir: &Path) {
        let pid = std::process::id().to_string();
        let limit = |soft: String| {
            let mut c = std::process::Command::new("prlimit");
            c.args(["--pid", &pid, &format!("--fsize={soft}:")]);
            assert!(c.status().unwrap().success(), "prlimit");
        };
        let mut j = ReplicaJournal::open(dir).unwrap();
        j.append(&entry(1)).unwrap();
        j.sync().unwrap();
        limit(format!("{}", j.size + 10));
        assert!(j.append(&entry(2)).is_err(), "the write past the limit fails");
        limit("unlimited".into());
        j.append(&entry(2)).unwrap();
        j.append(&entry(3)).unwrap();
        j.sync().unwrap();
        assert_eq!(j.last_seq(), 3);
    }

    #[test]
    fn a_segment_with_a_torn_header_starts_again_with_the_magic() {
        let dir = tempfile::tempdir().unwrap();
        let seg = dir.path().join(segment_name(1));
        std::fs::write(&seg, &MAGIC[..3]).unwrap();
        let mut j = ReplicaJournal::open(dir.path()).unwrap();
        j.append(&entry(1)).unwrap();
        j.sync().unwrap();
        drop(j);
        assert_eq!(&std::fs::read(&seg).unwrap()[..MAGIC.len()], MAGIC);
        assert_eq!(ReplicaJournal::open(dir.path()).unwrap().last_seq(), 1);
    }
}
