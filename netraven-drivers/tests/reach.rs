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

// ------------------------------------------------------------------------------ jump hosts

use netraven_core::model::{HostKey, JumpHost};
use netraven_core::secret::Secret;
use netraven_core::store::{HostKeyStore, JumpHostStore};
use netraven_drivers::{JumpHosts, SshOptions};
use std::path::PathBuf;
use std::process::{Child, Command};

/// A driver resolving jump hosts in `store` (which also keeps host keys).
fn jump_driver(platform: &str, store: &Arc<MemoryStore>) -> SshDriver {
    let options = SshOptions {
        jump_hosts: Some(JumpHosts(store.clone())),
        ..SshOptions::default()
    };
    SshDriver::new(builtin_platform(platform).expect("platform"), store.clone())
        .with_options(options)
}

/// A real OpenSSH server on a 127.0.0.1 port, playing a bastion: public-key login for the
/// user running the test (no account to create), TCP forwarding on, DEBUG1 log.
struct Sshd {
    child: Child,
    dir: PathBuf,
    port: u16,
    user: String,
    key: String,
}

impl Sshd {
    /// `None` (the test is skipped, with a note) where there is no `/usr/sbin/sshd` or it
    /// does not start (e.g. an unprivileged run without `/run/sshd`).
    fn start(tag: &str) -> Option<Sshd> {
        if !std::path::Path::new("/usr/sbin/sshd").exists() {
            eprintln!("skipped: no /usr/sbin/sshd (apt-get install openssh-server)");
            return None;
        }
        let dir = std::env::temp_dir().join(format!("nr-reach-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).ok()?;
        let _ = std::fs::create_dir_all("/run/sshd");
        for (file, args) in [
            ("hk", vec!["-t", "ed25519"]),
            ("client", vec!["-t", "ecdsa", "-m", "PEM"]),
        ] {
            let ok = Command::new("ssh-keygen")
                .args(["-q", "-N", "", "-f"])
                .arg(dir.join(file))
                .args(args)
                .status()
                .ok()?
                .success();
            assert!(ok, "ssh-keygen failed");
        }
        std::fs::copy(dir.join("client.pub"), dir.join("authorized_keys")).ok()?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .ok()?
            .local_addr()
            .ok()?
            .port();
        let d = dir.display();
        let cfg = format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/hk\nPidFile {d}/pid\n\
             AuthorizedKeysFile {d}/authorized_keys\nStrictModes no\nPasswordAuthentication no\n\
             KbdInteractiveAuthentication no\nPubkeyAuthentication yes\n\
             PermitRootLogin prohibit-password\nUsePAM no\nAllowTcpForwarding yes\n\
             PermitOpen any\nLogLevel DEBUG1\n"
        );
        std::fs::write(dir.join("cfg"), cfg).ok()?;
        let child = Command::new("/usr/sbin/sshd")
            .arg("-D")
            .arg("-f")
            .arg(dir.join("cfg"))
            .arg("-E")
            .arg(dir.join("log"))
            .spawn()
            .ok()?;
        let user = String::from_utf8(Command::new("id").arg("-un").output().ok()?.stdout)
            .ok()?
            .trim()
            .to_string();
        let key = std::fs::read_to_string(dir.join("client")).ok()?;
        let mut sshd = Sshd {
            child,
            dir,
            port,
            user,
            key,
        };
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Some(sshd);
            }
            if let Ok(Some(_)) = sshd.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        eprintln!(
            "skipped: sshd did not start (needs root for its privilege separation): {}",
            sshd.log()
        );
        None
    }

    fn jump_host(&self, name: &str) -> JumpHost {
        let mut j = JumpHost::new(name, "127.0.0.1", &self.user, Secret::new(self.key.clone()));
        j.port = self.port;
        j
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("log")).unwrap_or_default()
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn ssh_fleet(n: usize) -> SimFleet {
    SimFleet::start(SimConfig {
        devices: n,
        ..Default::default()
    })
    .await
    .expect("fleet")
}

/// Devices behind a real OpenSSH bastion are backed up through `direct-tcpip` channels; the
/// bastion's key is pinned on first use like a device's, and its log shows the forwarding.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn devices_are_backed_up_through_an_openssh_bastion() {
    let Some(sshd) = Sshd::start("one") else {
        return;
    };
    let f = ssh_fleet(2).await;
    let store = Arc::new(MemoryStore::new());
    store
        .create_jump_host(&sshd.jump_host("dc1"))
        .await
        .expect("jump host");
    let drv = jump_driver("cisco_ios", &store);
    for dev in f.devices() {
        let mut device = dev.core_device();
        device.jump_host = Some("dc1".into());
        let mut s = drv
            .connect(&device, &dev.credential(), T)
            .await
            .unwrap_or_else(|e| panic!("through the bastion: {e}\nsshd log:\n{}", sshd.log()));
        let raw = s.fetch_config(T).await.expect("fetch");
        assert_eq!(
            drv.rules().normalise(&raw).expect("normalise"),
            dev.expected_backup()
        );
        s.close().await.expect("close");
    }
    assert!(
        sshd.log().contains("direct-tcpip"),
        "no forwarding in the bastion's log:\n{}",
        sshd.log()
    );
    let pinned = store
        .get_host_key("127.0.0.1", sshd.port)
        .await
        .expect("get")
        .expect("the bastion's key is pinned on first use");
    assert_eq!(pinned.key_type, "ssh-ed25519");
}

