//! Building a [`DriverRegistry`] from the built-in platforms and user platform files.
//!
//! Built-in platforms are registered by name only and compiled the first time a device of that
//! platform is used ([`LazySshDriver`]): compiling every regex of all built-in platforms up front
//! costs about 100 MB of memory that a deployment using three platforms never needs. User platform
//! files are compiled when the registry is built, so a bad file is reported at start.

use crate::platform::{BUILTIN_PLATFORM_FILES, Platform, PlatformSpec, load_platform_dir};
use crate::ssh::{SshDriver, SshOptions};
use async_trait::async_trait;
use netraven_core::driver::{Driver, DriverRegistry, Session};
use netraven_core::error::{Error, ErrorKind, Result};
use netraven_core::model::{Credential, Device};
use netraven_core::normalise::Rules;
use netraven_core::store::HostKeyStore;
use std::path::Path;
use std::sync::{Arc, LazyLock, OnceLock};
use std::time::Duration;

/// Registers an SSH driver for `platform` under its name and aliases.
pub fn register_platform(
    registry: &mut DriverRegistry,
    platform: Platform,
    host_keys: Arc<dyn HostKeyStore>,
) {
    register_platform_with(registry, platform, host_keys, SshOptions::default());
}

/// [`register_platform`] with transport options.
pub fn register_platform_with(
    registry: &mut DriverRegistry,
    platform: Platform,
    host_keys: Arc<dyn HostKeyStore>,
    options: SshOptions,
) {
    let aliases = platform.spec.aliases.clone();
    register(
        registry,
        Arc::new(SshDriver::new(platform, host_keys).with_options(options)),
        aliases,
    );
}

fn register(registry: &mut DriverRegistry, driver: Arc<dyn Driver>, aliases: Vec<String>) {
    registry.register(driver.clone());
    for a in aliases {
        registry.alias(a, driver.clone());
    }
}

/// An SSH driver for a platform file that is compiled (regexes and rules) the first time a
/// device of the platform connects; until then only its name is known. A file that fails to
/// compile makes every `connect` fail with that error.
#[derive(Debug)]
pub struct LazySshDriver {
    spec: PlatformSpec,
    file: String,
    host_keys: Arc<dyn HostKeyStore>,
    options: SshOptions,
    compiled: OnceLock<std::result::Result<SshDriver, (ErrorKind, String)>>,
}

impl LazySshDriver {
    /// A driver for the parsed platform file `spec` (named `file` in errors); host keys are
    /// pinned in `host_keys`.
    pub fn new(
        spec: PlatformSpec,
        file: impl Into<String>,
        host_keys: Arc<dyn HostKeyStore>,
    ) -> Self {
        LazySshDriver {
            spec,
            file: file.into(),
            host_keys,
            options: SshOptions::default(),
            compiled: OnceLock::new(),
        }
    }

    /// Replaces the transport options (before the first use).
    pub fn with_options(mut self, options: SshOptions) -> Self {
        self.options = options;
        self
    }

    /// Whether the platform has been compiled (successfully or not).
    pub fn is_compiled(&self) -> bool {
        self.compiled.get().is_some()
    }

    /// The compiled driver, compiling it on the first call.
    pub fn driver(&self) -> Result<&SshDriver> {
        let r = self.compiled.get_or_init(|| {
            tracing::debug!(platform = %self.spec.name, "compiling platform");
            Platform::compile(self.spec.clone())
                .map(|p| {
                    SshDriver::new(p, self.host_keys.clone()).with_options(self.options.clone())
                })
                .map_err(|e| (e.kind(), format!("{}: {e}", self.file)))
        });
        r.as_ref()
            .map_err(|(kind, msg)| Error::new(*kind, msg.clone()))
    }
}

/// Rules that replace every non-blank line with the redaction marker: what
/// [`LazySshDriver::rules`] answers for a platform that failed to compile, so nothing unredacted
/// is ever stored through it (its `connect` fails first in any case).
static REDACT_ALL: LazyLock<Rules> = LazyLock::new(|| {
    Rules::new::<&str, _, _>(&[], &[("^.*\\S.*$", "{marker}")]).expect("a constant, valid pattern")
});

#[async_trait]
impl Driver for LazySshDriver {
    fn platform(&self) -> &str {
        &self.spec.name
    }

    fn rules(&self) -> &Rules {
        match self.driver() {
            Ok(d) => d.rules(),
            Err(_) => &REDACT_ALL,
        }
    }

    async fn connect(
        &self,
        device: &Device,
        credential: &Credential,
        timeout: Duration,
    ) -> Result<Box<dyn Session>> {
        self.driver()?.connect(device, credential, timeout).await
    }

    async fn probe(&self, device: &Device, timeout: Duration) -> Result<Duration> {
        crate::ssh::probe_ssh(device, timeout).await
    }

