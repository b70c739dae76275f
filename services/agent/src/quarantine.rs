//! The quarantine folder: files that must not be uploaded (invalid at the agent, or rejected by the
//! store), each with a `<name>.reason.json` beside it saying why.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

use crate::check::Violation;
use crate::durable;

/// Suffix of the reason file written beside each quarantined file.
pub const REASON_SUFFIX: &str = ".reason.json";

/// Where a quarantined file came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    /// The agent's own check refused it.
    Agent,
    /// The store refused it.
    Store,
}

#[derive(Serialize)]
struct Reason<'a> {
    file: &'a str,
    origin: Origin,
    sha256: &'a str,
    time: String,
    violations: &'a [Violation],
}

/// The quarantine folder and a count of the files in it.
pub struct Quarantine {
    dir: PathBuf,
    count: AtomicU64,
}

impl Quarantine {
    /// Opens (creating if needed) the folder and counts what is already there.
    pub fn open(dir: &Path) -> io::Result<Self> {
        durable::create_dir_all_synced(dir)?;
        Ok(Self { dir: dir.to_owned(), count: AtomicU64::new(count_files(dir)?) })
    }

    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Moves `src` to `quarantine/<rel>` (a free name is chosen if that is taken) with its reason file
    /// written first. Returns where the file went.
    pub fn put(
        &self,
        src: &Path,
        rel: &str,
        origin: Origin,
        sha256: &str,
        violations: &[Violation],
    ) -> io::Result<PathBuf> {
        let rel = sanitize(rel);
        let mut dest = self.dir.join(&rel);
        let mut n = 1;
        while dest.exists() {
            dest = self.dir.join(format!("{rel}.{n}"));
            n += 1;
        }
        let parent = dest.parent().unwrap_or(&self.dir).to_owned();
        durable::create_dir_all_synced(&parent)?;
        let reason = Reason { file: &rel, origin, sha256, time: crate::agent_log::local_now().1, violations };
        let reason_path = PathBuf::from(format!("{}{REASON_SUFFIX}", dest.display()));
        durable::write_atomic(&reason_path, &serde_json::to_vec_pretty(&reason).map_err(io::Error::other)?)?;
        if let Err(e) = durable::move_file(src, &dest) {
            let _ = fs::remove_file(&reason_path);
            return Err(e);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        Ok(dest)
    }
}

/// Keeps a relative path inside the quarantine: drops empty, `.` and `..` components.
fn sanitize(rel: &str) -> String {
    let parts: Vec<&str> = rel.split('/').filter(|p| !p.is_empty() && *p != "." && *p != "..").collect();
    if parts.is_empty() { "unnamed".to_owned() } else { parts.join("/") }
}

/// Counts quarantined files (not their reason files) below `dir`.
pub fn count_files(dir: &Path) -> io::Result<u64> {
    let mut n = 0;
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let ty = entry.file_type()?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if ty.is_dir() {
            n += count_files(&entry.path())?;
        } else if !name.ends_with(REASON_SUFFIX) && !name.starts_with(durable::TEMP_PREFIX) {
            n += 1;
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quarantined_file_keeps_its_path_and_gets_a_reason() {
        let d = tempfile::tempdir().unwrap();
        let src = d.path().join("bad");
        fs::write(&src, b"x").unwrap();
        let q = Quarantine::open(&d.path().join("q")).unwrap();
        let v = [Violation { code: "bad-file-name".into(), field: None, message: "nope".into() }];
        let dest = q.put(&src, "a/../b/bad", Origin::Agent, "00", &v).unwrap();
        assert_eq!(dest, d.path().join("q/a/b/bad"));
        let reason: serde_json::Value =
            serde_json::from_slice(&fs::read(d.path().join("q/a/b/bad.reason.json")).unwrap()).unwrap();
        assert_eq!(reason["violations"][0]["code"], "bad-file-name");
        fs::write(&src, b"y").unwrap();
        assert_eq!(q.put(&src, "a/b/bad", Origin::Store, "01", &v).unwrap(), d.path().join("q/a/b/bad.1"));
        assert_eq!(q.count(), 2);
        assert_eq!(Quarantine::open(&d.path().join("q")).unwrap().count(), 2);
    }
}
