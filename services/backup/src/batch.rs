//! A batch on the wire, primary to replica: journal entries with the content of the files they
//! write, plus puts and removes (files others wrote into the tree, and repairs).
//!
//! Body (`application/x-kizuna-backup`): zstd of `u32 big-endian header length | header JSON |
//! blobs`, the blobs being file contents back to back in header order, each named by its sha256
//! (so a content shipped twice in a batch travels once). A hand-made framing because the header is
//! small JSON and the blobs are raw bytes: base64 in JSON would cost a third more and a decode.

use std::collections::HashMap;
use std::io::Read;

use kizuna_store::journal::Entry;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::BackupError;

/// The content type of a batch body.
pub const CONTENT_TYPE: &str = "application/x-kizuna-backup";

/// What a batch carries besides the blobs.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Header {
    /// Journal entries, consecutive, starting just after the replica's applied entry.
    pub entries: Vec<Entry>,
    /// Files to write as they are on the primary (tree-relative paths).
    pub puts: Vec<Put>,
    /// Files (or whole directories, `tree`) to remove.
    pub removes: Vec<Remove>,
    /// The blobs that follow the header, in order.
    pub blobs: Vec<BlobRef>,
    /// The primary's foreign-file log position these puts and removes bring the replica to (0 = no change).
    pub foreign_upto: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Put {
    pub path: String,
    pub sha256: String,
    pub size: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Remove {
    pub path: String,
    /// Remove the directory and everything below it.
    #[serde(default)]
    pub tree: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobRef {
    pub sha256: String,
    pub len: u64,
}

/// The replica's answer to a batch (and to `GET /api/v1/state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Ack {
    /// Highest journal entry durably applied.
    pub applied_seq: u64,
    /// Foreign-file log position durably applied.
    pub foreign_applied: u64,
}

/// A batch being built.
#[derive(Debug, Default)]
pub struct Builder {
    pub header: Header,
    data: Vec<u8>,
    have: HashMap<String, ()>,
}

impl Builder {
    /// Adds a blob (once per content).
    pub fn add_blob(&mut self, sha256: &str, bytes: &[u8]) {
        if self.have.insert(sha256.to_owned(), ()).is_none() {
            self.header.blobs.push(BlobRef { sha256: sha256.to_owned(), len: bytes.len() as u64 });
            self.data.extend_from_slice(bytes);
        }
    }

    /// Bytes of blobs so far.
    pub fn blob_bytes(&self) -> usize {
        self.data.len()
    }

    pub fn is_empty(&self) -> bool {
        self.header.entries.is_empty() && self.header.puts.is_empty() && self.header.removes.is_empty()
    }

    /// The compressed body.
    pub fn encode(&self) -> Vec<u8> {
        let head = serde_json::to_vec(&self.header).expect("a header always serialises");
        let mut raw = Vec::with_capacity(4 + head.len() + self.data.len());
        raw.extend_from_slice(&(head.len() as u32).to_be_bytes());
        raw.extend_from_slice(&head);
        raw.extend_from_slice(&self.data);
        zstd::bulk::compress(&raw, 1).expect("compressing into memory cannot fail")
    }
}

/// A received, checked batch.
#[derive(Debug)]
pub struct Batch {
    pub header: Header,
    data: Vec<u8>,
    at: HashMap<String, (usize, usize)>,
}

impl Batch {
    /// Decompresses (at most `max_bytes`) and checks the framing and every blob's sha256.
    pub fn decode(body: &[u8], max_bytes: u64) -> Result<Self, BackupError> {
        let mut raw = Vec::new();
        zstd::stream::read::Decoder::new(body)
            .and_then(|d| d.take(max_bytes + 1).read_to_end(&mut raw))
            .map_err(|e| BackupError::BadBatch(format!("not zstd: {e}")))?;
        if raw.len() as u64 > max_bytes {
            return Err(BackupError::BadBatch(format!("larger than {max_bytes} bytes uncompressed")));
        }
        let (len, rest) = raw
            .split_first_chunk::<4>()
            .ok_or_else(|| BackupError::BadBatch("shorter than its header length".into()))?;
        let len = u32::from_be_bytes(*len) as usize;
        let head = rest.get(..len).ok_or_else(|| BackupError::BadBatch("header truncated".into()))?;
        let header: Header =
            serde_json::from_slice(head).map_err(|e| BackupError::BadBatch(format!("header: {e}")))?;
        let data = rest[len..].to_vec();
        let mut at = HashMap::new();
        let mut off = 0usize;
        for b in &header.blobs {
            let end = off
                .checked_add(b.len as usize)
                .filter(|e| *e <= data.len())
                .ok_or_else(|| BackupError::BadBatch(format!("blob {} truncated", b.sha256)))?;
            let got = hex::encode(Sha256::digest(&data[off..end]));
            if got != b.sha256 {
                return Err(BackupError::BadBatch(format!("blob {} has sha256 {got}", b.sha256)));
            }
            at.insert(b.sha256.clone(), (off, end));
            off = end;
        }
        if off != data.len() {
            return Err(BackupError::BadBatch(format!("{} bytes after the last blob", data.len() - off)));
        }
        Ok(Self { header, data, at })
    }

    /// The content with this sha256, if the batch carries it.
    pub fn content(&self, sha256: &str) -> Option<&[u8]> {
        self.at.get(sha256).map(|(a, b)| &self.data[*a..*b])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_round_trips_and_refuses_damage() {
        let mut b = Builder::default();
        let content = b"MSH|^~\\&|".to_vec();
        let sha = hex::encode(Sha256::digest(&content));
        b.add_blob(&sha, &content);
        b.add_blob(&sha, &content);
        b.header.puts.push(Put { path: "F/x".into(), sha256: sha.clone(), size: content.len() as u64 });
        let body = b.encode();
        let got = Batch::decode(&body, 1 << 20).unwrap();
        assert_eq!(got.header.blobs.len(), 1);
        assert_eq!(got.content(&sha), Some(&content[..]));
        assert!(Batch::decode(&body, 10).is_err(), "size limit");
        assert!(Batch::decode(&body[..body.len() / 2], 1 << 20).is_err(), "truncated");
        let mut lying = Builder::default();
        lying.add_blob(&"00".repeat(32), &content);
        let e = Batch::decode(&lying.encode(), 1 << 20).unwrap_err();
        assert!(e.to_string().contains("sha256"), "{e}");
    }
}
