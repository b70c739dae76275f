//! The original message: the SS-MIX2 file as the facility sent it, read from the store's tree and
//! decoded from ISO-2022-JP for display, one segment per line.

use std::path::{Path, PathBuf};

use ssmix2::{FileName, StoragePath};

use crate::ViewerError;

/// One original message, decoded.
#[derive(Debug, Clone, PartialEq)]
pub struct Original {
    /// The file's path relative to the facility's root (`PID3/PID3/PID/date/type/name`).
    pub relative: PathBuf,
    /// The segments, in order (HL7 separates them with CR).
    pub segments: Vec<String>,
    pub bytes: usize,
}

/// Reads the file `file_name` of `facility` below `tree` (the store's `tree/`). The path is rebuilt
/// from the parsed SS-MIX2 name, so a stored value can never point outside the tree.
pub fn read(tree: &Path, facility: &str, file_name: &str) -> Result<Original, ViewerError> {
    if facility.is_empty() || !facility.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(ViewerError::BadRequest(format!("facility {facility:?} is not a facility code")));
    }
    let name = FileName::parse(file_name)
        .map_err(|e| ViewerError::BadRequest(format!("stored file name {file_name:?}: {e}")))?;
    let relative = StoragePath::of(name).relative();
    let path = tree.join(facility).join(&relative);
    let bytes = std::fs::read(&path).map_err(|e| ViewerError::io(&path, e))?;
    let text = ssmix2::hl7::decode_iso2022jp(&bytes)
        .map_err(|e| ViewerError::BadRequest(format!("{}: {e}", path.display())))?;
    let segments = text.split(['\r', '\n']).filter(|s| !s.is_empty()).map(str::to_owned).collect();
    Ok(Original { relative, segments, bytes: bytes.len() })
}
