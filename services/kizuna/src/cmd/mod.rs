//! One module per top-level subcommand.

pub mod admin;
pub mod audit;
pub mod auth;
pub mod backup;
pub mod consent;
pub mod demo;
pub mod index;
pub mod nsips;
pub mod policy;
pub mod registry;
pub mod serve;
pub mod shutdown;
pub mod site;
pub mod ssmix2;
pub mod viewer;
