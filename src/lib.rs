//! NetRaven: back up and track the configuration of fleets of network devices.
//!
//! This facade re-exports the workspace crates:
//! - [`core`]: domain model, traits, the job lifecycle engine and the scheduler;
//! - [`drivers`] (feature `drivers`): SSH transport, platform profiles and the device simulator;
//! - [`store`] (feature `store`): SQLite/PostgreSQL stores, queues and the git snapshot sink.

pub use netraven_core as core;
#[cfg(feature = "drivers")]
pub use netraven_drivers as drivers;
#[cfg(feature = "store")]
pub use netraven_store as store;
