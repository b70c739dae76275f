use std::fmt;

use crate::NameError;

/// The condition flag, the last part of a file name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub enum ConditionFlag {
    /// `0`: deleted (the delete message itself, and every earlier version of the key).
    Deleted,
    /// `1`: the current version.
    Current,
    /// `2`: an older version superseded by an update.
    Superseded,
}

impl ConditionFlag {
    pub fn parse(s: &str) -> Result<Self, NameError> {
        match s {
            "0" => Ok(Self::Deleted),
            "1" => Ok(Self::Current),
            "2" => Ok(Self::Superseded),
            _ => Err(NameError::BadFlag(s.escape_default().to_string())),
        }
    }

    pub fn as_char(self) -> char {
        match self {
            Self::Deleted => '0',
            Self::Current => '1',
            Self::Superseded => '2',
        }
    }
}

impl fmt::Display for ConditionFlag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.as_char())
    }
}
