use std::path::PathBuf;

/// The text encoding a file was read in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Utf8,
    Cp932,
}

/// One NSIPS export file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NsipsFile {
    /// Where the bytes came from (used in every error message).
    pub origin: PathBuf,
    pub encoding: Encoding,
    /// Whether the first line ended in CRLF.
    pub crlf: bool,
    pub header: Header,
    pub dispensings: Vec<Dispensing>,
    /// Characters SS-MIX2 cannot hold (CP932's NEC and IBM extensions, emoji, …), each written
    /// as a JIS X 0208 stand-in in the parsed text (see [`crate::Replacement`]).
    pub replaced: Vec<crate::Replacement>,
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
    pub patient: Patient,
    pub prescription: Prescription,
    pub rps: Vec<Rp>,
    pub drugs: Vec<Drug>,
    pub records: Vec<DispensingRecord>,
    pub details: Vec<DispensingDetail>,
    pub fees: Vec<Fee>,
    pub notes: Vec<Note>,
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
    /// Family and given name separated by an ideographic space.
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
    /// 12-character YJ code.
    pub yj_code: String,
    pub receipt_code: String,
    /// 9-digit HOT code.
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
