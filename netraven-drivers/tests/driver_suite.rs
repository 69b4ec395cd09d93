//! The SSH driver passes the public Driver/Session conformance suite against the simulator, for
//! every built-in platform.
#![cfg(feature = "sim")]

use netraven_core::driver::Driver;
use netraven_core::memory::MemoryStore;
use netraven_core::model::{Credential, Device};
use netraven_core::secret::Secret;
use netraven_core::testkit::driver::{DriverHarness, HostKeyCase, run_all};
use netraven_drivers::sim::{Faults, SimConfig, SimDevice, SimFleet};
use netraven_drivers::{SshDriver, builtin_platform};
use std::collections::HashMap;
use std::sync::Arc;

struct SimHarness {
    _fleet: SimFleet,
    driver: Arc<dyn Driver>,
    normal: Arc<SimDevice>,
    hanging: Arc<SimDevice>,
}

impl HostKeyCase for SimHarness {
    fn rotate_host_key(&self) {
        self.normal.rotate_host_key();
    }
    fn passwords_received(&self) -> usize {
        self.normal.passwords_received()
    }
}

impl DriverHarness for SimHarness {
    fn driver(&self) -> Arc<dyn Driver> {
        self.driver.clone()
    }
    fn device(&self) -> Device {
        self.normal.core_device()
    }
    fn good_credential(&self) -> Credential {
        self.normal.credential()
    }
    fn bad_credential(&self) -> Credential {
        let mut c = self.normal.credential();
        c.password = Secret::new("not-the-password");
        c
    }
    fn expected_config(&self) -> String {
        self.normal.expected_backup()
    }
    fn hanging_device(&self) -> (Device, Credential) {
        (self.hanging.core_device(), self.hanging.credential())
    }
    fn host_keys(&self) -> Option<&dyn HostKeyCase> {
        Some(self)
    }
}

async fn suite(platform: &str) {
    let fleet = SimFleet::start(SimConfig {
        devices: 2,
        platform: platform.into(),
        device_faults: HashMap::from([(
            1,
            Faults {
                // Logs in, then stops answering part-way through the configuration.
                hang_after: Some(4000),
                ..Faults::default()
            },
        )]),
        ..SimConfig::default()
    })
    .await
    .expect("simulator");
    let driver: Arc<dyn Driver> = Arc::new(SshDriver::new(
        builtin_platform(platform).expect("platform"),
        Arc::new(MemoryStore::new()),
    ));
    let h = SimHarness {
        normal: fleet.device(0).clone(),
        hanging: fleet.device(1).clone(),
        _fleet: fleet,
        driver,
    };
    let report = run_all(&h).await;
    assert!(report.skipped.is_empty(), "{report:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ssh_driver_passes_the_driver_suite_on_cisco_ios() {
    suite("cisco_ios").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ssh_driver_passes_the_driver_suite_on_juniper_junos() {
    suite("juniper_junos").await;
}

/// Linux and EOS fetch over exec channels (their platform files turn them on): the same suite,
/// the hanging device included, holds on that path.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ssh_driver_passes_the_driver_suite_over_exec_channels() {
    for platform in ["linux", "arista_eos"] {
        assert!(builtin_platform(platform).unwrap().spec.exec_channel);
        suite(platform).await;
    }
}
