//! The Merkle tree of per-directory digests, computed in one streaming pass over a subtree's files
//! in depth-first order (see `paths`), holding only the open directories' hashers: memory grows
//! with the tree's depth and with one directory's fan-out, never with the number of files.
//!
//! A directory's digest is the sha256 of its children's lines, in the order the walk meets them
//! (its files by name, then its subdirectories by name): `f NAME DIGEST\n` for a file (the file's
//! sha256 as recorded at write) and `d NAME DIGEST\n` for a subdirectory. So the digest a directory
//! gets in a walk of the whole tree is the digest a walk of that directory alone gives, and two
//! sides can compare the root first and descend only into children whose digests differ.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::paths::DKEY_SEP;

/// One child of the directory being summarised.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Child {
    pub name: String,
    /// A subdirectory (else a file).
    pub dir: bool,
    /// For a file its sha256 (or a marker such as `missing` when the file on disk does not match
    /// what was recorded); for a directory its Merkle digest.
    pub digest: String,
}

/// A directory's digest and its children's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    pub digest: String,
    pub children: Vec<Child>,
    /// Files below the directory (all depths).
    pub files: u64,
}

/// Builds a [`Summary`] of the directory `prefix` from its subtree's directories, fed in directory
/// key order.
pub struct Summariser {
    prefix: String,
    /// The open directories from `prefix` down, each with its name and hasher.
    stack: Vec<(String, Sha256)>,
    children: Vec<Child>,
    files: u64,
}

impl Summariser {
    /// `prefix` is the directory key of the directory summarised ('' = the tree root).
    pub fn new(prefix: &str) -> Self {
        Self {
            prefix: prefix.to_owned(),
            stack: vec![(String::new(), Sha256::new())],
            children: Vec::new(),
            files: 0,
        }
    }

    /// Adds the files (sorted by name, with their digests) of the directory `dkey`, which must be
    /// `prefix` or below it, and come after every directory added before it in key order.
    pub fn add_dir<'a>(&mut self, dkey: &str, files: impl IntoIterator<Item = (&'a str, &'a str)>) {
        let rel = if self.prefix.is_empty() {
            dkey
        } else {
            dkey.strip_prefix(self.prefix.as_str()).map(|r| r.trim_start_matches(DKEY_SEP)).unwrap_or(dkey)
        };
        let rel: Vec<&str> = if rel.is_empty() { Vec::new() } else { rel.split(DKEY_SEP).collect() };
        let mut common = 0;
        while common < rel.len() && common + 1 < self.stack.len() && self.stack[common + 1].0 == rel[common] {
            common += 1;
        }
        while self.stack.len() > common + 1 {
            self.close_top();
        }
        for c in &rel[common..] {
            self.stack.push(((*c).to_owned(), Sha256::new()));
        }
        let at_root = self.stack.len() == 1;
        let top = &mut self.stack.last_mut().expect("root is never popped here").1;
        for (name, digest) in files {
            top.update(b"f ");
            top.update(name.as_bytes());
            top.update(b" ");
            top.update(digest.as_bytes());
            top.update(b"\n");
            self.files += 1;
            if at_root {
                self.children.push(Child { name: name.to_owned(), dir: false, digest: digest.to_owned() });
            }
        }
    }

    fn close_top(&mut self) {
        let (name, h) = self.stack.pop().expect("close_top on a non-root directory");
        let digest = hex::encode(h.finalize());
        let parent = &mut self.stack.last_mut().expect("the root stays").1;
        parent.update(b"d ");
        parent.update(name.as_bytes());
        parent.update(b" ");
        parent.update(digest.as_bytes());
        parent.update(b"\n");
        if self.stack.len() == 1 {
            self.children.push(Child { name, dir: true, digest });
        }
    }

    /// The summary of everything added.
    pub fn finish(mut self) -> Summary {
        while self.stack.len() > 1 {
            self.close_top();
        }
        let (_, h) = self.stack.pop().expect("root");
        Summary { digest: hex::encode(h.finalize()), children: self.children, files: self.files }
    }
}

