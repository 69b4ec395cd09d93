//! Reaching devices as they are: telnet (opt-in), jump hosts (SSH bastions, chained), the exec
//! channel. The simulator plays the devices; where `/usr/sbin/sshd` exists and the test runs as
//! root, a real OpenSSH server plays the bastion.
#![cfg(feature = "sim")]

use netraven_core::driver::Driver;
use netraven_core::error::ErrorKind;
use netraven_core::memory::MemoryStore;
use netraven_core::model::Transport;
use netraven_drivers::sim::{Faults, SimConfig, SimFleet};
use netraven_drivers::{SshDriver, builtin_platform};
use std::sync::Arc;
use std::time::Duration;

const T: Duration = Duration::from_secs(15);

async fn telnet_fleet(platform: &str, n: usize, faults: Faults) -> SimFleet {
    SimFleet::start(SimConfig {
        devices: n,
        platform: platform.into(),
        faults,
        telnet: true,
        ..Default::default()
    })
    .await
    .expect("telnet fleet")
}

fn driver(platform: &str) -> (SshDriver, Arc<MemoryStore>) {
    let store = Arc::new(MemoryStore::new());
    let platform = builtin_platform(platform).expect("platform");
    (SshDriver::new(platform, store.clone()), store)
}

/// A telnet device opted in is backed up through the same prompt/pager/enable machine: the
/// backup equals the simulator's configuration, secrets redacted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn telnet_devices_are_backed_up_when_opted_in() {
    for platform in ["cisco_ios", "arista_eos", "linux", "juniper_junos"] {
        let f = telnet_fleet(platform, 1, Faults::default()).await;
        let dev = f.device(0);
        let (drv, _) = driver(platform);
        let device = dev.core_device();
        assert_eq!(device.transport, Transport::Telnet);
        let mut s = drv
            .connect(&device, &dev.credential(), T)
            .await
            .unwrap_or_else(|e| panic!("{platform}: telnet login failed: {e}"));
        let raw = s.fetch_config(T).await.expect("fetch");
        let norm = drv.rules().normalise(&raw).expect("normalise");
        assert_eq!(norm, dev.expected_backup(), "{platform} raw output:\n{raw}");
        s.close().await.expect("close");
        assert_eq!(dev.logins(), 1, "{platform}");
    }
}

/// A refused telnet login is an authentication failure (from a device that has no host key,
/// so it counts as not trusted), after exactly one password.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_telnet_login_is_an_auth_failure() {
    let f = telnet_fleet(
        "cisco_ios",
        1,
        Faults {
            wrong_password: true,
            ..Faults::default()
        },
    )
    .await;
    let dev = f.device(0);
    let (drv, _) = driver("cisco_ios");
    let err = drv
        .connect(&dev.core_device(), &dev.credential(), T)
        .await
        .expect_err("wrong password");
    assert_eq!(err.kind(), ErrorKind::Auth, "{err}");
    assert!(err.is_on_untrusted_host());
    assert_eq!(dev.passwords_received(), 1);
}

/// Telnet is never chosen on its own: a telnet-only device not opted in fails over SSH
/// without any password sent, and an SSH failure never falls back to telnet.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn telnet_is_refused_unless_opted_in() {
    let f = telnet_fleet("cisco_ios", 1, Faults::default()).await;
    let dev = f.device(0);
    let (drv, _) = driver("cisco_ios");
    let mut device = dev.core_device();
    device.transport = Transport::Ssh;
    let err = drv
        .connect(&device, &dev.credential(), Duration::from_secs(5))
        .await
        .expect_err("not opted in");
    assert_ne!(err.kind(), ErrorKind::Auth, "{err}");
    assert_eq!(dev.passwords_received(), 0, "no password over telnet");
    assert_eq!(dev.logins(), 0);

    // The other way round: an SSH device set to telnet does not get an SSH login either.
    let ssh = SimFleet::start(SimConfig::default()).await.expect("fleet");
    let sdev = ssh.device(0);
    let mut device = sdev.core_device();
    device.transport = Transport::Telnet;
    let err = drv
        .connect(&device, &sdev.credential(), Duration::from_secs(8))
        .await
        .expect_err("an SSH server does not speak telnet");
    assert_ne!(err.kind(), ErrorKind::Auth, "{err}");
    assert_eq!(sdev.passwords_received(), 0);
}
