//! The last good state on disk: what netd last applied and verified, kept for rollback.
//! Written crash-safe (temp file, fsync, rename, fsync dir), as compact JSON.
//!
//! A long-running process (`netd run`) keeps the record it last read or wrote in memory and
//! re-reads the file only when its inode, size or modification time changed: with 1,000+ peers,
//! parsing it again costs more than the rest of a one-site change.

use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::plan::DesiredState;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LastGood {
    pub desired: DesiredState,
    /// Table `kizuna` as nft listed it right after the verified apply (canonical form).
    pub firewall_readback: Option<serde_json::Value>,
}

/// What identifies one version of the file: inode, size, modification time.
type Stamp = (u64, u64, Option<SystemTime>);

fn stamp(meta: &std::fs::Metadata) -> Stamp {
    (meta.ino(), meta.len(), meta.modified().ok())
}

/// The record last read or written, with its file and that file's stamp.
static CACHE: Mutex<Option<(PathBuf, Stamp, Arc<LastGood>)>> = Mutex::new(None);

fn cached(path: &Path, st: Stamp) -> Option<Arc<LastGood>> {
    let guard = CACHE.lock().unwrap_or_else(|p| p.into_inner());
    guard.as_ref().filter(|(p, s, _)| p == path && *s == st).map(|(_, _, r)| r.clone())
}

fn remember(path: &Path, st: Stamp, record: Arc<LastGood>) {
    *CACHE.lock().unwrap_or_else(|p| p.into_inner()) = Some((path.to_path_buf(), st, record));
}

pub fn load(path: &Path) -> Result<Option<Arc<LastGood>>> {
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(Error::Io { path: path.to_path_buf(), source }),
    };
    if let Some(r) = cached(path, stamp(&meta)) {
        return Ok(Some(r));
    }
    match std::fs::read(path) {
        Ok(bytes) => {
            let record: Arc<LastGood> = serde_json::from_slice(&bytes)
                .map(Arc::new)
                .map_err(|e| Error::State { path: path.to_path_buf(), reason: e.to_string() })?;
            remember(path, stamp(&meta), record.clone());
            Ok(Some(record))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(Error::Io { path: path.to_path_buf(), source }),
    }
}

pub fn save(path: &Path, state: LastGood) -> Result<()> {
    let io = |source| Error::Io { path: path.to_path_buf(), source };
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io)?;
    let tmp = path.with_extension("json.tmp");
    let mut f = std::fs::File::create(&tmp).map_err(io)?;
    let bytes = serde_json::to_vec(&state)
        .map_err(|e| Error::State { path: path.to_path_buf(), reason: e.to_string() })?;
    f.write_all(&bytes).map_err(io)?;
    f.sync_all().map_err(io)?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(io)?;
    std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(io)?;
    let meta = std::fs::metadata(path).map_err(io)?;
    remember(path, stamp(&meta), Arc::new(state));
    Ok(())
}
