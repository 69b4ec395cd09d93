//! What the benches share: the simulator as a child process and readings from `/proc`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// `netraven sim` serving cisco_ios (or other) devices in its own process; killed when dropped (also on
/// panic).
pub struct Sim {
    /// The simulator process.
    pub child: Child,
    /// The inventory it wrote (every device listens once it exists).
    pub inventory: PathBuf,
}

impl Sim {
    /// Starts `devices` devices on ports from `port_base`, writing `DIR/NAME.csv` (log in
    /// `DIR/NAME.log`), with `extra` arguments (e.g. `--legacy-kex`); waits until they listen.
    pub fn start(
        bin: &Path,
        dir: &Path,
        name: &str,
        devices: usize,
        port_base: u16,
        extra: &[&str],
    ) -> Sim {
        Sim::start_platform(bin, dir, name, "cisco_ios", devices, port_base, extra)
    }

    /// [`Sim::start`] with devices of another platform.
    pub fn start_platform(
        bin: &Path,
        dir: &Path,
        name: &str,
        platform: &str,
        devices: usize,
        port_base: u16,
        extra: &[&str],
    ) -> Sim {
        let inventory = dir.join(format!("{name}.csv"));
        let log_path = dir.join(format!("{name}.log"));
        let log = std::fs::File::create(&log_path).expect("sim log file");
        let child = Command::new(bin)
            .args(["sim", "--devices", &devices.to_string()])
            .args(["--platform", platform])
            .args(["--port-base", &port_base.to_string(), "--inventory"])
            .arg(&inventory)
            .args(extra)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", bin.display()));
        let mut sim = Sim { child, inventory };
        let deadline = Instant::now() + Duration::from_secs(180);
        while !sim.inventory.exists() {
            if let Ok(Some(status)) = sim.child.try_wait() {
                panic!(
                    "the simulator exited ({status}); see {}",
                    log_path.display()
                );
            }
            assert!(
                Instant::now() < deadline,
                "the simulator did not start within 180 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        // The inventory is written in one go once every device listens; let the write finish.
        std::thread::sleep(Duration::from_millis(200));
        sim
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// CPU time (user + system) of a process so far, from `/proc/PROC/stat` (`PROC` is a pid or
/// `self`); zero if it cannot be read.
pub fn cpu_time_of(proc: impl std::fmt::Display) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{proc}/stat")).unwrap_or_default();
    // Fields after the command name (which is in parentheses and may contain spaces).
    let Some(i) = stat.rfind(')') else {
        return Duration::ZERO;
    };
    let f: Vec<&str> = stat[i + 1..].split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after the name.
    let ticks: u64 = f.get(11).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
        + f.get(12).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    // USER_HZ is 100 on every Linux architecture we run on.
    Duration::from_millis(ticks * 10)
}

/// A field of `/proc/PROC/status` in kB (e.g. `VmHWM:`, the peak RSS); 0 if absent.
pub fn status_kb(proc: impl std::fmt::Display, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{proc}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}
