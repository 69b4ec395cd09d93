//! Issue 3 benchmark: back up simulated cisco_ios devices over SSH on 127.0.0.1 and measure the
//! client alone.
//!
//! ```text
//! cargo build --release -p netraven-bin      # the simulator runs as target/release/netraven
//! cargo bench --bench backup                 # NETRAVEN_BENCH_QUICK=1: one run per row
//! ```
//!
//! The simulator (`netraven sim`) runs in its own process, so the CPU time and peak RSS read
//! from `/proc/self` are the client's: `netraven::backup::run` (engine, in-memory store,
//! SSH driver, git writer into a fresh bare repository) with the given concurrency. Each row is
//! run three times, each in a fresh child process (the bench binary re-executes itself with
//! `--child`), so the peak RSS (VmHWM) is that run's own; the table shows the median wall time,
//! the CPU of that run, and the highest peak RSS of the three. The simulator's CPU time over the row
//! is read from `/proc/PID/stat` as well, to show where the machine's two cores go.
//!
//! `NETRAVEN_BENCH_FLOOR=1 cargo bench --bench backup` runs the floor comparison instead (issue
//! 13): the same 1,000 devices fetched by a bare ssh2 loop (one blocking thread per concurrent
//! session: connect, handshake, password, PTY + shell, `enable` + secret, `terminal length 0`,
//! `show running-config`, read to the prompt, close), by the SSH driver alone and by the whole
//! `backup::run` path, at concurrency 50 and 1,000, printing each figure as a ratio to the floor.
//!
//! `NETRAVEN_BENCH_EXEC=1 cargo bench --bench backup` compares the SSH driver over exec channels
//! with the same driver over the interactive shell (issue 18), on 500 simulated linux and
//! arista_eos devices at concurrency 50 (`NETRAVEN_BENCH_EXEC_PLATFORMS`,
//! `NETRAVEN_BENCH_EXEC_DEVICES`; `NETRAVEN_BENCH_EXEC_LATENCY_MS=20` delays everything the
//! devices send by 20 ms, a round-trip time, so the round trips show).

use netraven::backup::{BackupOptions, run};
use netraven_core::driver::Driver;
use netraven_core::memory::MemoryStore;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

mod support;

use support::{Sim, cpu_time_of, status_kb};

/// Client CPU time (user + system) so far.
fn cpu_time() -> Duration {
    cpu_time_of("self")
}

/// The soft limit of open files, from /proc/self/limits.
fn open_files_limit() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = s.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

#[derive(Debug, Clone, Copy)]
struct Sample {
    wall: Duration,
    cpu: Duration,
    peak_rss_kb: u64,
}

struct Row {
    what: String,
    devices: usize,
    concurrency: usize,
    samples: Vec<Sample>,
}

impl Row {
    fn median(&self) -> Sample {
        let mut s = self.samples.clone();
        s.sort_by_key(|x| x.wall);
        let mut m = s[s.len() / 2];
        m.peak_rss_kb = self
            .samples
            .iter()
            .map(|x| x.peak_rss_kb)
            .max()
            .unwrap_or(0);
        m
    }

    fn line(&self) -> String {
        let m = self.median();
        format!(
            "| {} | {} | {} | {:.2} | {:.0} | {:.2} | {:.0} |",
            self.what,
            fmt_int(self.devices),
            fmt_int(self.concurrency),
            m.wall.as_secs_f64(),
            self.devices as f64 / m.wall.as_secs_f64(),
            m.cpu.as_secs_f64() * 1000.0 / self.devices as f64,
            m.peak_rss_kb as f64 / 1024.0,
        )
    }
}

fn fmt_int(n: usize) -> String {
    if n >= 1000 {
        format!("{},{:03}", n / 1000, n % 1000)
    } else {
        n.to_string()
    }
}

/// The first `n` devices of an inventory, as a new file.
fn sub_inventory(full: &Path, n: usize, out: &Path) -> PathBuf {
    let text = std::fs::read_to_string(full).expect("inventory");
    let lines: Vec<&str> = text.lines().take(n + 1).collect();
    assert_eq!(lines.len(), n + 1, "inventory too short");
    std::fs::write(out, lines.join("\n") + "\n").expect("write inventory");
    out.to_path_buf()
}

