//! Shared corpus and helpers for the generator's tests.

#![allow(dead_code)]

pub mod nho;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use sha2::{Digest, Sha256};
use synth::{CivilDate, GenConfig, GenSummary};

/// `shared/` beside the repository root.
pub fn shared() -> PathBuf {
    let mut dir = Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf();
    loop {
        let candidate = dir.join("shared");
        if candidate.join("external/nhoHQ-SSMIX2DataTestingTool").is_dir() {
            return candidate;
        }
        if !dir.pop() {
            panic!("no shared/ folder beside the repository");
        }
    }
}

pub fn config(seed: u64) -> GenConfig {
    GenConfig {
        seed,
        facilities: 6,
        patients: 150,
        from: CivilDate::constant(2024, 1, 1),
        to: CivilDate::constant(2024, 12, 31),
        bad: 28,
        pharmacies: 2,
        sync: false,
    }
}

pub struct Corpus {
    pub dir: tempfile::TempDir,
    pub summary: GenSummary,
}

/// One corpus generated once per test binary, for the tests that only read it.
pub fn corpus() -> &'static Corpus {
    static C: OnceLock<Corpus> = OnceLock::new();
    C.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let summary = synth::generate(&config(20240101), dir.path(), &|_| {}).unwrap();
        Corpus { dir, summary }
    })
}

/// Every regular file below `root`, sorted.
pub fn files(root: &Path) -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
        entries.sort();
        for p in entries {
            if p.is_dir() { walk(&p, out) } else { out.push(p) }
        }
    }
    let mut v = Vec::new();
    walk(root, &mut v);
    v
}

/// A hash over every relative path and its bytes.
pub fn tree_hash(root: &Path) -> String {
    let mut h = Sha256::new();
    for f in files(root) {
        h.update(f.strip_prefix(root).unwrap().to_string_lossy().as_bytes());
        h.update([0]);
        h.update(std::fs::read(&f).unwrap());
        h.update([0]);
    }
    hex::encode(h.finalize())
}

/// The facility trees of a corpus: (facility ID, root).
pub fn facility_roots(out: &Path, summary: &GenSummary) -> Vec<(String, PathBuf)> {
    summary
        .facilities
        .iter()
        .filter(|f| f.kind != "pharmacy")
        .map(|f| (f.id.clone(), out.join(&f.id)))
        .collect()
}

/// Reads a CSV written by the generator (no quoting) into rows of fields, header first.
pub fn csv(path: &Path) -> Vec<Vec<String>> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| l.split(',').map(str::to_owned).collect())
        .collect()
}