    fn timeout_multiplier(&self) -> f64 {
        self.spec.timeout_multiplier.unwrap_or(1.0)
    }

    fn change_author(&self, raw: &str) -> Option<String> {
        self.driver().ok()?.change_author(raw)
    }
}

/// Registers every built-in platform under its name and aliases as a [`LazySshDriver`]: only the
/// platform files are parsed here (names and aliases); each compiles on first use.
pub fn register_builtins(
    registry: &mut DriverRegistry,
    host_keys: Arc<dyn HostKeyStore>,
) -> Result<()> {
    register_builtins_with(registry, host_keys, SshOptions::default())
}

/// [`register_builtins`] with transport options.
pub fn register_builtins_with(
    registry: &mut DriverRegistry,
    host_keys: Arc<dyn HostKeyStore>,
    options: SshOptions,
) -> Result<()> {
    for (file, text) in BUILTIN_PLATFORM_FILES {
        let spec = PlatformSpec::from_toml(text).map_err(|e| e.context(file))?;
        let aliases = spec.aliases.clone();
        let driver =
            LazySshDriver::new(spec, *file, host_keys.clone()).with_options(options.clone());
        register(registry, Arc::new(driver), aliases);
    }
    Ok(())
}

/// A registry with every built-in platform (`cisco_ios`/`cisco_xe`, `arista_eos`,
/// `juniper_junos`, `linux`, …; compiled on first use) and, when `user_dir` is given, every
/// `*.toml` platform file in it (compiled now; a user file with a built-in's name replaces it).
/// Host keys are pinned in `host_keys`. Rust drivers can be added afterwards with
/// [`DriverRegistry::register`].
pub fn build_registry(
    host_keys: Arc<dyn HostKeyStore>,
    user_dir: Option<&Path>,
) -> Result<DriverRegistry> {
    build_registry_with(host_keys, user_dir, SshOptions::default())
}

/// [`build_registry`] with transport options for every SSH driver (output limits, PTY size).
pub fn build_registry_with(
    host_keys: Arc<dyn HostKeyStore>,
    user_dir: Option<&Path>,
    options: SshOptions,
) -> Result<DriverRegistry> {
    let mut registry = DriverRegistry::new();
    register_builtins_with(&mut registry, host_keys.clone(), options.clone())?;
    if let Some(dir) = user_dir {
        for p in load_platform_dir(dir)? {
            tracing::info!(platform = %p.name(), "loaded user platform file");
            register_platform_with(&mut registry, p, host_keys.clone(), options.clone());
        }
    }
    Ok(registry)
}

#[cfg(test)]
mod tests {
    use super::*;
    use netraven_core::memory::MemoryStore;

    fn keys() -> Arc<dyn HostKeyStore> {
        Arc::new(MemoryStore::new())
    }

    #[test]
    fn builtins_are_registered_by_name_and_alias_without_compiling() {
        let reg = build_registry(keys(), None).unwrap();
        assert!(reg.platforms().len() >= 40, "{:?}", reg.platforms());
        let xe = reg.get("cisco_xe").unwrap();
        assert_eq!(xe.platform(), "cisco_ios", "an alias reaches its platform");
        let text = BUILTIN_PLATFORM_FILES
            .iter()
            .find(|(f, _)| *f == "cisco_ios.toml")
            .unwrap()
            .1;
        let mut lazy = LazySshDriver::new(
            PlatformSpec::from_toml(text).unwrap(),
            "cisco_ios.toml",
            keys(),
        );
        assert!(!lazy.is_compiled());
        let (volatile, secrets) = lazy.rules().len();
        assert!(lazy.is_compiled(), "first use compiles");
        assert!(volatile > 0 && secrets > 5);
        assert!(
            lazy.rules()
                .normalise("enable secret 9 $9$abc\n")
                .unwrap()
                .contains("<removed>")
        );
        lazy.compiled = OnceLock::new();
        assert!(!lazy.is_compiled());
    }

    #[tokio::test]
    async fn a_platform_that_fails_to_compile_fails_connect_and_redacts_everything() {
        let bad = "name = \"broken\"\nprompt = \"(\"\n[[backup]]\ncommand = \"show run\"\n";
        let spec = PlatformSpec::from_toml(bad).expect("parses, fails to compile");
        let d = LazySshDriver::new(spec, "broken.toml", keys());
        let dev = Device::new("r1", "127.0.0.1", "broken");
        let cred = Credential::new("c", "u", "p".into());
        let e = d
            .connect(&dev, &cred, Duration::from_secs(1))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
        assert!(e.to_string().contains("broken.toml"), "{e}");
        let n = d.rules().normalise("hostname r1\nsnmp community s3cret\n");
        assert!(!n.unwrap().contains("s3cret"));
    }
}
