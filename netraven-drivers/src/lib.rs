//! # netraven-drivers
//!
//! Talking to network devices:
//!
//! - [`ssh`]: the SSH transport on `ssh2` ([`ssh::SshDriver`], one per platform), with host
//!   key pinning, password / keyboard-interactive / private-key login, enable mode, paging;
//! - [`expect`]: the prompt/paging state machine, fed bytes, testable without SSH;
//! - [`platform`]: platforms as data (TOML files, netmiko `device_type` names), and
//!   [`platform_builder`] for the same data from code;
//! - [`registry`]: [`build_registry`] builds a [`netraven_core::driver::DriverRegistry`] from the
//!   built-in platforms plus a directory of user platform files;
//! - [`syslog`]: the syslog listener that turns configuration-change messages from devices
//!   into backups of them;
//! - `sim` (feature `sim`): an SSH device simulator for tests, benchmarks and demos.
//!
//! ## Building: libssh2's legacy algorithms (`CFLAGS`)
//!
//! The SSH transport uses the libssh2 that `libssh2-sys` compiles from source. That build leaves
//! out SHA-1 key exchange (`diffie-hellman-group14-sha1`, `diffie-hellman-group1-sha1`,
//! `diffie-hellman-group-exchange-sha1`), `hmac-sha1`, `ssh-rsa` (RSA/SHA-1) host keys and
//! `3des-cbc` unless C defines turn them on — and many devices still in service (Cisco IOS
//! 12.x/15.x, older IOS-XE, NX-OS and ASA releases) offer nothing newer. NetRaven offers these
//! algorithms only to devices with `legacy_ssh = true`; every other session gets an explicit
//! modern list. To compile them in, build with:
//!
//! ```text
//! CFLAGS="-DLIBSSH2_KEX_SHA1_ENABLE -DLIBSSH2_HMAC_SHA1_ENABLE -DLIBSSH2_RSA_SHA1_ENABLE -DLIBSSH2_3DES_ENABLE"
//! ```
//!
//! This workspace sets it in `.cargo/config.toml` (`[env]`). A crate that depends on NetRaven
//! does not get that file: put the same `[env] CFLAGS = "..."` in its own `.cargo/config.toml`
//! or export it before `cargo build` (and `cargo clean -p libssh2-sys` if libssh2 was already
//! built without it). A `CFLAGS` already set in the environment wins over the config file, so
//! whoever sets their own must add the defines to it. The `cc` crate passes `CFLAGS` to every C
//! build script; the defines mean something only to libssh2.
//!
//! Check a build with [`legacy_algorithms_missing`] (empty when they are all there): the
//! facade's builder logs a warning naming the missing ones at startup, and a handshake with a
//! `legacy_ssh` device that fails names them in the device's error.

#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod catalog;
pub mod expect;
mod jump;
pub mod platform;
pub mod platform_builder;
pub mod registry;
pub mod sample;
#[cfg(feature = "sim")]
#[cfg_attr(docsrs, doc(cfg(feature = "sim")))]
pub mod sim;
pub mod ssh;
pub mod syslog;
pub mod telnet;

pub use platform::{Platform, SharedRegex, builtin_platform, builtin_platforms};
pub use platform_builder::PlatformBuilder;
pub use registry::{
    LazySshDriver, build_registry, build_registry_with, register_builtins, register_builtins_with,
    register_platform, register_platform_with,
};
pub use ssh::{JumpHosts, SshDriver, SshOptions, legacy_algorithms_missing, probe_ssh};