/// One timed `netraven backup` equivalent (in process) into a fresh repository.
async fn one_backup(inventory: &Path, devices: usize, concurrency: usize) -> Sample {
    let repo = tempfile::tempdir().expect("tempdir");
    let opts = BackupOptions {
        inventory: inventory.to_path_buf(),
        repo: repo.path().join("backups.git"),
        concurrency,
        device_timeout: Duration::from_secs(60),
        progress: None,
        platforms_dir: None,
    };
    let cpu0 = cpu_time();
    let t0 = Instant::now();
    let summary = run(&opts).await.expect("backup run");
    let wall = t0.elapsed();
    let cpu = cpu_time() - cpu0;
    let peak_rss_kb = status_kb("self", "VmHWM:");
    assert_eq!(
        summary.ok as usize,
        devices,
        "not every device was backed up:\n{}",
        summary.render()
    );
    assert!(summary.commit.is_some());
    Sample {
        wall,
        cpu,
        peak_rss_kb,
    }
}

/// The SSH driver alone (connect, log in, enable, paging off, fetch, close), `concurrency` at
/// once: what the legacy row needs, since the CSV inventory of `netraven backup` has no
/// `legacy_ssh` column. The platform is the inventory's; `exec` set forces its exec channel
/// option on or off (issue 18's comparison).
async fn one_driver_pass(
    inventory: &Path,
    concurrency: usize,
    legacy: bool,
    exec: Option<bool>,
) -> Sample {
    let rows = netraven_core::inventory::read_file(inventory).expect("inventory");
    let keys = Arc::new(MemoryStore::new());
    let platform = rows
        .first()
        .map_or("cisco_ios", |r| r.device.platform.as_str());
    let mut platform = netraven_drivers::builtin_platform(platform).unwrap();
    if let Some(on) = exec {
        platform = netraven_drivers::PlatformBuilder::from_spec(platform.spec)
            .exec_channel(on)
            .build()
            .unwrap();
    }
    let driver = Arc::new(netraven_drivers::SshDriver::new(platform, keys));
    let sem = Arc::new(tokio::sync::Semaphore::new(concurrency));
    let cpu0 = cpu_time();
    let t0 = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for row in rows {
        let driver = driver.clone();
        let sem = sem.clone();
        set.spawn(async move {
            let _permit = sem.acquire_owned().await.unwrap();
            let mut dev = row.device.clone();
            dev.legacy_ssh = legacy;
            let t = Duration::from_secs(60);
            let cred = row.login.as_ref().expect("login").credential("bench");
            let mut s = driver.connect(&dev, &cred, t).await?;
            let raw = s.fetch_config(t).await?;
            s.close().await?;
            Ok::<usize, netraven_core::Error>(raw.len())
        });
    }
    let mut failed = 0;
    while let Some(r) = set.join_next().await {
        match r.unwrap() {
            Ok(n) => assert!(n > 1000),
            Err(e) => {
                if failed == 0 {
                    eprintln!("first failure: {e}");
                }
                failed += 1;
            }
        }
    }
    let wall = t0.elapsed();
    let cpu = cpu_time() - cpu0;
    let peak_rss_kb = status_kb("self", "VmHWM:");
    assert_eq!(failed, 0, "devices failed");
    Sample {
        wall,
        cpu,
        peak_rss_kb,
    }
}

/// Reads from a bare ssh2 shell until the output ends with one of `ends` (a prompt); returns
/// which one and the bytes read.
fn read_until(chan: &mut ssh2::Channel, ends: &[&[u8]], out: &mut Vec<u8>) -> (usize, usize) {
    use std::io::Read;
    let start = out.len();
    let mut buf = [0u8; 32 * 1024];
    loop {
        let n = chan.read(&mut buf).unwrap_or_else(|e| {
            let tail = String::from_utf8_lossy(&out[out.len().saturating_sub(200)..]).into_owned();
            panic!("read from the device: {e}; last output: {tail:?}")
        });
        assert!(n > 0, "the device closed the shell");
        out.extend_from_slice(&buf[..n]);
        let tail = out[start..].trim_ascii_end();
        if let Some(i) = ends.iter().position(|e| tail.ends_with(e)) {
            return (i, out.len() - start);
        }
    }
}

