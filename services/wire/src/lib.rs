//! The upload protocol between the upload agent (on the site appliance) and the store (at the centre).
//!
//! Endpoints (all under the store's base URL, `Authorization: Bearer <site token>`):
//! - `POST /api/v1/facilities/{facility}/batches` with `Content-Type: application/x-kizuna-batch`
//!   and a body framed by [`encode_batch`]; the answer is a JSON [`BatchReport`], one
//!   [`FileResult`] per file in the order sent. Re-sending a batch is always safe: each file carries its
//!   sha256 as idempotency key, and the same content under the same name is reported `duplicate`.
//! - `POST /api/v1/heartbeat` with a JSON [`Heartbeat`].
//! - `POST /api/v1/daily-log` with a JSON [`DailyLog`]: the agent's summary of the previous day.
//!
//! Framing of one file in a batch (all integers big-endian):
//! `u16 path length | path (UTF-8, relative SS-MIX2 path PID3/PID3/PID/date/type/name) |
//!  u64 content length | 32-byte sha256 of the content | content`.
//! A batch is `MAGIC` followed by any number of files. Framing is hand-written: it is twelve lines, and
//! it lets the store stream and verify each file without a multipart parser or base64 inflation.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The first bytes of every batch body, with the protocol version.
pub const MAGIC: &[u8; 8] = b"KZNBAT01";
/// The content type of a batch body.
pub const BATCH_CONTENT_TYPE: &str = "application/x-kizuna-batch";
/// Longest relative path accepted (6 components of at most 20 bytes each, with slashes, plus margin).
pub const MAX_PATH_LEN: usize = 255;

/// One file of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchFile {
    /// Relative SS-MIX2 storage path below the facility root.
    pub path: String,
    pub sha256: [u8; 32],
    pub content: Vec<u8>,
}

impl BatchFile {
    /// A file whose sha256 is computed from its content.
    pub fn new(path: String, content: Vec<u8>) -> Self {
        let sha256 = Sha256::digest(&content).into();
        Self { path, sha256, content }
    }

    pub fn sha256_hex(&self) -> String {
        hex::encode(self.sha256)
    }
}

/// Why a batch body could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("batch does not start with the {MAGIC:?} header")]
    BadMagic,
    #[error("batch is truncated in file {index}")]
    Truncated { index: usize },
    #[error("file {index}: path is {len} bytes, longer than {MAX_PATH_LEN}")]
    PathTooLong { index: usize, len: usize },
    #[error("file {index}: path is not UTF-8")]
    PathNotUtf8 { index: usize },
    #[error("file {index} ({path}): {len} bytes is more than the limit of {limit}")]
    FileTooLarge { index: usize, path: String, len: u64, limit: u64 },
    #[error("file {index} ({path}): content does not match its sha256")]
    DigestMismatch { index: usize, path: String },
    #[error("more than the limit of {limit} files per batch")]
    TooManyFiles { limit: usize },
}

/// Appends one file's frame to a batch body (call [`start_batch`] first).
pub fn push_file(out: &mut Vec<u8>, path: &str, sha256: &[u8; 32], content: &[u8]) {
    out.extend_from_slice(&(path.len() as u16).to_be_bytes());
    out.extend_from_slice(path.as_bytes());
    out.extend_from_slice(&(content.len() as u64).to_be_bytes());
    out.extend_from_slice(sha256);
    out.extend_from_slice(content);
}

/// A new batch body holding only the header.
pub fn start_batch() -> Vec<u8> {
    MAGIC.to_vec()
}

/// Frames files into one batch body.
pub fn encode_batch(files: &[BatchFile]) -> Vec<u8> {
    let mut out = start_batch();
    for f in files {
        push_file(&mut out, &f.path, &f.sha256, &f.content);
    }
    out
}

/// Reads a batch body, checking every digest and refusing any file over `max_file` bytes.
pub fn decode_batch(body: &[u8], max_file: u64) -> Result<Vec<BatchFile>, WireError> {
    decode_batch_at_most(body, max_file, usize::MAX)
}

