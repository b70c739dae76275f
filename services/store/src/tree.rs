//! The SS-MIX2 trees on disk: `tree/<facility>/<PID3>/<PID3>/<PID>/<date>/<type>/<file>`, and the
//! staging folder (same filesystem) where new files are written before they are renamed into place.
//!
//! Every path here is built from a [`FacilityId`] and a parsed [`StoragePath`], never from a raw
//! string, so nothing can be written outside the tree root.

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use sha2::{Digest, Sha256};
use ssmix2::{FileName, StoragePath};

use crate::durable::{SharedSyncfs, create_dirs_synced, fsync_dir};
use crate::{FacilityId, StoreError};

/// The tree root and the staging folder.
#[derive(Debug)]
pub struct Tree {
    root: PathBuf,
    staging: PathBuf,
    /// Makes staged names unique within this process; the start time makes them unique across runs.
    counter: AtomicU64,
    run_id: u64,
    /// `syncfs` of the filesystem holding the root and staging, shared by concurrent batches.
    flusher: SharedSyncfs,
}

impl Tree {
    /// Opens (creating) the root and staging folders.
    pub fn open(root: &Path, staging: &Path) -> Result<Self, StoreError> {
        create_dirs_synced(root)?;
        create_dirs_synced(staging)?;
        let run_id = jiff::Timestamp::now().as_nanosecond() as u64;
        Ok(Self {
            root: root.to_owned(),
            staging: staging.to_owned(),
            counter: AtomicU64::new(0),
            run_id,
            flusher: SharedSyncfs::new(root),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn staging(&self) -> &Path {
        &self.staging
    }

    /// Makes everything written below the root and staging so far durable (one `syncfs`, shared
    /// with the batches flushing at the same time).
    pub fn syncfs(&self) -> Result<(), StoreError> {
        self.flusher.flush()
    }

    /// `syncfs` calls made so far.
    pub fn syncfs_count(&self) -> u64 {
        self.flusher.flushes()
    }

    /// The root of one facility's SS-MIX2 tree.
    pub fn facility_root(&self, f: &FacilityId) -> PathBuf {
        self.root.join(f.as_str())
    }

    /// Where a file lives.
    pub fn path_of(&self, f: &FacilityId, p: &StoragePath) -> PathBuf {
        self.facility_root(f).join(p.relative())
    }

    /// The data-type folder that holds a file.
    pub fn dir_of(&self, f: &FacilityId, p: &StoragePath) -> PathBuf {
        self.facility_root(f).join(p.dir())
    }

    /// The SS-MIX2 names in a data-type folder (none if it does not exist). Anything else found
    /// there is skipped with a warning: the store never put it there.
    pub fn list(&self, dir: &Path) -> Result<Vec<FileName>, StoreError> {
        let rd = match std::fs::read_dir(dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(StoreError::io(dir, e)),
        };
        let mut out = Vec::new();
        for item in rd {
            let item = item.map_err(|e| StoreError::io(dir, e))?;
            match item.file_name().to_str().map(FileName::parse) {
                Some(Ok(n)) => out.push(n),
                _ => tracing::warn!(file = %item.path().display(), "not an SS-MIX2 file name; ignored"),
            }
        }
        Ok(out)
    }

    /// Writes `bytes` to a new staged file (not yet fsynced) and returns its name in `staging/`.
    pub fn stage(&self, bytes: &[u8]) -> Result<String, StoreError> {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let name = format!("{:x}-{n:x}.stage", self.run_id);
        let path = self.staging.join(&name);
        let mut f =
            File::options().write(true).create_new(true).open(&path).map_err(|e| StoreError::io(&path, e))?;
        f.write_all(bytes).map_err(|e| StoreError::io(&path, e))?;
        Ok(name)
    }

    /// The path of a staged file. `name` comes from [`Tree::stage`] or the journal; anything that is
    /// not a plain staged name is refused.
    pub fn staged_path(&self, name: &str) -> Result<PathBuf, StoreError> {
        let plain = name
            .strip_suffix(".stage")
            .is_some_and(|stem| !stem.is_empty() && stem.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-'));
        if !plain {
            return Err(StoreError::Recovery(format!(
                "staged file name {:?} is not one the store makes",
                name.escape_default()
            )));
        }
        Ok(self.staging.join(name))
    }

    /// Makes staged files durable, file by file, and the staging folder's entries too.
    pub fn sync_staged(&self, names: &[String]) -> Result<(), StoreError> {
        use rayon::prelude::*;
        names.par_iter().try_for_each(|n| {
            let p = self.staging.join(n);
            File::open(&p).and_then(|f| f.sync_data()).map_err(|e| StoreError::io(&p, e))
        })?;
        fsync_dir(&self.staging)
    }

    /// Removes everything in staging (at start, after recovery: what is left was never committed).
    pub fn clean_staging(&self) -> Result<usize, StoreError> {
        let mut n = 0;
        let rd = std::fs::read_dir(&self.staging).map_err(|e| StoreError::io(&self.staging, e))?;
        for item in rd {
            let item = item.map_err(|e| StoreError::io(&self.staging, e))?;
            let p = item.path();
            let r = if item.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                std::fs::remove_dir_all(&p)
            } else {
                std::fs::remove_file(&p)
            };
            r.map_err(|e| StoreError::io(&p, e))?;
            n += 1;
        }
        if n > 0 {
            fsync_dir(&self.staging)?;
        }
        Ok(n)
    }
}

/// The sha256 (hex) and size of a file's content.
pub fn hash_file(path: &Path) -> Result<(String, u64), StoreError> {
    let mut f = File::open(path).map_err(|e| StoreError::io(path, e))?;
    let mut h = Sha256::new();
    let mut buf = [0u8; 64 * 1024];
    let mut size = 0u64;
    loop {
        let n = f.read(&mut buf).map_err(|e| StoreError::io(path, e))?;
        if n == 0 {
            break;
        }
        size += n as u64;
        h.update(&buf[..n]);
    }
    Ok((hex::encode(h.finalize()), size))
}
