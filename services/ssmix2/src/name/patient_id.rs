use std::fmt;

use super::check_part;
use crate::NameError;

/// A facility-local patient ID: 1–15 ASCII letters or digits (the file name uses `_` as separator,
/// and the ID names a folder, so nothing else is allowed).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PatientId(String);

impl PatientId {
    pub const MAX_LEN: usize = 15;

    pub fn new(s: &str) -> Result<Self, NameError> {
        check_part("patient ID", s, Self::MAX_LEN, |b| b.is_ascii_alphanumeric())?;
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The two hashing folders above the patient folder: characters 1–3 and 4–6 of the ID.
    ///
    /// An ID shorter than six characters is padded on the right with `_` to fill both levels.
    /// (The guideline's exact padding rule could not be checked against the primary text here; the
    /// rule is kept in this one function so it can be corrected in one place.)
    pub fn folder_prefixes(&self) -> (String, String) {
        let mut padded = self.0.clone();
        while padded.len() < 6 {
            padded.push('_');
        }
        (padded[0..3].to_owned(), padded[3..6].to_owned())
    }
}

impl fmt::Display for PatientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for PatientId {
    type Error = NameError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::new(&s)
    }
}

impl From<PatientId> for String {
    fn from(p: PatientId) -> Self {
        p.0
    }
}
