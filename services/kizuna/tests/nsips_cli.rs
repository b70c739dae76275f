//! `kizuna nsips convert`: NSIPS exports in, validated SS-MIX2 files out, bad input named.

use std::process::Command;

const EXPORT: &str = "VER010603,20240105190000,T01,04,4,1234567,みやぎ薬局,980-0001,仙台市,022-000-0000\r\n\
    1,00012345,佐藤　花子,サトウ　ハナコ,2,19500312,980-0002,仙台市,022-111-1111,06040001\r\n\
    2,2024010500001,20240104,0410000017,仙台中央病院,内科,鈴木　一郎,20240105\r\n\
    3,1,1011040000000000,内服・経口・１日１回朝食後,28,1\r\n\
    4,1,1,2171022F2020,612345678,116523801,アムロジピン錠５ｍｇ,1,錠\r\n\
    8,20240105,お薬手帳に記載済み\r\n";

fn kizuna(args: &[&std::ffi::OsStr]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_kizuna")).args(args).output().unwrap()
}

#[test]
fn convert_writes_valid_omp01_files_and_names_bad_lines() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    let root = dir.path().join("0441234567");
    std::fs::create_dir(&input).unwrap();
    std::fs::write(input.join("NSIPS_1234567_20240105.csv"), EXPORT).unwrap();
    let out = kizuna(&[
        "nsips".as_ref(),
        "convert".as_ref(),
        "--facility".as_ref(),
        "0441234567".as_ref(),
        input.as_os_str(),
        root.as_os_str(),
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let file = root.join(
        "000/123/00012345/20240105/OMP-01/00012345_20240105_OMP-01_2024010500001_20240105190000000_-_1",
    );
    let bytes = std::fs::read(&file).unwrap();
    let validator = ssmix2::validate::Validator::from_default_tables().unwrap();
    let mut violations = Vec::new();
    validator.check(Some(&root), &file, &bytes, &mut ssmix2::validate::Scratch::default(), &mut |v| {
        violations.push(v)
    });
    assert!(violations.is_empty(), "{violations:#?}");

    std::fs::write(
        input.join("NSIPS_1234567_20240106.csv"),
        EXPORT.replace("2,2024010500001,20240104", "2,2024010500001,2024013x"),
    )
    .unwrap();
    let out = kizuna(&[
        "nsips".as_ref(),
        "convert".as_ref(),
        "--facility".as_ref(),
        "0441234567".as_ref(),
        input.as_os_str(),
        root.as_os_str(),
    ]);
    // The bad dispensing is held back alone (exit 1, named by line and field); the file of the
    // 5th, converted before, stays.
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("NSIPS_1234567_20240106.csv:3: record 2 field 2 (issued on)"), "{err}");
    assert!(err.contains("lines 2-6 held back"), "{err}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("1 dispensings held back"));
    assert!(file.exists());
}
