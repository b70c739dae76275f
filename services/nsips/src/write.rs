use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use ssmix2::StoragePath;

use crate::NsipsError;

/// Writes converted files below the storage root `root`, crash-safely: each to a temporary name in
/// its folder, fsync, rename into place, fsync the folder. A file already present with the same
/// bytes is left alone (re-running a conversion is harmless); with other bytes it is an error, as
/// SS-MIX2 never rewrites a file. Returns how many files were written.
pub fn write_files(root: &Path, files: &[(StoragePath, Vec<u8>)]) -> Result<usize, NsipsError> {
    let io = |path: &Path, e: std::io::Error| NsipsError::Io { path: path.to_owned(), source: e };
    let mut written = 0;
    for (rel, bytes) in files {
        let dir = root.join(rel.dir());
        let target = root.join(rel.relative());
        match std::fs::read(&target) {
            Ok(old) if old == *bytes => continue,
            Ok(_) => {
                return Err(io(
                    &target,
                    std::io::Error::other("exists with other content; SS-MIX2 files are never rewritten"),
                ));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(&target, e)),
        }
        std::fs::create_dir_all(&dir).map_err(|e| io(&dir, e))?;
        let tmp: PathBuf = dir.join(format!(".{}.tmp", rel.name));
        let mut f = File::create(&tmp).map_err(|e| io(&tmp, e))?;
        f.write_all(bytes).and_then(|()| f.sync_all()).map_err(|e| io(&tmp, e))?;
        drop(f);
        std::fs::rename(&tmp, &target).map_err(|e| io(&target, e))?;
        File::open(&dir).and_then(|d| d.sync_all()).map_err(|e| io(&dir, e))?;
        written += 1;
    }
    Ok(written)
}