/// A bastion behind a bastion: `via` chains them, outermost first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chained_bastions_reach_the_device() {
    let (Some(outer), Some(inner)) = (Sshd::start("outer"), Sshd::start("inner")) else {
        return;
    };
    let f = ssh_fleet(1).await;
    let dev = f.device(0);
    let store = Arc::new(MemoryStore::new());
    store
        .create_jump_host(&outer.jump_host("outer"))
        .await
        .expect("outer");
    let mut j = inner.jump_host("inner");
    j.via = Some("outer".into());
    store.create_jump_host(&j).await.expect("inner");
    let drv = jump_driver("cisco_ios", &store);
    let mut device = dev.core_device();
    device.jump_host = Some("inner".into());
    let mut s = drv
        .connect(&device, &dev.credential(), T)
        .await
        .unwrap_or_else(|e| {
            panic!(
                "through two bastions: {e}\nouter:\n{}\ninner:\n{}",
                outer.log(),
                inner.log()
            )
        });
    let raw = s.fetch_config(T).await.expect("fetch");
    assert_eq!(
        drv.rules().normalise(&raw).expect("normalise"),
        dev.expected_backup()
    );
    s.close().await.expect("close");
    // The outer bastion forwarded to the inner one, the inner one to the device.
    assert!(
        outer.log().contains(&format!("port {}", inner.port)),
        "{}",
        outer.log()
    );
    assert!(
        inner.log().contains(&format!("port {}", dev.port())),
        "{}",
        inner.log()
    );
}

/// A bastion whose host key changed is refused before any password is sent: with a key
/// pinned on first use, and with a fingerprint an admin configured. (The simulator plays the
/// bastion here: it counts the passwords it receives.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_bastion_key_is_refused_before_any_password() {
    let bastion = ssh_fleet(1).await;
    let b = bastion.device(0);
    let f = ssh_fleet(1).await;
    let dev = f.device(0);
    let store = Arc::new(MemoryStore::new());
    let mut j = JumpHost::new(
        "b",
        "127.0.0.1",
        &b.credential().username,
        b.credential().password,
    );
    j.port = b.port();
    store.create_jump_host(&j).await.expect("jump host");
    store
        .pin_host_key(&HostKey {
            host: "127.0.0.1".into(),
            port: b.port(),
            key_type: "ssh-ed25519".into(),
            fingerprint: format!("SHA256:{}", "B".repeat(43)),
            first_seen: netraven_core::clock::Clock::now(&netraven_core::clock::SystemClock),
        })
        .await
        .expect("pin");
    let drv = jump_driver("cisco_ios", &store);
    let mut device = dev.core_device();
    device.jump_host = Some("b".into());
    let err = drv
        .connect(&device, &dev.credential(), T)
        .await
        .expect_err("changed bastion key");
    assert_eq!(err.kind(), ErrorKind::HostKey, "{err}");
    assert_eq!(
        b.passwords_received(),
        0,
        "a password went to a changed bastion"
    );
    assert_eq!(dev.passwords_received(), 0);

    // An admin-set fingerprint wins over the store: a different key is refused as well.
    store
        .delete_host_key("127.0.0.1", b.port())
        .await
        .expect("unpin");
    let mut j = store.jump_host_by_name("b").await.expect("get").expect("b");
    j.host_key = Some(format!("SHA256:{}", "C".repeat(43)));
    store.update_jump_host(&j).await.expect("update");
    let err = drv
        .connect(&device, &dev.credential(), T)
        .await
        .expect_err("configured fingerprint differs");
    assert_eq!(err.kind(), ErrorKind::HostKey, "{err}");
    assert_eq!(b.passwords_received(), 0);
}

