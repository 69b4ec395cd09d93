//! Writing a driver in Rust when a platform file is not enough.
//!
//! `ApiDriver` stands in for a device that is backed up over some other protocol (an HTTP API,
//! NETCONF, a vendor SDK): it implements `Driver` and `Session`, declares its own volatile and
//! secret rules, and is registered in the `DriverRegistry` under a platform name. The engine then
//! treats it like any SSH platform: credentials, retries, normalisation, redaction, snapshots.
//!
//! Before it is used, the driver is checked with the public Driver/Session conformance suite
//! (`netraven::core::testkit::driver`, feature `testkit`): refused logins are `Auth`, a device
//! that stops answering is a `Timeout` within the deadline, the configuration comes back whole,
//! sessions close.
//!
//! Then it decorates drivers instead of writing them: "like `acme_appliance`, but with one more
//! command and one more secret" (`DriverExt`), and a data-only SSH platform defined in code
//! (`Platform::builder`, the fields of a platform file) for embedders without files.
//!
//! Run: `cargo run --example custom_driver`

use async_trait::async_trait;
use netraven::core::clock::SystemClock;
use netraven::core::driver::{Driver, DriverExt, DriverRegistry, Session};
use netraven::core::engine::{Engine, EngineConfig, EngineParts};
use netraven::core::memory::{MemoryQueue, MemoryStore};
use netraven::core::normalise::Rules;
use netraven::core::prelude::*;
use netraven::core::snapshot::StoreSnapshotSink;
use netraven::core::testkit::driver::{DriverHarness, HostKeyCase, run_all};
use netraven::drivers::{Platform, SshDriver};
use std::sync::Arc;
use std::time::Duration;

/// A driver for an imaginary appliance with a JSON-ish configuration export.
#[derive(Debug)]
struct ApiDriver {
    rules: Rules,
}

