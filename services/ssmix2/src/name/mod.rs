//! The parts of an SS-MIX2 file name and storage path, as types whose constructors check.
//!
//! Every part refuses `/`, `\`, NUL, `..` and anything outside its allowed alphabet, so a name taken
//! from the network can never escape the storage root.

mod care_date;
mod data_type;
mod department;
pub mod file_name;
mod flag;
mod order_no;
mod patient_id;
mod storage_path;
mod timestamp;

pub use care_date::CareDate;
pub use data_type::{DataType, MessageType};
pub use department::Department;
pub use file_name::FileName;
pub use flag::ConditionFlag;
pub use order_no::OrderNo;
pub use patient_id::PatientId;
pub use storage_path::StoragePath;
pub use timestamp::Timestamp;

use crate::NameError;

/// Checks that `s` is 1..=`max` characters from `allowed`, naming the `part` on failure.
pub(crate) fn check_part(
    part: &'static str,
    s: &str,
    max: usize,
    allowed: impl Fn(u8) -> bool,
) -> Result<(), NameError> {
    if s.is_empty() {
        return Err(NameError::Empty { part });
    }
    if s.len() > max {
        return Err(NameError::TooLong { part, value: s.to_owned(), max });
    }
    if let Some(bad) = s.bytes().find(|b| !allowed(*b)) {
        return Err(NameError::BadChar { part, value: s.escape_default().to_string(), byte: bad });
    }
    Ok(())
}

/// Checks that `s` is exactly `digits` ASCII digits forming a real calendar date/time prefix.
pub(crate) fn check_digits(part: &'static str, s: &str, digits: usize) -> Result<(), NameError> {
    check_part(part, s, digits, |b| b.is_ascii_digit())?;
    if s.len() != digits {
        return Err(NameError::WrongLength { part, value: s.to_owned(), len: digits });
    }
    Ok(())
}

/// True when `yyyymmdd` is a real Gregorian date (year 1800..=2999).
pub(crate) fn is_real_date(yyyymmdd: &str) -> bool {
    let n = |r: std::ops::Range<usize>| yyyymmdd[r].parse::<u32>().unwrap_or(0);
    let (y, m, d) = (n(0..4), n(4..6), n(6..8));
    if !(1800..=2999).contains(&y) || !(1..=12).contains(&m) || d == 0 {
        return false;
    }
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let days = match m {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    };
    d <= days
}
