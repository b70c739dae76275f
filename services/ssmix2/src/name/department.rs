use std::fmt;

use super::check_part;
use crate::NameError;

/// A department code from user table 0069 (1–3 ASCII letters or digits), or none (`-`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Department(Option<String>);

impl Department {
    pub const MAX_LEN: usize = 3;

    pub fn parse(s: &str) -> Result<Self, NameError> {
        if s == "-" {
            return Ok(Self(None));
        }
        check_part("department", s, Self::MAX_LEN, |b| b.is_ascii_alphanumeric())?;
        Ok(Self(Some(s.to_owned())))
    }

    pub fn none() -> Self {
        Self(None)
    }

    pub fn code(&self) -> Option<&str> {
        self.0.as_deref()
    }
}

impl fmt::Display for Department {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code().unwrap_or("-"))
    }
}
