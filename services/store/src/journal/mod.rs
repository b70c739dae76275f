//! The change journal: an append-only, checksummed record of every change the store makes to the
//! tree, durable (fsynced) before any upload is acknowledged. It is the store's commit record
//! (recovery replays its tail into the tree and the index) and what the backup follows.
//!
//! Format: see `record.rs` (frames) and `segment.rs` (files); the crate README describes both.

mod reader;
mod record;
mod segment;
mod writer;

pub use reader::JournalReader;
pub use record::{Change, Draft, Entry, FRAME_HEADER, MAX_PAYLOAD, decode_frame, encode_frame};
pub use segment::{MAGIC, Tail, list_segments, read_frames, segment_name};
pub use writer::Journal;

/// Name of the file (in the journal folder) holding the highest sequence number whose changes are
/// applied to the tree and the index. Readers such as the backup ship entries up to it.
pub const APPLIED_FILE: &str = "applied";

/// Reads the applied watermark written by the store (0 when there is none yet).
pub fn read_applied(dir: &std::path::Path) -> u64 {
    std::fs::read_to_string(dir.join(APPLIED_FILE)).ok().and_then(|s| s.trim().parse().ok()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn draft(i: usize) -> Draft {
        Draft {
            facility: "F1".into(),
            site: "s".into(),
            changes: vec![Change::Write {
                path: format!("000/000/000{i:04}/-/ADT-00/x_{i}"),
                sha256: "00".repeat(32),
                size: i as u64,
                stage: format!("{i:x}-0.stage"),
            }],
        }
    }

    #[tokio::test]
    async fn entries_are_numbered_without_gaps_across_segments_and_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let lock = crate::DataDirLock::acquire(dir.path()).unwrap();
        let (j, last) = Journal::open(&lock, dir.path(), 4096, std::time::Duration::ZERO).unwrap();
        assert_eq!(last, 0);
        for chunk in (0..60).collect::<Vec<_>>().chunks(7) {
            let entries = j.append(chunk.iter().map(|i| draft(*i)).collect()).await.unwrap();
            assert_eq!(entries.first().unwrap().seq, chunk[0] as u64 + 1);
        }
        drop(j);
        assert!(list_segments(dir.path()).unwrap().len() > 2, "small segments must rotate");
        // Reopen: numbering continues.
        let (j, last) = Journal::open(&lock, dir.path(), 4096, std::time::Duration::ZERO).unwrap();
        assert_eq!(last, 60);
        assert_eq!(j.append(vec![draft(60)]).await.unwrap()[0].seq, 61);
        // A reader gets every entry once, in order, in pieces.
        let mut r = JournalReader::new(dir.path(), 1);
        let mut seen = Vec::new();
        loop {
            let got = r.poll(9).unwrap();
            if got.is_empty() {
                break;
            }
            assert!(got.len() <= 9);
            seen.extend(got.into_iter().map(|e| e.seq));
        }
        assert_eq!(seen, (1..=61).collect::<Vec<u64>>());
        // From the middle.
        let mut r = JournalReader::new(dir.path(), 40);
        assert_eq!(r.poll(1000).unwrap().first().unwrap().seq, 40);
    }
}
