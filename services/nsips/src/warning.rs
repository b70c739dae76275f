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
    /// A prescription number already used in the file for the same patient and day by a
    /// dispensing with other content: this one is converted under the order number with `D<n>`
    /// appended (its `n`th dispensing), so neither replaces the other.
    Renumbered(Unmapped),
    /// A dispensing that repeats an earlier one of the file exactly (same patient, day,
    /// prescription number and message): converted once.
    Repeated(Unmapped),
    /// A dispensing left out of the conversion (see [`crate::HeldBack`], which
    /// `Conversion::held_back` holds with the error and the lines to re-send).
    HeldBack {
        /// Its lines in the export.
        lines: std::ops::RangeInclusive<usize>,
        /// The error without the file name: `line 10: record 2 field 2 (issued on): …`.
        reason: String,
    },
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
            Self::Unmapped(u) | Self::Renumbered(u) | Self::Repeated(u) => u.fmt(f),
            Self::HeldBack { lines, reason } => write!(
                f,
                "lines {}-{}: dispensing held back (not converted): {reason}",
                lines.start(),
                lines.end()
            ),
        }
    }
}

impl From<&crate::HeldBack> for Warning {
    fn from(h: &crate::HeldBack) -> Self {
        Self::HeldBack { lines: h.lines.clone(), reason: h.reason() }
    }
}

impl From<Replacement> for Warning {
    fn from(r: Replacement) -> Self {
        Self::Replaced(r)
    }
}
