//! The replica's side of verification: the summary of one directory of its manifest, with each
//! recorded file checked against the disk as asked (stat: present, same size and modification time;
//! content: sha256 read again), and files on disk that nothing recorded reported as `unrecorded`,
//! in every folder on disk (walked beside the manifest, streamed in the same order).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::BackupError;
use crate::durable::mtime_ns;
use crate::manifest::{Manifest, Recorded};
use crate::merkle::{Summariser, Summary};
use crate::paths::{DKEY_SEP, dir_of_dkey, dkey_of_dir};
use crate::replica::apply::hash_file;

/// How closely the replica checks its files against what it recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Check {
    /// Only the recorded digests (no disk access).
    Recorded,
    /// Each file's presence, size and modification time, and unrecorded files in its folder.
    #[default]
    Stat,
    /// As `stat`, and each file's content hashed again.
    Content,
}

/// A request for one directory's summary.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DigestRequest {
    /// `/`-separated directory relative to the tree ('' = the root).
    pub prefix: String,
    #[serde(default)]
    pub check: Check,
}

/// Summarises the directory `prefix` of `manifest`, checking files under `tree` (None = no disk).
/// With `stat` and `content` the folders on disk are walked beside the manifest, in the same key
/// order, so a file is reported `unrecorded` in any folder: one with recorded files, and one with
/// none (a folder only the replica has, an intermediate level, the tree root), which the manifest
/// walk alone never visits.
pub async fn summarise(
    manifest: &Manifest,
    tree: Option<&Path>,
    prefix: &str,
    check: Check,
) -> Result<Summary, BackupError> {
    let dkey = dkey_of_dir(prefix);
    let mut s = Summariser::new(&dkey);
    let mut disk = match tree {
        Some(tree) if check != Check::Recorded => Some((tree, DiskWalk::new(tree, &dkey))),
        _ => None,
    };
    manifest
        .walk(&dkey, |d, files| {
            match &mut disk {
                Some((tree, walk)) => {
                    while let Some((k, names)) = walk.next_before(d)? {
                        unrecorded_only(&mut s, &k, names);
                    }
                    let on_disk = walk.take_if(d)?;
                    let checked = check_dir(tree, d, files, on_disk, check)?;
                    s.add_dir(d, checked.iter().map(|(n, g)| (n.as_str(), g.as_str())));
                }
                None => s.add_dir(d, files.iter().map(|f| (f.name.as_str(), f.sha256.as_str()))),
            }
            Ok(())
        })
        .await?;
    if let Some((_, walk)) = &mut disk {
        while let Some((k, names)) = walk.next_before_end()? {
            unrecorded_only(&mut s, &k, names);
        }
    }
    Ok(s.finish())
}

/// A folder on disk with no recorded file: each of its files is `unrecorded` (an empty folder adds
/// nothing, as before: verify ignores empty folders).
fn unrecorded_only(s: &mut Summariser, dkey: &str, names: Vec<String>) {
    if !names.is_empty() {
        s.add_dir(dkey, names.iter().map(|n| (n.as_str(), UNRECORDED)));
    }
}

/// What the replica reports for a file on disk that its manifest does not record.
const UNRECORDED: &str = "unrecorded";

/// The folders on disk below a directory key, depth first in the manifest's key order (a folder,
/// then its subfolders by name, bytewise: U+0001 joins keys, so this is `ORDER BY dkey`), each with
/// its files' names, sorted. Memory: the subfolder names still to visit of each open level (tree
/// depth × one folder's fan-out), never the whole tree.
struct DiskWalk {
    tree: PathBuf,
    /// Per open level, the directory keys still to visit, last first.
    stack: Vec<Vec<String>>,
    /// The next folder, read ahead: its key and file names.
    peeked: Option<(String, Vec<String>)>,
}

impl DiskWalk {
    fn new(tree: &Path, dkey: &str) -> Self {
        Self { tree: tree.to_owned(), stack: vec![vec![dkey.to_owned()]], peeked: None }
    }

