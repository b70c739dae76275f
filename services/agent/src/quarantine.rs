//! The quarantine folder: files that must not be uploaded (invalid at the agent, or rejected by the
//! store), each with a `<name>.reason.json` beside it saying why.

use std::collections::HashMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

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

/// The quarantine folder, a count of the files in it and their names.
pub struct Quarantine {
    dir: PathBuf,
    count: AtomicU64,
    /// Quarantined files (paths below `dir`, `/`-separated) by the path they were put under, that is
    /// without the `.N` suffix [`Quarantine::put`] adds to keep copies apart: what
    /// [`Quarantine::retire`] looks up without touching the disk.
    names: Mutex<HashMap<String, Vec<String>>>,
}

impl Quarantine {
    /// Opens (creating if needed) the folder and counts what is already there.
    pub fn open(dir: &Path) -> io::Result<Self> {
        durable::create_dir_all_synced(dir)?;
        // A crash while a reason file was written leaves its temp file behind.
        durable::remove_temp_files_below(dir)?;
        let mut found = Vec::new();
        list_files(dir, dir, &mut found)?;
        let mut names: HashMap<String, Vec<String>> = HashMap::new();
        for rel in &found {
            names.entry(without_copy_suffix(rel).to_owned()).or_default().push(rel.clone());
        }
        Ok(Self { dir: dir.to_owned(), count: AtomicU64::new(found.len() as u64), names: Mutex::new(names) })
    }

    fn names(&self) -> std::sync::MutexGuard<'_, HashMap<String, Vec<String>>> {
        self.names.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Removes every quarantined file put under one of `keys` (paths below the quarantine folder as
    /// given to [`Quarantine::put`], e.g. the export path or `rejected/<storage path>`), with its
    /// copies (`.N`) and reason files: a file of that name was taken since, and supersedes them.
    /// Returns the paths removed. No system call unless there is such a file.
    pub fn retire(&self, keys: &[&str]) -> Vec<String> {
        let mut removed = Vec::new();
        for key in keys {
            let key = sanitize(key);
            let Some(copies) = self.names().remove(&key) else { continue };
            for rel in copies {
                let file = self.dir.join(&rel);
                match fs::remove_file(&file) {
                    Ok(()) => {
                        self.count.fetch_sub(1, Ordering::Relaxed);
                        removed.push(rel);
                    }
                    // Removed by hand: forgotten.
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => {
                        tracing::warn!(
                            "cannot remove the superseded quarantined file {}: {e}",
                            file.display()
                        );
                        self.names().entry(key.clone()).or_default().push(rel);
                        continue;
                    }
                }
                let _ = fs::remove_file(format!("{}{REASON_SUFFIX}", file.display()));
            }
        }
        removed
    }

    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The newest `max` quarantined files, newest first, as their reason files describe them
    /// (for the heartbeat, so the centre's admin screen can show and re-request them).
    pub fn list_newest(&self, max: usize) -> io::Result<Vec<kizuna_wire::QuarantinedFile>> {
        let mut out = Vec::new();
        list_reasons(&self.dir, &self.dir, &mut out)?;
        out.sort_by_key(|(t, f): &(Option<jiff::Timestamp>, kizuna_wire::QuarantinedFile)| {
            (std::cmp::Reverse(*t), f.file.clone())
        });
        Ok(out.into_iter().take(max).map(|(_, f)| f).collect())
    }

    /// Moves the quarantined `file` (a path below the quarantine folder) back into `export_dir`,
    /// where the agent checks it again and, if it now passes, uploads it. Files the store rejected
    /// (`rejected/<storage path>`) go back under their storage path; a `.N` suffix that quarantine
    /// added to keep two copies apart is dropped. NSIPS sources (`nsips/<name>`) go back into
    /// `nsips_dir`.
    pub fn release(&self, file: &str, export_dir: &Path, nsips_dir: Option<&Path>) -> Released {
        let clean = sanitize(file);
        if clean != file || file.ends_with(REASON_SUFFIX) {
            return Released::Failed(format!("{file:?} is not a path inside the quarantine"));
        }
        let src = self.dir.join(file);
        if !src.is_file() {
            return Released::Missing;
        }
        let mut rel = file.strip_prefix("rejected/").unwrap_or(file).to_owned();
        if let Some((stem, n)) = rel.rsplit_once('.')
            && !n.is_empty()
            && n.bytes().all(|b| b.is_ascii_digit())
        {
            rel = stem.to_owned();
        }
        let dest = match (rel.strip_prefix(crate::nsips::QUARANTINE_PREFIX), nsips_dir) {
            (Some(name), Some(dir)) => dir.join(name),
            _ => export_dir.join(&rel),
        };
        if dest.exists() {
            return Released::Failed(format!("{} already exists in the export folder", rel));
        }
        let place = || {
            dest.parent()
                .map_or(Ok(()), durable::create_dir_all_synced)
                .and_then(|()| durable::move_file(&src, &dest))
        };
        // A rescan may prune an old empty folder on the way between its creation and the move.
        let mut moved = place();
        for _ in 0..3 {
            match &moved {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound && src.is_file() => moved = place(),
                _ => break,
            }
        }
        match moved {
            Ok(()) => {
                let mut names = self.names();
                if let Some(copies) = names.get_mut(without_copy_suffix(file)) {
                    copies.retain(|c| c != file);
                    if copies.is_empty() {
                        names.remove(without_copy_suffix(file));
                    }
                }
                drop(names);
                let reason = PathBuf::from(format!("{}{REASON_SUFFIX}", src.display()));
                let _ = fs::remove_file(&reason);
                if let Some(p) = reason.parent() {
                    let _ = durable::sync_dir(p);
                }
                self.count.fetch_sub(1, Ordering::Relaxed);
                Released::Moved(rel)
            }
            Err(e) => Released::Failed(format!("cannot move {file} to {}: {e}", dest.display())),
        }
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
        let put_as = dest.strip_prefix(&self.dir).unwrap_or(&dest).to_string_lossy().into_owned();
        self.names().entry(rel).or_default().push(put_as);
        self.count.fetch_add(1, Ordering::Relaxed);
        Ok(dest)
    }
}

/// What [`Quarantine::release`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Released {
    /// Moved back to this path below the export folder.
    Moved(String),
    /// Not in the quarantine (released before, or removed by hand).
    Missing,
    Failed(String),
}

