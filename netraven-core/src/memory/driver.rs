//! [`FakeDriver`]: a scripted driver for tests, examples and benchmarks of the engine.

use crate::driver::{Driver, Session};
use crate::error::{Error, ErrorKind, Result};
use crate::model::{Credential, CredentialId, Device};
use crate::normalise::Rules;
use async_trait::async_trait;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

/// How one fake device behaves.
#[derive(Debug, Clone, Default)]
pub struct FakeBehavior {
    /// Passwords the device accepts; empty accepts any.
    pub accept_passwords: Vec<String>,
    /// Fail every connection with this kind (Connection, Timeout, HostKey, …).
    pub connect_error: Option<ErrorKind>,
    /// Never answer (the engine's per-device deadline must end it).
    pub hang: bool,
    /// Delay before answering a connect.
    pub delay: Duration,
    /// The configuration it returns.
    pub config: String,
    /// Its rejections come from a device not trusted yet (a new host key):
    /// [`Error::on_untrusted_host`].
    pub untrusted_host: bool,
}

/// A driver whose devices follow scripts keyed by hostname. Records every login attempt.
#[derive(Debug)]
pub struct FakeDriver {
    platform: String,
    rules: Rules,
    default: FakeBehavior,
    scripts: Mutex<HashMap<String, FakeBehavior>>,
    attempts: Mutex<Vec<(String, CredentialId)>>,
}

impl FakeDriver {
    /// A fake driver for `platform` with the given rules; unscripted devices use `default`.
    pub fn new(platform: impl Into<String>, rules: Rules, default: FakeBehavior) -> Self {
        FakeDriver {
            platform: platform.into(),
            rules,
            default,
            scripts: Mutex::new(HashMap::new()),
            attempts: Mutex::new(Vec::new()),
        }
    }

    /// Sets the behaviour of one device.
    pub fn script(&self, hostname: impl Into<String>, b: FakeBehavior) {
        self.scripts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(hostname.into(), b);
    }

    /// Changes the configuration a device returns.
    pub fn set_config(&self, hostname: &str, config: impl Into<String>) {
        let mut g = self.scripts.lock().unwrap_or_else(|p| p.into_inner());
        let b = g
            .entry(hostname.to_string())
            .or_insert_with(|| self.default.clone());
        b.config = config.into();
    }

    /// Every (hostname, credential id) login attempt so far, in order.
    pub fn attempts(&self) -> Vec<(String, CredentialId)> {
        self.attempts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn behavior(&self, hostname: &str) -> FakeBehavior {
        self.scripts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(hostname)
            .cloned()
            .unwrap_or_else(|| self.default.clone())
    }
}

#[async_trait]
impl Driver for FakeDriver {
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
        let b = self.behavior(&device.hostname);
        if b.hang {
            tokio::time::sleep(Duration::from_secs(365 * 86_400)).await;
        }
        if !b.delay.is_zero() {
            if b.delay > timeout {
                tokio::time::sleep(timeout).await;
                return Err(Error::timeout(format!(
                    "{} did not answer",
                    device.hostname
                )));
            }
            tokio::time::sleep(b.delay).await;
        }
        if let Some(kind) = b.connect_error {
            return Err(Error::new(
                kind,
                format!("{}: scripted failure", device.hostname),
            ));
        }
        self.attempts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((device.hostname.clone(), credential.id));
        if !b.accept_passwords.is_empty()
            && !b
                .accept_passwords
                .iter()
                .any(|p| p == credential.password.expose())
        {
            let e = Error::new(
                ErrorKind::Auth,
                format!(
                    "{} rejected user '{}'",
                    device.hostname, credential.username
                ),
            );
            return Err(if b.untrusted_host {
                e.on_untrusted_host()
            } else {
                e
            });
        }
        Ok(Box::new(FakeSession { config: b.config }))
    }

    async fn probe(&self, device: &Device, _timeout: Duration) -> Result<Duration> {
        let b = self.behavior(&device.hostname);
        match b.connect_error {
            Some(kind) => Err(Error::new(kind, format!("{} unreachable", device.hostname))),
            None => Ok(b.delay),
        }
    }
}

#[derive(Debug)]
struct FakeSession {
    config: String,
}

#[async_trait]
impl Session for FakeSession {
    async fn run_command(&mut self, command: &str, _timeout: Duration) -> Result<String> {
        Ok(format!("output of {command}"))
    }

    async fn fetch_config(&mut self, _timeout: Duration) -> Result<String> {
        Ok(self.config.clone())
    }

    async fn close(self: Box<Self>) -> Result<()> {
        Ok(())
    }
}
