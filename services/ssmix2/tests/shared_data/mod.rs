//! Where the tests find the public data in `../shared` (beside the repository root, never copied in).

#![allow(dead_code)]

use std::path::PathBuf;

/// `shared/external/nhoHQ-SSMIX2DataTestingTool`.
pub fn nho_dir() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/external/nhoHQ-SSMIX2DataTestingTool"
    ))
}

/// The NHO validator's tables.
pub fn tables_dir() -> PathBuf {
    nho_dir().join("include")
}

/// The guideline's samples and the NHO validator's fault cases.
pub fn samples_dir() -> PathBuf {
    nho_dir().join("sampleData")
}

/// A validator over the real tables.
pub fn validator() -> ssmix2::validate::Validator {
    let dir = tables_dir();
    ssmix2::validate::Validator::from_nho_tables(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
}
