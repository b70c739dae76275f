//! Stable violation codes. They appear in reports, JSON, the store's rejections and alert mail, so a
//! code is never renamed or reused; new checks get new codes.

use std::fmt;

macro_rules! codes {
    ($( $variant:ident = $code:literal, $nho:literal, $what:literal ;)+) => {
        /// What a violation is about.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Code { $($variant,)+ }

        impl Code {
            pub const ALL: &'static [Code] = &[$(Code::$variant,)+];

            /// The stable code, e.g. `path-mismatch`.
            pub fn as_str(self) -> &'static str {
                match self { $(Code::$variant => $code,)+ }
            }

            /// True for the six checks the National Hospital Organization's validator makes.
            pub fn is_nho_check(self) -> bool {
                match self { $(Code::$variant => $nho,)+ }
            }

            /// A one-line description for people.
            pub fn describe(self) -> &'static str {
                match self { $(Code::$variant => $what,)+ }
            }

            pub fn parse(s: &str) -> Option<Self> {
                match s { $($code => Some(Code::$variant),)+ _ => None }
            }
        }
    };
}

codes! {
    BadFileName = "bad-file-name", false, "the file name is not a valid SS-MIX2 standardized-storage name";
    PathMismatch = "path-mismatch", true, "the folders do not agree with the file name";
    NotIso2022Jp = "not-iso-2022-jp", true, "the file does not decode as ISO-2022-JP";
    NotHl7 = "not-hl7", false, "the file is not an HL7 v2 message starting with MSH";
    CareDateMismatch = "care-date-mismatch", true, "the care date in the message does not agree with the date folder";
    RequiredFieldMissing = "required-field-missing", true, "a field required for this message type is empty";
    NotNumeric = "not-numeric", true, "a numeric (NM) field holds something that is not a number";
    SegmentOrder = "segment-order", true, "segments are missing or out of order for the message type";
    DataTypeMismatch = "data-type-mismatch", false, "MSH-9 does not carry a message type allowed for the data type";
    PatientIdMismatch = "patient-id-mismatch", false, "PID-3 does not name the patient of the path";
    BadCharsetDeclaration = "bad-charset-declaration", false, "MSH-18 does not declare ISO IR87 (ISO-2022-JP)";
    BadEncodingDeclaration = "bad-encoding-declaration", false, "MSH-20 does not declare ISO 2022-1994";
    BadProfile = "bad-profile", false, "MSH-21 does not declare the SS-MIX2 message profile";
    FlagHistory = "flag-history", false, "the condition flags of one data key describe a history that cannot happen";
    WrongDateFolder = "wrong-date-folder", false, "data with no care date (ADT-00, ADT-61, PPR-01) is stored under a date instead of the `-` folder";
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for Code {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for Code {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Code::parse(&s).ok_or_else(|| serde::de::Error::custom(format!("unknown violation code {s:?}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_and_parse_back() {
        let mut seen = std::collections::HashSet::new();
        for c in Code::ALL {
            assert!(seen.insert(c.as_str()), "duplicate {c}");
            assert_eq!(Code::parse(c.as_str()), Some(*c));
        }
        assert_eq!(Code::ALL.iter().filter(|c| c.is_nho_check()).count(), 6);
    }
}
