//! NSIPS pharmacy dispensing exports: parsing ([`parse`]) and conversion to SS-MIX2 prescription
//! messages ([`to_ssmix2`]).
//!
//! The NSIPS specification is confidential to its member vendors; the public outline is a
//! comma-separated file with a `VERnnnnnn` header line and record types 1–8, in CP932 or UTF-8, with
//! CRLF or LF line ends. The fields inside each record follow the layout `synth::nsips::LAYOUT`
//! documents (see `services/synth/README.md`), which is the only layout this crate reads.

mod codes;
mod convert;
mod dir;
mod error;
mod jis;
mod parse;
mod record;
mod warning;
mod write;

pub use codes::{LOCAL_RECEIPT_CODES, LOCAL_UNITS, MERIT9, MERIT9_UNITS, ROUTES, UnitCode, route, unit_code};
pub use convert::to_ssmix2;
pub use dir::{Conversion, Converted, convert_bytes, convert_dir};
pub use error::NsipsError;
pub use jis::{GETA, Replacement, VARIANTS};
pub use parse::parse;
pub use record::{
    Dispensing, DispensingDetail, DispensingRecord, Drug, Encoding, Fee, Header, HeldBack, Note, NsipsFile,
    Patient, Prescription, Rp, Sex,
};
pub use warning::{Unmapped, Warning};
pub use write::write_files;
