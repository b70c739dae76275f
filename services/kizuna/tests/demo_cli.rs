//! The README's run command: `kizuna demo` brings up a centre, uploads three facilities and a
//! pharmacy through real agents, and checks that the centre holds exactly what was sent; its
//! audit service then answers who looked a patient up, and the log verifies.

use std::process::Command;

#[test]
fn demo_uploads_three_facilities_and_a_pharmacy_and_checks_the_counts() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("kizuna-data");
    let out = Command::new(env!("CARGO_BIN_EXE_kizuna"))
        .args(["demo", "--patients", "30", "--data-dir"])
        .arg(&data)
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "demo failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("every file is stored once, the tree validates clean"), "{stdout}");
    // The demo's site with known-bad files shows as error on the admin screen; its URL is printed.
    assert!(stdout.lines().any(|l| l.split_whitespace().take(2).eq(["site-demo-bad", "error"])), "{stdout}");
    assert!(stdout.contains("file-name violation"), "{stdout}");
    assert!(stdout.contains("kizuna admin serve --config"), "{stdout}");
    assert!(stdout.contains("http://127.0.0.1:8441/sites/site-demo-bad"), "{stdout}");
    // Four facility rows (three SS-MIX2 exporters and the NSIPS pharmacy), each sent = in tree = indexed.
    let rows: Vec<Vec<&str>> = stdout
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .filter(|w| w.len() == 6 && w[0].len() == 10 && w[0].bytes().all(|b| b.is_ascii_digit()))
        .collect();
    assert_eq!(rows.len(), 4, "{stdout}");
    for r in &rows {
        assert_eq!(r[1], r[4], "sent vs in tree: {r:?}");
        assert_eq!(r[1], r[5], "sent vs indexed: {r:?}");
        assert_ne!(r[1], "0", "{r:?}");
    }
    // After the demo an auditor finds who looked the patient up, and the log verifies.
    let patient = stdout
        .lines()
        .find_map(|l| l.split("who looked at patient ").nth(1))
        .and_then(|rest| rest.strip_suffix(':'))
        .unwrap_or_else(|| panic!("no audit answer in:\n{stdout}"))
        .to_string();
    assert!(stdout.contains("audit log verified:") && !stdout.contains("FAIL"), "{stdout}");
    let audit_cfg = data.join("audit/audit.yaml");
    let search = Command::new(env!("CARGO_BIN_EXE_kizuna"))
        .args(["audit", "search", "-c"])
        .arg(&audit_cfg)
        .args(["--patient", &patient])
        .output()
        .unwrap();
    let csv = String::from_utf8_lossy(&search.stdout);
    assert!(search.status.success(), "{csv}{}", String::from_utf8_lossy(&search.stderr));
    assert!(
        csv.lines().any(|l| l.contains("pw-demo-dr-yamada") && l.contains("110112") && l.contains(&patient)),
        "the clinician's lookup of {patient} is in the audit log:\n{csv}"
    );
    let verify = Command::new(env!("CARGO_BIN_EXE_kizuna"))
        .args(["audit", "verify", "-c"])
        .arg(&audit_cfg)
        .output()
        .unwrap();
    assert!(verify.status.success(), "{}", String::from_utf8_lossy(&verify.stdout));

    // A second run into the same folder is refused rather than mixing two demos.
    let again =
        Command::new(env!("CARGO_BIN_EXE_kizuna")).args(["demo", "--data-dir"]).arg(&data).output().unwrap();
    assert_eq!(again.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&again.stderr).contains("is not empty"));
}

/// A `--data-dir` that cannot be made names itself in the error (it said only "Not a directory").
#[test]
fn a_data_dir_that_cannot_be_made_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"x").unwrap();
    let target = file.join("x");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kizuna"))
        .args(["demo", "--data-dir"])
        .arg(&target)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("creating --data-dir {}", target.display())), "{err}");
}
