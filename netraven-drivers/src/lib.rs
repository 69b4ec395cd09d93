//! # netraven-drivers
//!
//! Talking to network devices:
//!
//! - [`ssh`]: the SSH transport on `ssh2` ([`ssh::SshDriver`], one per platform), with host
//!   key pinning, password / keyboard-interactive / private-key login, enable mode, paging;
//! - [`expect`]: the prompt/paging state machine, fed bytes, testable without SSH;
//! - [`platform`]: platforms as data (TOML files, netmiko `device_type` names);
//! - [`registry`]: [`build_registry`] builds a [`netraven_core::driver::DriverRegistry`] from the
//!   built-in platforms plus a directory of user platform files;
//! - `sim` (feature `sim`): an SSH device simulator for tests, benchmarks and demos.

pub mod catalog;
pub mod expect;
pub mod platform;
pub mod registry;
pub mod sample;
#[cfg(feature = "sim")]
pub mod sim;
pub mod ssh;

pub use platform::{Platform, builtin_platform, builtin_platforms};
pub use registry::{LazySshDriver, build_registry, register_builtins, register_platform};
pub use ssh::{SshDriver, SshOptions, legacy_algorithms_missing, probe_ssh};
