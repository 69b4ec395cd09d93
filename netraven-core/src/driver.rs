//! [`Driver`] and [`Session`]: talking to one kind of device, and the [`DriverRegistry`] that maps
//! netmiko `device_type` names to drivers.

use crate::error::{Error, Result};
use crate::model::{Credential, Device};
use crate::normalise::Rules;
use async_trait::async_trait;
use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

/// A way to talk to one platform.
#[async_trait]
pub trait Driver: Send + Sync + Debug + 'static {
    /// The platform name (netmiko `device_type`).
    fn platform(&self) -> &str;
    /// Volatile-line and secret rules for this platform's configurations.
    fn rules(&self) -> &Rules;
    /// Opens a logged-in session (enable mode entered and paging disabled where the platform
    /// needs it) within `timeout`. Errors: Auth when the credential was refused (the caller tries
    /// the next one), HostKey on a key mismatch (no password was sent), Connection/Timeout for
    /// the network.
    async fn connect(
        &self,
        device: &Device,
        credential: &Credential,
        timeout: Duration,
    ) -> Result<Box<dyn Session>>;
    /// Checks that the device answers (TCP and SSH banner) within `timeout`, without logging in.
    async fn probe(&self, device: &Device, timeout: Duration) -> Result<Duration>;
}

/// A logged-in session on a device.
#[async_trait]
pub trait Session: Send + Debug {
    /// Runs one command and returns its output (echo and trailing prompt removed).
    async fn run_command(&mut self, command: &str, timeout: Duration) -> Result<String>;
    /// Fetches the raw configuration text for a backup (the platform's backup commands).
    async fn fetch_config(&mut self, timeout: Duration) -> Result<String>;
    /// Logs out and closes the connection.
    async fn close(self: Box<Self>) -> Result<()>;
}

/// Maps platform names (and aliases) to drivers.
#[derive(Debug, Default, Clone)]
pub struct DriverRegistry {
    drivers: HashMap<String, Arc<dyn Driver>>,
}

impl DriverRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers a driver under its platform name, replacing any earlier one.
    pub fn register(&mut self, driver: Arc<dyn Driver>) {
        self.drivers.insert(driver.platform().to_string(), driver);
    }

    /// Registers a driver under an extra name (e.g. `cisco_xe` for `cisco_ios`).
    pub fn alias(&mut self, alias: impl Into<String>, driver: Arc<dyn Driver>) {
        self.drivers.insert(alias.into(), driver);
    }

    /// The driver for a platform; InvalidInput if none is registered.
    pub fn get(&self, platform: &str) -> Result<Arc<dyn Driver>> {
        self.drivers
            .get(platform)
            .cloned()
            .ok_or_else(|| Error::invalid(format!("no driver for platform '{platform}'")))
    }

    /// Registered names, sorted.
    pub fn platforms(&self) -> Vec<String> {
        let mut v: Vec<String> = self.drivers.keys().cloned().collect();
        v.sort();
        v
    }
}
