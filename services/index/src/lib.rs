//! Patient linkage for Kizuna: one common health ID (健康共通 ID) per person, linked to the local
//! patient ID each facility gave them.
//!
//! - [`normalize`]: Japanese names and addresses folded for matching (NFKC, kana forms, old kanji
//!   forms, spacing, 丁目・番地・号);
//! - [`demographics`]: the PID fields linkage uses, read from SS-MIX2 messages;
//! - [`matcher`]: a Fellegi–Sunter scorer whose m and u probabilities are estimated without labels
//!   (u from random pairs, m by EM on blocked pairs, as Splink does), with two thresholds;
//! - [`source`]: demographics read from an SS-MIX2 storage root or NSIPS exports;
//! - [`quality`]: pairwise precision and recall against a ground truth;
//! - [`registry`]: common health IDs, links, the review queue and the link history in the IndexDB;
//! - [`disclosure`]: consent policies and the rule deciding who sees which facility's records
//!   (stored with break-glass grants by [`registry::consent`]).
//!
//! Everything but [`registry`] is pure: data in, data out.

pub mod demographics;
pub mod disclosure;
mod error;
pub mod matcher;
pub mod normalize;
pub mod quality;
pub mod registry;
pub mod source;
pub mod tree_linkage;

pub use demographics::{Demographics, RecordKey, Sex};
pub use disclosure::{Access, ConsentPolicy, FacilityCode};
pub use error::IndexError;
pub use registry::{CommonId, Registry};
