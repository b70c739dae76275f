//! The tree walker and single-file validation on real directory trees built in a temporary folder.

mod shared_data;

use std::path::{Path, PathBuf};

use ssmix2::validate::{Code, Violation};
use ssmix2::walk::{WalkError, infer_root, read_tree, validate_file, validate_tree};

/// The guideline's clean OMP-01 sample, as stored bytes.
fn omp01_bytes() -> Vec<u8> {
    let path = shared_data::samples_dir().join(
        "999/901/9999013/20110701/OMP-01/9999013_20110701_OMP-01_000000011000185_20110701224603984_01_1",
    );
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Writes `bytes` at `root/<path of name>`, creating the folders, and returns the path.
fn store(root: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let sp = ssmix2::StoragePath::of(name.parse().unwrap());
    let path = root.join(sp.relative());
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, bytes).unwrap();
    path
}

fn name(ts: &str, flag: char) -> String {
    format!("9999013_20110701_OMP-01_000000011000185_{ts}_01_{flag}")
}

fn walk(root: &Path) -> (ssmix2::walk::TreeStats, Vec<Violation>) {
    let mut found = Vec::new();
    let stats = validate_tree(root, &shared_data::validator(), |v| found.push(v)).unwrap();
    found.sort_by(|a, b| (&a.file, a.code).cmp(&(&b.file, b.code)));
    (stats, found)
}

#[test]
fn a_clean_tree_counts_every_file_and_byte() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = omp01_bytes();
    store(dir.path(), &name("20110701224603984", '2'), &bytes);
    store(dir.path(), &name("20110702224603984", '1'), &bytes);
    let (stats, found) = walk(dir.path());
    assert_eq!(found, []);
    assert_eq!(stats.files, 2);
    assert_eq!(stats.bytes, 2 * bytes.len() as u64);
    assert_eq!(stats.violations, 0);
    let read = read_tree(dir.path()).unwrap();
    assert_eq!((read.files, read.bytes), (stats.files, stats.bytes));
}

#[test]
fn two_current_versions_of_one_key_are_a_flag_history_fault() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = omp01_bytes();
    let older = store(dir.path(), &name("20110701224603984", '1'), &bytes);
    store(dir.path(), &name("20110702224603984", '1'), &bytes);
    let (_, found) = walk(dir.path());
    assert_eq!(found.len(), 1, "{found:#?}");
    assert_eq!(found[0].code, Code::FlagHistory);
    assert_eq!(found[0].file, older);
    assert!(found[0].message.contains("20110702224603984"), "{}", found[0].message);
}

#[test]
fn a_misplaced_file_is_found_anywhere_in_the_tree() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = omp01_bytes();
    store(dir.path(), &name("20110701224603984", '1'), &bytes);
    let stray = dir.path().join("999/901/9999013/20110701/OMP-02").join(name("20110702224603984", '1'));
    std::fs::create_dir_all(stray.parent().unwrap()).unwrap();
    std::fs::write(&stray, &bytes).unwrap();
    let loose = dir.path().join("README");
    std::fs::write(&loose, b"not a message").unwrap();
    let (stats, found) = walk(dir.path());
    assert_eq!(stats.files, 3);
    let got: Vec<_> = found.iter().map(|v| (v.file.clone(), v.code)).collect();
    assert_eq!(
        got,
        [(stray, Code::PathMismatch), (loose.clone(), Code::BadFileName), (loose, Code::NotHl7)],
        "{found:#?}"
    );
}

#[test]
fn many_folders_stream_through_both_workers() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = omp01_bytes();
    // 300 patients, each with one clean file: more than the job queue holds.
    for i in 0..300 {
        let pid = format!("{:07}", 1_000_000 + i);
        let text =
            ssmix2::hl7::decode_iso2022jp(&bytes).unwrap().replace("9999013^^^^PI", &format!("{pid}^^^^PI"));
        let data = ssmix2::hl7::encode_iso2022jp(&text).unwrap();
        store(dir.path(), &format!("{pid}_20110701_OMP-01_000000011000185_20110701224603984_01_1"), &data);
    }
    let (stats, found) = walk(dir.path());
    assert_eq!(found, []);
    assert_eq!(stats.files, 300);
}

#[test]
fn a_missing_root_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope");
    let err = validate_tree(&missing, &shared_data::validator(), |_| {}).unwrap_err();
    assert!(matches!(&err, WalkError::ReadDir { path, .. } if *path == missing), "{err}");
    assert!(err.to_string().contains("nope"), "{err}");
}

#[test]
fn a_lone_file_infers_its_root_from_its_depth() {
    let dir = tempfile::tempdir().unwrap();
    let good = store(dir.path(), &name("20110701224603984", '1'), &omp01_bytes());
    assert_eq!(infer_root(&good), Some(dir.path()));
    let mut found = Vec::new();
    let stats = validate_file(&shared_data::validator(), None, &good, |v| found.push(v)).unwrap();
    assert_eq!((stats.files, stats.violations), (1, 0));
    assert_eq!(found, []);

    // Moved one folder off: the inferred root makes the folders disagree with the name.
    let moved = dir.path().join("999/901/9999013/20110702/OMP-01").join(name("20110701224603984", '1'));
    std::fs::create_dir_all(moved.parent().unwrap()).unwrap();
    std::fs::copy(&good, &moved).unwrap();
    let mut found = Vec::new();
    validate_file(&shared_data::validator(), None, &moved, |v| found.push(v)).unwrap();
    assert_eq!(found.iter().map(|v| v.code).collect::<Vec<_>>(), [Code::PathMismatch]);
}

#[test]
fn a_shallow_lone_file_gets_no_path_check() {
    // `/tmp/.tmpXXXX/NAME` is three levels deep: no storage root above it.
    let dir = tempfile::tempdir_in("/tmp").unwrap();
    let file = dir.path().join(name("20110701224603984", '1'));
    std::fs::write(&file, omp01_bytes()).unwrap();
    assert_eq!(infer_root(&file), None);
    let mut found = Vec::new();
    validate_file(&shared_data::validator(), None, &file, |v| found.push(v)).unwrap();
    assert_eq!(found, []);
    // An explicit root that does not hold the file is reported as such.
    let mut found = Vec::new();
    validate_file(&shared_data::validator(), Some(Path::new("/elsewhere")), &file, |v| found.push(v))
        .unwrap();
    assert_eq!(found.iter().map(|v| v.code).collect::<Vec<_>>(), [Code::PathMismatch]);
}

#[test]
fn an_unreadable_lone_file_is_an_error_naming_it() {
    let err = validate_file(&shared_data::validator(), None, Path::new("/no/such/file"), |_| {}).unwrap_err();
    assert!(err.to_string().contains("/no/such/file"), "{err}");
}
