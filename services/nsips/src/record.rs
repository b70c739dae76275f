use std::path::PathBuf;

/// The text encoding a file was read in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Utf8,
    Cp932,
}

/// One NSIPS export file.
#[derive(Debug, Clone)]
pub struct NsipsFile {
    /// Where the bytes came from (used in every error message).
    pub origin: PathBuf,
    /// The bytes as exported (a dispensing held back at conversion gets its own file from them).
    pub source: Vec<u8>,
    pub encoding: Encoding,
    /// Whether the first line ended in CRLF.
    pub crlf: bool,
    pub header: Header,
    /// The dispensings that parsed, in file order.
    pub dispensings: Vec<Dispensing>,
    /// The dispensings that did not parse, in file order: each is left out of
    /// [`NsipsFile::dispensings`] (and so of the conversion) alone, never the whole file.
    pub held_back: Vec<HeldBack>,
    /// Characters SS-MIX2 cannot hold (CP932's NEC and IBM extensions, emoji, …), each written
    /// as a JIS X 0208 stand-in in the parsed text (see [`crate::Replacement`]).
    pub replaced: Vec<crate::Replacement>,
}

/// One dispensing left out of the conversion because it does not parse or convert (a bad date,
/// a drug whose Rp is ambiguous, …); the rest of the file converts without it.
#[derive(Debug, Clone)]
pub struct HeldBack {
    /// The dispensing's lines in the export, 1-based: its record 1 to its last record.
    pub lines: std::ops::RangeInclusive<usize>,
    /// Why, naming file, line and field (the line in the export, not in [`HeldBack::export`]).
    pub error: crate::NsipsError,
    /// A complete NSIPS file of this dispensing alone: the export's header line and the
    /// dispensing's lines, bytes as exported (same encoding and line ends). Fixed and written into
    /// the NSIPS folder (or converted), it converts like the dispensing in the whole file would;
    /// except that a prescription number repeated for one patient and day is numbered within the
    /// file it is in (see `crate::to_ssmix2`).
    pub export: Vec<u8>,
}

/// Equal when the lines, the bytes and the error's text are (an I/O error has no equality).
impl PartialEq for HeldBack {
    fn eq(&self, other: &Self) -> bool {
        self.lines == other.lines
            && self.export == other.export
            && self.error.to_string() == other.error.to_string()
    }
}

impl Eq for HeldBack {}

impl HeldBack {
    /// The line of the fault, when the error names one.
    pub fn line(&self) -> Option<usize> {
        use crate::NsipsError as E;
        match &self.error {
            E::Field { line, .. } | E::Line { line, .. } | E::Convert { line, .. } => Some(*line),
            E::Encoding { .. } | E::Io { .. } => None,
        }
    }

    /// The error without its file name: `line 10: record 2 field 2 (issued on): …`.
    pub fn reason(&self) -> String {
        let full = self.error.to_string();
        let file = match &self.error {
            crate::NsipsError::Field { file, .. }
            | crate::NsipsError::Line { file, .. }
            | crate::NsipsError::Convert { file, .. }
            | crate::NsipsError::Encoding { file } => file.display().to_string(),
            crate::NsipsError::Io { path, .. } => path.display().to_string(),
        };
        match full.strip_prefix(&format!("{file}:")) {
            Some(rest) if rest.starts_with(|c: char| c.is_ascii_digit()) => format!("line {rest}"),
            Some(rest) => rest.trim_start().to_owned(),
            None => full,
        }
    }
}

impl std::fmt::Display for HeldBack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        crate::Warning::from(self).fmt(f)
    }
}

/// The `VERnnnnnn` header line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// `VER` and six digits, e.g. `VER010603`.
    pub version: String,
    /// `YYYYMMDDHHMMSS`.
    pub sent_at: String,
    pub terminal: String,
    pub prefecture: String,
    pub fee_table: String,
    /// The pharmacy's 7-digit code.
    pub pharmacy_code: String,
    pub pharmacy_name: String,
    pub postcode: String,
    pub address: String,
    pub phone: String,
}

/// One dispensing: a record 1 and the records 2–8 that follow it up to the next record 1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dispensing {
    /// The line of its record 1.
    pub line: usize,
    /// The line of its last record.
    pub last_line: usize,
    pub patient: Patient,
    pub prescription: Prescription,
    pub rps: Vec<Rp>,
    pub drugs: Vec<Drug>,
    pub records: Vec<DispensingRecord>,
    pub details: Vec<DispensingDetail>,
    pub fees: Vec<Fee>,
    pub notes: Vec<Note>,
}

impl Dispensing {
    /// The Rp (record 3) a drug belongs to: the last record 3 before the drug with its Rp number.
    /// Rp groups numbered the same (one added again after an edit) each keep their own usage, days
    /// and times per day; the parser holds back a dispensing where that is ambiguous.
    pub fn rp_of(&self, drug: &Drug) -> Option<&Rp> {
        self.rps.iter().rev().find(|r| r.line < drug.line && r.rp_no == drug.rp_no)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sex {
    Male,
    Female,
}

/// Record 1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Patient {
    /// The pharmacy's own patient number (ASCII letters/digits, at most 15).
    pub patient_no: String,
    /// Family and given name separated by an ideographic space (or a half-width one).
    pub name_kanji: String,
    pub name_kana: String,
    pub sex: Sex,
    /// `YYYYMMDD`.
    pub birth_date: String,
    pub postcode: String,
    pub address: String,
    pub phone: String,
    pub insurer_no: String,
}

/// Record 2.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prescription {
    /// 1-based line of the record (warnings name it).
    pub line: usize,
    pub prescription_no: String,
    pub issued_on: String,
    /// The prescribing institution's 10-digit code.
    pub institution_code: String,
    pub institution_name: String,
    pub department: String,
    pub doctor: String,
    pub dispensed_on: String,
}

/// Record 3: one Rp (a group of drugs taken the same way).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rp {
    /// 1-based line of the record (warnings name it).
    pub line: usize,
    pub rp_no: u32,
    /// JAMI 16-character usage code.
    pub usage_code: String,
    pub usage: String,
    pub days: u32,
    pub times_per_day: u32,
}

/// Record 4: one drug of an Rp.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Drug {
    /// 1-based line of the record (warnings name it).
    pub line: usize,
    pub rp_no: u32,
    pub seq: u32,
    /// 12-character YJ code, or empty (a drug without one).
    pub yj_code: String,
    /// 9-digit receipt-computer (レセ電) code, or empty.
    pub receipt_code: String,
    /// 9-digit HOT code, or empty (generic-name prescriptions, in-house preparations).
    pub hot_code: String,
    pub drug_name: String,
    /// A decimal number as written (digits, at most one point).
    pub amount_per_day: String,
    /// The unit as written (any text: MERIT-9 names, `mg`, `噴霧`, …; see `crate::codes`).
    pub unit: String,
}

/// Record 5.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DispensingRecord {
    pub dispensing_no: String,
    pub dispensed_on: String,
    pub pharmacist: String,
    pub points: u32,
}

/// Record 6.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DispensingDetail {
    pub dispensing_no: String,
    pub rp_no: u32,
    pub points: u32,
}

/// Record 7.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fee {
    pub fee_code: String,
    pub fee_name: String,
    pub points: u32,
}

/// Record 8: a medication-notebook note.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    pub noted_on: String,
    pub note: String,
}
