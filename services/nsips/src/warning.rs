//! What a conversion reports instead of refusing: refusing would keep every patient of the export
//! out of the network for one record. Each warning names the line, record and field (the caller
//! adds the file).

use crate::jis::Replacement;

/// One thing written differently from the export.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Warning {
    /// A character SS-MIX2 cannot hold, written as a JIS X 0208 stand-in.
    Replaced(Replacement),
    /// A value converted without a code: the message carries no code for it (see [`Unmapped`]).
    Unmapped(Unmapped),
}

/// A value the converter has no code for, converted with that code left empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unmapped {
    /// 1-based line of the NSIPS file.
    pub line: usize,
    /// Record type (`1`–`8`).
    pub record: String,
    /// Field number after the record type, and its name.
    pub field: usize,
    pub name: &'static str,
    /// The value as exported.
    pub value: String,
    /// What is missing and what the message holds instead.
    pub message: String,
}

impl std::fmt::Display for Unmapped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "line {}: record {} field {} ({}): {:?}: {}",
            self.line, self.record, self.field, self.name, self.value, self.message
        )
    }
}

impl std::fmt::Display for Warning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Replaced(r) => r.fmt(f),
            Self::Unmapped(u) => u.fmt(f),
        }
    }
}

impl From<Replacement> for Warning {
    fn from(r: Replacement) -> Self {
        Self::Replaced(r)
    }
}
