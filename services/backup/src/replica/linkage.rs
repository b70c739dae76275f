//! Installing a linkage database snapshot on the replica (`PUT /api/v1/linkage`): the received
//! body (zstd) is decompressed into `staging/`, its sha256 checked against the primary's, its
//! SQLite structure checked (`PRAGMA quick_check`), made durable, then renamed over
//! `DATA_DIR/linkage.sqlite` and the folder fsynced; only then `backup/linkage.json` records it. A
//! crash anywhere leaves the previous snapshot (or the new one, not yet recorded, which the
//! primary then sends again).

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use sqlx::ConnectOptions;
use sqlx::sqlite::SqliteConnectOptions;

use crate::BackupError;
use crate::durable::{fsync_dir, replace_file};
use crate::linkage::{LINKAGE_FILE, LinkageState, STATE_FILE};

/// The first 16 bytes of every SQLite database file.
const SQLITE_MAGIC: &[u8; 16] = b"SQLite format 3\0";

/// The snapshot the replica in `data_dir` holds.
pub fn state(data_dir: &Path) -> Result<LinkageState, BackupError> {
    let p = data_dir.join(STATE_FILE);
    match std::fs::read(&p) {
        Ok(b) => serde_json::from_slice(&b)
            .map_err(|e| BackupError::io(&p, std::io::Error::new(std::io::ErrorKind::InvalidData, e))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(LinkageState::default()),
        Err(e) => Err(BackupError::io(&p, e)),
    }
}

/// Installs the zstd-compressed snapshot in `compressed` (a file in `staging/`, removed either
/// way) whose uncompressed sha256 the primary gave as `sha256`.
pub async fn install(
    data_dir: &Path,
    compressed: PathBuf,
    sha256: &str,
    taken_at: &str,
    max_bytes: u64,
) -> Result<LinkageState, BackupError> {
    let bad = |m: String| BackupError::BadBatch(format!("linkage snapshot: {m}"));
    if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(bad(format!("sha256 {sha256:?} is not 64 hex digits")));
    }
    taken_at.parse::<jiff::Timestamp>().map_err(|e| bad(format!("taken-at {taken_at:?}: {e}")))?;
    let plain = compressed.with_extension("sqlite-tmp");
    let (c, p) = (compressed.clone(), plain.clone());
    let unpacked = tokio::task::spawn_blocking(move || unpack(&c, &p, max_bytes))
        .await
        .map_err(|e| bad(format!("unpacking task failed: {e}")));
    let _ = std::fs::remove_file(&compressed);
    let (got, bytes) = match unpacked.and_then(|r| r) {
        Ok(x) => x,
        Err(e) => {
            let _ = std::fs::remove_file(&plain);
            return Err(e);
        }
    };
    let checked = if got != sha256.to_ascii_lowercase() {
        Err(bad(format!("sha256 is {got}, the primary said {sha256}")))
    } else {
        quick_check(&plain).await
    };
    if let Err(e) = checked {
        let _ = std::fs::remove_file(&plain);
        return Err(e);
    }
    if data_dir.join(crate::replica::PROMOTED_FILE).exists() {
        let _ = std::fs::remove_file(&plain);
        return Err(BackupError::Promoted);
    }
    // Journal files of an earlier copy would be read as this one's (nothing writes the replica's
    // copy before promotion, so they hold nothing).
    for suffix in ["-wal", "-shm", "-journal"] {
        let f = data_dir.join(format!("{LINKAGE_FILE}{suffix}"));
        match std::fs::remove_file(&f) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(BackupError::io(&f, e)),
        }
    }
    let dst = data_dir.join(LINKAGE_FILE);
    std::fs::rename(&plain, &dst).map_err(|e| BackupError::io(&dst, e))?;
    fsync_dir(data_dir)?;
    let held = LinkageState { sha256: Some(got), taken_at: Some(taken_at.to_owned()), bytes };
    replace_file(&data_dir.join(STATE_FILE), &serde_json::to_vec(&held).expect("plain struct"))?;
    Ok(held)
}

/// Decompresses `src` into `dst` (fsynced), at most `max_bytes`; returns its sha256 and size.
fn unpack(src: &Path, dst: &Path, max_bytes: u64) -> Result<(String, u64), BackupError> {
    let input = std::fs::File::open(src).map_err(|e| BackupError::io(src, e))?;
    let mut dec = zstd::Decoder::new(input).map_err(|e| BackupError::io(src, e))?;
    let mut out = std::fs::File::create(dst).map_err(|e| BackupError::io(dst, e))?;
    let (mut hash, mut total, mut buf) = (Sha256::new(), 0u64, vec![0u8; 1 << 16]);
    let mut head = Vec::with_capacity(16);
    loop {
        let n = dec
            .read(&mut buf)
            .map_err(|e| BackupError::BadBatch(format!("linkage snapshot: not a zstd stream ({e})")))?;
        if n == 0 {
            break;
        }
        total += n as u64;
        if total > max_bytes {
            return Err(BackupError::BadBatch(format!(
                "linkage snapshot: larger than max_linkage_bytes ({max_bytes})"
            )));
        }
        if head.len() < 16 {
            head.extend_from_slice(&buf[..n.min(16 - head.len())]);
        }
        hash.update(&buf[..n]);
        out.write_all(&buf[..n]).map_err(|e| BackupError::io(dst, e))?;
    }
    if head.as_slice() != SQLITE_MAGIC {
        return Err(BackupError::BadBatch("linkage snapshot: not an SQLite database".into()));
    }
    out.sync_all().map_err(|e| BackupError::io(dst, e))?;
    Ok((hex::encode(hash.finalize()), total))
}

/// `PRAGMA quick_check` on the database file at `path`, opened read-only and immutable.
async fn quick_check(path: &Path) -> Result<(), BackupError> {
    let bad = |m: String| BackupError::BadBatch(format!("linkage snapshot: {m}"));
    let mut conn = SqliteConnectOptions::new()
        .filename(path)
        .read_only(true)
        .immutable(true)
        .connect()
        .await
        .map_err(|e| bad(format!("cannot be opened: {e}")))?;
    let verdict: String = sqlx::query_scalar("PRAGMA quick_check")
        .fetch_one(&mut conn)
        .await
        .map_err(|e| bad(format!("quick_check failed: {e}")))?;
    if verdict != "ok" {
        return Err(bad(format!("quick_check: {verdict}")));
    }
    Ok(())
}
