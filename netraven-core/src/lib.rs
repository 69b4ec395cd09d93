//! # netraven-core
//!
//! The heart of NetRaven: the domain model, the small object-safe traits every backend
//! implements, and the logic that uses only those traits:
//!
//! | seed step | module |
//! |---|---|
//! | 1. job creation (validation) | [`model`] (`Job::validate`), [`schedule::validate_schedule`] |
//! | 2. scheduling | [`scheduler`] |
//! | 3. execution | [`engine`] (worker loop, fan-out, per-device runner), [`credentials`], [`normalise`], [`snapshot`] |
//! | 4. monitoring | the [`store`] query traits the API serves from |
//!
//! Backends: [`store::Store`], [`queue::Queue`], [`driver::Driver`], [`snapshot::SnapshotSink`],
//! [`cipher::SecretCipher`], [`clock::Clock`]. In-memory implementations live in [`memory`];
//! the conformance suites every backend must pass live in `testkit` (feature `testkit`).

#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod cipher;
pub mod clock;
pub mod credentials;
pub mod diff;
pub mod driver;
pub mod engine;
pub mod error;
pub mod events;
pub mod import;
pub mod inventory;
#[cfg(feature = "logging")]
#[cfg_attr(docsrs, doc(cfg(feature = "logging")))]
pub mod logging;
pub mod maintenance;
pub mod memory;
pub mod model;
pub mod netpolicy;
pub mod normalise;
pub mod notify;
pub mod oxidized;
pub mod queue;
pub mod schedule;
pub mod scheduler;
pub mod secret;
pub mod snapshot;
pub mod sources;
pub mod store;
#[cfg(any(test, feature = "testkit"))]
#[cfg_attr(docsrs, doc(cfg(feature = "testkit")))]
pub mod testkit;
pub mod triggers;
pub mod zones;

pub use error::{Error, ErrorKind, Result};
pub use secret::Secret;

/// The traits and types most code needs: `use netraven_core::prelude::*;`.
pub mod prelude {
    pub use crate::cipher::SecretCipher;
    pub use crate::clock::Clock;
    pub use crate::driver::{Driver, DriverRegistry, Session};
    pub use crate::error::{Error, ErrorKind, Result};
    pub use crate::model::*;
    pub use crate::queue::Queue;
    pub use crate::secret::Secret;
    pub use crate::snapshot::SnapshotSink;
    pub use crate::store::{
        CredentialStore, DeviceStore, HostKeyStore, JobStore, JumpHostStore, LeaseStore, LogStore,
        ResultStore, RunStore, SchemaStatus, SchemaStore, ServerStore, SnapshotStore, Store,
        StoreExt, TagStore, UserStore,
    };
}