/// One device by bare ssh2, the least any SSH backup of a cisco_ios device can do (log in,
/// enable, paging off, fetch, leave): returns the bytes of the configuration command.
fn floor_one(row: &netraven_core::inventory::InventoryRow) -> usize {
    use std::io::Write;
    let dev = &row.device;
    let login = row.login.as_ref().expect("login");
    let tcp = std::net::TcpStream::connect((dev.address.as_str(), dev.port)).expect("connect");
    let mut sess = ssh2::Session::new().expect("session");
    sess.set_tcp_stream(tcp);
    sess.handshake().expect("handshake");
    sess.userauth_password(&login.username, login.password.expose())
        .expect("password");
    let mut chan = sess.channel_session().expect("channel");
    chan.request_pty("vt100", None, Some((511, 24, 0, 0)))
        .expect("pty");
    chan.shell().expect("shell");
    let user = format!("{}>", dev.hostname).into_bytes();
    let privileged = format!("{}#", dev.hostname).into_bytes();
    let mut out = Vec::with_capacity(64 * 1024);
    let (mode, _) = read_until(&mut chan, &[&user, &privileged], &mut out);
    if mode == 0 {
        chan.write_all(b"enable\n").expect("write");
        read_until(&mut chan, &[b"Password:"], &mut out);
        chan.write_all(format!("{}\n", login.enable_secret.expose()).as_bytes())
            .expect("write");
        read_until(&mut chan, &[&privileged], &mut out);
    }
    chan.write_all(b"terminal length 0\n").expect("write");
    read_until(&mut chan, &[&privileged], &mut out);
    chan.write_all(b"show running-config\n").expect("write");
    let (_, n) = read_until(&mut chan, &[&privileged], &mut out);
    let _ = chan.write_all(b"exit\n");
    let _ = chan.close();
    n
}

/// The floor: every device of `inventory` by [`floor_one`] on `concurrency` plain threads.
fn one_floor_pass(inventory: &Path, concurrency: usize) -> Sample {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let rows = Arc::new(netraven_core::inventory::read_file(inventory).expect("inventory"));
    let next = Arc::new(AtomicUsize::new(0));
    let cpu0 = cpu_time();
    let t0 = Instant::now();
    let threads: Vec<_> = (0..concurrency.min(rows.len()))
        .map(|_| {
            let rows = rows.clone();
            let next = next.clone();
            std::thread::Builder::new()
                .stack_size(256 * 1024)
                .spawn(move || {
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(row) = rows.get(i) else { break };
                        assert!(floor_one(row) > 1000, "short configuration");
                    }
                })
                .expect("thread")
        })
        .collect();
    for t in threads {
        t.join().expect("a floor thread panicked");
    }
    Sample {
        wall: t0.elapsed(),
        cpu: cpu_time() - cpu0,
        peak_rss_kb: status_kb("self", "VmHWM:"),
    }
}

/// Child mode: `backup --child MODE INVENTORY DEVICES CONCURRENCY REPEATS` runs one row in a
/// fresh process (so its peak RSS is the row's own) and prints one line per run:
/// `sample WALL_NS CPU_NS PEAK_RSS_KB`.
fn child(args: &[String]) {
    let mode = args[0].as_str();
    let inventory = PathBuf::from(&args[1]);
    let devices: usize = args[2].parse().unwrap();
    let concurrency: usize = args[3].parse().unwrap();
    let repeats: usize = args[4].parse().unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    for _ in 0..repeats {
        let s = match mode {
            "backup" => rt.block_on(one_backup(&inventory, devices, concurrency)),
            "driver" => rt.block_on(one_driver_pass(&inventory, concurrency, false, None)),
            "driver-exec" => {
                rt.block_on(one_driver_pass(&inventory, concurrency, false, Some(true)))
            }
            "driver-shell" => {
                rt.block_on(one_driver_pass(&inventory, concurrency, false, Some(false)))
            }
            "floor" => one_floor_pass(&inventory, concurrency),
            "driver-legacy" => rt.block_on(one_driver_pass(&inventory, concurrency, true, None)),
            m => panic!("unknown mode {m}"),
        };
        println!(
            "sample {} {} {}",
            s.wall.as_nanos(),
            s.cpu.as_nanos(),
            s.peak_rss_kb
        );
    }
}

