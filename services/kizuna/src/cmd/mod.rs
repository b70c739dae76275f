//! One module per top-level subcommand.

pub mod audit;
pub mod backup;
pub mod demo;
pub mod nsips;
pub mod policy;
pub mod registry;
pub mod serve;
pub mod site;
pub mod ssmix2;
