//! Building a [`DriverRegistry`] from the built-in platforms and user platform files.

use crate::platform::{Platform, builtin_platforms, load_platform_dir};
use crate::ssh::SshDriver;
use netraven_core::driver::DriverRegistry;
use netraven_core::error::Result;
use netraven_core::store::HostKeyStore;
use std::path::Path;
use std::sync::Arc;

/// Registers an SSH driver for `platform` under its name and aliases.
pub fn register_platform(
    registry: &mut DriverRegistry,
    platform: Platform,
    host_keys: Arc<dyn HostKeyStore>,
) {
    let aliases = platform.spec.aliases.clone();
    let driver: Arc<dyn netraven_core::driver::Driver> =
        Arc::new(SshDriver::new(platform, host_keys));
    registry.register(driver.clone());
    for a in aliases {
        registry.alias(a, driver.clone());
    }
}

/// A registry with every built-in platform (`cisco_ios`/`cisco_xe`, `arista_eos`,
/// `juniper_junos`, `linux`) and, when `user_dir` is given, every `*.toml` platform file in it
/// (a user file with a built-in's name replaces it). Host keys are pinned in `host_keys`.
/// Rust drivers can be added afterwards with [`DriverRegistry::register`].
pub fn build_registry(
    host_keys: Arc<dyn HostKeyStore>,
    user_dir: Option<&Path>,
) -> Result<DriverRegistry> {
    let mut registry = DriverRegistry::new();
    for p in builtin_platforms()? {
        register_platform(&mut registry, p, host_keys.clone());
    }
    if let Some(dir) = user_dir {
        for p in load_platform_dir(dir)? {
            tracing::info!(platform = %p.name(), "loaded user platform file");
            register_platform(&mut registry, p, host_keys.clone());
        }
    }
    Ok(registry)
}
