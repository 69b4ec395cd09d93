//! End-to-end tests of the SSH driver against the device simulator on 127.0.0.1.
#![cfg(feature = "sim")]

use async_trait::async_trait;
use netraven_core::driver::Driver;
use netraven_core::error::{ErrorKind, Result};
use netraven_core::model::{HostKey, HostKeyPolicy};
use netraven_core::store::HostKeyStore;
use netraven_drivers::sim::{Faults, SimConfig, SimFleet};
use netraven_drivers::{SshDriver, build_registry, builtin_platform};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A tiny in-memory host key store.
#[derive(Debug, Default)]
struct MemKeys(Mutex<HashMap<(String, u16), HostKey>>);

#[async_trait]
impl HostKeyStore for MemKeys {
    async fn get_host_key(&self, host: &str, port: u16) -> Result<Option<HostKey>> {
        Ok(self
            .0
            .lock()
            .unwrap()
            .get(&(host.to_string(), port))
            .cloned())
    }
    async fn pin_host_key(&self, key: &HostKey) -> Result<HostKey> {
        let mut m = self.0.lock().unwrap();
        Ok(m.entry((key.host.clone(), key.port))
            .or_insert_with(|| key.clone())
            .clone())
    }
    async fn delete_host_key(&self, host: &str, port: u16) -> Result<()> {
        self.0.lock().unwrap().remove(&(host.to_string(), port));
        Ok(())
    }
}

const T: Duration = Duration::from_secs(10);

async fn fleet(platform: &str, n: usize, faults: Faults) -> SimFleet {
    SimFleet::start(SimConfig {
        devices: n,
        platform: platform.into(),
        faults,
        ..Default::default()
    })
    .await
    .unwrap()
}

fn driver(platform: &str) -> (SshDriver, Arc<MemKeys>) {
    let keys = Arc::new(MemKeys::default());
    (
        SshDriver::new(builtin_platform(platform).unwrap(), keys.clone()),
        keys,
    )
}

/// A driver that always uses the interactive shell, also on platforms whose file turns the
/// exec channel on (Linux, Junos, EOS, NX-OS): for the tests of the shell's own machinery
/// (prompts, login hangs).
fn shell_driver(platform: &str) -> (SshDriver, Arc<MemKeys>) {
    let keys = Arc::new(MemKeys::default());
    let spec = builtin_platform(platform).unwrap().spec;
    let p = netraven_drivers::PlatformBuilder::from_spec(spec)
        .exec_channel(false)
        .build()
        .unwrap();
    (SshDriver::new(p, keys.clone()), keys)
}

