//! Loading the NHO tables: from a directory, from the default places, and the errors a user sees
//! when a table is missing or broken. (One test binary with one test touching the environment, so
//! that setting `KIZUNA_NHO_TABLES` cannot race with another test.)

mod shared_data;

use std::path::Path;

use ssmix2::validate::{CARE_DATE_FILE, SEGMENT_FILE, SEGMENT_ORDER_FILE, TableError, Validator};

/// A copy of the real tables in a temporary folder, to break one of them.
fn copy_tables(to: &Path) {
    for e in std::fs::read_dir(shared_data::tables_dir()).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

fn load_error(dir: &Path) -> String {
    match Validator::from_nho_tables(dir) {
        Ok(_) => panic!("{} loaded", dir.display()),
        Err(e) => e.to_string(),
    }
}

#[test]
fn tables_load_from_a_directory_and_errors_name_the_file() {
    let v = Validator::from_nho_tables(&shared_data::tables_dir()).unwrap();
    assert_eq!(v.table_dir(), shared_data::tables_dir());

    let dir = tempfile::tempdir().unwrap();
    let err = load_error(dir.path());
    assert!(err.contains(SEGMENT_FILE), "{err}");

    copy_tables(dir.path());
    Validator::from_nho_tables(dir.path()).unwrap();

    std::fs::write(dir.path().join(CARE_DATE_FILE), b"{\"RDE^O11\": 9").unwrap();
    let err = load_error(dir.path());
    assert!(err.contains(CARE_DATE_FILE) && err.contains("not the expected JSON"), "{err}");

    std::fs::write(dir.path().join(CARE_DATE_FILE), br#"{"RDE^O11": "ORC9"}"#).unwrap();
    let err = load_error(dir.path());
    assert!(err.contains(CARE_DATE_FILE) && err.contains("RDE^O11"), "{err}");

    copy_tables(dir.path());
    std::fs::write(dir.path().join(SEGMENT_ORDER_FILE), br#"{"RDE^O11": "^(MSH)(PID"}"#).unwrap();
    let err = load_error(dir.path());
    assert!(err.contains(SEGMENT_ORDER_FILE) && err.contains("RDE^O11") && err.contains("regex"), "{err}");
}

#[test]
fn the_environment_variable_names_the_table_directory() {
    // SAFETY: the only test in this binary that reads or writes the environment.
    unsafe { std::env::set_var(ssmix2::validate::TABLES_ENV, shared_data::tables_dir()) };
    let v = Validator::from_default_tables().unwrap();
    assert_eq!(v.table_dir(), shared_data::tables_dir());

    unsafe { std::env::set_var(ssmix2::validate::TABLES_ENV, "/no/such/tables") };
    let err = Validator::from_default_tables().unwrap_err();
    assert!(matches!(err, TableError::NotFound { .. }), "{err}");
    assert!(err.to_string().contains("/no/such/tables"), "{err}");

    // Without it, the tables are found beside the checkout from the test binary's location
    // (target/…/deps/ lies below the repository root, beside which `shared/` sits).
    unsafe { std::env::remove_var(ssmix2::validate::TABLES_ENV) };
    let v = Validator::from_default_tables().unwrap();
    assert!(v.table_dir().join(SEGMENT_FILE).is_file());
}
