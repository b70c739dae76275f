//! Crash-safe file operations: every step that moves or writes a file is durable before the next
//! one starts, so a crash leaves the file in its old place, its new place, or (after a cross-device
//! copy) in both — never in neither.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;

/// The prefix of the agent's temporary files; anything starting with it is leftover from a crash.
pub const TEMP_PREFIX: &str = ".kizuna-tmp-";

/// Fsyncs a directory so that entries created, renamed or removed in it survive a crash.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// The folder holding `path`: its parent, or the working directory (`.`) for a bare relative name
/// such as `stbare`, whose parent is the empty path.
pub fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Creates `dir` and any missing parents, syncing each parent whose entries changed. A relative
/// `dir` is made in the working directory (the empty path, the parent of a bare name, is `.`).
pub fn create_dir_all_synced(dir: &Path) -> io::Result<()> {
    if dir.as_os_str().is_empty() || dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent() {
        create_dir_all_synced(parent)?;
    }
    match fs::create_dir(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Ok(()),
        Err(e) => return Err(e),
    }
    sync_dir(parent_dir(dir))
}

fn temp_beside(dest: &Path) -> std::path::PathBuf {
    let name = dest.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    dest.with_file_name(format!("{TEMP_PREFIX}{}-{name}", std::process::id()))
}

/// Writes `bytes` to `dest` as temp file, fsync, rename, directory fsync.
pub fn write_atomic(dest: &Path, bytes: &[u8]) -> io::Result<()> {
    let tmp = temp_beside(dest);
    let result = (|| {
        let mut f = OpenOptions::new().write(true).create(true).truncate(true).open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, dest)?;
        sync_dir(parent_dir(dest))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Moves `src` to `dest` (whose parent must exist) durably.
///
/// Same filesystem: rename, then fsync both directories. Across filesystems: copy to a temp file
/// beside `dest`, fsync, rename into place, fsync the directory, and only then unlink `src`. On any
/// error the temp file is removed and `src` is left untouched.
pub fn move_file(src: &Path, dest: &Path) -> io::Result<()> {
    let (dest_dir, src_dir) = (parent_dir(dest), parent_dir(src));
    match fs::rename(src, dest) {
        Ok(()) => {
            sync_dir(dest_dir)?;
            return sync_dir(src_dir);
        }
        Err(e) if e.kind() == io::ErrorKind::CrossesDevices => {}
        Err(e) => return Err(e),
    }
    let tmp = temp_beside(dest);
    let copied = (|| {
        let mut from = File::open(src)?;
        let mut to = OpenOptions::new().write(true).create(true).truncate(true).open(&tmp)?;
        io::copy(&mut from, &mut to)?;
        to.sync_all()?;
        if let Ok(meta) = from.metadata()
            && let Ok(mtime) = meta.modified()
        {
            let _ = to.set_modified(mtime);
        }
        fs::rename(&tmp, dest)?;
        sync_dir(dest_dir)
    })();
    if let Err(e) = copied {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    fs::remove_file(src)?;
    sync_dir(src_dir)
}

/// How [`place_file`] got a file to its destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placed {
    /// Renamed: the source is gone.
    Renamed,
    /// Copied across filesystems (content fsynced): the source is still there to unlink.
    Copied,
}

/// The first half of a grouped move: renames `src` to `dest`, or across filesystems copies it to a
/// temp file beside `dest`, fsyncs and renames it into place. It never replaces an existing
/// `dest`: that is an `AlreadyExists` error and `src` is left alone. Directory fsyncs and the
/// unlink of a copied source are left to the caller, so a group of files shares them; the caller
/// must fsync `dest`'s directory before unlinking any copied source.
pub fn place_file(src: &Path, dest: &Path) -> io::Result<Placed> {
    match rename_noreplace(src, dest) {
        Ok(()) => return Ok(Placed::Renamed),
        Err(e) if e.kind() == io::ErrorKind::CrossesDevices => {}
        Err(e) => return Err(e),
    }
    let tmp = temp_beside(dest);
    let copied = (|| {
        let mut from = File::open(src)?;
        let mut to = OpenOptions::new().write(true).create(true).truncate(true).open(&tmp)?;
        io::copy(&mut from, &mut to)?;
        if let Ok(meta) = from.metadata()
            && let Ok(mtime) = meta.modified()
        {
            let _ = to.set_modified(mtime);
        }
        to.sync_all()?;
        rename_noreplace(&tmp, dest)
    })();
    if let Err(e) = copied {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    Ok(Placed::Copied)
}

/// `rename` that fails with `AlreadyExists` instead of replacing `dest` (`renameat2` with
/// `RENAME_NOREPLACE`, one atomic step). On a filesystem without that flag it checks first, which
/// is enough here because the outbox's lock serialises every writer of `dest`'s directory.
fn rename_noreplace(src: &Path, dest: &Path) -> io::Result<()> {
    use rustix::fs::{CWD, RenameFlags, renameat_with};
    match renameat_with(CWD, src, CWD, dest, RenameFlags::NOREPLACE) {
        Ok(()) => Ok(()),
        Err(rustix::io::Errno::INVAL) => {
            if fs::symlink_metadata(dest).is_ok() {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!("{} exists", dest.display()),
                ));
            }
            fs::rename(src, dest)
        }
        Err(e) => Err(e.into()),
    }
}

/// Removes leftover temp files (from a crash mid-write) directly inside `dir`.
pub fn remove_temp_files(dir: &Path) -> io::Result<usize> {
    let mut n = 0;
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_name().to_string_lossy().starts_with(TEMP_PREFIX) {
            fs::remove_file(entry.path())?;
            n += 1;
        }
    }
    if n > 0 {
        sync_dir(dir)?;
    }
    Ok(n)
}

