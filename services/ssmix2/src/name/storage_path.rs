use std::fmt::{self, Write as _};
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

    /// Writes the five folders, `/`-separated, to `out` (one buffer instead of six strings: paths
    /// are built several times per uploaded file).
    fn write_dir(&self, out: &mut impl fmt::Write) -> fmt::Result {
        let n = &self.name;
        let pid = n.patient.as_str();
        // The two hashing folders, as `PatientId::folder_prefixes` pads them (IDs are ASCII).
        for i in 0..6 {
            out.write_char(pid.as_bytes().get(i).map_or('_', |&b| b as char))?;
            if i == 2 || i == 5 {
                out.write_char('/')?;
            }
        }
        out.write_str(pid)?;
        out.write_char('/')?;
        out.write_str(n.care_date.date_str().unwrap_or("-"))?;
        out.write_char('/')?;
        out.write_str(n.data_type.code())
    }

    /// The relative directory that holds the file, `/`-separated.
    pub fn dir_string(&self) -> String {
        let mut s = String::with_capacity(48);
        self.write_dir(&mut s).expect("writing to a String cannot fail");
        s
    }

    /// The relative directory that holds the file.
    pub fn dir(&self) -> PathBuf {
        PathBuf::from(self.dir_string())
    }

    /// The relative path of the file.
    pub fn relative(&self) -> PathBuf {
        PathBuf::from(self.to_string())
    }

    /// Parses a relative path of exactly six components and checks that the folders agree with the
    /// file name (`NameError::PathMismatch` names the first folder that does not).
    pub fn parse(rel: &str) -> Result<Self, NameError> {
        let mut parts = [""; 6];
        let mut found = 0;
        for part in rel.split('/') {
            if let Some(slot) = parts.get_mut(found) {
                *slot = part;
            }
            found += 1;
        }
        if found != 6 {
            return Err(NameError::PathDepth { value: rel.escape_default().to_string(), found });
        }
        let name = FileName::parse(parts[5])?;
        let me = Self::of(name);
        let dir = me.dir_string();
        const LEVELS: [&str; 5] =
            ["patient ID prefix (1-3)", "patient ID prefix (4-6)", "patient ID", "care date", "data type"];
        for ((level, want), got) in LEVELS.iter().zip(dir.split('/')).zip(parts) {
            if got != want {
                return Err(NameError::PathMismatch {
                    level,
                    folder: got.escape_default().to_string(),
                    expected: want.to_owned(),
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
        self.write_dir(f)?;
        f.write_char('/')?;
        fmt::Display::fmt(&self.name, f)
    }
}