/// A bastion refusing its own login is not the device's credential being refused (the engine
/// must not try the next device credential); unknown names and loops are refused up front.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bastion_login_failures_and_bad_chains() {
    let bastion = ssh_fleet(1).await;
    let b = bastion.device(0);
    let f = ssh_fleet(1).await;
    let dev = f.device(0);
    let store = Arc::new(MemoryStore::new());
    let mut j = JumpHost::new(
        "b",
        "127.0.0.1",
        &b.credential().username,
        Secret::new("wrong"),
    );
    j.port = b.port();
    store.create_jump_host(&j).await.expect("jump host");
    let drv = jump_driver("cisco_ios", &store);
    let mut device = dev.core_device();
    device.jump_host = Some("b".into());
    let err = drv
        .connect(&device, &dev.credential(), T)
        .await
        .expect_err("bastion refuses");
    assert_ne!(err.kind(), ErrorKind::Auth, "{err}");
    assert!(err.to_string().contains("jump host 'b'"), "{err}");
    assert_eq!(dev.passwords_received(), 0);

    device.jump_host = Some("nowhere".into());
    let err = drv
        .connect(&device, &dev.credential(), T)
        .await
        .expect_err("unknown");
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    let mut x = JumpHost::new("x", "127.0.0.1", "u", Secret::new("p"));
    x.via = Some("y".into());
    store.create_jump_host(&x).await.expect("x");
    let mut y = JumpHost::new("y", "127.0.0.1", "u", Secret::new("p"));
    y.via = Some("x".into());
    store.create_jump_host(&y).await.expect("y");
    device.jump_host = Some("x".into());
    let err = drv
        .connect(&device, &dev.credential(), T)
        .await
        .expect_err("loop");
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    assert!(err.to_string().contains("loop"), "{err}");
}

// ---------------------------------------------------------------------------- exec channel

use netraven_drivers::PlatformBuilder;
use netraven_drivers::platform::BackupCommand;

/// The platforms whose file turns the exec channel on.
const EXEC_PLATFORMS: [&str; 4] = ["linux", "juniper_junos", "arista_eos", "cisco_nxos"];

async fn exec_fleet(platform: &str, faults: Faults) -> SimFleet {
    SimFleet::start(SimConfig {
        devices: 1,
        platform: platform.into(),
        faults,
        ..Default::default()
    })
    .await
    .expect("fleet")
}

/// The same platform with the exec channel off: the interactive shell path.
fn shell_driver(platform: &str) -> SshDriver {
    let spec = builtin_platform(platform).expect("platform").spec;
    let p = PlatformBuilder::from_spec(spec)
        .exec_channel(false)
        .build()
        .expect("build");
    SshDriver::new(p, Arc::new(MemoryStore::new()))
}

/// Fetches one backup, normalised; returns it with the session's notes.
async fn fetch_norm(
    drv: &SshDriver,
    dev: &netraven_drivers::sim::SimDevice,
) -> (String, Vec<String>) {
    let mut s = drv
        .connect(&dev.core_device(), &dev.credential(), T)
        .await
        .unwrap_or_else(|e| panic!("{}: login failed: {e}", drv.platform()));
    let raw = s
        .fetch_config(T)
        .await
        .unwrap_or_else(|e| panic!("{}: fetch failed: {e}", drv.platform()));
    let notes = s.take_notes();
    s.close().await.expect("close");
    (drv.rules().normalise(&raw).expect("normalise"), notes)
}

/// On every platform with the option, each backup command runs over its own exec channel (no
/// shell opened) and the backup equals the simulator's configuration and the shell path's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_channel_backups_equal_the_shell_path() {
    for platform in EXEC_PLATFORMS {
        let (drv, _) = driver(platform);
        assert!(drv.platform_data().spec.exec_channel, "{platform}");
        let f = exec_fleet(platform, Faults::default()).await;
        let dev = f.device(0);
        let (exec, notes) = fetch_norm(&drv, dev).await;
        assert_eq!(exec, dev.expected_backup(), "{platform}");
        assert!(notes.is_empty(), "{platform}: {notes:?}");
        assert_eq!(dev.shells(), 0, "{platform}: no shell over exec");
        assert_eq!(
            dev.execs(),
            drv.platform_data().spec.backup.len(),
            "{platform}: one exec per command"
        );
        let (shell, _) = fetch_norm(&shell_driver(platform), dev).await;
        assert_eq!(dev.shells(), 1, "{platform}: the shell path opens a shell");
        assert_eq!(exec, shell, "{platform}: exec and shell backups differ");
    }
}

