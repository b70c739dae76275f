//! SS-MIX2 standardized storage, as every part of Kizuna speaks it.
//!
//! - [`name`]: patient ID, care date, data type, order number, timestamp, department and condition
//!   flag as checked types; file names and storage paths that parse, print and round-trip exactly.
//! - [`hl7`]: HL7 v2.5 messages in ISO-2022-JP, parsed into a lossless tree.
//! - [`condition`]: the condition-flag semantics (update `_1`→`_2`, delete →`_0`) as a pure function.
//! - [`validate`]: the NHO validator's six checks and Kizuna's own, with stable violation codes.
//! - [`walk`]: validation of a whole storage root in constant memory on every core.
//!
//! Nothing here does I/O policy: callers decide where bytes come from and where they go.

pub mod condition;
mod error;
pub mod hl7;
pub mod name;
pub mod validate;
pub mod walk;

pub use error::{Hl7Error, NameError};
pub use name::file_name::DataKey;
pub use name::{
    CareDate, ConditionFlag, DataType, Department, FileName, MessageType, OrderNo, PatientId, StoragePath,
    Timestamp,
};
