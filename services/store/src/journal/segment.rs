//! Segment files: `journal/<first seq, 20 digits>.kzj`, each starting with [`MAGIC`] and followed by
//! frames. Only the newest segment is ever appended to.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use super::record::{Entry, Frame, decode_frame};
use crate::StoreError;

/// The first bytes of every segment, with the format version.
pub const MAGIC: &[u8; 8] = b"KZJRNL01";
const SUFFIX: &str = ".kzj";

/// The file name of the segment whose first entry is `first_seq`.
pub fn segment_name(first_seq: u64) -> String {
    format!("{first_seq:020}{SUFFIX}")
}

/// Every segment in `dir` as (first seq, path), oldest first.
pub fn list_segments(dir: &Path) -> Result<Vec<(u64, PathBuf)>, StoreError> {
    let mut out = Vec::new();
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(StoreError::io(dir, e)),
    };
    for item in rd {
        let item = item.map_err(|e| StoreError::io(dir, e))?;
        let name = item.file_name();
        let Some(stem) = name.to_str().and_then(|n| n.strip_suffix(SUFFIX)) else { continue };
        if stem.len() == 20
            && let Ok(seq) = stem.parse::<u64>()
        {
            out.push((seq, item.path()));
        }
    }
    out.sort();
    Ok(out)
}

/// Where reading a segment stopped.
#[derive(Debug, PartialEq, Eq)]
pub enum Tail {
    /// Every byte was a whole frame.
    Clean,
    /// Bytes after `offset` are an unfinished frame (being written, or torn by a crash).
    Incomplete,
    /// Bytes after `offset` are not a valid frame.
    Corrupt(String),
}

/// Reads whole frames of the segment at `path` from byte `offset` (0 = start, header included),
/// calling `each` for every entry until it answers `false`; returns the offset after the last frame
/// handed to `each` and why reading stopped ([`Tail::Clean`] also when `each` stopped it).
pub fn read_frames(
    path: &Path,
    offset: u64,
    mut each: impl FnMut(Entry) -> Result<bool, StoreError>,
) -> Result<(u64, Tail), StoreError> {
    let mut f = File::open(path).map_err(|e| StoreError::io(path, e))?;
    let mut pos = offset;
    if pos == 0 {
        let mut magic = [0u8; 8];
        match f.read_exact(&mut magic) {
            Ok(()) if &magic == MAGIC => pos = MAGIC.len() as u64,
            Ok(()) => return Err(StoreError::journal(path, "not a journal segment (bad magic)")),
            // A segment whose header was never completed holds nothing.
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok((0, Tail::Incomplete)),
            Err(e) => return Err(StoreError::io(path, e)),
        }
    }
    f.seek(SeekFrom::Start(pos)).map_err(|e| StoreError::io(path, e))?;
    let mut buf = Vec::new();
    f.read_to_end(&mut buf).map_err(|e| StoreError::io(path, e))?;
    let mut at = 0usize;
    let tail = loop {
        if at == buf.len() {
            break Tail::Clean;
        }
        match decode_frame(&buf[at..]) {
            Frame::Entry { entry, len } => {
                at += len;
                if !each(*entry)? {
                    break Tail::Clean;
                }
            }
            Frame::Incomplete => break Tail::Incomplete,
            Frame::Corrupt(why) => break Tail::Corrupt(why),
        }
    };
    Ok((pos + at as u64, tail))
}
