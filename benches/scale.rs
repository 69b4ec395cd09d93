//! Scale benchmark (issue "flat cost per device"): `netraven backup` over 1,000, 3,000 and
//! 10,000 simulated cisco_ios devices (~30 KB configurations), each size backed up twice (a
//! first run that commits everything, then an unchanged re-run), printing wall time, client CPU
//! per device and peak RSS for each, and the ratio of the largest fleet's CPU per device to the
//! smallest's.
//!
//! ```text
//! cargo build --release -p netraven-bin       # the bench drives target/release/netraven
//! cargo bench --bench scale                   # 1,000 / 3,000 / 10,000 devices
//! NETRAVEN_SCALE_SIZES=1000,8000 cargo bench --bench scale
//! NETRAVEN_BENCH_QUICK=1 cargo bench --bench scale   # 200 / 600 devices, a smoke run
//! NETRAVEN_SCALE_SERVE=0 cargo bench --bench scale    # `netraven backup` rows only
//! ```
//!
//! Each size also runs through `netraven serve` (SQLite, embedded queue, port 18790): the
//! inventory imported with `POST /api/devices/import`, one backup job over the `sim` tag run twice;
//! the server's CPU is measured over each run alone, its peak RSS is the process's high-water mark.
//!
//! Both the simulator and the client run as child processes of the bench; the client's CPU time
//! and peak RSS come from `wait4`-style accounting via GNU time (`/usr/bin/time -f`), the
//! simulator's CPU from `/proc/PID/stat` over the row. Devices listen on ports 8000 and up (below
//! the ephemeral range); the open-file limit must allow concurrency + the fleet (`ulimit -n`).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod support;

use support::{Sim, cpu_time_of, status_kb};

const PORT_BASE: u16 = 8000;
const CONCURRENCY: usize = 200;

fn bin() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let b = root.join("target/release/netraven");
    assert!(
        b.exists(),
        "{} is missing: run `cargo build --release -p netraven-bin` first",
        b.display()
    );
    b
}

/// CPU time (user + system) of a process so far, in seconds.
fn cpu_of(pid: u32) -> f64 {
    cpu_time_of(pid).as_secs_f64()
}

struct Row {
    devices: usize,
    label: &'static str,
    wall: f64,
    cpu_ms: f64,
    rss_mb: u64,
    sim_cpu_ms: f64,
    summary: String,
}

fn backup(
    bin: &Path,
    sim_pid: u32,
    inv: &Path,
    repo: &Path,
    devices: usize,
    label: &'static str,
) -> Row {
    let times = repo.with_extension("time");
    let sim_before = cpu_of(sim_pid);
    let out = Command::new("/usr/bin/time")
        .args(["-f", "%e %U %S %M", "-o"])
        .arg(&times)
        .arg(bin)
        .args(["backup", "--inventory"])
        .arg(inv)
        .arg("--repo")
        .arg(repo)
        .args(["--concurrency", &CONCURRENCY.to_string()])
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .output()
        .expect("run /usr/bin/time netraven backup");
    let sim_cpu = cpu_of(sim_pid) - sim_before;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "backup of {devices} devices failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let t = std::fs::read_to_string(&times).expect("time output");
    let v: Vec<f64> = t
        .lines()
        .last()
        .unwrap_or("")
        .split_whitespace()
        .filter_map(|x| x.parse().ok())
        .collect();
    assert_eq!(v.len(), 4, "unexpected /usr/bin/time output: {t}");
    Row {
        devices,
        label,
        wall: v[0],
        cpu_ms: (v[1] + v[2]) * 1000.0 / devices as f64,
        rss_mb: v[3] as u64 / 1024,
        sim_cpu_ms: sim_cpu * 1000.0 / devices as f64,
        summary: stdout.lines().next().unwrap_or("").to_string(),
    }
}

/// Port of the bench's `netraven serve`.
const SERVE_PORT: u16 = 18790;

