//! Paths inside the SS-MIX2 tree as the backup names them: relative to `tree/`, `/`-separated,
//! checked once so that nothing received over the network can name a file outside the tree.
//!
//! The manifest keys a file by its directory key (`dkey`: the directory's components joined by
//! U+0001) and its name. Because U+0001 sorts before every character a name may hold, ordering by
//! `(dkey, name)` walks the tree depth-first with each directory's children in name order, which is
//! what the streaming Merkle computation needs.

use std::path::{Path, PathBuf};

use crate::BackupError;

/// Separator of directory components in a directory key.
pub const DKEY_SEP: char = '\u{1}';

/// A checked relative path inside the tree (`facility/…/name`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TreePath(String);

impl TreePath {
    /// Checks `s`: non-empty `/`-separated components, none empty, `.` or `..`, no control characters.
    pub fn parse(s: &str) -> Result<Self, BackupError> {
        let bad = |reason: &str| BackupError::BadPath {
            path: s.escape_default().to_string(),
            reason: reason.into(),
        };
        if s.is_empty() {
            return Err(bad("empty"));
        }
        for c in s.split('/') {
            if c.is_empty() || c == "." || c == ".." {
                return Err(bad("empty, '.' or '..' component"));
            }
            if c.chars().any(|ch| ch.is_control()) {
                return Err(bad("control character"));
            }
        }
        Ok(Self(s.to_owned()))
    }

    /// The path of a file a journal entry names (`facility` + storage path).
    pub fn of_entry(facility: &str, path: &str) -> Result<Self, BackupError> {
        Self::parse(&format!("{facility}/{path}"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The file on disk under `tree_root`.
    pub fn under(&self, tree_root: &Path) -> PathBuf {
        tree_root.join(&self.0)
    }

    /// `(dkey, name)`: the manifest's key for this path.
    pub fn key(&self) -> (String, &str) {
        match self.0.rsplit_once('/') {
            Some((dir, name)) => (dir.replace('/', &DKEY_SEP.to_string()), name),
            None => (String::new(), &self.0),
        }
    }

    /// Rebuilds a path from a manifest key.
    pub fn from_key(dkey: &str, name: &str) -> Self {
        if dkey.is_empty() {
            Self(name.to_owned())
        } else {
            Self(format!("{}/{name}", dkey.replace(DKEY_SEP, "/")))
        }
    }
}

impl std::fmt::Display for TreePath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The directory key of a `/`-separated directory path ('' = the tree root).
pub fn dkey_of_dir(dir: &str) -> String {
    dir.trim_matches('/').replace('/', &DKEY_SEP.to_string())
}

/// The `/`-separated directory path of a directory key.
pub fn dir_of_dkey(dkey: &str) -> String {
    dkey.replace(DKEY_SEP, "/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_outside_the_tree_are_refused() {
        for bad in ["", "/etc/passwd", "a/../b", "a//b", "./a", "a/b\n", "a/\u{1}"] {
            assert!(TreePath::parse(bad).is_err(), "{bad:?}");
        }
        let p = TreePath::parse("F1/000/001/x_1").unwrap();
        let (dkey, name) = p.key();
        assert_eq!(name, "x_1");
        assert_eq!(TreePath::from_key(&dkey, name), p);
    }

    #[test]
    fn directory_keys_sort_depth_first() {
        // "a/b" then everything below it, then "a/b-x" (plain '/'-joined strings would interleave).
        let mut keys = vec![dkey_of_dir("a/b-x"), dkey_of_dir("a/b/c"), dkey_of_dir("a/b")];
        keys.sort();
        assert_eq!(keys, vec![dkey_of_dir("a/b"), dkey_of_dir("a/b/c"), dkey_of_dir("a/b-x")]);
    }
}
