//! Validation of SS-MIX2 files and trees, with stable violation codes.
//!
//! A [`Validator`] is built once from the National Hospital Organization's tables
//! ([`Validator::from_nho_tables`], or [`Validator::from_default_tables`] which finds them) and then
//! checks files without allocating unless it finds something:
//!
//! - the six checks of the NHO validator: the path agrees with the file name ([`Code::PathMismatch`]),
//!   the bytes decode as ISO-2022-JP ([`Code::NotIso2022Jp`]), the care date agrees with the date in
//!   the name ([`Code::CareDateMismatch`]), required fields are present
//!   ([`Code::RequiredFieldMissing`]), NM fields hold numbers ([`Code::NotNumeric`]) and segments come
//!   in the order of the message type ([`Code::SegmentOrder`]);
//! - beyond them: MSH-9 fits the data type, PID-3 names the patient of the path, MSH-18/20/21
//!   declare ISO IR87, ISO 2022-1994 and the SS-MIX2 profile, data with no care date (ADT-00,
//!   ADT-61, PPR-01) sits in the `-` date folder ([`Code::WrongDateFolder`]; the NHO validator does
//!   not look), and (over a folder, see [`flag_history`]) the condition flags of each data key tell a
//!   possible history.
//!
//! Where our checks knowingly differ from the NHO validator (its Python source, `src/lib/check*.py`,
//! was read to match it), the difference is deliberate:
//!
//! - segment order is matched against the whole message (the regex anchored at both ends), where
//!   Python's `re.match` accepts anything after a valid prefix; one table defect that anchoring
//!   exposes (OUL^R22) is corrected at load time, see `tables.rs`;
//! - ISO-2022-JP is ASCII, JIS X 0201 Roman and JIS X 0208, as Python's `iso2022_jp` codec (the
//!   NHO validator's `checkJIS.py`) reads it: half-width katakana (`ESC ( I`), NEC row 13 (①) and
//!   the IBM extensions of rows 89–92 (髙, 﨑) are [`Code::NotIso2022Jp`], one finding per field
//!   that holds any, naming line and field; the rest of the message is still checked. Where Python
//!   is laxer than RFC 1468 and the WHATWG decoder (SO/SI bytes, CR or LF inside two-byte text, two
//!   escape sequences in a row, `ESC $ ( B`), we stay strict;
//! - a file that does not decode gets no content checks (the NHO validator runs them on whatever
//!   `nkf` guessed, and so reports a care-date fault for undecodable bytes);
//! - a required field holding only separators (`^^`) counts as empty; NM values allow ASCII digits
//!   and one decimal point only (Python's `\d` also takes full-width digits, and its regex two
//!   points); repeating NM fields are checked one repetition at a time, and NM subcomponents by
//!   their own position (the NHO code indexes them by the component's);
//! - a message type missing from `SSMIX_CAREDATE.json` is reported once, as
//!   [`Code::DataTypeMismatch`], rather than also as a care-date fault;
//! - the care date is compared with the date part of the file name, as the NHO validator does;
//!   when the name and the folder disagree, that is a [`Code::PathMismatch`].
//!
//! `tests/validate_samples.rs` asserts the agreement, and each difference, on the NHO sample folder.

mod code;
mod file;
mod history;
mod iso2022jp;
mod numeric;
mod scan;
mod tables;

use std::path::PathBuf;

pub use code::Code;
pub use history::flag_history;
pub use numeric::is_numeric;
pub use scan::Scratch;
pub use tables::{
    CARE_DATE_FILE, DATATYPE_FILE, SEGMENT_FILE, SEGMENT_ORDER_FILE, TABLES_ENV, TABLES_RELATIVE, TableError,
    find_table_dir,
};

/// One finding: what (a stable [`Code`]), where (file and, when it is about one place in the
/// message, the segment/field path such as `PID-3`, `ORC[2]-9` or `TQ1-2.1`), and a sentence for people.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Violation {
    pub code: Code,
    pub file: PathBuf,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    pub message: String,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.file.display(), self.code)?;
        if let Some(field) = &self.field {
            write!(f, " at {field}")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Checks SS-MIX2 files against the NHO tables and Kizuna's own rules. Cheap to share across
/// threads (`&Validator` is `Sync`); build it once.
#[derive(Debug)]
pub struct Validator {
    tables: tables::Tables,
}

impl Validator {
    /// Loads the NHO tables from `dir` (the validator's `include/` folder). The error names the
    /// file that could not be read or understood.
    pub fn from_nho_tables(dir: &std::path::Path) -> Result<Self, TableError> {
        Ok(Self { tables: tables::Tables::load(dir)? })
    }

    /// Loads the tables from the directory [`find_table_dir`] finds: `$KIZUNA_NHO_TABLES`, else
    /// `../shared/external/nhoHQ-SSMIX2DataTestingTool/include` relative to the current directory or
    /// to any ancestor of the running executable.
    pub fn from_default_tables() -> Result<Self, TableError> {
        Self::from_nho_tables(&find_table_dir()?)
    }

    /// The directory the tables came from.
    pub fn table_dir(&self) -> &std::path::Path {
        &self.tables.dir
    }
}
