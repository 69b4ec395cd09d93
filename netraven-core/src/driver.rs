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
///
/// A driver for an appliance that is not SSH (HTTP, NETCONF, a vendor SDK); the engine then
/// treats it like any platform. Check yours with the conformance suite (`testkit::driver`).
///
/// ```
/// use netraven_core::prelude::*;
/// use netraven_core::normalise::Rules;
/// use std::time::Duration;
///
/// #[derive(Debug)]
/// struct Appliance { rules: Rules }
///
/// #[derive(Debug)]
/// struct ApplianceSession { host: String }
///
/// #[async_trait::async_trait]
/// impl Driver for Appliance {
///     fn platform(&self) -> &str { "acme" }
///     fn rules(&self) -> &Rules { &self.rules }
///     async fn connect(&self, d: &Device, c: &Credential, _t: Duration) -> Result<Box<dyn Session>> {
///         if c.password.expose().is_empty() {
///             return Err(Error::new(ErrorKind::Auth, "refused")); // the engine tries the next one
///         }
///         Ok(Box::new(ApplianceSession { host: d.hostname.clone() }))
///     }
///     async fn probe(&self, _d: &Device, _t: Duration) -> Result<Duration> {
///         Ok(Duration::from_millis(1))
///     }
/// }
///
/// #[async_trait::async_trait]
/// impl Session for ApplianceSession {
///     async fn run_command(&mut self, cmd: &str, _t: Duration) -> Result<String> {
///         Ok(format!("{} ran {cmd}", self.host))
///     }
///     async fn fetch_config(&mut self, _t: Duration) -> Result<String> {
///         Ok(format!("hostname {}\n", self.host))
///     }
///     async fn close(self: Box<Self>) -> Result<()> { Ok(()) }
/// }
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<()> {
/// let drv = Appliance { rules: Rules::empty() };
/// let dev = Device::new("box-1", "192.0.2.1", "acme");
/// let cred = Credential::new("c", "api", Secret::new("token"));
/// let mut s = drv.connect(&dev, &cred, Duration::from_secs(5)).await?;
/// assert_eq!(s.fetch_config(Duration::from_secs(5)).await?, "hostname box-1\n");
/// s.close().await?;
/// # Ok(()) }
/// ```
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
    /// How much slower than usual this platform is: the engine multiplies every deadline of a
    /// device of it (connect, each command, the whole device) by this, unless the device sets
    /// its own `timeout_multiplier`. Default 1.
    fn timeout_multiplier(&self) -> f64 {
        1.0
    }
    /// Who last changed the configuration, as the raw (not yet normalised) backup says (IOS
    /// `! Last configuration change at … by USER`), if the platform says so. Default: `None`.
    fn change_author(&self, _raw: &str) -> Option<String> {
        None
    }
}

