//! The agent's check of one exported file before it may leave the site: `ssmix2`'s [`Validator`].

use std::path::Path;

use serde::{Deserialize, Serialize};
use ssmix2::validate::{Scratch, Validator};
use ssmix2::{FileName, StoragePath};

/// One reason a file was refused, as written to `<name>.reason.json` and the agent's log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Violation {
    /// A stable `ssmix2::validate::Code` string (or `store-reason` for a store's free-text reason).
    pub code: String,
    /// The place in the message (`PID-3`, `ORC[2]-9`), when the finding is about one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    pub message: String,
}

/// Checks the file at `export_root/rel` with content `bytes`. On success returns the SS-MIX2
/// storage path the file is uploaded under.
///
/// When `rel` has exactly six components the export folder is taken to be a standardized-storage
/// root, and when it has seven and the first is this site's `facility`, that folder is (an export
/// holding the facility's tree, as `kizuna ssmix2 gen` writes it); either way the folders must
/// agree with the name (`path-mismatch`). A file anywhere else (a flat or date-sorted export
/// folder) is placed by its name alone.
pub fn check_file(
    validator: &Validator,
    scratch: &mut Scratch,
    export_root: &Path,
    facility: &str,
    rel: &str,
    bytes: &[u8],
) -> Result<StoragePath, Vec<Violation>> {
    let file = export_root.join(rel);
    let root = match rel.split('/').count() {
        6 => Some(export_root.to_path_buf()),
        7 if rel.split('/').next() == Some(facility) => Some(export_root.join(facility)),
        _ => None,
    };
    let mut violations = Vec::new();
    validator.check(root.as_deref(), &file, bytes, scratch, &mut |v| {
        violations.push(Violation { code: v.code.as_str().to_owned(), field: v.field, message: v.message })
    });
    if !violations.is_empty() {
        return Err(violations);
    }
    let name = rel.rsplit('/').next().unwrap_or(rel);
    FileName::parse(name).map(StoragePath::of).map_err(|e| {
        vec![Violation {
            code: ssmix2::validate::Code::BadFileName.as_str().to_owned(),
            field: None,
            message: e.to_string(),
        }]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const NAME: &str = "9999013_-_ADT-00_999999999999999_20111220224447339_-_1";
    const FACILITY: &str = "0411000017";

    fn sample() -> Vec<u8> {
        let p = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../../shared/external/nhoHQ-SSMIX2DataTestingTool/sampleData/999/901/9999013/-/ADT-00/",
            "9999013_-_ADT-00_999999999999999_20111220224447339_-_1"
        );
        std::fs::read(p).unwrap()
    }

    fn validator() -> Validator {
        Validator::from_default_tables().unwrap()
    }

    #[test]
    fn flat_nested_and_tree_paths_are_placed_by_name() {
        let (v, mut s, root) = (validator(), Scratch::default(), Path::new("/export"));
        let msg = sample();
        let p = check_file(&v, &mut s, root, FACILITY, NAME, &msg).unwrap();
        assert_eq!(p.to_string(), format!("999/901/9999013/-/ADT-00/{NAME}"));
        assert_eq!(check_file(&v, &mut s, root, FACILITY, &format!("a/b/{NAME}"), &msg).unwrap(), p);
        assert_eq!(
            check_file(&v, &mut s, root, FACILITY, &format!("999/901/9999013/-/ADT-00/{NAME}"), &msg)
                .unwrap(),
            p
        );
    }

    #[test]
    fn violations_carry_stable_codes() {
        let (v, mut s, root) = (validator(), Scratch::default(), Path::new("/export"));
        let msg = sample();
        let bad = check_file(&v, &mut s, root, FACILITY, "notes.txt", &msg).unwrap_err();
        assert!(bad.iter().any(|v| v.code == "bad-file-name"), "{bad:?}");
        let bad = check_file(&v, &mut s, root, FACILITY, &format!("999/902/9999013/-/ADT-00/{NAME}"), &msg)
            .unwrap_err();
        assert!(bad.iter().any(|v| v.code == "path-mismatch"), "{bad:?}");
        let bad = check_file(&v, &mut s, root, FACILITY, NAME, b"MSH|^~\\&|\x1b$B\xff").unwrap_err();
        assert!(bad.iter().any(|v| v.code == "not-iso-2022-jp"), "{bad:?}");
    }

    #[test]
    fn a_tree_below_the_facilitys_folder_is_checked_like_a_tree() {
        let (v, mut s, root) = (validator(), Scratch::default(), Path::new("/export"));
        let msg = sample();
        let good = check_file(
            &v,
            &mut s,
            root,
            FACILITY,
            &format!("{FACILITY}/999/901/9999013/-/ADT-00/{NAME}"),
            &msg,
        );
        assert_eq!(good.unwrap().to_string(), format!("999/901/9999013/-/ADT-00/{NAME}"));
        // Under another patient's folder of the facility's tree: refused, not relocated.
        let wrong = format!("{FACILITY}/999/902/9999013/-/ADT-00/{NAME}");
        let bad = check_file(&v, &mut s, root, FACILITY, &wrong, &msg).unwrap_err();
        assert!(bad.iter().any(|v| v.code == "path-mismatch"), "{bad:?}");
        // Seven levels below a folder that is not this facility's: placed by name, as before.
        let other = format!("archive/999/902/9999013/-/ADT-00/{NAME}");
        assert!(check_file(&v, &mut s, root, FACILITY, &other, &msg).is_ok());
    }
}
