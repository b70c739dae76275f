//! The guideline's sample files (and the NHO validator's fault cases) from `../shared`.

use std::path::{Path, PathBuf};

use ssmix2::hl7::Message;
use ssmix2::{Hl7Error, StoragePath};

/// `shared/external/nhoHQ-SSMIX2DataTestingTool/sampleData`, found beside the repository root.
fn sample_root() -> PathBuf {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    repo.join("../shared/external/nhoHQ-SSMIX2DataTestingTool/sampleData")
}

fn sample_files() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let p = e.unwrap().path();
            if p.is_dir() { walk(&p, out) } else { out.push(p) }
        }
    }
    let mut v = Vec::new();
    walk(&sample_root(), &mut v);
    v.sort();
    assert_eq!(v.len(), 22, "expected the 22 files of the NHO sample folder");
    v
}

#[test]
fn every_decodable_sample_round_trips_byte_for_byte() {
    let mut decoded = 0;
    for path in sample_files() {
        let bytes = std::fs::read(&path).unwrap();
        match Message::decode(&bytes) {
            Ok(m) => {
                let again = m.encode().unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                assert!(again == bytes, "{} does not round-trip", path.display());
                decoded += 1;
            }
            Err(Hl7Error::NotIso2022Jp { .. }) => {
                // Only the NHO validator's deliberately broken file may fail to decode.
                assert!(path.to_string_lossy().contains("/ADT-31/"), "{}", path.display());
            }
            Err(e) => panic!("{}: {e}", path.display()),
        }
    }
    assert_eq!(decoded, 21);
}

#[test]
fn every_sample_name_round_trips_and_only_the_misplaced_one_disagrees_with_its_path() {
    let root = sample_root();
    let mut mismatched = Vec::new();
    for path in sample_files() {
        let name = path.file_name().unwrap().to_str().unwrap();
        let parsed: ssmix2::FileName = name.parse().unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(parsed.to_string(), name);
        match StoragePath::from_root(&root, &path) {
            Ok(sp) => assert_eq!(sp.to_string(), path.strip_prefix(&root).unwrap().to_str().unwrap()),
            Err(_) => mismatched.push(path.strip_prefix(&root).unwrap().to_owned()),
        }
    }
    assert_eq!(
        mismatched,
        vec![PathBuf::from(
            "000/000/0000001/20000401/ADT-31/9999013_20110630_OMP-11_123456789012345_20110701113813225_01_1"
        )]
    );
}
