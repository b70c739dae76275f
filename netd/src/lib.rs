//! netd: the Kizuna site appliance daemon. One YAML policy becomes per-segment VRFs (or
//! routing tables), WireGuard full meshes and nftables isolation, reconciled against the
//! kernel: observe, diff, apply only the difference, verify, roll back to the last good state.
//!
//! Layers, each in its own place: [`policy`] (types and validation), [`plan`] (pure desired
//! state), [`kernel`] (one module per kernel object, each observing and applying),
//! [`reconcile`] (diff, apply, verify, rollback) and [`api`] (status and metrics).

pub mod agent_host;
pub mod api;
pub mod cli;
pub mod daemon;
pub mod diff;
pub mod durable;
pub mod error;
pub mod kernel;
pub mod keys;
pub mod pass_lock;
pub mod plan;
pub mod policy;
pub mod reconcile;
pub mod registry;
pub mod site;
pub mod state;
pub mod synthetic;