/// A logged-in session on a device.
///
/// See [`Driver`] for an implementation of both. Using one:
///
/// ```
/// use netraven_core::prelude::*;
/// use netraven_core::memory::{FakeBehavior, FakeDriver};
/// use netraven_core::normalise::Rules;
/// use std::time::Duration;
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<()> {
/// let drv = FakeDriver::new("fake", Rules::empty(), FakeBehavior {
///     config: "hostname r1\n".into(),
///     ..FakeBehavior::default()
/// });
/// let cred = Credential::new("c", "u", Secret::new("p"));
/// let mut s = drv.connect(&Device::new("r1", "127.0.0.1", "fake"), &cred, Duration::from_secs(1)).await?;
/// assert_eq!(s.run_command("show clock", Duration::from_secs(1)).await?, "output of show clock");
/// s.close().await?;
/// # Ok(()) }
/// ```
#[async_trait]
pub trait Session: Send + Debug {
    /// Runs one command and returns its output (echo and trailing prompt removed).
    async fn run_command(&mut self, command: &str, timeout: Duration) -> Result<String>;
    /// Fetches the raw configuration text for a backup (the platform's backup commands).
    async fn fetch_config(&mut self, timeout: Duration) -> Result<String>;
    /// Logs out and closes the connection.
    async fn close(self: Box<Self>) -> Result<()>;
    /// Takes what the session noticed that belongs in the device's log (e.g. "the prompt was
    /// learned"); the engine logs each after login. Default: nothing.
    fn take_notes(&mut self) -> Vec<String> {
        Vec::new()
    }
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

    /// Whether a driver is registered for this platform name (or alias).
    pub fn contains(&self, platform: &str) -> bool {
        self.drivers.contains_key(platform)
    }

    /// Registered names, sorted.
    pub fn platforms(&self) -> Vec<String> {
        let mut v: Vec<String> = self.drivers.keys().cloned().collect();
        v.sort();
        v
    }
}

/// A function applied to a fetched configuration before normalisation (see
/// [`DriverExt::map_config`]).
pub type ConfigMap = Arc<dyn Fn(String) -> Result<String> + Send + Sync>;

/// Decorations on any driver: "like `cisco_ios`, but with one more command and one more secret"
/// in a few lines. Each method wraps the driver in a [`Decorated`] driver; chain them.
///
/// ```
/// use netraven_core::driver::{Driver, DriverExt};
/// use netraven_core::memory::{FakeBehavior, FakeDriver};
/// use netraven_core::normalise::Rules;
///
/// # fn main() -> netraven_core::Result<()> {
/// let base = FakeDriver::new("cisco_ios", Rules::empty(), FakeBehavior::default());
/// let mine = base
///     .with_extra_rules(&Rules::empty().with_secret("^(tacacs key) \\S+", "$1 {marker}")?)?
///     .with_commands(["show inventory"])
///     .map_config(|c| Ok(c.replace("\r", "")))
///     .named("cisco_ios_inventory");
/// assert_eq!(mine.platform(), "cisco_ios_inventory");
/// assert_eq!(mine.rules().len(), (0, 1));
/// # Ok(()) }
/// ```
pub trait DriverExt: Sized {
    /// This driver as a [`Decorated`] driver without decorations.
    fn decorate(self) -> Decorated;

    /// Adds normalisation rules (volatile lines, secrets) to the driver's own.
    fn with_extra_rules(self, rules: &Rules) -> Result<Decorated> {
        self.decorate().with_extra_rules(rules)
    }

    /// Runs these commands after the driver's backup commands and appends their output to the
    /// configuration (within the same deadline).
    fn with_commands<I, S>(self, commands: I) -> Decorated
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.decorate().with_commands(commands)
    }

    /// Applies `f` to every fetched configuration, before normalisation and redaction (after
    /// [`DriverExt::with_commands`]' output was appended). An error fails the device.
    fn map_config(self, f: impl Fn(String) -> Result<String> + Send + Sync + 'static) -> Decorated {
        self.decorate().map_config(f)
    }

    /// Registers the driver under another platform name.
    fn named(self, platform: impl Into<String>) -> Decorated {
        self.decorate().named(platform)
    }
}

impl<D: Driver> DriverExt for D {
    fn decorate(self) -> Decorated {
        Decorated::new(Arc::new(self))
    }
}

impl DriverExt for Arc<dyn Driver> {
    fn decorate(self) -> Decorated {
        Decorated::new(self)
    }
}

/// A driver wrapped with extra rules, extra backup commands, a configuration map and/or another
/// name (see [`DriverExt`]). Connecting, probing and host keys are the inner driver's.
#[derive(Clone)]
pub struct Decorated {
    inner: Arc<dyn Driver>,
    platform: String,
    rules: Rules,
    commands: Vec<String>,
    maps: Vec<ConfigMap>,
}

impl Debug for Decorated {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decorated")
            .field("inner", &self.inner)
            .field("platform", &self.platform)
            .field("commands", &self.commands)
            .field("maps", &self.maps.len())
            .finish_non_exhaustive()
    }
}

impl Decorated {
    /// `inner` without decorations.
    pub fn new(inner: Arc<dyn Driver>) -> Self {
        Decorated {
            platform: inner.platform().to_string(),
            rules: inner.rules().clone(),
            inner,
            commands: Vec::new(),
            maps: Vec::new(),
        }
    }

    /// The driver underneath.
    pub fn inner(&self) -> &Arc<dyn Driver> {
        &self.inner
    }

    /// The extra backup commands.
    pub fn commands(&self) -> &[String] {
        &self.commands
    }
}

// Inherent methods of the same names as [`DriverExt`]'s: they take precedence, so chained
// decorations add to one `Decorated` instead of nesting drivers.
impl Decorated {
    /// Adds normalisation rules to the driver's own (see [`DriverExt::with_extra_rules`]).
    pub fn with_extra_rules(mut self, rules: &Rules) -> Result<Decorated> {
        self.rules.extend(rules)?;
        Ok(self)
    }

    /// Adds backup commands (see [`DriverExt::with_commands`]).
    pub fn with_commands<I, S>(mut self, commands: I) -> Decorated
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.commands.extend(commands.into_iter().map(Into::into));
        self
    }

    /// Adds a configuration map (see [`DriverExt::map_config`]).
    pub fn map_config(
        mut self,
        f: impl Fn(String) -> Result<String> + Send + Sync + 'static,
    ) -> Decorated {
        self.maps.push(Arc::new(f));
        self
    }

    /// Renames the platform (see [`DriverExt::named`]).
    pub fn named(mut self, platform: impl Into<String>) -> Decorated {
        self.platform = platform.into();
        self
    }
}

