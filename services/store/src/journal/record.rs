//! One journal entry and its frame on disk.
//!
//! Frame (integers big-endian): `u32 payload length | u32 CRC-32 (IEEE) of the payload | payload`,
//! the payload being the entry as one JSON object. JSON keeps the journal readable with `strings`
//! and lets fields be added; the CRC catches torn and corrupted frames.

use serde::{Deserialize, Serialize};

/// Bytes before the payload: length and checksum.
pub const FRAME_HEADER: usize = 8;
/// No entry is ever this large; a length beyond it is corruption, not a big entry.
pub const MAX_PAYLOAD: u32 = 16 << 20;

/// One committed change set: everything one incoming file did to one facility's tree. The changes of
/// an entry are applied in order and together (all or none survive a crash).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Strictly increasing from 1 across all segments, without gaps.
    pub seq: u64,
    /// RFC 3339 UTC time the entry was committed.
    pub time: String,
    /// The facility whose tree changed (`tree/<facility>/…`).
    pub facility: String,
    /// The site that sent the file.
    pub site: String,
    pub changes: Vec<Change>,
}

/// One change to the tree. Paths are SS-MIX2 storage paths relative to the facility's root.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Change {
    /// A new file appeared at `path` with this content.
    Write {
        path: String,
        sha256: String,
        size: u64,
        /// The staged file (in `staging/`) that recovery moves to `path` if the crash came first.
        stage: String,
    },
    /// An existing file (content unchanged) was renamed: a condition-flag transition.
    Rename { from: String, to: String, sha256: String, size: u64 },
    /// A file was removed.
    Delete { path: String, sha256: String, size: u64 },
}

/// An entry before the journal has numbered it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Draft {
    pub facility: String,
    pub site: String,
    pub changes: Vec<Change>,
}

/// Appends the frame of `entry` to `out`.
pub fn encode_frame(entry: &Entry, out: &mut Vec<u8>) {
    let payload = serde_json::to_vec(entry).expect("an entry always serialises");
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(&crc32fast::hash(&payload).to_be_bytes());
    out.extend_from_slice(&payload);
}

/// What is at the start of `buf`.
#[derive(Debug)]
pub enum Frame {
    /// A whole, intact entry taking `len` bytes.
    Entry { entry: Box<Entry>, len: usize },
    /// Not enough bytes yet: a frame still being written, or a torn tail.
    Incomplete,
    /// The bytes are not a valid frame (bad length, checksum or JSON).
    Corrupt(String),
}

/// Reads one frame from the start of `buf`.
pub fn decode_frame(buf: &[u8]) -> Frame {
    let Some((head, rest)) = buf.split_first_chunk::<FRAME_HEADER>() else {
        return Frame::Incomplete;
    };
    let len = u32::from_be_bytes(head[0..4].try_into().expect("4 bytes"));
    let crc = u32::from_be_bytes(head[4..8].try_into().expect("4 bytes"));
    if len == 0 || len > MAX_PAYLOAD {
        return Frame::Corrupt(format!("frame length {len} out of range"));
    }
    let Some(payload) = rest.get(..len as usize) else {
        return Frame::Incomplete;
    };
    if crc32fast::hash(payload) != crc {
        return Frame::Corrupt("checksum mismatch".into());
    }
    match serde_json::from_slice::<Entry>(payload) {
        Ok(entry) => Frame::Entry { entry: Box::new(entry), len: FRAME_HEADER + len as usize },
        Err(e) => Frame::Corrupt(format!("entry is not valid JSON: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> Entry {
        Entry {
            seq: 7,
            time: "2026-11-25T16:00:00Z".into(),
            facility: "F1".into(),
            site: "s".into(),
            changes: vec![
                Change::Rename { from: "a_1".into(), to: "a_2".into(), sha256: "ab".into(), size: 3 },
                Change::Write { path: "b_1".into(), sha256: "cd".into(), size: 4, stage: "x".into() },
            ],
        }
    }

    #[test]
    fn frame_round_trips_and_detects_damage() {
        let mut buf = Vec::new();
        encode_frame(&entry(), &mut buf);
        match decode_frame(&buf) {
            Frame::Entry { entry: e, len } => {
                assert_eq!(*e, entry());
                assert_eq!(len, buf.len());
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(decode_frame(&buf[..buf.len() - 1]), Frame::Incomplete));
        assert!(matches!(decode_frame(&buf[..5]), Frame::Incomplete));
        let mut bad = buf.clone();
        let last = bad.len() - 2;
        bad[last] ^= 0x20;
        assert!(matches!(decode_frame(&bad), Frame::Corrupt(_)));
    }
}
