use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use ssmix2::condition::{Step, Transition, plan};
use ssmix2::{FileName, StoragePath};

use crate::NsipsError;

/// Writes converted files below the storage root `root` with the condition-flag semantics
/// (`ssmix2::condition::plan` against the folder: a later send of the same prescription turns the
/// earlier `_1` into `_2`, a late one is stored as `_2`), crash-safely: each file to a temporary
/// name in its folder, fsync, rename into place, fsync the folder. A version already stored (same
/// send time) with the same bytes is left alone (re-running a conversion is harmless); with other
/// bytes it is an error, as SS-MIX2 never rewrites a file. Returns how many files were written.
pub fn write_files(root: &Path, files: &[(StoragePath, Vec<u8>)]) -> Result<usize, NsipsError> {
    let io = |path: &Path, e: std::io::Error| NsipsError::Io { path: path.to_owned(), source: e.into() };
    let mut written = 0;
    for (rel, bytes) in files {
        let dir = root.join(rel.dir());
        std::fs::create_dir_all(&dir).map_err(|e| io(&dir, e))?;
        let existing: Vec<FileName> = std::fs::read_dir(&dir)
            .map_err(|e| io(&dir, e))?
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
            .collect();
        let steps = match plan(&existing, &rel.name) {
            Transition::AlreadyStored(name) => {
                let stored = dir.join(name.to_string());
                let old = std::fs::read(&stored).map_err(|e| io(&stored, e))?;
                if old == *bytes {
                    continue;
                }
                return Err(io(
                    &stored,
                    std::io::Error::other("exists with other content; SS-MIX2 files are never rewritten"),
                ));
            }
            Transition::Apply(steps) => steps,
        };
        for step in steps {
            match step {
                Step::Rename { from, to } => {
                    let (from, to) = (dir.join(from.to_string()), dir.join(to.to_string()));
                    std::fs::rename(&from, &to).map_err(|e| io(&from, e))?;
                }
                Step::Write { name } => {
                    let target = dir.join(name.to_string());
                    let tmp: PathBuf = dir.join(format!(".{name}.tmp"));
                    let mut f = File::create(&tmp).map_err(|e| io(&tmp, e))?;
                    f.write_all(bytes).and_then(|()| f.sync_all()).map_err(|e| io(&tmp, e))?;
                    drop(f);
                    std::fs::rename(&tmp, &target).map_err(|e| io(&target, e))?;
                }
            }
        }
        File::open(&dir).and_then(|d| d.sync_all()).map_err(|e| io(&dir, e))?;
        written += 1;
    }
    Ok(written)
}
