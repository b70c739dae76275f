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