    /// Reads the next folder into `peeked`, if there is one.
    fn fill(&mut self) -> Result<(), BackupError> {
        while self.peeked.is_none() {
            let Some(top) = self.stack.last_mut() else { return Ok(()) };
            let Some(dkey) = top.pop() else {
                self.stack.pop();
                continue;
            };
            let dir = self.tree.join(dir_of_dkey(&dkey));
            let rd = match std::fs::read_dir(&dir) {
                Ok(rd) => rd,
                // Gone meanwhile, or the prefix was never there: nothing below it.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(BackupError::io(&dir, e)),
            };
            let (mut files, mut subdirs) = (Vec::new(), Vec::new());
            for item in rd {
                let item = item.map_err(|e| BackupError::io(&dir, e))?;
                let is_dir = item.file_type().map(|t| t.is_dir()).unwrap_or(false);
                match (is_dir, item.file_name().into_string()) {
                    (true, Ok(name)) => subdirs.push(name),
                    // A name that is not UTF-8 cannot be recorded: shown (lossily) as a file.
                    (_, name) => files.push(name.unwrap_or_else(|n| n.to_string_lossy().into_owned())),
                }
            }
            files.sort();
            subdirs.sort();
            let join = |n: &String| if dkey.is_empty() { n.clone() } else { format!("{dkey}{DKEY_SEP}{n}") };
            self.stack.push(subdirs.iter().rev().map(join).collect());
            self.peeked = Some((dkey, files));
        }
        Ok(())
    }

    /// The next folder if its key sorts before `bound` (a folder the manifest walk has not reached).
    fn next_before(&mut self, bound: &str) -> Result<Option<(String, Vec<String>)>, BackupError> {
        self.fill()?;
        Ok(match &self.peeked {
            Some((k, _)) if k.as_str() < bound => self.peeked.take(),
            _ => None,
        })
    }

    /// Every folder left, one by one.
    fn next_before_end(&mut self) -> Result<Option<(String, Vec<String>)>, BackupError> {
        self.fill()?;
        Ok(self.peeked.take())
    }

    /// The file names of folder `dkey` if it is the next one on disk (None: not on disk).
    fn take_if(&mut self, dkey: &str) -> Result<Option<Vec<String>>, BackupError> {
        self.fill()?;
        Ok(match &self.peeked {
            Some((k, _)) if k == dkey => self.peeked.take().map(|(_, names)| names),
            _ => None,
        })
    }
}

/// Each recorded file of one folder with the digest the disk supports, plus the unrecorded files
/// among `on_disk` (the folder's file names, from the disk walk; None: the folder is not on disk).
fn check_dir(
    tree: &Path,
    dkey: &str,
    files: Vec<Recorded>,
    on_disk: Option<Vec<String>>,
    check: Check,
) -> Result<Vec<(String, String)>, BackupError> {
    let dir = tree.join(dir_of_dkey(dkey));
    let mut out: BTreeMap<String, String> = BTreeMap::new();
    for f in files {
        let p = dir.join(&f.name);
        let digest = match std::fs::symlink_metadata(&p) {
            Err(_) => "missing".to_owned(),
            Ok(m) if !m.is_file() => "not-a-file".to_owned(),
            Ok(m) if m.len() != f.size || mtime_ns(&m) != f.mtime_ns => "changed-on-disk".to_owned(),
            Ok(_) if check == Check::Content => {
                let got = hash_file(&p)?;
                if got == f.sha256 { got } else { format!("content-{got}") }
            }
            Ok(_) => f.sha256,
        };
        out.insert(f.name, digest);
    }
    for name in on_disk.unwrap_or_default() {
        out.entry(name).or_insert_with(|| UNRECORDED.to_owned());
    }
    Ok(out.into_iter().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The disk walk meets folders in the manifest's key order (`ORDER BY dkey`), names that
    /// extend a sibling's included, and skips nothing; files come sorted.
    #[test]
    fn the_disk_walk_follows_the_manifest_key_order() {
        let t = tempfile::tempdir().unwrap();
        for d in ["a/b/c", "a/b-x", "a/b.y", "a/ba", "z", "empty/inner"] {
            std::fs::create_dir_all(t.path().join(d)).unwrap();
        }
        for f in ["root2", "root1", "a/b/c/f", "a/b-x/g", "z/h"] {
            std::fs::write(t.path().join(f), b"x").unwrap();
        }
        let mut w = DiskWalk::new(t.path(), "");
        let mut got = Vec::new();
        while let Some((k, names)) = w.next_before_end().unwrap() {
            got.push((k, names));
        }
        let keys: Vec<String> = got.iter().map(|(k, _)| k.clone()).collect();
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(keys, sorted, "key order");
        assert_eq!(keys.len(), 10, "{keys:?}");
        assert_eq!(got[0].1, ["root1", "root2"]);
        let only_a = {
            let mut w = DiskWalk::new(t.path(), &dkey_of_dir("a/b"));
            std::iter::from_fn(|| w.next_before_end().unwrap())
                .map(|(k, _)| dir_of_dkey(&k))
                .collect::<Vec<_>>()
        };
        assert_eq!(only_a, ["a/b", "a/b/c"]);
    }
}