/// [`decode_batch`] that stops at the `max_files + 1`-th file: a body of tiny frames would
/// otherwise be decoded and hashed whole (1.6 M empty files in 64 MiB) before the count is checked.
pub fn decode_batch_at_most(
    body: &[u8],
    max_file: u64,
    max_files: usize,
) -> Result<Vec<BatchFile>, WireError> {
    let mut rest = body.strip_prefix(MAGIC.as_slice()).ok_or(WireError::BadMagic)?;
    let mut files = Vec::new();
    while !rest.is_empty() {
        let index = files.len();
        if index == max_files {
            return Err(WireError::TooManyFiles { limit: max_files });
        }
        let truncated = WireError::Truncated { index };
        let (len, r) = rest.split_first_chunk::<2>().ok_or(truncated.clone())?;
        let len = u16::from_be_bytes(*len) as usize;
        if len > MAX_PATH_LEN {
            return Err(WireError::PathTooLong { index, len });
        }
        let (path, r) = r.split_at_checked(len).ok_or(truncated.clone())?;
        let path = std::str::from_utf8(path).map_err(|_| WireError::PathNotUtf8 { index })?.to_owned();
        let (clen, r) = r.split_first_chunk::<8>().ok_or(truncated.clone())?;
        let clen = u64::from_be_bytes(*clen);
        if clen > max_file {
            return Err(WireError::FileTooLarge { index, path, len: clen, limit: max_file });
        }
        let (sha, r) = r.split_first_chunk::<32>().ok_or(truncated.clone())?;
        let (content, r) = r.split_at_checked(clen as usize).ok_or(truncated)?;
        let digest: [u8; 32] = Sha256::digest(content).into();
        if &digest != sha {
            return Err(WireError::DigestMismatch { index, path });
        }
        files.push(BatchFile { path, sha256: *sha, content: content.to_vec() });
        rest = r;
    }
    Ok(files)
}

/// What the store did with one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FileStatus {
    /// Written to the tree and the index; durable before this answer was sent.
    Stored,
    /// The same content was already stored under this name: nothing written.
    Duplicate,
    /// Refused; `codes` and `reason` say why. Re-sending the same bytes gives the same answer.
    Rejected,
}

/// The store's answer for one file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileResult {
    pub path: String,
    pub sha256: String,
    pub status: FileStatus,
    /// Violation codes (`ssmix2::validate::Code` strings) for a rejection.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub codes: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The store's answer for one batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchReport {
    pub results: Vec<FileResult>,
}

/// The agent's periodic sign of life.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Heartbeat {
    pub agent_version: String,
    /// Files waiting in the outbox.
    pub queue_depth: u64,
    /// Files in quarantine (invalid at the agent).
    pub quarantined: u64,
    /// RFC 3339 time of the agent's last successful upload, if any.
    #[serde(default)]
    pub last_upload: Option<String>,
    /// The newest files in the agent's quarantine (at most [`MAX_QUARANTINE_REPORT`]), newest first.
    /// `None` (an older agent) leaves the store's last copy as it is; `Some` replaces it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quarantine: Option<Vec<QuarantinedFile>>,
    /// What became of re-requests the store sent in earlier heartbeat answers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rerequests_done: Vec<RerequestOutcome>,
}

/// Most quarantined files listed in one heartbeat.
pub const MAX_QUARANTINE_REPORT: usize = 200;

/// One file in the agent's quarantine, as its reason file describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuarantinedFile {
    /// Path below the agent's quarantine folder (`rejected/…` for the store's refusals).
    pub file: String,
    /// `agent` (the agent's own check refused it) or `store` (the store rejected it).
    pub origin: String,
    /// sha256 of the content when it was quarantined (hex; may be empty).
    pub sha256: String,
    /// Violation codes (`ssmix2::validate::Code` strings, `too-large`, `store-reason`).
    pub codes: Vec<String>,
    /// The violations' messages, joined.
    pub reason: String,
    /// RFC 3339 time it was quarantined.
    pub time: String,
}

