use std::fmt;

use super::{check_digits, is_real_date};
use crate::NameError;

/// The file's timestamp `YYYYMMDDHHMMSSfff` (17 digits). Since Ver.1.2 it is the time the data was
/// sent, not MSH-7.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Timestamp([u8; 17]);

impl Timestamp {
    pub fn parse(s: &str) -> Result<Self, NameError> {
        check_digits("timestamp", s, 17)?;
        let n = |r: std::ops::Range<usize>| s[r].parse::<u32>().unwrap_or(99);
        if !is_real_date(&s[0..8]) || n(8..10) > 23 || n(10..12) > 59 || n(12..14) > 60 {
            return Err(NameError::BadDate { part: "timestamp", value: s.to_owned() });
        }
        let mut b = [0u8; 17];
        b.copy_from_slice(s.as_bytes());
        Ok(Self(b))
    }

    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).expect("ascii digits")
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
