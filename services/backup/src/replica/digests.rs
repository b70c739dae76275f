//! The replica's side of verification: the summary of one directory of its manifest, with each
//! recorded file checked against the disk as asked (stat: present, same size and modification time;
//! content: sha256 read again), and files on disk that nothing recorded reported as `unrecorded`.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::BackupError;
use crate::durable::mtime_ns;
use crate::manifest::{Manifest, Recorded};
use crate::merkle::{Summariser, Summary};
use crate::paths::{dir_of_dkey, dkey_of_dir};
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
pub async fn summarise(
    manifest: &Manifest,
    tree: Option<&Path>,
    prefix: &str,
    check: Check,
) -> Result<Summary, BackupError> {
    let dkey = dkey_of_dir(prefix);
    let mut s = Summariser::new(&dkey);
    manifest
        .walk(&dkey, |d, files| {
            match tree {
                Some(tree) if check != Check::Recorded => {
                    let checked = check_dir(tree, d, files, check)?;
                    s.add_dir(d, checked.iter().map(|(n, g)| (n.as_str(), g.as_str())));
                }
                _ => s.add_dir(d, files.iter().map(|f| (f.name.as_str(), f.sha256.as_str()))),
            }
            Ok(())
        })
        .await?;
    Ok(s.finish())
}

/// Each recorded file of one folder with the digest the disk supports, plus unrecorded files.
fn check_dir(
    tree: &Path,
    dkey: &str,
    files: Vec<Recorded>,
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
    if let Ok(rd) = std::fs::read_dir(&dir) {
        for item in rd.flatten() {
            let is_file = item.file_type().map(|t| !t.is_dir()).unwrap_or(false);
            if let (true, Some(name)) = (is_file, item.file_name().to_str()) {
                out.entry(name.to_owned()).or_insert_with(|| "unrecorded".to_owned());
            }
        }
    }
    Ok(out.into_iter().collect())
}