async fn backup_matches(platform: &str) {
    let f = fleet(platform, 2, Faults::default()).await;
    let (drv, _) = driver(platform);
    for dev in f.devices() {
        let mut s = drv
            .connect(&dev.core_device(), &dev.credential(), T)
            .await
            .unwrap();
        let raw = s.fetch_config(T).await.unwrap();
        let norm = drv.rules().normalise(&raw).unwrap();
        assert_eq!(norm, dev.expected_backup(), "{platform} raw output:\n{raw}");
        for secret in dev.secrets() {
            assert!(
                !norm.contains(&secret),
                "{platform}: secret {secret} leaked"
            );
        }
        // Volatile lines change on every call; the normalised form does not.
        let raw2 = s.fetch_config(T).await.unwrap();
        assert_ne!(raw, raw2);
        assert_eq!(drv.rules().normalise(&raw2).unwrap(), norm);
        let cmd = builtin_platform(platform).unwrap().spec.backup[0]
            .command
            .clone();
        let out = s.run_command(&cmd, T).await.unwrap();
        assert!(!out.trim().is_empty());
        assert!(!out.starts_with(&cmd), "echo not removed: {out}");
        assert!(out.ends_with('\n'), "prompt not removed: {out:?}");
        s.close().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cisco_ios_backup_equals_simulator_config() {
    backup_matches("cisco_ios").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn arista_eos_backup_equals_simulator_config() {
    backup_matches("arista_eos").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn juniper_junos_backup_equals_simulator_config() {
    backup_matches("juniper_junos").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn linux_backup_equals_simulator_config() {
    backup_matches("linux").await;
}

/// Every built-in platform, through its own simulator: the backup equals the sample's expected
/// form, holds none of the planted secrets (plain or re-encrypted), and a second fetch (new
/// volatile values, new ciphertexts) normalises to the same text while a revision change does
/// not. Failures are collected so one run reports every platform.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_builtin_platform_backs_up_from_its_simulator() {
    let mut failures = Vec::new();
    for p in netraven_drivers::builtin_platforms().unwrap() {
        let name = p.name().to_string();
        let f = SimFleet::start(SimConfig {
            devices: 1,
            platform: name.clone(),
            config_size: Some(3000),
            faults: Faults {
                change_every: Some(2),
                ..Faults::default()
            },
            ..Default::default()
        })
        .await
        .unwrap();
        let dev = f.device(0).clone();
        let drv = SshDriver::new(p.clone(), Arc::new(MemKeys::default()));
        let r: std::result::Result<(), String> = async {
            let mut s = drv
                .connect(&dev.core_device(), &dev.credential(), T)
                .await
                .map_err(|e| format!("connect: {e}"))?;
            let raw = s.fetch_config(T).await.map_err(|e| format!("fetch: {e}"))?;
            let norm = drv
                .rules()
                .normalise(&raw)
                .map_err(|e| format!("normalise: {e}"))?;
            if norm != dev.expected_backup() {
                return Err(format!(
                    "backup differs from the sample\n--- got ---\n{norm}\n--- want ---\n{}",
                    dev.expected_backup()
                ));
            }
            for secret in dev.secrets() {
                if norm.contains(&secret) {
                    return Err(format!("secret {secret} leaked"));
                }
            }
            if netraven_drivers::sample::contains_sample_secret(&norm) {
                return Err("a (re-encrypted) secret leaked".into());
            }
            let raw2 = s
                .fetch_config(T)
                .await
                .map_err(|e| format!("fetch 2: {e}"))?;
            if drv.rules().normalise(&raw2).ok().as_deref() != Some(norm.as_str()) {
                return Err("second fetch (same revision) normalises differently".into());
            }
            let raw3 = s
                .fetch_config(T)
                .await
                .map_err(|e| format!("fetch 3: {e}"))?;
            let has_rev = p.spec.sim.as_ref().is_some_and(|sim| {
                sim.config.head.contains("{rev}")
                    || sim.config.block.contains("{rev}")
                    || sim.config.tail.contains("{rev}")
            });
            if has_rev && drv.rules().normalise(&raw3).ok().as_deref() == Some(norm.as_str()) {
                return Err("a revision change was not seen".into());
            }
            s.close().await.map_err(|e| format!("close: {e}"))?;
            Ok(())
        }
        .await;
        if let Err(e) = r {
            failures.push(format!("{name}: {e}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cisco_xe_alias_and_registry() {
    let keys: Arc<dyn HostKeyStore> = Arc::new(MemKeys::default());
    let reg = build_registry(keys.clone(), None).unwrap();
    for p in [
        "cisco_ios",
        "cisco_xe",
        "arista_eos",
        "juniper_junos",
        "linux",
    ] {
        assert!(reg.get(p).is_ok(), "{p}");
    }
    // A user platform file overrides a built-in by name.
    let dir = std::env::temp_dir().join(format!("netraven-plat-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let text = netraven_drivers::platform::BUILTIN_PLATFORM_FILES
        .iter()
        .find(|(f, _)| *f == "linux.toml")
        .unwrap()
        .1
        .replace(
            "description = \"Linux host (bash)\"",
            "description = \"custom\"",
        );
    std::fs::write(dir.join("linux.toml"), text).unwrap();
    let reg = build_registry(keys, Some(&dir)).unwrap();
    assert_eq!(reg.get("linux").unwrap().platform(), "linux");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_password_is_auth() {
    let f = fleet(
        "cisco_ios",
        1,
        Faults {
            wrong_password: true,
            ..Default::default()
        },
    )
    .await;
    let (drv, _) = driver("cisco_ios");
    let dev = f.device(0);
    let e = drv
        .connect(&dev.core_device(), &dev.credential(), T)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Auth, "{e}");
    let pw = dev.credentials()[0].password.expose().to_string();
    assert!(!e.to_string().contains(&pw));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_credential_logs_in() {
    let f = fleet(
        "cisco_ios",
        1,
        Faults {
            second_credential_only: true,
            ..Default::default()
        },
    )
    .await;
    let (drv, _) = driver("cisco_ios");
    let dev = f.device(0);
    let creds = dev.credentials();
    assert_eq!(creds.len(), 2);
    let e = drv
        .connect(&dev.core_device(), &creds[0].to_credential("a"), T)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Auth);
    let mut s = drv
        .connect(&dev.core_device(), &creds[1].to_credential("b"), T)
        .await
        .unwrap();
    assert!(s.fetch_config(T).await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyboard_interactive_only() {
    let f = fleet(
        "arista_eos",
        1,
        Faults {
            keyboard_interactive_only: true,
            ..Default::default()
        },
    )
    .await;
    let (drv, _) = driver("arista_eos");
    let dev = f.device(0);
    let mut s = drv
        .connect(&dev.core_device(), &dev.credential(), T)
        .await
        .unwrap();
    let raw = s.fetch_config(T).await.unwrap();
    assert_eq!(drv.rules().normalise(&raw).unwrap(), dev.expected_backup());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_enable_secret_is_auth() {
    let f = fleet("cisco_ios", 1, Faults::default()).await;
    let (drv, _) = driver("cisco_ios");
    let dev = f.device(0);
    let mut c = dev.credential();
    c.enable_secret = Some("nope".into());
    let e = drv.connect(&dev.core_device(), &c, T).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Auth, "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hang_is_timeout() {
    let f = fleet(
        "cisco_ios",
        1,
        Faults {
            hang_after: Some(4000),
            ..Default::default()
        },
    )
    .await;
    let (drv, _) = driver("cisco_ios");
    let dev = f.device(0);
    let mut s = drv
        .connect(&dev.core_device(), &dev.credential(), T)
        .await
        .unwrap();
    let start = std::time::Instant::now();
    let e = s
        .fetch_config(Duration::from_millis(600))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
    // Bounded by the 600 ms deadline, not the session's; generous for a busy 2-core machine.
    assert!(start.elapsed() < Duration::from_secs(20));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hang_during_login_is_timeout() {
    let f = fleet(
        "linux",
        1,
        Faults {
            hang_after: Some(10),
            ..Default::default()
        },
    )
    .await;
    let (drv, _) = shell_driver("linux");
    let dev = f.device(0);
    let e = drv
        .connect(
            &dev.core_device(),
            &dev.credential(),
            Duration::from_millis(700),
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drop_mid_output_is_connection() {
    let f = fleet(
        "cisco_ios",
        1,
        Faults {
            drop_after: Some(5000),
            ..Default::default()
        },
    )
    .await;
    let (drv, _) = driver("cisco_ios");
    let dev = f.device(0);
    let mut s = drv
        .connect(&dev.core_device(), &dev.credential(), T)
        .await
        .unwrap();
    let e = s.fetch_config(T).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Connection, "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_port_is_connection_and_probe_works() {
    let f = fleet("cisco_ios", 1, Faults::default()).await;
    let (drv, _) = driver("cisco_ios");
    let dev = f.device(0);
    assert!(drv.probe(&dev.core_device(), T).await.is_ok());
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = free.local_addr().unwrap().port();
    drop(free);
    let d = dev.core_device().with_port(port);
    let e = drv.connect(&d, &dev.credential(), T).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Connection, "{e}");
    let e = drv.probe(&d, T).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Connection, "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotated_host_key_is_refused_before_any_password() {
    let f = fleet("cisco_ios", 1, Faults::default()).await;
    let (drv, keys) = driver("cisco_ios");
    let dev = f.device(0);
    let s = drv
        .connect(&dev.core_device(), &dev.credential(), T)
        .await
        .unwrap();
    s.close().await.unwrap();
    assert!(
        keys.get_host_key("127.0.0.1", dev.port())
            .await
            .unwrap()
            .is_some()
    );
    let seen = dev.passwords_received();
    dev.rotate_host_key();
    let e = drv
        .connect(&dev.core_device(), &dev.credential(), T)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::HostKey, "{e}");
    assert_eq!(dev.passwords_received(), seen, "a password was sent");
    // Policy off ignores the change.
    let mut d = dev.core_device();
    d.host_key_policy = HostKeyPolicy::Off;
    assert!(drv.connect(&d, &dev.credential(), T).await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strict_policy_needs_a_pinned_key() {
    let f = fleet("juniper_junos", 1, Faults::default()).await;
    let (drv, _) = driver("juniper_junos");
    let dev = f.device(0);
    let mut d = dev.core_device();
    d.host_key_policy = HostKeyPolicy::Strict;
    let e = drv.connect(&d, &dev.credential(), T).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::HostKey, "{e}");
    assert_eq!(dev.passwords_received(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pager_is_answered_when_paging_stays_on() {
    let f = fleet(
        "cisco_ios",
        1,
        Faults {
            ignore_paging_off: true,
            ..Default::default()
        },
    )
    .await;
    let (drv, _) = driver("cisco_ios");
    let dev = f.device(0);
    let mut s = drv
        .connect(&dev.core_device(), &dev.credential(), T)
        .await
        .unwrap();
    let raw = s.fetch_config(T).await.unwrap();
    assert!(!raw.contains("More"));
    assert_eq!(drv.rules().normalise(&raw).unwrap(), dev.expected_backup());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn junos_pager_is_answered() {
    let f = fleet(
        "juniper_junos",
        1,
        Faults {
            ignore_paging_off: true,
            ..Default::default()
        },
    )
    .await;
    let (drv, _) = shell_driver("juniper_junos");
    let dev = f.device(0);
    let mut s = drv
        .connect(&dev.core_device(), &dev.credential(), T)
        .await
        .unwrap();
    let raw = s.fetch_config(T).await.unwrap();
    assert_eq!(drv.rules().normalise(&raw).unwrap(), dev.expected_backup());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_trickle_and_latency_still_work() {
    let f = fleet(
        "arista_eos",
        1,
        Faults {
            trickle: Some((4096, Duration::from_millis(2))),
            latency: Some(Duration::from_millis(5)),
            ..Default::default()
        },
    )
    .await;
    let (drv, _) = driver("arista_eos");
    let dev = f.device(0);
    let mut s = drv
        .connect(&dev.core_device(), &dev.credential(), T)
        .await
        .unwrap();
    let raw = s.fetch_config(T).await.unwrap();
    assert_eq!(drv.rules().normalise(&raw).unwrap(), dev.expected_backup());
    // A deadline shorter than the trickle is a timeout.
    let f2 = fleet(
        "arista_eos",
        1,
        Faults {
            trickle: Some((64, Duration::from_millis(5))),
            ..Default::default()
        },
    )
    .await;
    let dev = f2.device(0);
    let mut s = drv
        .connect(&dev.core_device(), &dev.credential(), T)
        .await
        .unwrap();
    let e = s
        .fetch_config(Duration::from_millis(300))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Timeout);
}

/// `--latency-ms N` (fault `latency`): everything the device sends reaches the client N ms
/// later, so every exchange the client waits for takes at least N ms (lower bounds only).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latency_delays_every_exchange() {
    use std::time::Instant;
    use tokio::io::AsyncReadExt;
    let latency = Duration::from_millis(150);
    let f = fleet(
        "cisco_ios",
        1,
        Faults {
            latency: Some(latency),
            ..Default::default()
        },
    )
    .await;
    let dev = f.device(0);
    // The SSH identification, the first thing the device says, comes N ms after the connect.
    let t0 = Instant::now();
    let mut tcp = tokio::net::TcpStream::connect(("127.0.0.1", dev.port()))
        .await
        .unwrap();
    let mut buf = [0u8; 64];
    let n = tcp.read(&mut buf).await.unwrap();
    assert!(buf[..n].starts_with(b"SSH-2.0-"), "{:?}", &buf[..n]);
    assert!(t0.elapsed() >= latency, "banner after {:?}", t0.elapsed());
    drop(tcp);
    // A whole login waits for several answers in turn (identification and key exchange, key
    // exchange reply, authentication, channel open, …): at least four latencies.
    let (drv, _) = shell_driver("cisco_ios");
    let t0 = Instant::now();
    let mut s = drv
        .connect(&dev.core_device(), &dev.credential(), T)
        .await
        .unwrap();
    let login = t0.elapsed();
    assert!(login >= latency * 4, "login took {login:?}");
    // The backup runs at least one command, each answered N ms later; and it is still right.
    let t0 = Instant::now();
    let raw = s.fetch_config(T).await.unwrap();
    let fetch = t0.elapsed();
    assert!(fetch >= latency, "fetch took {fetch:?}");
    assert_eq!(drv.rules().normalise(&raw).unwrap(), dev.expected_backup());
    s.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_changes_every_k_fetches() {
    let f = fleet(
        "cisco_ios",
        1,
        Faults {
            change_every: Some(2),
            ..Default::default()
        },
    )
    .await;
    let (drv, _) = driver("cisco_ios");
    let dev = f.device(0);
    let mut s = drv
        .connect(&dev.core_device(), &dev.credential(), T)
        .await
        .unwrap();
    let mut seen = Vec::new();
    for _ in 0..4 {
        let raw = s.fetch_config(T).await.unwrap();
        let n = drv.rules().normalise(&raw).unwrap();
        assert_eq!(n, dev.expected_backup());
        seen.push(n);
    }
    assert_eq!(seen[0], seen[1]);
    assert_ne!(seen[1], seen[2]);
    assert_eq!(seen[2], seen[3]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn legacy_kex_needs_opt_in() {
    // This workspace builds libssh2 with the SHA-1 algorithms (.cargo/config.toml CFLAGS).
    assert_eq!(
        netraven_drivers::ssh::legacy_algorithms_missing(),
        Vec::<&str>::new(),
        "libssh2 was built without the legacy algorithms: is CFLAGS from .cargo/config.toml overridden?"
    );
    // The simulator offers diffie-hellman-group14-sha1 only.
    let f = SimFleet::start(SimConfig {
        devices: 1,
        legacy_kex_only: true,
        ..Default::default()
    })
    .await
    .unwrap();
    let (drv, _) = driver("cisco_ios");
    let dev = f.device(0);
    let mut d = dev.core_device();
    assert!(d.legacy_ssh);
    d.legacy_ssh = false;
    let e = drv.connect(&d, &dev.credential(), T).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Protocol, "{e}");
    // The handshake negotiated group14-sha1, then the driver refused it before the host key
    // check and the login, and said what to do.
    let msg = e.to_string();
    assert!(
        msg.contains("diffie-hellman-group14-sha1") && msg.contains("legacy_ssh"),
        "{msg}"
    );
    // With the opt-in the same device works.
    let mut s = drv
        .connect(&dev.core_device(), &dev.credential(), T)
        .await
        .unwrap();
    let raw = s.fetch_config(T).await.unwrap();
    assert_eq!(drv.rules().normalise(&raw).unwrap(), dev.expected_backup());
    s.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explicit_algorithm_lists_work_against_a_modern_server() {
    // The explicit host key / cipher / MAC lists, with and without the legacy additions, work
    // against the default (modern, russh) simulator.
    let f = fleet("cisco_ios", 1, Faults::default()).await;
    let (drv, _) = driver("cisco_ios");
    let dev = f.device(0);
    for legacy in [false, true] {
        let mut d = dev.core_device();
        d.legacy_ssh = legacy;
        let mut s = drv.connect(&d, &dev.credential(), T).await.unwrap();
        assert!(s.fetch_config(T).await.is_ok());
        s.close().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inventory_csv_lists_every_device() {
    let f = fleet("linux", 3, Faults::default()).await;
    let csv = f.inventory_csv();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines[0],
        "hostname,address,port,platform,username,password,enable_secret,tags"
    );
    assert_eq!(lines.len(), 4);
    assert!(lines[2].starts_with(&format!("sim-0001,127.0.0.1,{},linux,", f.device(1).port())));
    let path = std::env::temp_dir().join(format!("netraven-inv-{}.csv", std::process::id()));
    f.write_inventory(&path).unwrap();
    assert_eq!(std::fs::read_to_string(&path).unwrap(), csv);
    std::fs::remove_file(&path).unwrap();
    assert_eq!(f.device(1).port(), f.port_base() + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_devices_concurrently() {
    let f = fleet("cisco_ios", 50, Faults::default()).await;
    let (drv, _) = driver("cisco_ios");
    let drv = Arc::new(drv);
    let mut set = tokio::task::JoinSet::new();
    for dev in f.devices().to_vec() {
        let drv = drv.clone();
        set.spawn(async move {
            let mut s = drv
                .connect(&dev.core_device(), &dev.credential(), T)
                .await?;
            let raw = s.fetch_config(T).await?;
            s.close().await?;
            Ok::<_, netraven_core::Error>((drv.rules().normalise(&raw)?, dev.expected_backup()))
        });
    }
    while let Some(r) = set.join_next().await {
        let (got, want) = r.unwrap().unwrap();
        assert_eq!(got, want);
    }
}

/// A Linux login without root: `iptables-save` is rejected, the optional command is left out and
/// the backup still succeeds with the host's identity.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_optional_backup_command_the_device_rejects_is_left_out() {
    let text = include_str!("../platforms/linux.toml")
        .replace("name = \"linux\"", "name = \"linux_noroot\"")
        .replace("\"iptables-save\" = \"{config}\"", "");
    let platform = netraven_drivers::Platform::from_toml(&text).unwrap();
    let f = SimFleet::start(SimConfig {
        devices: 1,
        platform: "linux_noroot".into(),
        custom_platforms: vec![platform.clone()],
        ..Default::default()
    })
    .await
    .unwrap();
    let drv = SshDriver::new(platform, Arc::new(MemKeys::default()));
    let dev = f.device(0);
    let mut s = drv
        .connect(&dev.core_device(), &dev.credential(), T)
        .await
        .unwrap();
    let raw = s.fetch_config(T).await.unwrap();
    let norm = drv.rules().normalise(&raw).unwrap();
    assert!(
        norm.contains("# Linux ") && norm.contains("# PRETTY_NAME="),
        "{norm}"
    );
    assert!(
        !norm.contains("command not found") && !norm.contains("*filter"),
        "{norm}"
    );
    assert_eq!(norm, dev.expected_backup());
    // The same command run on its own is reported as rejected.
    let err = s.run_command("iptables-save", T).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Command);
    s.close().await.unwrap();
}

/// Resident memory of this process in KiB (Linux), for growth checks (no timing involved).
fn rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_streaming_200_mib_without_newlines_fails_too_large_in_bounded_memory() {
    let f = fleet(
        "cisco_ios",
        1,
        Faults {
            flood: Some(200 * 1024 * 1024),
            ..Default::default()
        },
    )
    .await;
    let dev = f.device(0);
    let before = rss_kib();
    // The default limits: the line limit (4 MiB) is reached first.
    let (drv, _) = driver("cisco_ios");
    let mut s = drv
        .connect(&dev.core_device(), &dev.credential(), T)
        .await
        .unwrap();
    let e = s.fetch_config(Duration::from_secs(120)).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::TooLarge, "{e}");
    assert!(e.message().contains("line longer than"), "{e}");
    assert!(
        !e.message().contains("xxxx"),
        "device bytes in the message: {e}"
    );
    // A per-command output limit (`worker.max_output_bytes`) below the line limit.
    let keys = Arc::new(MemKeys::default());
    let small = SshDriver::new(builtin_platform("cisco_ios").unwrap(), keys).with_options(
        netraven_drivers::SshOptions {
            max_output_bytes: 1024 * 1024,
            ..Default::default()
        },
    );
    let mut s = small
        .connect(&dev.core_device(), &dev.credential(), T)
        .await
        .unwrap();
    let e = s.fetch_config(Duration::from_secs(120)).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::TooLarge, "{e}");
    assert!(e.message().contains("more than 1048576 bytes"), "{e}");
    if let (Some(b), Some(a)) = (before, rss_kib()) {
        let grown_mib = a.saturating_sub(b) / 1024;
        eprintln!("RSS grew by {grown_mib} MiB");
        assert!(grown_mib < 100, "RSS grew by {grown_mib} MiB");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hang_right_after_a_secret_line_says_what_was_awaited_not_what_came() {
    let f = fleet(
        "cisco_ios",
        1,
        Faults {
            hang_in_line: Some("enable secret 9 ".into()),
            ..Default::default()
        },
    )
    .await;
    let (drv, _) = driver("cisco_ios");
    let dev = f.device(0);
    let mut s = drv
        .connect(&dev.core_device(), &dev.credential(), T)
        .await
        .unwrap();
    let e = s
        .fetch_config(Duration::from_millis(1500))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
    let shown = format!("{e} {e:?}");
    assert!(shown.contains("show running-config"), "{shown}");
    assert!(
        !shown.contains("secret 9"),
        "device output in the error: {shown}"
    );
    for secret in dev.secrets() {
        assert!(!shown.contains(&secret), "secret in the error: {shown}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejection_by_a_first_seen_host_is_marked_and_its_key_not_kept() {
    let f = fleet(
        "cisco_ios",
        1,
        Faults {
            second_credential_only: true,
            ..Default::default()
        },
    )
    .await;
    let (drv, keys) = driver("cisco_ios");
    let dev = f.device(0);
    let d = dev.core_device();
    let creds = dev.credentials();
    let e = drv
        .connect(&d, &creds[0].to_credential("a"), T)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Auth);
    assert!(e.is_on_untrusted_host(), "first contact: {e}");
    // Trust on first use starts with a login: the key pinned by the failed attempt is gone.
    assert!(
        keys.get_host_key("127.0.0.1", d.port)
            .await
            .unwrap()
            .is_none()
    );
    let s = drv
        .connect(&d, &creds[1].to_credential("b"), T)
        .await
        .unwrap();
    s.close().await.unwrap();
    assert!(
        keys.get_host_key("127.0.0.1", d.port)
            .await
            .unwrap()
            .is_some()
    );
    // Once logged into, a rejection is an ordinary one (the next credential may be tried).
    let e = drv
        .connect(&d, &creds[0].to_credential("a"), T)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Auth);
    assert!(!e.is_on_untrusted_host(), "{e}");
    // A device whose key is not checked at all is never trusted.
    let mut off = d.clone();
    off.host_key_policy = HostKeyPolicy::Off;
    let e = drv
        .connect(&off, &creds[0].to_credential("a"), T)
        .await
        .unwrap_err();
    assert!(e.is_on_untrusted_host(), "{e}");
}

/// Devices whose configured prompt the platform's pattern does not match (Junos without
/// `user@`, Linux PS1 shapes, IOS/EOS `prompt` commands) are backed up with a learned prompt.
/// The deadline is the usual one: before prompts were learned, each of these connects waited it
/// out and failed with `no prompt within the deadline`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configured_prompts_are_learned_and_backed_up_within_the_deadline() {
    for (platform, prompt) in [
        ("juniper_junos", "{hostname}{mode} "),
        ("linux", "{mode} "),
        ("linux", "bash-5.1{mode} "),
        ("linux", "{hostname}{mode}"),
        ("cisco_ios", "{hostname} prod{mode}"),
        ("arista_eos", "{hostname}[prod]{mode}"),
    ] {
        let f = SimFleet::start(SimConfig {
            devices: 1,
            platform: platform.into(),
            prompt: Some(prompt.into()),
            ..Default::default()
        })
        .await
        .unwrap();
        let (drv, _) = shell_driver(platform);
        let dev = f.device(0);
        let plat = builtin_platform(platform).unwrap();
        let mode = plat.spec.sim.as_ref().unwrap().privileged.clone();
        let shown = prompt
            .replace("{hostname}", dev.hostname())
            .replace("{mode}", &mode);
        assert!(
            !plat.prompt.is_match(&shown) && !plat.prompt.is_match(shown.trim_end()),
            "{platform}: {shown:?} should not match the platform's pattern"
        );
        let mut s = drv
            .connect(&dev.core_device(), &dev.credential(), T)
            .await
            .unwrap_or_else(|e| panic!("{platform} with prompt {prompt:?}: {e}"));
        let notes = s.take_notes();
        assert!(
            notes.iter().any(|n| n.contains("learned")),
            "{platform}: {notes:?}"
        );
        let raw = s.fetch_config(T).await.unwrap();
        assert_eq!(
            drv.rules().normalise(&raw).unwrap(),
            dev.expected_backup(),
            "{platform} with prompt {prompt:?}"
        );
        s.close().await.unwrap();
    }
}

/// A prompt that ends in none of the platform's terminators is not learned: the connect fails
/// with a timeout that names the terminators and none of the device's text.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prompt_without_a_terminator_is_not_learned() {
    let f = SimFleet::start(SimConfig {
        devices: 1,
        platform: "linux".into(),
        prompt: Some("{hostname}{mode} READY".into()),
        ..Default::default()
    })
    .await
    .unwrap();
    let (drv, _) = shell_driver("linux");
    let dev = f.device(0);
    let e = drv
        .connect(&dev.core_device(), &dev.credential(), T)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
    let msg = e.to_string();
    assert!(msg.contains("none could be learned"), "{msg}");
    assert!(!msg.contains("READY"), "device text in the error: {msg}");
}

/// A prompt the platform's pattern matches is not learned (no note, the usual path).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_matching_prompt_is_not_learned() {
    let f = fleet("juniper_junos", 1, Faults::default()).await;
    let (drv, _) = shell_driver("juniper_junos");
    let dev = f.device(0);
    let mut s = drv
        .connect(&dev.core_device(), &dev.credential(), T)
        .await
        .unwrap();
    assert!(s.take_notes().is_empty());
    s.close().await.unwrap();
}
