//! One module per top-level subcommand.

pub mod serve;
pub mod site;
pub mod ssmix2;
