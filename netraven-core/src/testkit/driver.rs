//! The [`Driver`]/[`Session`] conformance suite, for anyone writing a driver: a refused login is
//! `Auth`, a changed host key stops the login before any password is sent, a device that stops
//! answering is a `Timeout` within the caller's deadline, the configuration comes back whole and
//! the same on every fetch, and a session closes cleanly.
//!
//! The implementer describes the devices through a [`DriverHarness`] (real, simulated or
//! faked) and calls [`run_all`].

use crate::driver::{Driver, Session};
use crate::error::{ErrorKind, Result};
use crate::model::{Credential, Device};
use async_trait::async_trait;
use std::sync::Arc;
use std::time::Duration;

/// Deadline the suite gives every normal call.
const T: Duration = Duration::from_secs(20);
/// The deadline of the timeout case.
const SHORT: Duration = Duration::from_millis(800);
/// How long the suite waits for a driver that ignores its deadline before failing.
const GIVE_UP: Duration = Duration::from_secs(120);

/// Host-key support of a driver that pins host keys (see [`DriverHarness::host_keys`]).
///
/// ```
/// use netraven_core::testkit::driver::HostKeyCase;
/// use std::sync::atomic::{AtomicUsize, Ordering};
///
/// /// A simulated device whose key can be changed and which counts the passwords it receives.
/// struct SimKeys { generation: AtomicUsize, passwords: AtomicUsize }
///
/// impl HostKeyCase for SimKeys {
///     fn rotate_host_key(&self) { self.generation.fetch_add(1, Ordering::SeqCst); }
///     fn passwords_received(&self) -> usize { self.passwords.load(Ordering::SeqCst) }
/// }
///
/// let k = SimKeys { generation: AtomicUsize::new(0), passwords: AtomicUsize::new(0) };
/// k.rotate_host_key();
/// assert_eq!(k.passwords_received(), 0);
/// ```
pub trait HostKeyCase: Send + Sync {
    /// Makes [`DriverHarness::device`] present a host key other than the one pinned by the
    /// suite's earlier successful connect.
    fn rotate_host_key(&self);
    /// How many passwords the device has received so far.
    fn passwords_received(&self) -> usize;
}

/// The devices the suite talks to.
///
/// A driver whose appliances answer over some API, checked by the suite (the full version is
/// `examples/custom_driver.rs` of the `netraven` crate):
///
/// ```
/// use netraven_core::prelude::*;
/// use netraven_core::normalise::Rules;
/// use netraven_core::testkit::driver::{DriverHarness, HostKeyCase, run_all};
/// use std::{sync::Arc, time::Duration};
///
/// #[derive(Debug)]
/// struct Api(Rules);
/// #[derive(Debug)]
/// struct ApiSession { host: String, stuck: bool }
///
/// #[async_trait::async_trait]
/// impl Driver for Api {
///     fn platform(&self) -> &str { "api" }
///     fn rules(&self) -> &Rules { &self.0 }
///     async fn connect(&self, d: &Device, c: &Credential, _t: Duration) -> Result<Box<dyn Session>> {
///         if c.password.expose() != "good" {
///             return Err(Error::new(ErrorKind::Auth, "refused"));
///         }
///         Ok(Box::new(ApiSession { host: d.hostname.clone(), stuck: d.address == "192.0.2.99" }))
///     }
///     async fn probe(&self, _d: &Device, _t: Duration) -> Result<Duration> { Ok(Duration::ZERO) }
/// }
///
/// #[async_trait::async_trait]
/// impl Session for ApiSession {
///     async fn run_command(&mut self, c: &str, _t: Duration) -> Result<String> { Ok(c.into()) }
///     async fn fetch_config(&mut self, t: Duration) -> Result<String> {
///         if self.stuck {
///             tokio::time::sleep(t).await;
///             return Err(Error::timeout("no answer"));
///         }
///         Ok(format!("hostname {}\n", self.host))
///     }
///     async fn close(self: Box<Self>) -> Result<()> { Ok(()) }
/// }
///
/// struct Harness(Arc<Api>);
///
/// impl DriverHarness for Harness {
///     fn driver(&self) -> Arc<dyn Driver> { self.0.clone() }
///     fn device(&self) -> Device { Device::new("a1", "192.0.2.1", "api") }
///     fn good_credential(&self) -> Credential { Credential::new("g", "u", Secret::new("good")) }
///     fn bad_credential(&self) -> Credential { Credential::new("b", "u", Secret::new("bad")) }
///     fn expected_config(&self) -> String { "hostname a1\n".into() }
///     fn hanging_device(&self) -> (Device, Credential) {
///         (Device::new("a2", "192.0.2.99", "api"), self.good_credential())
///     }
///     fn host_keys(&self) -> Option<&dyn HostKeyCase> { None } // no host keys to pin
/// }
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let report = run_all(&Harness(Arc::new(Api(Rules::empty())))).await;
/// assert!(report.skipped.iter().any(|s| s.contains("host")), "{report:?}");
/// # }
/// ```
#[async_trait]
pub trait DriverHarness: Send + Sync {
    /// The driver under test.
    fn driver(&self) -> Arc<dyn Driver>;
    /// A device that accepts [`DriverHarness::good_credential`] and answers normally.
    fn device(&self) -> Device;
    /// The credential `device` accepts.
    fn good_credential(&self) -> Credential;
    /// A credential `device` refuses.
    fn bad_credential(&self) -> Credential;
    /// `device`'s configuration after the driver's rules (`driver.rules().normalise(raw)`).
    fn expected_config(&self) -> String;
    /// A device (and the credential it accepts) that logs in but stops answering when asked for
    /// its configuration.
    fn hanging_device(&self) -> (Device, Credential);
    /// Host-key pinning; `None` for a driver without host keys (the check is then skipped and
    /// reported by [`run_all`]).
    fn host_keys(&self) -> Option<&dyn HostKeyCase>;
}

