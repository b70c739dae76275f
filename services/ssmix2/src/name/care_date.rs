use std::fmt;

use super::{check_digits, is_real_date};
use crate::NameError;

/// The care date of a file (診療日): a real date `YYYYMMDD`, or none (`-`) for data that has no care
/// date, such as patient demographics (ADT-00), allergies (ADT-61) and diagnoses (PPR-01).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CareDate {
    None,
    Date([u8; 8]),
}

impl CareDate {
    pub fn parse(s: &str) -> Result<Self, NameError> {
        if s == "-" {
            return Ok(Self::None);
        }
        check_digits("care date", s, 8)?;
        if !is_real_date(s) {
            return Err(NameError::BadDate { part: "care date", value: s.to_owned() });
        }
        let mut b = [0u8; 8];
        b.copy_from_slice(s.as_bytes());
        Ok(Self::Date(b))
    }

    /// The date as `YYYYMMDD`, or `None` for the `-` folder.
    pub fn date_str(&self) -> Option<&str> {
        match self {
            Self::None => None,
            // Constructed only from ASCII digits.
            Self::Date(b) => Some(std::str::from_utf8(b).expect("ascii digits")),
        }
    }
}

impl fmt::Display for CareDate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.date_str().unwrap_or("-"))
    }
}

impl std::str::FromStr for CareDate {
    type Err = NameError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}
