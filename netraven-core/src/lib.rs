//! # netraven-core
//!
//! The heart of NetRaven: the domain model, the small object-safe traits every backend
//! implements, and the logic that uses only those traits:
//!
//! | seed step | module |
//! |---|---|
//! | 1. job creation (validation) | [`model`] (`Job::validate`), [`scheduler::validate_schedule`] |
//! | 2. scheduling | [`scheduler`] |
//! | 3. execution | [`engine`] (worker loop, fan-out, per-device runner), [`credentials`], [`normalise`], [`snapshot`] |
//! | 4. monitoring | the [`store`] query traits the API serves from |
//!
//! Backends: [`store::Store`], [`queue::Queue`], [`driver::Driver`], [`snapshot::SnapshotSink`],
//! [`cipher::SecretCipher`], [`clock::Clock`]. In-memory implementations live in [`memory`];
//! the conformance suites every backend must pass live in `testkit` (feature `testkit`).

pub mod cipher;
pub mod clock;
pub mod credentials;
pub mod driver;
pub mod engine;
pub mod error;
pub mod memory;
pub mod model;
pub mod normalise;
pub mod queue;
pub mod scheduler;
pub mod secret;
pub mod snapshot;
pub mod store;
#[cfg(any(test, feature = "testkit"))]
pub mod testkit;

pub use error::{Error, ErrorKind, Result};
pub use secret::Secret;
