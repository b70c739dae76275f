//! `kizuna ssmix2 validate`: the exit code counts violations also when stdout is closed early
//! (`| head`), as the README's 0/1/2 says.

use std::process::{Command, Stdio};

/// A tree with one file whose name is no SS-MIX2 name: one violation.
fn tree_with_a_violation() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path().join("999/901/9999013/-/ADT-00");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("notes.txt"), b"not a message").unwrap();
    d
}

#[test]
fn violations_exit_1_also_when_the_reader_went_away() {
    let d = tree_with_a_violation();
    let out = Command::new(env!("CARGO_BIN_EXE_kizuna"))
        .args(["ssmix2", "validate"])
        .arg(d.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    // The same with stdout closed before anything is written (`| head -0`).
    let mut child = Command::new(env!("CARGO_BIN_EXE_kizuna"))
        .args(["ssmix2", "validate"])
        .arg(d.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!String::from_utf8_lossy(&out.stderr).contains("Broken pipe"));
}