/// A running `netraven serve`, stopped (SIGTERM, then kill) when dropped.
struct Serve(Child);

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = Command::new("kill").arg(self.0.id().to_string()).status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `curl` against the bench's server: (HTTP status, body).
fn curl(args: &[&str]) -> (u16, String) {
    let out = Command::new("curl")
        .args(["-s", "-w", "\n%{http_code}"])
        .args(args)
        .output()
        .expect("run curl");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

fn api(path: &str) -> String {
    format!("http://127.0.0.1:{SERVE_PORT}/api{path}")
}

fn json(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

/// `netraven serve` on SQLite with the embedded queue: the inventory imported through the API,
/// one backup job over every device run twice (first run, unchanged re-run). CPU is the server
/// process's over each run alone (not the import); peak RSS is the process's high-water mark.
fn serve_rows(bin: &Path, sim_pid: u32, inv: &Path, dir: &Path, devices: usize) -> Vec<Row> {
    let data = dir.join("serve");
    std::fs::create_dir_all(&data).expect("serve dir");
    let password = "scale-Bench-pw-1";
    let log = std::fs::File::create(dir.join("serve.log")).expect("serve log");
    let child = Command::new(bin)
        .arg("serve")
        .current_dir(&data)
        .env("NETRAVEN_ADMIN_PASSWORD", password)
        .env("NETRAVEN_API_LISTEN", format!("127.0.0.1:{SERVE_PORT}"))
        .env("NETRAVEN_WORKER_CONCURRENCY", CONCURRENCY.to_string())
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(log))
        .spawn()
        .expect("start netraven serve");
    let serve = Serve(child);
    let pid = serve.0.id();
    let deadline = Instant::now() + Duration::from_secs(120);
    while curl(&[&api("/health")]).0 != 200 {
        assert!(Instant::now() < deadline, "netraven serve did not answer");
        std::thread::sleep(Duration::from_millis(200));
    }
    let login = format!(r#"{{"username":"admin","password":"{password}"}}"#);
    let (code, body) = curl(&[
        "-X",
        "POST",
        "-H",
        "content-type: application/json",
        "-d",
        &login,
        &api("/auth/token"),
    ]);
    assert_eq!(code, 200, "login: {body}");
    let token = json(&body)["access_token"]
        .as_str()
        .expect("access_token")
        .to_string();
    let auth = format!("Authorization: Bearer {token}");
    let (code, body) = curl(&[
        "-X",
        "POST",
        "-H",
        &auth,
        "-H",
        "content-type: text/csv",
        "--data-binary",
        &format!("@{}", inv.display()),
        &api("/devices/import"),
    ]);
    assert!(code < 300, "import: {code} {body}");
    let job = r#"{"name":"scale","kind":{"type":"backup"},"targets":{"tags":["sim"]},"schedule":{"type":"manual"}}"#;
    let (code, body) = curl(&[
        "-X",
        "POST",
        "-H",
        &auth,
        "-H",
        "content-type: application/json",
        "-d",
        job,
        &api("/jobs"),
    ]);
    assert!(code < 300, "job: {code} {body}");
    let job_id = json(&body)["id"].as_i64().expect("job id");
    let mut rows = Vec::new();
    for label in ["serve, first run", "serve, unchanged re-run"] {
        let cpu_before = cpu_of(pid);
        let sim_before = cpu_of(sim_pid);
        let started = Instant::now();
        let (code, body) = curl(&[
            "-X",
            "POST",
            "-H",
            &auth,
            &api(&format!("/jobs/{job_id}/run")),
        ]);
        assert!(code < 300, "run: {code} {body}");
        let run_id = json(&body)["run_id"].as_i64().expect("run id");
        let run = loop {
            let (_, body) = curl(&["-H", &auth, &api(&format!("/runs/{run_id}"))]);
            let run = json(&body);
            let status = run["status"].as_str().unwrap_or("").to_string();
            if ["COMPLETED", "FAILED", "SKIPPED"]
                .iter()
                .any(|p| status.starts_with(p))
            {
                break run;
            }
            assert!(
                started.elapsed() < Duration::from_secs(1800),
                "run {run_id} not final"
            );
            std::thread::sleep(Duration::from_millis(100));
        };
        let wall = started.elapsed().as_secs_f64();
        rows.push(Row {
            devices,
            label,
            wall,
            cpu_ms: (cpu_of(pid) - cpu_before) * 1000.0 / devices as f64,
            rss_mb: status_kb(pid, "VmHWM:") / 1024,
            sim_cpu_ms: (cpu_of(sim_pid) - sim_before) * 1000.0 / devices as f64,
            summary: format!("{} {}", run["status"], run["counts"]),
        });
    }
    drop(serve);
    rows
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let sizes: Vec<usize> = match std::env::var("NETRAVEN_SCALE_SIZES") {
        Ok(s) => s.split(',').filter_map(|x| x.trim().parse().ok()).collect(),
        Err(_) if std::env::var("NETRAVEN_BENCH_QUICK").is_ok() => vec![200, 600],
        Err(_) => vec![1000, 3000, 10000],
    };
    let bin = bin();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut rows = Vec::new();
    for &n in &sizes {
        let d = dir.path().join(format!("n{n}"));
        std::fs::create_dir_all(&d).expect("dir");
        let sim = Sim::start(&bin, &d, "inventory", n, PORT_BASE, &[]);
        let inv = sim.inventory.clone();
        let repo = d.join("backups.git");
        rows.push(backup(&bin, sim.child.id(), &inv, &repo, n, "first run"));
        rows.push(backup(
            &bin,
            sim.child.id(),
            &inv,
            &repo,
            n,
            "unchanged re-run",
        ));
        if std::env::var("NETRAVEN_SCALE_SERVE").map_or(true, |v| v != "0") {
            rows.extend(serve_rows(&bin, sim.child.id(), &inv, &d, n));
        }
        drop(sim);
    }
    println!(
        "| devices | run | wall s | devices/s | client CPU ms/device | client peak RSS MB | simulator CPU ms/device |"
    );
    println!("|---:|---|---:|---:|---:|---:|---:|");
    for r in &rows {
        println!(
            "| {} | {} | {:.2} | {:.0} | {:.2} | {} | {:.2} |",
            r.devices,
            r.label,
            r.wall,
            r.devices as f64 / r.wall.max(1e-9),
            r.cpu_ms,
            r.rss_mb,
            r.sim_cpu_ms
        );
    }
    for label in [
        "first run",
        "unchanged re-run",
        "serve, first run",
        "serve, unchanged re-run",
    ] {
        let of: Vec<&Row> = rows.iter().filter(|r| r.label == label).collect();
        if let (Some(small), Some(large)) = (of.first(), of.last()) {
            println!(
                "{label}: CPU per device at {} devices / at {} devices = {:.2}",
                large.devices,
                small.devices,
                large.cpu_ms / small.cpu_ms.max(1e-9)
            );
        }
    }
    for r in &rows {
        eprintln!("{} devices, {}: {}", r.devices, r.label, r.summary);
    }
}
