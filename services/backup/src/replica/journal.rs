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
}

impl ReplicaJournal {
    /// Opens (creating) the journal in `dir`, cutting off a torn frame at its end.
    pub fn open(dir: &Path) -> Result<Self, BackupError> {
        std::fs::create_dir_all(dir).map_err(|e| BackupError::io(dir, e))?;
        let segments = list_segments(dir)?;
        let Some((first, path)) = segments.last().cloned() else {
            let (file, size) = create_segment(dir, 1)?;
            return Ok(Self { dir: dir.to_owned(), file, size, last_seq: 0, dirty: false });
        };
        let mut last = first - 1;
        let (end, tail) = read_frames(&path, 0, |e| {
            last = e.seq;
            Ok(true)
        })?;
        let file = OpenOptions::new().write(true).open(&path).map_err(|e| BackupError::io(&path, e))?;
        let len = file.metadata().map_err(|e| BackupError::io(&path, e))?.len();
        let end = end.max(MAGIC.len() as u64);
        if len > end || tail != Tail::Clean {
            tracing::warn!(segment = %path.display(), dropped = len.saturating_sub(end), "cutting a torn journal tail");
            file.set_len(end).map_err(|e| BackupError::io(&path, e))?;
            file.sync_all().map_err(|e| BackupError::io(&path, e))?;
        }
        let mut j = Self { dir: dir.to_owned(), file, size: end, last_seq: last, dirty: false };
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
        if self.size >= SEGMENT_BYTES {
            self.sync()?;
            let (file, size) = create_segment(&self.dir, entry.seq)?;
            self.file = file;
            self.size = size;
        }
        let mut buf = Vec::new();
        encode_frame(entry, &mut buf);
        self.file.write_all(&buf).map_err(|e| BackupError::io(&self.dir, e))?;
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
