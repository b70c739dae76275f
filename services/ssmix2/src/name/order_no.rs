use std::fmt;

use super::check_part;
use crate::NameError;

/// An order number: 1–15 ASCII letters or digits. Data with no order uses [`OrderNo::NONE`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OrderNo(String);

impl OrderNo {
    pub const MAX_LEN: usize = 15;
    /// The placeholder written for data that has no order (observed in the guideline's samples).
    pub const NONE: &'static str = "999999999999999";

    pub fn new(s: &str) -> Result<Self, NameError> {
        check_part("order number", s, Self::MAX_LEN, |b| b.is_ascii_alphanumeric())?;
        Ok(Self(s.to_owned()))
    }

    pub fn none() -> Self {
        Self(Self::NONE.to_owned())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for OrderNo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
