//! Facility IDs: the top folder of each facility's tree, so checked like every other path part.

use std::fmt;

use crate::StoreError;

/// A facility ID (SSMIXIDX FacilityID, at most 10 characters): ASCII letters and digits only, so it
/// can never name anything but one folder below the tree root.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FacilityId(String);

impl FacilityId {
    pub const MAX_LEN: usize = 10;

    pub fn new(s: &str) -> Result<Self, StoreError> {
        if s.is_empty() || s.len() > Self::MAX_LEN || !s.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(StoreError::BadFacility(s.escape_default().to_string()));
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for FacilityId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_anything_that_is_not_one_plain_folder() {
        for bad in ["", "..", "a/b", "a\0", "/etc", "12345678901", "a b", "ａ"] {
            assert!(FacilityId::new(bad).is_err(), "{bad:?}");
        }
        assert_eq!(FacilityId::new("1310000017").unwrap().as_str(), "1310000017");
    }
}