/// A reason file as written by [`Quarantine::put`].
#[derive(Deserialize)]
struct ReasonOnDisk {
    origin: String,
    #[serde(default)]
    sha256: String,
    #[serde(default)]
    time: String,
    #[serde(default)]
    violations: Vec<Violation>,
}

fn list_reasons(
    root: &Path,
    dir: &Path,
    out: &mut Vec<(Option<jiff::Timestamp>, kizuna_wire::QuarantinedFile)>,
) -> io::Result<()> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let path = entry.path();
        if entry.file_type()?.is_dir() {
            list_reasons(root, &path, out)?;
            continue;
        }
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(file_name) = name.strip_suffix(REASON_SUFFIX) else { continue };
        let file = path.with_file_name(file_name);
        if !file.is_file() {
            continue;
        }
        let Ok(r) = fs::read(&path)
            .map_err(drop)
            .and_then(|b| serde_json::from_slice::<ReasonOnDisk>(&b).map_err(drop))
        else {
            continue;
        };
        let rel = file.strip_prefix(root).unwrap_or(&file).to_string_lossy().into_owned();
        let reason =
            r.violations.iter().map(|v| format!("{}: {}", v.code, v.message)).collect::<Vec<_>>().join("; ");
        out.push((
            r.time.parse().ok(),
            kizuna_wire::QuarantinedFile {
                file: rel,
                origin: r.origin,
                sha256: r.sha256,
                codes: r.violations.iter().map(|v| v.code.clone()).filter(|c| c != "store-reason").collect(),
                reason: reason.chars().take(2000).collect(),
                time: r.time,
            },
        ));
    }
    Ok(())
}

