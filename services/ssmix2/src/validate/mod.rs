//! Validation of SS-MIX2 files and trees, with stable violation codes.

mod code;

pub use code::Code;