/// What the suite checked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DriverReport {
    /// Checks that passed.
    pub passed: Vec<&'static str>,
    /// Checks the harness opted out of.
    pub skipped: Vec<&'static str>,
}

async fn connect(h: &dyn DriverHarness, d: &Device, c: &Credential) -> Result<Box<dyn Session>> {
    let driver = h.driver();
    tokio::time::timeout(GIVE_UP, driver.connect(d, c, T))
        .await
        .unwrap_or_else(|_| panic!("connect ignored its {T:?} deadline"))
}

/// Runs every check in order (the host-key check last: it changes the device's key); panics
/// naming the first broken behaviour.
pub async fn run_all(h: &dyn DriverHarness) -> DriverReport {
    let mut report = DriverReport::default();
    let driver = h.driver();
    let device = h.device();

    match connect(h, &device, &h.bad_credential()).await {
        Ok(_) => panic!("a refused credential logged in"),
        Err(e) => assert_eq!(
            e.kind(),
            ErrorKind::Auth,
            "a refused login must be Auth (the engine then tries the next credential): {e}"
        ),
    }
    report.passed.push("auth failure is Auth");

    let mut s = connect(h, &device, &h.good_credential())
        .await
        .expect("login with the good credential");
    let raw = s.fetch_config(T).await.expect("fetch_config");
    let norm = driver.rules().normalise(&raw).expect("normalise");
    assert_eq!(
        norm,
        h.expected_config(),
        "the configuration must come back whole (raw output:\n{raw})"
    );
    let again = s.fetch_config(T).await.expect("second fetch_config");
    assert_eq!(
        driver.rules().normalise(&again).expect("normalise"),
        norm,
        "a second fetch on the same session must give the same configuration"
    );
    report.passed.push("output integrity");
    tokio::time::timeout(GIVE_UP, s.close())
        .await
        .expect("close must not hang")
        .expect("close");
    report.passed.push("close");

    let (hang, hang_cred) = h.hanging_device();
    let outcome = tokio::time::timeout(GIVE_UP, async {
        let mut s = driver.connect(&hang, &hang_cred, T).await?;
        s.fetch_config(SHORT).await
    })
    .await
    .expect("a device that stops answering must fail within the caller's deadline");
    match outcome {
        Ok(_) => panic!("a device that stops answering returned a configuration"),
        Err(e) => assert_eq!(e.kind(), ErrorKind::Timeout, "must be Timeout: {e}"),
    }
    report.passed.push("timeout is Timeout");

    match h.host_keys() {
        None => report.skipped.push("host key mismatch before credentials"),
        Some(keys) => {
            // Pins the key (trust on first use), then the device changes it.
            let s = connect(h, &device, &h.good_credential())
                .await
                .expect("login before the key change");
            s.close().await.expect("close");
            keys.rotate_host_key();
            let seen = keys.passwords_received();
            match connect(h, &device, &h.good_credential()).await {
                Ok(_) => panic!("a changed host key was accepted"),
                Err(e) => assert_eq!(e.kind(), ErrorKind::HostKey, "must be HostKey: {e}"),
            }
            assert_eq!(
                keys.passwords_received(),
                seen,
                "a password was sent to a device whose host key changed"
            );
            report.passed.push("host key mismatch before credentials");
        }
    }
    report
}