/// Runs one row in a child process; also returns the simulator's CPU time over the row.
#[allow(clippy::too_many_arguments)]
fn run_row(
    exe: &Path,
    sim: &Sim,
    what: &str,
    mode: &str,
    inventory: &Path,
    devices: usize,
    concurrency: usize,
    repeats: usize,
) -> (Row, Duration) {
    let mut row = Row {
        what: what.to_string(),
        devices,
        concurrency,
        samples: vec![],
    };
    let sim_cpu0 = cpu_time_of(sim.child.id());
    // One fresh process per run: memory a run leaves behind (idle blocking threads, allocator
    // caches) must not count in the next run's peak.
    for _ in 0..repeats {
        let out = Command::new(exe)
            .args(["--child", mode])
            .arg(inventory)
            .args([devices.to_string(), concurrency.to_string(), "1".into()])
            .stderr(Stdio::inherit())
            .output()
            .expect("running a benchmark row");
        assert!(
            out.status.success(),
            "row {what} {devices}/{concurrency} failed"
        );
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() == 4 && f[0] == "sample" {
                row.samples.push(Sample {
                    wall: Duration::from_nanos(f[1].parse().unwrap()),
                    cpu: Duration::from_nanos(f[2].parse().unwrap()),
                    peak_rss_kb: f[3].parse().unwrap(),
                });
            }
        }
    }
    let sim_cpu = cpu_time_of(sim.child.id()) - sim_cpu0;
    assert_eq!(row.samples.len(), repeats);
    (row, sim_cpu / repeats as u32)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--child") {
        return child(&args[1..]);
    }
    let quick = std::env::var_os("NETRAVEN_BENCH_QUICK").is_some();
    let repeats = if quick { 1 } else { 3 };
    let exe = std::env::current_exe().expect("current exe");
    // target/release/deps/backup-<hash> -> target/release/netraven
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .map(|d| d.join("netraven"))
        .expect("target directory");
    if !bin.exists() {
        eprintln!(
            "{} not found: build the simulator first with `cargo build --release -p netraven-bin`",
            bin.display()
        );
        std::process::exit(2);
    }
    match open_files_limit() {
        Some(n) if n < 4096 => {
            eprintln!(
                "open files limit is {n}: 1,000 concurrent sessions need `ulimit -n 4096` or more \
                 in the shell running `cargo bench` (the simulator inherits it)"
            );
            std::process::exit(2);
        }
        Some(_) => {}
        None => eprintln!("cannot read the open files limit; 1,000 sessions need 4096 or more"),
    }
    let dir = tempfile::tempdir().expect("tempdir");
    // Below the ephemeral port range (32768..), so client sockets in TIME_WAIT never hold them.
    let port_base: u16 = std::env::var("NETRAVEN_BENCH_PORT_BASE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(27000);

    if std::env::var_os("NETRAVEN_BENCH_EXEC").is_some() {
        return exec_comparison(&exe, &bin, dir.path(), port_base, repeats);
    }
    if std::env::var_os("NETRAVEN_BENCH_FLOOR").is_some() {
        return floor_comparison(&exe, &bin, dir.path(), port_base, repeats);
    }
    let mut rows: Vec<(Row, Duration)> = Vec::new();
    let mut report = |r: (Row, Duration)| {
        println!(
            "{} simulator CPU {:.2} ms/device",
            r.0.line(),
            r.1.as_secs_f64() * 1000.0 / r.0.devices as f64
        );
        rows.push(r);
    };
    {
        let sim = Sim::start(&bin, dir.path(), "modern", 1000, port_base, &[]);
        let inv200 = sub_inventory(&sim.inventory, 200, &dir.path().join("inv200.csv"));
        // Warm-up: page cache, the simulator's first connections.
        run_row(&exe, &sim, "warm-up", "backup", &inv200, 200, 50, 1);
        for devices in [200usize, 1000] {
            let inv = if devices == 200 {
                inv200.clone()
            } else {
                sim.inventory.clone()
            };
            for concurrency in [50usize, 200, 1000] {
                report(run_row(
                    &exe,
                    &sim,
                    "`backup::run`",
                    "backup",
                    &inv,
                    devices,
                    concurrency,
                    repeats,
                ));
            }
        }
        report(run_row(
            &exe,
            &sim,
            "SSH driver only",
            "driver",
            &sim.inventory,
            1000,
            200,
            repeats,
        ));
    }
    {
        let sim = Sim::start(
            &bin,
            dir.path(),
            "legacy",
            1000,
            port_base + 1000,
            &["--legacy-kex"],
        );
        report(run_row(
            &exe,
            &sim,
            "SSH driver only, `--legacy-kex` (group14-sha1), `legacy_ssh`",
            "driver-legacy",
            &sim.inventory,
            1000,
            200,
            repeats,
        ));
    }

    println!();
    println!(
        "| what | devices | concurrency | wall s | devices/s | client CPU ms/device | client peak RSS MB | simulator CPU ms/device |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    for (r, sim_cpu) in &rows {
        println!(
            "{} {:.2} |",
            r.line(),
            sim_cpu.as_secs_f64() * 1000.0 / r.devices as f64
        );
    }
}

