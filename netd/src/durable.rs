//! The one crash-safe file write netd uses for keys, enrollment, views and its last-good state:
//! temp file beside the target (with the target's mode from the start), fsync, rename, fsync the
//! directory. A crash leaves the old file or the new one, never a torn one.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Write `bytes` to `path` with `mode`, creating its directory. On failure, the path that failed.
pub fn write_file(path: &Path, bytes: &[u8], mode: u32) -> Result<(), (PathBuf, std::io::Error)> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let at = |p: &Path| {
        let p = p.to_path_buf();
        move |e| (p, e)
    };
    std::fs::create_dir_all(dir).map_err(at(dir))?;
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp"));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)
        .map_err(at(&tmp))?;
    f.write_all(bytes).map_err(at(&tmp))?;
    f.sync_all().map_err(at(&tmp))?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(at(path))?;
    std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(at(dir))
}
