//! The last good state on disk: what netd last applied and verified, kept for rollback.
//! Written crash-safe (temp file, fsync, rename, fsync dir).

use std::io::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::plan::DesiredState;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LastGood {
    pub desired: DesiredState,
    /// Table `kizuna` as nft listed it right after the verified apply (canonical form).
    pub firewall_readback: Option<serde_json::Value>,
}

pub fn load(path: &Path) -> Result<Option<LastGood>> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| Error::State { path: path.to_path_buf(), reason: e.to_string() }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(Error::Io { path: path.to_path_buf(), source }),
    }
}

pub fn save(path: &Path, state: &LastGood) -> Result<()> {
    let io = |source| Error::Io { path: path.to_path_buf(), source };
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io)?;
    let tmp = path.with_extension("json.tmp");
    let mut f = std::fs::File::create(&tmp).map_err(io)?;
    let bytes = serde_json::to_vec_pretty(state)
        .map_err(|e| Error::State { path: path.to_path_buf(), reason: e.to_string() })?;
    f.write_all(&bytes).map_err(io)?;
    f.sync_all().map_err(io)?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(io)?;
    std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(io)?;
    Ok(())
}