/// A device that refuses exec requests is backed up over the interactive shell of the same
/// session, and the session's notes say so; so is an EOS account that is refused the
/// configuration over exec (unprivileged there), through enable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_exec_request_falls_back_to_the_shell() {
    let no_exec = Faults {
        no_exec: true,
        ..Faults::default()
    };
    let unprivileged = Faults {
        exec_unprivileged: true,
        ..Faults::default()
    };
    for (platform, faults) in [
        ("linux", no_exec.clone()),
        ("juniper_junos", no_exec.clone()),
        ("arista_eos", no_exec),
        ("arista_eos", unprivileged),
    ] {
        let f = exec_fleet(platform, faults.clone()).await;
        let dev = f.device(0);
        let (drv, _) = driver(platform);
        let (norm, notes) = fetch_norm(&drv, dev).await;
        assert_eq!(norm, dev.expected_backup(), "{platform} {faults:?}");
        assert_eq!(dev.shells(), 1, "{platform} {faults:?}");
        assert_eq!(dev.logins(), 1, "{platform}: the same session");
        assert!(
            notes.iter().any(|n| n.contains("exec channel")),
            "{platform}: {notes:?}"
        );
    }
}

/// A backup command the device rejects over exec is a command error carrying its exit status
/// (left out when optional). Commands run one by one (`run_command`, a command job's) use the
/// interactive shell, opened on the same session: they may depend on one another.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_errors_carry_the_exit_status_and_commands_use_the_shell() {
    let f = exec_fleet("linux", Faults::default()).await;
    let dev = f.device(0);
    let spec = builtin_platform("linux").unwrap().spec;
    let with = |optional: bool| {
        let b = PlatformBuilder::from_spec(spec.clone()).backup_command(BackupCommand {
            command: "no-such-tool".into(),
            comment: None,
            optional,
            discard: false,
        });
        SshDriver::new(b.build().expect("build"), Arc::new(MemoryStore::new()))
    };
    let drv = with(false);
    let mut s = drv
        .connect(&dev.core_device(), &dev.credential(), T)
        .await
        .expect("login");
    let err = s.fetch_config(T).await.expect_err("unknown command");
    assert_eq!(err.kind(), ErrorKind::Command, "{err}");
    assert!(err.message().contains("exit status 1"), "{err}");
    assert!(err.message().contains("no-such-tool"), "{err}");
    let (norm, _) = fetch_norm(&with(true), dev).await;
    assert_eq!(norm, dev.expected_backup(), "an optional command left out");
    assert_eq!(dev.shells(), 0);

    let (drv, _) = driver("linux");
    let mut s = drv
        .connect(&dev.core_device(), &dev.credential(), T)
        .await
        .expect("login");
    let out = s.run_command("uname -a", T).await.expect("uname");
    assert!(out.starts_with("Linux sim-0000 "), "{out:?}");
    assert_eq!(dev.shells(), 1, "run_command opens the shell");
    let raw = s.fetch_config(T).await.expect("fetch in the shell");
    assert_eq!(drv.rules().normalise(&raw).unwrap(), dev.expected_backup());
    assert!(s.take_notes().is_empty(), "not a fallback");
    s.close().await.expect("close");
}

/// The output limits hold over exec channels: a device flooding its client fails the command
/// with `too_large` (output and line limits), within the deadline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_caps_hold_over_exec() {
    for (lines, what) in [(true, "bytes while"), (false, "a line longer")] {
        let f = exec_fleet(
            "linux",
            Faults {
                flood: Some(8 * 1024 * 1024),
                flood_lines: lines,
                ..Faults::default()
            },
        )
        .await;
        let dev = f.device(0);
        let store = Arc::new(MemoryStore::new());
        let drv =
            SshDriver::new(builtin_platform("linux").unwrap(), store).with_options(SshOptions {
                max_output_bytes: 1024 * 1024,
                max_line_bytes: 64 * 1024,
                ..SshOptions::default()
            });
        let mut s = drv
            .connect(&dev.core_device(), &dev.credential(), T)
            .await
            .expect("login");
        let started = std::time::Instant::now();
        let err = s.fetch_config(T).await.expect_err("flood");
        assert_eq!(err.kind(), ErrorKind::TooLarge, "{err}");
        assert!(err.message().contains(what), "{err}");
        assert!(err.message().contains("exec channel"), "{err}");
        assert!(started.elapsed() < Duration::from_secs(10));
        assert_eq!(dev.shells(), 0);
    }
}