/// The store's answer to a heartbeat.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeartbeatAnswer {
    pub ok: bool,
    /// Quarantined files an operator asked to have checked and sent again.
    #[serde(default)]
    pub rerequests: Vec<Rerequest>,
}

/// An operator's request to release one quarantined file for re-validation and upload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rerequest {
    pub id: i64,
    /// Path below the agent's quarantine folder, as reported in [`QuarantinedFile::file`].
    pub file: String,
}

/// What the agent did with a [`Rerequest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RerequestOutcome {
    pub id: i64,
    /// `released` (moved back into the export folder for checking and upload), `missing` (not in
    /// the quarantine any more) or `failed` (see `message`).
    pub outcome: String,
    #[serde(default)]
    pub message: String,
}

/// One line of the agent's own log, as reported in the daily summary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogLine {
    /// RFC 3339 time.
    pub time: String,
    /// `ERROR`, `WARN` or `INFO`.
    pub level: String,
    pub message: String,
}

/// The agent's summary of one day of its log, sent the next day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DailyLog {
    /// The day summarised, `YYYY-MM-DD` (agent local time).
    pub date: String,
    pub files_uploaded: u64,
    pub files_quarantined: u64,
    pub upload_errors: u64,
    /// NSIPS files the agent converted to SS-MIX2 that day (a pharmacy's `nsips` intake); their
    /// SS-MIX2 files count in `files_uploaded`, refused NSIPS files in `files_quarantined`.
    #[serde(default)]
    pub nsips_converted: u64,
    /// Every ERROR and WARN line of that day (capped by the agent; `truncated` says so).
    pub lines: Vec<LogLine>,
    #[serde(default)]
    pub truncated: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_round_trips() {
        let files = vec![
            BatchFile::new("999/901/9999013/-/ADT-00/x".into(), b"MSH|^~\\&|".to_vec()),
            BatchFile::new("a/b".into(), Vec::new()),
        ];
        assert_eq!(decode_batch(&encode_batch(&files), 1 << 20).unwrap(), files);
    }

    #[test]
    fn tampered_content_is_refused() {
        let mut body = encode_batch(&[BatchFile::new("p".into(), b"hello".to_vec())]);
        let last = body.len() - 1;
        body[last] ^= 1;
        assert_eq!(
            decode_batch(&body, 1 << 20),
            Err(WireError::DigestMismatch { index: 0, path: "p".into() })
        );
    }

    #[test]
    fn truncation_and_limits_are_refused() {
        let body = encode_batch(&[BatchFile::new("p".into(), vec![7; 100])]);
        assert_eq!(decode_batch(&body[..body.len() - 1], 1 << 20), Err(WireError::Truncated { index: 0 }));
        assert!(matches!(decode_batch(&body, 10), Err(WireError::FileTooLarge { .. })));
        assert_eq!(decode_batch(b"nope", 10), Err(WireError::BadMagic));
    }

    #[test]
    fn the_file_count_is_refused_before_the_rest_is_decoded() {
        let files: Vec<BatchFile> = (0..5).map(|i| BatchFile::new(format!("f{i}"), Vec::new())).collect();
        let mut body = encode_batch(&files);
        assert_eq!(decode_batch_at_most(&body, 10, 5).unwrap(), files);
        assert_eq!(decode_batch_at_most(&body, 10, 4), Err(WireError::TooManyFiles { limit: 4 }));
        // Refused at the fifth frame, before the broken sixth is even looked at.
        body.extend_from_slice(b"\xff\xff");
        assert_eq!(decode_batch_at_most(&body, 10, 4), Err(WireError::TooManyFiles { limit: 4 }));
    }

    proptest::proptest! {
        #[test]
        fn any_batch_round_trips(files in proptest::collection::vec(("[a-z0-9/_-]{0,60}", proptest::collection::vec(proptest::num::u8::ANY, 0..300)), 0..8)) {
            let files: Vec<BatchFile> = files.into_iter().map(|(p, c)| BatchFile::new(p, c)).collect();
            proptest::prop_assert_eq!(decode_batch(&encode_batch(&files), 1 << 20).unwrap(), files);
        }
    }
}
