//! What the centre services' config readers share, so that each check is written once and says
//! the same thing in every service:
//!
//! - [`yaml`]: `serde_norway::from_str` that refuses a key given twice in one mapping, with both
//!   lines;
//! - [`check`]: a number within its bounds, an `http(s)://` URL with a host, each error naming
//!   the key;
//! - [`secret`]: reading a secret file (key, token, salt) only when group and others cannot read
//!   it, the error saying the `chmod` to run.
//!
//! Errors are one line for the caller to prefix with the config file's name.

pub mod check;
pub mod secret;
pub mod yaml;