/// [`remove_temp_files`] in `dir` and every folder below it.
pub fn remove_temp_files_below(dir: &Path) -> io::Result<usize> {
    let mut n = remove_temp_files(dir)?;
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            n += remove_temp_files_below(&entry.path())?;
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn move_and_write_leave_no_temp_files() {
        let d = tempfile::tempdir().unwrap();
        let a = d.path().join("a");
        fs::write(&a, b"hello").unwrap();
        let sub = d.path().join("x/y");
        create_dir_all_synced(&sub).unwrap();
        move_file(&a, &sub.join("a")).unwrap();
        assert!(!a.exists());
        assert_eq!(fs::read(sub.join("a")).unwrap(), b"hello");
        write_atomic(&sub.join("b"), b"world").unwrap();
        assert_eq!(fs::read(sub.join("b")).unwrap(), b"world");
        fs::write(sub.join(format!("{TEMP_PREFIX}1-c")), b"junk").unwrap();
        assert_eq!(remove_temp_files(&sub).unwrap(), 1);
        fs::write(sub.join(format!("{TEMP_PREFIX}2-d")), b"junk").unwrap();
        fs::write(d.path().join(format!("{TEMP_PREFIX}3-e")), b"junk").unwrap();
        assert_eq!(remove_temp_files_below(d.path()).unwrap(), 2, "found in the folder and below it");
        let mut names: Vec<_> = fs::read_dir(&sub).unwrap().map(|e| e.unwrap().file_name()).collect();
        names.sort();
        assert_eq!(names, ["a", "b"]);
    }

    #[test]
    fn place_file_never_replaces_what_is_there() {
        let d = tempfile::tempdir().unwrap();
        let (src, dest) = (d.path().join("src"), d.path().join("dest"));
        fs::write(&src, b"new").unwrap();
        fs::write(&dest, b"waiting").unwrap();
        let err = place_file(&src, &dest).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(
            (fs::read(&src).unwrap(), fs::read(&dest).unwrap()),
            (b"new".to_vec(), b"waiting".to_vec())
        );
        fs::remove_file(&dest).unwrap();
        assert_eq!(place_file(&src, &dest).unwrap(), Placed::Renamed);
        assert!(!src.exists());
        assert_eq!(fs::read(&dest).unwrap(), b"new");
    }
}
