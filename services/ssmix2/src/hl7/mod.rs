//! HL7 v2.5 messages as SS-MIX2 stores them: ISO-2022-JP bytes, CR-terminated segments, the
//! separators `|^~\&`, and an optional trailing 0x1C.
//!
//! The tree keeps every value in its escaped wire form, so `Message::encode(Message::decode(b))`
//! gives back `b` byte for byte; [`Value::text`] unescapes on demand.
//!
//! Hand-written rather than taken from a crate: the maintained HL7 v2 crates (`rust-hl7`, `hl7-parser`)
//! work on UTF-8 text, normalise separators or drop trailing empties, and none round-trips exactly,
//! which the store and the validator both rely on.

mod charset;
mod escape;
mod message;
mod path;
mod view;

pub use charset::{decode_iso2022jp, encode_iso2022jp, normalize_halfwidth_katakana};
pub use escape::{escape, unescape};
pub use message::{Component, Delimiters, Field, Message, Repetition, Segment, Value};
pub use path::FieldPath;
pub use view::{MessageView, SegmentView};
