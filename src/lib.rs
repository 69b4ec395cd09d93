//! NetRaven: back up and track the configuration of fleets of network devices.
//!
//! This facade re-exports the workspace crates and holds what needs all of them:
//! - [`core`]: domain model, traits, the job lifecycle engine, the scheduler, maintenance;
//! - [`drivers`] (feature `drivers`): SSH transport, platform profiles and the device simulator;
//! - [`store`] (feature `store`): SQLite/PostgreSQL stores, queues, the git snapshot sink and the
//!   credential key's life;
//! - [`Netraven`] (features `drivers` + `store`): the engine with its backends wired, as the
//!   reference server wires it; [`backup`]: the one-shot backup of an inventory into git;
//! - `config` (feature `config`): the server's configuration file and the builder it describes.

#![cfg_attr(docsrs, feature(doc_cfg))]

/// What implementing a trait needs: the `#[async_trait]` attribute, the shutdown token type and
/// the time types in signatures.
pub use async_trait::async_trait;
pub use chrono::{DateTime, Utc};
pub use netraven_core as core;
#[cfg(feature = "drivers")]
#[cfg_attr(docsrs, doc(cfg(feature = "drivers")))]
pub use netraven_drivers as drivers;
#[cfg(feature = "store")]
#[cfg_attr(docsrs, doc(cfg(feature = "store")))]
pub use netraven_store as store;
pub use tokio_util::sync::CancellationToken;

#[cfg(all(feature = "drivers", feature = "store"))]
#[cfg_attr(docsrs, doc(cfg(all(feature = "drivers", feature = "store"))))]
pub mod backup;
#[cfg(all(feature = "drivers", feature = "store"))]
mod builder;
#[cfg(feature = "config")]
pub mod config;
#[cfg(feature = "integrations")]
#[cfg_attr(docsrs, doc(cfg(feature = "integrations")))]
pub mod ctl;
#[cfg(feature = "integrations")]
#[cfg_attr(docsrs, doc(cfg(feature = "integrations")))]
pub mod integrations;
#[cfg(all(feature = "drivers", feature = "store"))]
#[cfg_attr(docsrs, doc(cfg(all(feature = "drivers", feature = "store"))))]
pub use builder::{Builder, Netraven, SinkLayer, postgres_pool_size, shutdown_on_signals};
#[cfg(all(feature = "sim", feature = "store"))]
#[cfg_attr(docsrs, doc(cfg(all(feature = "sim", feature = "store"))))]
pub mod demo;
#[cfg(all(feature = "drivers", feature = "store"))]
#[cfg_attr(docsrs, doc(cfg(all(feature = "drivers", feature = "store"))))]
pub mod syslog;
