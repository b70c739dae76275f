use std::fmt;
use std::path::{Path, PathBuf};

use super::FileName;
use crate::NameError;

/// A file's place below a storage root: `PID[0:3]/PID[3:6]/PID/<date|->/<DATATYPE>/<FILE>`.
///
/// It is derived from the file name alone, so a valid name always yields a path inside the root.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StoragePath {
    pub name: FileName,
}

impl StoragePath {
    pub fn of(name: FileName) -> Self {
        Self { name }
    }

    /// The six components of the relative path, top first.
    pub fn components(&self) -> [String; 6] {
        let n = &self.name;
        let (a, b) = n.patient.folder_prefixes();
        [a, b, n.patient.to_string(), n.care_date.to_string(), n.data_type.to_string(), n.to_string()]
    }

    /// The relative directory that holds the file.
    pub fn dir(&self) -> PathBuf {
        self.components()[..5].iter().collect()
    }

    /// The relative path of the file.
    pub fn relative(&self) -> PathBuf {
        self.components().iter().collect()
    }

    /// Parses a relative path of exactly six components and checks that the folders agree with the
    /// file name (`NameError::PathMismatch` names the first folder that does not).
    pub fn parse(rel: &str) -> Result<Self, NameError> {
        let parts: Vec<&str> = rel.split('/').collect();
        if parts.len() != 6 {
            return Err(NameError::PathDepth { value: rel.escape_default().to_string(), found: parts.len() });
        }
        let name = FileName::parse(parts[5])?;
        let me = Self::of(name);
        let want = me.components();
        const LEVELS: [&str; 5] =
            ["patient ID prefix (1-3)", "patient ID prefix (4-6)", "patient ID", "care date", "data type"];
        for (i, level) in LEVELS.iter().enumerate() {
            if parts[i] != want[i] {
                return Err(NameError::PathMismatch {
                    level,
                    folder: parts[i].escape_default().to_string(),
                    expected: want[i].clone(),
                });
            }
        }
        Ok(me)
    }

    /// Parses the path of `file` relative to `root`.
    pub fn from_root(root: &Path, file: &Path) -> Result<Self, NameError> {
        let rel = file.strip_prefix(root).map_err(|_| NameError::OutsideRoot(file.display().to_string()))?;
        let s = rel.to_str().ok_or_else(|| NameError::NotUtf8(rel.display().to_string()))?;
        Self::parse(s)
    }
}

impl fmt::Display for StoragePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.components().join("/"))
    }
}