/// Keeps a relative path inside the quarantine: drops empty, `.` and `..` components.
fn sanitize(rel: &str) -> String {
    let parts: Vec<&str> = rel.split('/').filter(|p| !p.is_empty() && *p != "." && *p != "..").collect();
    if parts.is_empty() { "unnamed".to_owned() } else { parts.join("/") }
}

/// `rel` without the `.N` suffix [`Quarantine::put`] adds to keep copies apart.
fn without_copy_suffix(rel: &str) -> &str {
    match rel.rsplit_once('.') {
        Some((stem, n)) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) && !stem.ends_with('/') => {
            stem
        }
        _ => rel,
    }
}

/// Collects the quarantined files (not their reason files) below `dir`, as `/`-separated paths
/// below `root`.
fn list_files(root: &Path, dir: &Path, out: &mut Vec<String>) -> io::Result<()> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if entry.file_type()?.is_dir() {
            list_files(root, &entry.path(), out)?;
        } else if !name.ends_with(REASON_SUFFIX) && !name.starts_with(durable::TEMP_PREFIX) {
            let p = entry.path();
            out.push(p.strip_prefix(root).unwrap_or(&p).to_string_lossy().into_owned());
        }
    }
    Ok(())
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

    /// Review finding 6: a fixed file taken under a quarantined file's name leaves no stale entry.
    #[test]
    fn retire_removes_the_files_put_under_a_name_with_their_copies_and_reasons() {
        let d = tempfile::tempdir().unwrap();
        let v = [Violation { code: "not-hl7".into(), field: None, message: "empty".into() }];
        let q = Quarantine::open(&d.path().join("q")).unwrap();
        for (i, rel) in ["w/a", "w/a", "rejected/x/a", "nsips/n.csv", "w/b"].iter().enumerate() {
            let src = d.path().join(format!("src{i}"));
            fs::write(&src, b"x").unwrap();
            q.put(&src, rel, Origin::Agent, "00", &v).unwrap();
        }
        assert_eq!(q.count(), 5);
        assert!(q.retire(&["w/c", "rejected/w/a"]).is_empty(), "nothing of that name");
        let mut gone = q.retire(&["w/a", "rejected/x/a"]);
        gone.sort();
        assert_eq!(gone, ["rejected/x/a", "w/a", "w/a.1"]);
        assert_eq!(q.count(), 2);
        assert_eq!(q.list_newest(10).unwrap().len(), 2);
        assert!(
            !d.path().join("q/w/a.reason.json").exists() && !d.path().join("q/w/a.1.reason.json").exists()
        );
        // Known again after a restart (from the folder), also for NSIPS sources.
        let q = Quarantine::open(&d.path().join("q")).unwrap();
        assert_eq!(q.retire(&["nsips/n.csv"]), ["nsips/n.csv"]);
        assert_eq!(q.count(), 1);
        assert!(q.retire(&["w/a"]).is_empty());
        assert_eq!(q.release("w/b", d.path(), None), Released::Moved("w/b".into()));
        assert!(q.retire(&["w/b"]).is_empty(), "released: not quarantined any more");
        assert_eq!(q.count(), 0);
    }

    #[test]
    fn nsips_sources_are_released_into_the_nsips_folder() {
        let d = tempfile::tempdir().unwrap();
        let (export, nsips) = (d.path().join("export"), d.path().join("nsips"));
        fs::create_dir_all(&export).unwrap();
        fs::create_dir_all(&nsips).unwrap();
        let src = nsips.join("x.csv");
        fs::write(&src, b"VER").unwrap();
        let q = Quarantine::open(&d.path().join("q")).unwrap();
        let v = [Violation { code: "nsips-line".into(), field: None, message: "x.csv:1: bad".into() }];
        q.put(&src, "nsips/x.csv", Origin::Agent, "00", &v).unwrap();
        assert!(!src.exists());
        assert_eq!(q.release("nsips/x.csv", &export, Some(&nsips)), Released::Moved("nsips/x.csv".into()));
        assert_eq!(fs::read(&src).unwrap(), b"VER");
        assert_eq!(q.count(), 0);
    }
}
