use std::path::PathBuf;
use std::sync::Arc;

/// What went wrong, always naming the file and, for content, the line (1-based) and field.
#[derive(Debug, Clone, thiserror::Error)]
pub enum NsipsError {
    /// A field of a record does not hold what the layout says. Fields are numbered from 1 after
    /// the record type (the header's version is field 0).
    #[error("{}:{line}: record {record} field {field} ({name}): {message}", file.display())]
    Field { file: PathBuf, line: usize, record: String, field: usize, name: &'static str, message: String },
    /// A line as a whole is wrong: unknown record type, wrong field count, record out of place.
    #[error("{}:{line}: {message}", file.display())]
    Line { file: PathBuf, line: usize, message: String },
    /// The bytes are neither UTF-8 nor CP932.
    #[error("{}: the file is neither UTF-8 nor CP932 (invalid byte sequence)", file.display())]
    Encoding { file: PathBuf },
    /// The dispensing starting at `line` could not be written as an SS-MIX2 message.
    #[error("{}:{line}: cannot convert to SS-MIX2: {message}", file.display())]
    Convert { file: PathBuf, line: usize, message: String },
    /// Reading or writing a file failed. (`Arc` so that errors, and the held-back dispensings
    /// that carry one, can be cloned.)
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: Arc<std::io::Error> },
}