/// Issue 13's floor comparison: floor, driver and whole path over the same 1,000 devices in
/// one run, each as a ratio (client CPU, wall, peak RSS) to the floor and to the driver.
fn floor_comparison(exe: &Path, bin: &Path, dir: &Path, port_base: u16, repeats: usize) {
    let sim = Sim::start(bin, dir, "floor", 1000, port_base, &[]);
    let inv200 = sub_inventory(&sim.inventory, 200, &dir.join("inv200.csv"));
    run_row(exe, &sim, "warm-up", "backup", &inv200, 200, 50, 1);
    println!(
        "| concurrency | what | wall s | client CPU ms/device | peak RSS MB | simulator CPU ms/device | CPU × floor | CPU × driver | wall × floor |"
    );
    println!("|---:|---|---:|---:|---:|---:|---:|---:|---:|");
    for concurrency in [50usize, 1000] {
        let mut got = Vec::new();
        for (what, mode) in [
            ("bare ssh2 (floor)", "floor"),
            ("SSH driver only", "driver"),
            ("`backup::run` (whole path)", "backup"),
        ] {
            let (row, sim_cpu) = run_row(
                exe,
                &sim,
                what,
                mode,
                &sim.inventory,
                1000,
                concurrency,
                repeats,
            );
            got.push((row.what.clone(), row.median(), sim_cpu));
        }
        let per = |d: Duration| d.as_secs_f64() * 1000.0 / 1000.0;
        let (floor_cpu, floor_wall) = (per(got[0].1.cpu), got[0].1.wall.as_secs_f64());
        let driver_cpu = per(got[1].1.cpu);
        for (what, m, sim_cpu) in &got {
            println!(
                "| {} | {} | {:.2} | {:.2} | {:.0} | {:.2} | {:.2} | {:.2} | {:.2} |",
                fmt_int(concurrency),
                what,
                m.wall.as_secs_f64(),
                per(m.cpu),
                m.peak_rss_kb as f64 / 1024.0,
                per(*sim_cpu),
                per(m.cpu) / floor_cpu,
                per(m.cpu) / driver_cpu,
                m.wall.as_secs_f64() / floor_wall,
            );
        }
    }
}

/// Issue 18's comparison: the SSH driver over exec channels and over the interactive shell,
/// against the same simulated devices (`NETRAVEN_BENCH_EXEC_PLATFORMS`, default `linux,arista_eos`;
/// `NETRAVEN_BENCH_EXEC_DEVICES`, default 500), concurrency 50; `NETRAVEN_BENCH_EXEC_LATENCY_MS`
/// delays every reply of the simulated devices.
fn exec_comparison(exe: &Path, bin: &Path, dir: &Path, port_base: u16, repeats: usize) {
    let devices: usize = std::env::var("NETRAVEN_BENCH_EXEC_DEVICES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(500);
    let platforms = std::env::var("NETRAVEN_BENCH_EXEC_PLATFORMS")
        .unwrap_or_else(|_| "linux,arista_eos".into());
    // The simulator's `latency` fault (`--latency-ms`): everything the device sends reaches the
    // client that much later (SSH messages and output alike), a round-trip time standing in
    // for a WAN.
    let latency = std::env::var("NETRAVEN_BENCH_EXEC_LATENCY_MS").ok();
    let fault = latency.as_ref().map(|ms| format!("latency={ms}"));
    let extra: Vec<&str> = match &fault {
        Some(f) => vec!["--fault", f.as_str()],
        None => vec![],
    };
    println!(
        "| platform | path | devices | concurrency | wall s | devices/s | client CPU ms/device | peak RSS MB | simulator CPU ms/device |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|");
    for (k, platform) in platforms.split(',').map(str::trim).enumerate() {
        let sim = Sim::start_platform(
            bin,
            dir,
            &format!("exec-{platform}"),
            platform,
            devices,
            port_base + (k * devices) as u16,
            &extra,
        );
        run_row(
            exe,
            &sim,
            "warm-up",
            "driver-shell",
            &sim.inventory,
            devices,
            50,
            1,
        );
        for (what, mode) in [
            ("interactive shell", "driver-shell"),
            ("exec channel", "driver-exec"),
        ] {
            let (row, sim_cpu) =
                run_row(exe, &sim, what, mode, &sim.inventory, devices, 50, repeats);
            let m = row.median();
            let per = |d: Duration| d.as_secs_f64() * 1000.0 / devices as f64;
            println!(
                "| {platform} | {what} | {} | 50 | {:.2} | {:.0} | {:.2} | {:.0} | {:.2} |",
                fmt_int(devices),
                m.wall.as_secs_f64(),
                devices as f64 / m.wall.as_secs_f64(),
                per(m.cpu),
                m.peak_rss_kb as f64 / 1024.0,
                per(sim_cpu),
            );
        }
    }
}
