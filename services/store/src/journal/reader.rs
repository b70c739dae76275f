//! Following the journal from a sequence number, for recovery and for the backup.

use std::path::{Path, PathBuf};

use super::record::Entry;
use super::segment::{Tail, list_segments, read_frames};
use crate::StoreError;

/// A cursor over the journal that returns entries in order and can be polled again as the store
/// appends. It never returns a partial entry: an unfinished frame at the end is simply not yet there.
#[derive(Debug)]
pub struct JournalReader {
    dir: PathBuf,
    /// The next sequence number to return.
    next_seq: u64,
    /// The segment being read and the byte offset of the next frame in it.
    at: Option<(u64, PathBuf, u64)>,
}

impl JournalReader {
    /// A reader whose first entry will be `from_seq` (1 = from the beginning).
    pub fn new(dir: &Path, from_seq: u64) -> Self {
        Self { dir: dir.to_owned(), next_seq: from_seq.max(1), at: None }
    }

    /// The next sequence number [`JournalReader::poll`] will return.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Returns up to `max` entries that are in the journal now, starting at `next_seq`.
    /// Corruption in a segment other than the newest is an error naming the segment.
    pub fn poll(&mut self, max: usize) -> Result<Vec<Entry>, StoreError> {
        let max = max.max(1);
        let mut out = Vec::new();
        loop {
            let segments = list_segments(&self.dir)?;
            if self.at.is_none() {
                // The segment that holds next_seq: the last one starting at or before it.
                let Some((first, path)) = segments.iter().rev().find(|(s, _)| *s <= self.next_seq).cloned()
                else {
                    return Ok(out);
                };
                self.at = Some((first, path, 0));
            }
            let (first, path, offset) = self.at.clone().expect("set above");
            let next = &mut self.next_seq;
            let room = max - out.len();
            let mut taken = Vec::new();
            let (end, tail) = read_frames(&path, offset, |e| {
                if e.seq >= *next {
                    *next = e.seq + 1;
                    taken.push(e);
                }
                Ok(taken.len() < room)
            })?;
            let full = taken.len() >= room;
            out.extend(taken);
            self.at = Some((first, path.clone(), end));
            if full {
                return Ok(out);
            }
            let newer = segments.iter().find(|(s, _)| *s > first).cloned();
            match (tail, newer) {
                (Tail::Clean | Tail::Incomplete, None) => return Ok(out),
                (Tail::Corrupt(why), None) => {
                    // The newest segment's tail may be torn by a crash until the store restarts and
                    // truncates it; report nothing past it.
                    tracing::debug!(segment = %path.display(), %why, "journal tail not readable yet");
                    return Ok(out);
                }
                (Tail::Clean, Some((s, p))) => self.at = Some((s, p, 0)),
                (Tail::Incomplete | Tail::Corrupt(_), Some(_)) => {
                    return Err(StoreError::journal(&path, "a sealed segment ends in a damaged frame"));
                }
            }
        }
    }
}
