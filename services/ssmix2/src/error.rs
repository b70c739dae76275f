//! The crate's error types.

use thiserror::Error;

/// Why a file name, path or one of their parts was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum NameError {
    #[error("{part} is empty")]
    Empty { part: &'static str },
    #[error("{part} {value:?} is longer than {max} characters")]
    TooLong { part: &'static str, value: String, max: usize },
    #[error("{part} {value:?} must be exactly {len} digits")]
    WrongLength { part: &'static str, value: String, len: usize },
    #[error("{part} {value:?} contains a forbidden byte 0x{byte:02x}")]
    BadChar { part: &'static str, value: String, byte: u8 },
    #[error("{part} {value:?} is not a real date/time")]
    BadDate { part: &'static str, value: String },
    #[error("condition flag {0:?} is not 0, 1 or 2")]
    BadFlag(String),
    #[error("data type {0:?} is not in the SS-MIX2 table")]
    UnknownDataType(String),
    #[error("file name {value:?} has {found} parts separated by '_', expected 7")]
    PartCount { value: String, found: usize },
    #[error("path {value:?} has {found} components, expected 6 (PID3/PID3/PID/date/type/file)")]
    PathDepth { value: String, found: usize },
    #[error("{level} folder {folder:?} does not agree with the file name (expected {expected:?})")]
    PathMismatch { level: &'static str, folder: String, expected: String },
    #[error("{0} is not below the storage root")]
    OutsideRoot(String),
    #[error("path {0} is not valid UTF-8")]
    NotUtf8(String),
}

/// Why bytes could not be read as, or written as, an SS-MIX2 HL7 message.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum Hl7Error {
    #[error("not valid ISO-2022-JP at byte {offset}")]
    NotIso2022Jp { offset: usize },
    #[error("message is empty")]
    Empty,
    #[error("message does not start with an MSH segment")]
    NoMsh,
    #[error("MSH segment is too short to hold the field separator and encoding characters")]
    ShortMsh,
    #[error("character {ch:?} (U+{code:04X}) in segment {segment} cannot be written in ISO-2022-JP")]
    Unencodable { ch: char, code: u32, segment: usize },
}