impl ApiDriver {
    fn new() -> Result<Self> {
        Ok(ApiDriver {
            rules: Rules::new(
                // Dropped before hashing, so an unchanged appliance makes no new snapshot.
                &[r#"^\s*"exported_at":"#],
                // Replaced by the redaction marker before anything is stored.
                &[(r#"^(\s*"api_key": )".*""#, r#"${1}"{marker}""#)],
            )?,
        })
    }
}

#[async_trait]
impl Driver for ApiDriver {
    fn platform(&self) -> &str {
        "acme_appliance"
    }

    fn rules(&self) -> &Rules {
        &self.rules
    }

    async fn connect(
        &self,
        device: &Device,
        credential: &Credential,
        _timeout: Duration,
    ) -> Result<Box<dyn Session>> {
        // A real driver would open its connection here and map failures to error kinds:
        // Auth (the engine then tries the next credential), Connection or Timeout (retried).
        if credential.password.expose().is_empty() {
            return Err(Error::new(
                ErrorKind::Auth,
                format!("{} refused the login", device.hostname),
            ));
        }
        Ok(Box::new(ApiSession {
            host: device.hostname.clone(),
            // An appliance whose export never finishes (see the conformance harness below).
            stuck: device.address == STUCK_ADDRESS,
        }))
    }

    async fn probe(&self, _device: &Device, _timeout: Duration) -> Result<Duration> {
        Ok(Duration::from_millis(1))
    }
}

/// The address of an appliance that accepts the login and then never answers.
const STUCK_ADDRESS: &str = "192.0.2.99";

#[derive(Debug)]
struct ApiSession {
    host: String,
    stuck: bool,
}

fn export(host: &str, exported_at: &str) -> String {
    format!(
        "{{\n  \"hostname\": \"{host}\",\n  \"exported_at\": \"{exported_at}\",\n  \"api_key\": \"s3cr3t\",\n  \"ntp\": [\"192.0.2.1\"]\n}}\n"
    )
}

#[async_trait]
impl Session for ApiSession {
    async fn run_command(&mut self, command: &str, _timeout: Duration) -> Result<String> {
        if command == "show licence" {
            return Ok("licence key ABC-123-XYZ\n".into());
        }
        Ok(format!("{} ran {command}\n", self.host))
    }

    async fn fetch_config(&mut self, timeout: Duration) -> Result<String> {
        if self.stuck {
            // A real client would be waiting on its socket; the deadline is the caller's.
            tokio::time::sleep(timeout).await;
            return Err(Error::new(
                ErrorKind::Timeout,
                format!("{} did not answer within {timeout:?}", self.host),
            ));
        }
        Ok(export(&self.host, &chrono::Utc::now().to_rfc3339()))
    }

    async fn close(self: Box<Self>) -> Result<()> {
        Ok(())
    }
}

/// Describes the appliances the conformance suite talks to.
struct Harness(Arc<ApiDriver>);

impl DriverHarness for Harness {
    fn driver(&self) -> Arc<dyn Driver> {
        self.0.clone()
    }
    fn device(&self) -> Device {
        Device::new("appliance-1", "192.0.2.10", "acme_appliance")
    }
    fn good_credential(&self) -> Credential {
        Credential::new("ok", "api", Secret::new("token-123"))
    }
    fn bad_credential(&self) -> Credential {
        Credential::new("bad", "api", Secret::new(""))
    }
    fn expected_config(&self) -> String {
        // The export without the volatile line and with the key redacted.
        "{\n  \"hostname\": \"appliance-1\",\n  \"api_key\": \"<removed>\",\n  \"ntp\": [\"192.0.2.1\"]\n}\n".into()
    }
    fn hanging_device(&self) -> (Device, Credential) {
        let d = Device::new("appliance-stuck", STUCK_ADDRESS, "acme_appliance");
        (d, self.good_credential())
    }
    fn host_keys(&self) -> Option<&dyn HostKeyCase> {
        // The appliance API has no host keys to pin.
        None
    }
}

#[tokio::main]
pub async fn main() -> Result<()> {
    let report = run_all(&Harness(Arc::new(ApiDriver::new()?))).await;
    println!(
        "driver conformance: passed {:?}, skipped {:?}",
        report.passed, report.skipped
    );

    let store = Arc::new(MemoryStore::new());
    let clock = Arc::new(SystemClock);
    let mut drivers = DriverRegistry::new();
    drivers.register(Arc::new(ApiDriver::new()?));
    // The same appliance, plus one command and one more secret, under its own platform name.
    let plus = ApiDriver::new()?
        .with_commands(["show licence"])
        .with_extra_rules(&Rules::empty().with_secret(r"(licence key) \S+", "$1 {marker}")?)?
        .named("acme_appliance_plus");
    drivers.register(Arc::new(plus));
    // An SSH platform from code: the fields of a platform file, checked like one.
    let acme_os = Platform::builder("acme_os", r"^[\w.-]+[>#]\s?$")
        .vendor("Acme")
        .paging_off("terminal length 0")
        .backup("show running-config")
        .volatile(r"^! Generated at")
        .secret(r"^(snmp community) \S+", "$1 {marker}")
        .build()?;
    drivers.register(Arc::new(SshDriver::new(acme_os, store.clone())));
    println!("platforms: {}", drivers.platforms().join(", "));
    let engine = Arc::new(Engine::new(
        EngineParts {
            store: store.clone(),
            queue: Arc::new(MemoryQueue::new(clock.clone())),
            drivers: Arc::new(drivers),
            sink: Arc::new(StoreSnapshotSink::new(store.clone())),
            clock,
        },
        EngineConfig::default(),
    ));
    let mut cred = Credential::new("appliances", "api", Secret::new("token-123"));
    cred.tags = vec!["acme".into()];
    store.create_credential(&cred).await?;
    let dev = store
        .create_device(
            &Device::new("appliance-1", "192.0.2.10", "acme_appliance").with_tags(["acme"]),
        )
        .await?;
    let job = store
        .create_job(&Job::backup(
            "appliances",
            Targets {
                device_ids: vec![],
                tags: vec!["acme".into()],
            },
        ))
        .await?;
    for round in 1..=2 {
        let run = engine.run_now(job.id, None).await?.run;
        engine.drain().await?;
        let run = store.get_run(run.id).await?;
        println!(
            "run {round}: {} — {} changed, {} unchanged",
            run.status.as_str(),
            run.counts.changed,
            run.counts.unchanged
        );
    }
    // A device on the decorated platform: its backup carries the extra command's output, with
    // the extra secret redacted.
    let plus_dev = store
        .create_device(
            &Device::new("appliance-2", "192.0.2.11", "acme_appliance_plus").with_tags(["acme"]),
        )
        .await?;
    let run = engine.run_now(job.id, None).await?.run;
    engine.drain().await?;
    println!("run 3: {}", store.get_run(run.id).await?.status.as_str());
    let plus_cfg = match store.latest_snapshot(plus_dev.id).await? {
        Some(m) => store.get_snapshot(m.id).await?.content,
        None => return Err(Error::internal("the decorated driver stored no snapshot")),
    };
    if !plus_cfg.contains("licence key <removed>") || plus_cfg.contains("ABC-123") {
        return Err(Error::internal(format!(
            "unexpected decorated backup:\n{plus_cfg}"
        )));
    }
    println!("decorated backup:\n{plus_cfg}");
    let latest = store.latest_snapshot(dev.id).await?.map(|m| m.id);
    if let Some(id) = latest {
        println!(
            "stored configuration (secret redacted, volatile line dropped):\n{}",
            store.get_snapshot(id).await?.content
        );
    }
    Ok(())
}