#[async_trait]
impl Driver for Decorated {
    fn platform(&self) -> &str {
        &self.platform
    }

    fn rules(&self) -> &Rules {
        &self.rules
    }

    async fn connect(
        &self,
        device: &Device,
        credential: &Credential,
        timeout: Duration,
    ) -> Result<Box<dyn Session>> {
        let inner = self.inner.connect(device, credential, timeout).await?;
        if self.commands.is_empty() && self.maps.is_empty() {
            return Ok(inner);
        }
        Ok(Box::new(DecoratedSession {
            inner,
            commands: self.commands.clone(),
            maps: self.maps.clone(),
        }))
    }

    async fn probe(&self, device: &Device, timeout: Duration) -> Result<Duration> {
        self.inner.probe(device, timeout).await
    }

    fn timeout_multiplier(&self) -> f64 {
        self.inner.timeout_multiplier()
    }

    fn change_author(&self, raw: &str) -> Option<String> {
        self.inner.change_author(raw)
    }
}

/// The session of a [`Decorated`] driver.
struct DecoratedSession {
    inner: Box<dyn Session>,
    commands: Vec<String>,
    maps: Vec<ConfigMap>,
}

impl Debug for DecoratedSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DecoratedSession")
            .field("inner", &self.inner)
            .field("commands", &self.commands)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl Session for DecoratedSession {
    async fn run_command(&mut self, command: &str, timeout: Duration) -> Result<String> {
        self.inner.run_command(command, timeout).await
    }

    async fn fetch_config(&mut self, timeout: Duration) -> Result<String> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut config = self.inner.fetch_config(timeout).await?;
        for c in &self.commands {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                return Err(Error::timeout(format!(
                    "no time left for the extra backup command '{c}'"
                )));
            }
            let out = self.inner.run_command(c, left).await?;
            if !config.is_empty() && !config.ends_with('\n') {
                config.push('\n');
            }
            config.push_str(&out);
        }
        for f in &self.maps {
            config = f(config)?;
        }
        Ok(config)
    }

    fn take_notes(&mut self) -> Vec<String> {
        self.inner.take_notes()
    }

    async fn close(self: Box<Self>) -> Result<()> {
        self.inner.close().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::{FakeBehavior, FakeDriver};
    use crate::secret::Secret;

    #[tokio::test]
    async fn decorations_add_commands_maps_and_rules() {
        let base = FakeDriver::new(
            "cisco_ios",
            Rules::new(&["^! Last"], &[] as &[(&str, &str)]).expect("rules"),
            FakeBehavior {
                config: "hostname r1\n! Last change\ntacacs key abc".into(),
                ..FakeBehavior::default()
            },
        );
        let d = base
            .with_extra_rules(
                &Rules::empty()
                    .with_secret("^(tacacs key) \\S+", "$1 {marker}")
                    .expect("rule"),
            )
            .expect("merge")
            .with_commands(["show inventory"])
            .map_config(|c| Ok(c.to_uppercase()))
            .named("mine");
        assert_eq!(d.platform(), "mine");
        let dev = Device::new("r1", "127.0.0.1", "mine");
        let cred = Credential::new("c", "u", Secret::new("p"));
        let mut s = d
            .connect(&dev, &cred, Duration::from_secs(1))
            .await
            .expect("connect");
        let raw = s.fetch_config(Duration::from_secs(1)).await.expect("fetch");
        assert_eq!(
            raw,
            "HOSTNAME R1\n! LAST CHANGE\nTACACS KEY ABC\nOUTPUT OF SHOW INVENTORY"
        );
        s.close().await.expect("close");
        // The base rule and the added one both apply.
        let norm = d
            .rules()
            .normalise("hostname r1\n! Last change\ntacacs key abc\n")
            .expect("normalise");
        assert_eq!(norm, "hostname r1\ntacacs key <removed>\n");
        let err = base_failing()
            .map_config(|_| Err(Error::invalid("refused")))
            .connect(&dev, &cred, Duration::from_secs(1))
            .await
            .expect("connect")
            .fetch_config(Duration::from_secs(1))
            .await
            .expect_err("a failing map fails the fetch");
        assert_eq!(err.kind(), crate::error::ErrorKind::InvalidInput);
    }

    fn base_failing() -> Arc<dyn Driver> {
        Arc::new(FakeDriver::new(
            "x",
            Rules::empty(),
            FakeBehavior::default(),
        ))
    }
}