/// How two summaries of the same directory differ, child by child (both sorted as produced).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Difference {
    /// A subdirectory whose digests differ, or that only one side has (`primary`/`replica` false
    /// when absent there).
    Dir { name: String, primary: bool, replica: bool },
    /// A file whose digests differ or that only one side has.
    File { name: String, primary: Option<String>, replica: Option<String> },
}

/// Compares the children of one directory on both sides.
pub fn compare(primary: &[Child], replica: &[Child]) -> Vec<Difference> {
    use std::collections::BTreeMap;
    let key = |c: &Child| (c.dir, c.name.clone());
    let p: BTreeMap<_, _> = primary.iter().map(|c| (key(c), c)).collect();
    let r: BTreeMap<_, _> = replica.iter().map(|c| (key(c), c)).collect();
    let mut out = Vec::new();
    for k in p.keys().chain(r.keys().filter(|k| !p.contains_key(*k))) {
        let (a, b) = (p.get(k), r.get(k));
        if let (Some(a), Some(b)) = (a, b)
            && a.digest == b.digest
        {
            continue;
        }
        out.push(if k.0 {
            Difference::Dir { name: k.1.clone(), primary: a.is_some(), replica: b.is_some() }
        } else {
            Difference::File {
                name: k.1.clone(),
                primary: a.map(|c| c.digest.clone()),
                replica: b.map(|c| c.digest.clone()),
            }
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::paths::dkey_of_dir;

    fn summarise(prefix: &str, dirs: &[(&str, &[(&str, &str)])]) -> Summary {
        let mut s = Summariser::new(&dkey_of_dir(prefix));
        for (d, files) in dirs {
            s.add_dir(&dkey_of_dir(d), files.iter().copied());
        }
        s.finish()
    }

    const TREE: &[(&str, &[(&str, &str)])] = &[
        ("F1/000/001/a", &[("x_1", "aa"), ("y_1", "bb")]),
        ("F1/000/001/b", &[("z_1", "cc")]),
        ("F1/000/002/a", &[("x_1", "dd")]),
        ("F2/000/001/a", &[("x_1", "ee")]),
    ];

    #[test]
    fn a_directory_has_the_same_digest_alone_and_inside_the_whole_tree() {
        let root = summarise("", TREE);
        assert_eq!(root.files, 5);
        assert_eq!(root.children.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(), ["F1", "F2"]);
        let f1: Vec<_> = TREE.iter().filter(|(d, _)| d.starts_with("F1/")).copied().collect();
        let alone = summarise("F1", &f1);
        assert_eq!(alone.digest, root.children[0].digest);
        assert_eq!(alone.children.len(), 1);
        let leaf = summarise("F1/000/001/a", &f1[..1]);
        assert_eq!(leaf.children.len(), 2);
        assert!(!leaf.children[0].dir);
    }

    #[test]
    fn one_changed_file_changes_every_digest_on_its_path_only() {
        let root = summarise("", TREE);
        let mut changed = TREE.to_vec();
        changed[2] = ("F1/000/002/a", &[("x_1", "XX")]);
        let other = summarise("", &changed);
        assert_ne!(root.digest, other.digest);
        let diffs = compare(&root.children, &other.children);
        assert_eq!(diffs, vec![Difference::Dir { name: "F1".into(), primary: true, replica: true }]);
        let leaf_a = summarise("F1/000/002/a", &TREE[2..3]);
        let leaf_b = summarise("F1/000/002/a", &changed[2..3]);
        assert_eq!(
            compare(&leaf_a.children, &leaf_b.children),
            vec![Difference::File {
                name: "x_1".into(),
                primary: Some("dd".into()),
                replica: Some("XX".into())
            }]
        );
        // A missing directory shows as one side only.
        let fewer = summarise("", &TREE[..3]);
        assert_eq!(
            compare(&root.children, &fewer.children),
            vec![Difference::Dir { name: "F2".into(), primary: true, replica: false }]
        );
    }
}
