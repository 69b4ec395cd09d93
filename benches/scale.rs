//! Scale benchmark (issue "flat cost per device", issue 13 item 6): N simulated cisco_ios devices
//! (~30 KB configurations) backed up twice each (a first run that commits everything, then an
//! unchanged re-run) through three deployments:
//!
//! - `netraven backup` (one shot, in-memory store): wall time, client CPU per device, peak RSS;
//! - `netraven serve` (SQLite, embedded queue, port 7790, `worker.concurrency` 200);
//! - the distributed deployment: `netraven api` (port 7791), `netraven scheduler` and two
//!   `netraven worker` processes (concurrency 100 each: the same 200 devices in flight as serve)
//!   over PostgreSQL and Redis, in a database created for the bench (`netraven_scale_<pid>`,
//!   dropped at the end) and a Redis key prefix of its own (`netraven_scale_<pid>:`, deleted at
//!   the end).
//!
//! For both servers the inventory is imported with `POST /api/devices/import` and one backup job
//! over the `sim` tag is run twice. While a run is in progress two threads sample the API the way
//! an operator's pages would: `GET /api/runs/{id}` (the run page) and `GET /api/devices?page=1&size=50`
//! (the devices page, the web UI's page size; `NETRAVEN_SCALE_PAGE_SIZE` changes it), each request on its own loopback connection from
//! an in-process HTTP/1.1 client, one request every `NETRAVEN_SCALE_POLL_MS` (default 50) per
//! endpoint; the bench prints samples, p50, p99 and max per endpoint, and the same for 40
//! requests each with no run in progress once a deployment's runs are over ("idle"). A run
//! counts only if it ends `COMPLETED_SUCCESS` with every device succeeded (first run: every
//! device changed; re-run: none changed) and every sampled request answered 200; otherwise the
//! bench prints its tables and panics. Each server's CPU is measured per process over each run alone (not the import), peak
//! RSS is each process's high-water mark; "git settled" is the time from the run's start until
//! the server reports no snapshot waiting for a git commit.
//!
//! ```text
//! cargo build --profile release-debug -p netraven-bin   # or --release; the bench drives
//!                                                      # target/release/netraven
//! cargo bench --bench scale                   # 1,000 / 3,000 / 10,000 devices
//! NETRAVEN_SCALE_SIZES=1000,8000 cargo bench --bench scale
//! NETRAVEN_BENCH_QUICK=1 cargo bench --bench scale   # 200 / 600 devices, a smoke run
//! NETRAVEN_SCALE_BACKUP=0 / NETRAVEN_SCALE_SERVE=0 / NETRAVEN_SCALE_DISTRIBUTED=0: skip a mode
//! NETRAVEN_SCALE_PORT_BASE (default 8000): the simulator's first port
//! NETRAVEN_SCALE_PG_URL (default postgres://postgres@127.0.0.1:5432/test: where the bench's
//!   database is created), NETRAVEN_SCALE_REDIS_URL (default redis://127.0.0.1:6379)
//! ```
//!
//! The simulator and every NetRaven process run as child processes of the bench; the one-shot
//! client's CPU time and peak RSS come from GNU time (`/usr/bin/time -f`), the servers' and the
//! simulator's CPU from `/proc/PID/stat` over each run, PostgreSQL's and Redis's from every
//! `postgres` / `redis-server` process on the host (other users' work included). Devices listen
//! on ports 8000 and up (below the ephemeral range); the open-file limit must allow the fleet
//! plus the concurrency (`ulimit -n`). `psql` and `redis-cli` create and clean up the
//! distributed mode's database and keys. Only `cargo bench` runs it (`--bench`): a test run of
//! the bench targets returns at once.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

mod support;

use support::{Sim, cpu_time_of, status_kb};

/// First simulator port unless `NETRAVEN_SCALE_PORT_BASE` says otherwise.
const PORT_BASE: u16 = 8000;
const CONCURRENCY: usize = 200;
/// Port of the bench's `netraven serve`.
const SERVE_PORT: u16 = 7790;
/// Port of the distributed mode's `netraven api`.
const API_PORT: u16 = 7791;
const PASSWORD: &str = "scale-Bench-pw-1";
/// The distributed roles' credential key (base64 of 32 bytes; a throw-away database).
const ENCRYPTION_KEY: &str = "c2NhbGUtYmVuY2gta2V5LTAxMjM0NTY3ODlhYmNkZWY=";
const JWT_SECRET: &str = "scale-bench-jwt-secret-0123456789abcdef0123456789abcdef";
/// Longest a run may take before the bench gives up.
const RUN_TIMEOUT: Duration = Duration::from_secs(3600);

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

/// CPU time so far of every process on the host whose command name is `comm` (e.g. all of
/// PostgreSQL's backends), in seconds.
fn cpu_of_comm(comm: &str) -> f64 {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return 0.0;
    };
    dir.filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()))
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == comm)
        })
        .map(cpu_of)
        .sum()
}

fn env_on(name: &str) -> bool {
    std::env::var(name).map_or(true, |v| v != "0")
}

/// Latencies of one endpoint during one run.
#[derive(Default)]
struct Samples {
    /// Milliseconds per answered request.
    ms: Vec<f64>,
    /// Requests that failed or did not answer 200.
    errors: Vec<String>,
}

impl Samples {
    /// Nearest-rank percentile `p` (0–100) in ms.
    fn pct(&self, p: f64) -> f64 {
        let mut v = self.ms.clone();
        v.sort_by(|a, b| a.total_cmp(b));
        if v.is_empty() {
            return f64::NAN;
        }
        let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
        v[rank.clamp(1, v.len()) - 1]
    }
}

/// CPU and peak RSS of one process over one run.
struct ProcFigures {
    role: String,
    cpu_s: f64,
    rss_mb: u64,
}

struct Row {
    devices: usize,
    label: &'static str,
    wall: f64,
    /// Client (one-shot) or all server processes' CPU, ms per device.
    cpu_ms: f64,
    /// Peak RSS: the client's, or the server processes' added up.
    rss_mb: u64,
    sim_cpu_ms: f64,
    summary: String,
    /// Server rows: each process's figures.
    procs: Vec<ProcFigures>,
    /// Server rows: PostgreSQL and Redis CPU over the run (distributed mode), ms per device.
    backing_cpu_ms: Option<(f64, f64)>,
    /// Server rows: seconds from the run's start until no snapshot waited for git.
    git_settled: Option<f64>,
    /// Server rows: (endpoint, samples) while the run was in progress.
    api: Vec<(&'static str, Samples)>,
    /// The last server row of a deployment: (endpoint, samples) with no run in progress.
    api_idle: Vec<(&'static str, Samples)>,
    /// Server rows: the run's id.
    run_id: Option<i64>,
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
        procs: Vec::new(),
        backing_cpu_ms: None,
        git_settled: None,
        api: Vec::new(),
        api_idle: Vec::new(),
        run_id: None,
    }
}

/// A running NetRaven process, stopped (SIGTERM, then kill) when dropped.
struct Proc {
    role: String,
    child: Child,
}

impl Proc {
    /// Starts `netraven ARGS` in `dir` with `env`, its stderr in `dir/ROLE.log`.
    fn start(bin: &Path, role: &str, args: &[&str], dir: &Path, env: &[(&str, String)]) -> Proc {
        std::fs::create_dir_all(dir).expect("process dir");
        let log = std::fs::File::create(dir.join(format!("{role}.log"))).expect("log file");
        let child = Command::new(bin)
            .args(args)
            .current_dir(dir)
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap_or_else(|e| panic!("start netraven {role}: {e}"));
        Proc {
            role: role.to_string(),
            child,
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Panics if the process has exited (its log says why).
    fn alive(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!("netraven {} exited: {status}", self.role);
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One HTTP/1.1 request to `127.0.0.1:port` on a connection of its own (`Connection: close`):
/// (status, body). In process, so a sample measures the server's answer and a loopback connect,
/// not a process spawn.
fn http(
    port: u16,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<(&str, &[u8])>,
) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(300)))?;
    s.set_nodelay(true)?;
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\nAccept: application/json\r\n"
    );
    if let Some(t) = token {
        req.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    let payload = match body {
        Some((content_type, b)) => {
            req.push_str(&format!(
                "Content-Type: {content_type}\r\nContent-Length: {}\r\n",
                b.len()
            ));
            b
        }
        None => &[][..],
    };
    req.push_str("\r\n");
    let mut out = req.into_bytes();
    out.extend_from_slice(payload);
    s.write_all(&out)?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let bad = |m: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, m.to_string());
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| bad("no end of headers"))?;
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let mut rest = &raw[split + 4..];
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| bad("no status"))?;
    let chunked = head.lines().any(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("transfer-encoding:") && l.contains("chunked")
    });
    let body = if chunked {
        let mut b = Vec::new();
        loop {
            let eol = rest
                .windows(2)
                .position(|w| w == b"\r\n")
                .ok_or_else(|| bad("bad chunk"))?;
            let size_text = String::from_utf8_lossy(&rest[..eol]).to_string();
            let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
                .map_err(|_| bad("bad chunk size"))?;
            rest = &rest[eol + 2..];
            if size == 0 {
                break;
            }
            b.extend_from_slice(rest.get(..size).ok_or_else(|| bad("short chunk"))?);
            rest = rest.get(size + 2..).unwrap_or(&[]);
        }
        b
    } else {
        rest.to_vec()
    };
    Ok((status, String::from_utf8_lossy(&body).to_string()))
}

fn json(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

/// A NetRaven API for the bench: its port and a logged-in admin's token.
struct Api {
    port: u16,
    token: String,
}

impl Api {
    /// Waits until the server on `port` answers `/api/health`, then logs in as admin.
    fn connect(port: u16, procs: &mut [Proc]) -> Api {
        let deadline = Instant::now() + Duration::from_secs(120);
        while !matches!(http(port, "GET", "/api/health", None, None), Ok((200, _))) {
            procs.iter_mut().for_each(Proc::alive);
            assert!(Instant::now() < deadline, "the API did not answer");
            std::thread::sleep(Duration::from_millis(200));
        }
        let login = format!(r#"{{"username":"admin","password":"{PASSWORD}"}}"#);
        let (code, body) = http(
            port,
            "POST",
            "/api/auth/token",
            None,
            Some(("application/json", login.as_bytes())),
        )
        .expect("login");
        assert_eq!(code, 200, "login: {body}");
        let token = json(&body)["access_token"]
            .as_str()
            .expect("access_token")
            .to_string();
        Api { port, token }
    }

    fn get(&self, path: &str) -> serde_json::Value {
        let (code, body) = http(self.port, "GET", path, Some(&self.token), None)
            .unwrap_or_else(|e| panic!("GET {path}: {e}"));
        assert_eq!(code, 200, "GET {path}: {body}");
        json(&body)
    }

    fn post(&self, path: &str, content_type: &str, body: &[u8]) -> serde_json::Value {
        let (code, text) = http(
            self.port,
            "POST",
            path,
            Some(&self.token),
            Some((content_type, body)),
        )
        .unwrap_or_else(|e| panic!("POST {path}: {e}"));
        assert!(code < 300, "POST {path}: {code} {text}");
        json(&text)
    }
}

/// Samples `path` every `every` until `done`; `check` sees each answered body and may set `done`.
fn sample(
    api: &Api,
    path: &str,
    every: Duration,
    done: &AtomicBool,
    mut check: impl FnMut(&str),
) -> Samples {
    let mut s = Samples::default();
    while !done.load(Ordering::Acquire) {
        let t0 = Instant::now();
        match http(api.port, "GET", path, Some(&api.token), None) {
            Ok((200, body)) => {
                s.ms.push(t0.elapsed().as_secs_f64() * 1000.0);
                check(&body);
            }
            Ok((code, body)) => s.errors.push(format!("{code} {body}")),
            Err(e) => s.errors.push(e.to_string()),
        }
        std::thread::sleep(every.saturating_sub(t0.elapsed()));
    }
    s
}

const RUN_PAGE: &str = "GET /api/runs/{id}";
/// The devices page's request: `/api/devices?page=1&size=N`, N from `NETRAVEN_SCALE_PAGE_SIZE`
/// (default 50, the web UI's page; at most 100).
fn devices_path() -> &'static str {
    static PATH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    PATH.get_or_init(|| {
        let size: u32 = std::env::var("NETRAVEN_SCALE_PAGE_SIZE")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(50);
        format!("/api/devices?page=1&size={size}")
    })
}

/// The devices page's label in the tables.
fn devices_page() -> &'static str {
    static LABEL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    LABEL.get_or_init(|| format!("GET {}", devices_path()))
}
/// Requests per endpoint with no run in progress (after a deployment's runs).
const IDLE_SAMPLES: usize = 40;

/// Starts the job, samples both endpoints from two threads until the run is final: (wall seconds,
/// the final run, samples per endpoint).
fn run_sampled(
    api: &Api,
    job_id: i64,
    procs: &mut [Proc],
) -> (f64, serde_json::Value, Vec<(&'static str, Samples)>) {
    let every = Duration::from_millis(
        std::env::var("NETRAVEN_SCALE_POLL_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(50),
    );
    let started = Instant::now();
    let run_id = api.post(&format!("/api/jobs/{job_id}/run"), "application/json", b"")["run_id"]
        .as_i64()
        .expect("run id");
    let done = AtomicBool::new(false);
    let final_run = std::sync::Mutex::new(None);
    let (runs, devices) = std::thread::scope(|s| {
        let runs = s.spawn(|| {
            sample(api, &format!("/api/runs/{run_id}"), every, &done, |b| {
                let run = json(b);
                let status = run["status"].as_str().unwrap_or("").to_string();
                if ["COMPLETED", "FAILED", "SKIPPED"]
                    .iter()
                    .any(|p| status.starts_with(p))
                {
                    *final_run.lock().expect("lock") = Some((started.elapsed(), run));
                    done.store(true, Ordering::Release);
                }
            })
        });
        let devices = s.spawn(|| sample(api, devices_path(), every, &done, |_| {}));
        // Watch the processes and the clock while the threads sample.
        while !done.load(Ordering::Acquire) {
            if started.elapsed() > RUN_TIMEOUT
                || procs
                    .iter_mut()
                    .any(|p| p.child.try_wait().is_ok_and(|s| s.is_some()))
            {
                done.store(true, Ordering::Release);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        (
            runs.join().expect("run sampler"),
            devices.join().expect("devices sampler"),
        )
    });
    procs.iter_mut().for_each(Proc::alive);
    let (wall, run) = final_run
        .into_inner()
        .expect("lock")
        .unwrap_or_else(|| panic!("run {run_id} not final after {RUN_TIMEOUT:?}"));
    (
        wall.as_secs_f64(),
        run,
        vec![(RUN_PAGE, runs), (devices_page(), devices)],
    )
}

/// Seconds from `started` until the server reports no snapshot waiting for a git commit.
fn git_settled(api: &Api, started: Instant) -> f64 {
    let deadline = Instant::now() + Duration::from_secs(900);
    loop {
        let st = api.get("/api/system/status");
        if st["git"]["pending_snapshots"].as_u64() == Some(0) {
            return started.elapsed().as_secs_f64();
        }
        assert!(
            Instant::now() < deadline,
            "snapshots still pending for git: {}",
            st["git"]
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Whether a run is real: `COMPLETED_SUCCESS`, every device succeeded, and every device changed
/// (first run) or none did (re-run). Returns the problem otherwise.
fn check_run(run: &serde_json::Value, devices: usize, first: bool) -> Option<String> {
    let c = &run["counts"];
    let n = |k: &str| c[k].as_u64().unwrap_or(u64::MAX);
    let d = devices as u64;
    let ok = run["status"] == "COMPLETED_SUCCESS"
        && n("total") == d
        && n("succeeded") == d
        && n("failed") == 0
        && if first {
            n("changed") == d
        } else {
            n("unchanged") == d
        };
    (!ok).then(|| format!("run {}: {} {}", run["id"], run["status"], c))
}

/// The simulated fleet a server backs up.
#[derive(Clone, Copy)]
struct Fleet<'a> {
    /// The simulator's process.
    sim_pid: u32,
    /// Its inventory (CSV).
    inv: &'a Path,
    /// Its devices.
    devices: usize,
}

/// Imports the inventory, creates the job, runs it twice with sampling; one row per run.
/// `backing`: also measure PostgreSQL's and Redis's CPU.
fn server_rows(
    api: &Api,
    procs: &mut [Proc],
    fleet: Fleet,
    labels: [&'static str; 2],
    backing: bool,
    problems: &mut Vec<String>,
) -> Vec<Row> {
    let Fleet {
        sim_pid,
        inv,
        devices,
    } = fleet;
    let csv = std::fs::read(inv).expect("inventory");
    api.post("/api/devices/import", "text/csv", &csv);
    let listed = api.get("/api/devices?page=1&size=50");
    assert_eq!(
        listed["total"].as_u64(),
        Some(devices as u64),
        "imported devices"
    );
    let job = r#"{"name":"scale","kind":{"type":"backup"},"targets":{"tags":["sim"]},"schedule":{"type":"manual"}}"#;
    let job_id = api.post("/api/jobs", "application/json", job.as_bytes())["id"]
        .as_i64()
        .expect("job id");
    let mut rows = Vec::new();
    for (i, label) in labels.into_iter().enumerate() {
        let cpu_before: Vec<f64> = procs.iter().map(|p| cpu_of(p.pid())).collect();
        let sim_before = cpu_of(sim_pid);
        let backing_before =
            backing.then(|| (cpu_of_comm("postgres"), cpu_of_comm("redis-server")));
        let started = Instant::now();
        let (wall, run, api_samples) = run_sampled(api, job_id, procs);
        let figures: Vec<ProcFigures> = procs
            .iter()
            .zip(&cpu_before)
            .map(|(p, before)| ProcFigures {
                role: p.role.clone(),
                cpu_s: cpu_of(p.pid()) - before,
                rss_mb: status_kb(p.pid(), "VmHWM:") / 1024,
            })
            .collect();
        let sim_cpu = cpu_of(sim_pid) - sim_before;
        let backing_cpu_ms = backing_before.map(|(pg, redis)| {
            (
                (cpu_of_comm("postgres") - pg) * 1000.0 / devices as f64,
                (cpu_of_comm("redis-server") - redis) * 1000.0 / devices as f64,
            )
        });
        if let Some(p) = check_run(&run, devices, i == 0) {
            problems.push(format!("{devices} devices, {label}: {p}"));
        }
        for (endpoint, s) in &api_samples {
            if !s.errors.is_empty() {
                problems.push(format!(
                    "{devices} devices, {label}: {endpoint}: {} failed requests, first: {}",
                    s.errors.len(),
                    s.errors[0]
                ));
            }
        }
        let settled = git_settled(api, started);
        rows.push(Row {
            devices,
            label,
            wall,
            cpu_ms: figures.iter().map(|f| f.cpu_s).sum::<f64>() * 1000.0 / devices as f64,
            rss_mb: figures.iter().map(|f| f.rss_mb).sum(),
            sim_cpu_ms: sim_cpu * 1000.0 / devices as f64,
            summary: format!("{} {}", run["status"], run["counts"]),
            procs: figures,
            backing_cpu_ms,
            git_settled: Some(settled),
            api: api_samples,
            api_idle: Vec::new(),
            run_id: run["id"].as_i64(),
        });
    }
    // The same requests with nothing running, for comparison.
    if let Some(last) = rows.last_mut() {
        let run_id = last.run_id.expect("run id");
        last.api_idle = [
            (RUN_PAGE, format!("/api/runs/{run_id}")),
            (devices_page(), devices_path().to_string()),
        ]
        .into_iter()
        .map(|(endpoint, path)| {
            let mut s = Samples::default();
            for _ in 0..IDLE_SAMPLES {
                let t0 = Instant::now();
                match http(api.port, "GET", &path, Some(&api.token), None) {
                    Ok((200, _)) => s.ms.push(t0.elapsed().as_secs_f64() * 1000.0),
                    Ok((code, body)) => s.errors.push(format!("{code} {body}")),
                    Err(e) => s.errors.push(e.to_string()),
                }
            }
            (endpoint, s)
        })
        .collect();
        for (endpoint, s) in &last.api_idle {
            if let Some(e) = s.errors.first() {
                problems.push(format!("{devices} devices, idle: {endpoint}: {e}"));
            }
        }
    }
    rows
}

/// `netraven serve` on SQLite with the embedded queue.
fn serve_rows(
    bin: &Path,
    sim_pid: u32,
    inv: &Path,
    dir: &Path,
    devices: usize,
    problems: &mut Vec<String>,
) -> Vec<Row> {
    let mut procs = vec![Proc::start(
        bin,
        "serve",
        &["serve"],
        &dir.join("serve"),
        &[
            ("NETRAVEN_ADMIN_PASSWORD", PASSWORD.to_string()),
            ("NETRAVEN_API_LISTEN", format!("127.0.0.1:{SERVE_PORT}")),
            ("NETRAVEN_WORKER_CONCURRENCY", CONCURRENCY.to_string()),
        ],
    )];
    let api = Api::connect(SERVE_PORT, &mut procs);
    server_rows(
        &api,
        &mut procs,
        Fleet {
            sim_pid,
            inv,
            devices,
        },
        ["serve, first run", "serve, unchanged re-run"],
        false,
        problems,
    )
}

/// A PostgreSQL database created for the bench, dropped (connections ended) when dropped.
struct PgDb {
    admin_url: String,
    name: String,
}

fn psql(url: &str, sql: &str) -> Result<String, String> {
    let out = Command::new("psql")
        .args([url, "-v", "ON_ERROR_STOP=1", "-Atqc", sql])
        .output()
        .map_err(|e| format!("psql: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).to_string())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).to_string())
    }
}

impl PgDb {
    fn create(admin_url: &str, name: &str) -> PgDb {
        psql(admin_url, &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .and_then(|_| psql(admin_url, &format!("CREATE DATABASE {name}")))
            .unwrap_or_else(|e| {
                panic!(
                    "cannot create database {name} through {admin_url} ({e}); set NETRAVEN_SCALE_PG_URL, or NETRAVEN_SCALE_DISTRIBUTED=0 to skip the distributed mode"
                )
            });
        PgDb {
            admin_url: admin_url.to_string(),
            name: name.to_string(),
        }
    }

    /// The same server's URL with this database.
    fn url(&self) -> String {
        let base = self.admin_url.split('?').next().unwrap_or(&self.admin_url);
        let server = base.rsplit_once('/').map_or(base, |(s, _)| s);
        format!("{server}/{}", self.name)
    }
}

impl Drop for PgDb {
    fn drop(&mut self) {
        if let Err(e) = psql(
            &self.admin_url,
            &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
        ) {
            eprintln!("dropping database {}: {e}", self.name);
        }
    }
}

/// Deletes every Redis key under a prefix when dropped.
struct RedisKeys {
    url: String,
    prefix: String,
}

impl RedisKeys {
    fn clean(&self) {
        let Ok(out) = Command::new("redis-cli")
            .args(["-u", &self.url, "--scan", "--pattern"])
            .arg(format!("{}*", self.prefix))
            .output()
        else {
            eprintln!("redis-cli is not available: keys {}* left", self.prefix);
            return;
        };
        let keys: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect();
        for chunk in keys.chunks(500) {
            let _ = Command::new("redis-cli")
                .args(["-u", &self.url, "DEL"])
                .args(chunk)
                .stdout(Stdio::null())
                .status();
        }
    }
}

impl Drop for RedisKeys {
    fn drop(&mut self) {
        self.clean();
    }
}

/// `netraven api`, `netraven scheduler` and two `netraven worker`s over PostgreSQL and Redis.
fn distributed_rows(
    bin: &Path,
    sim_pid: u32,
    inv: &Path,
    dir: &Path,
    devices: usize,
    problems: &mut Vec<String>,
) -> Vec<Row> {
    let admin_url = std::env::var("NETRAVEN_SCALE_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let redis_url = std::env::var("NETRAVEN_SCALE_REDIS_URL")
        .unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let name = format!("netraven_scale_{}", std::process::id());
    // Declared first so they are dropped last, after the processes stopped.
    let db = PgDb::create(&admin_url, &name);
    let keys = RedisKeys {
        url: redis_url.clone(),
        prefix: format!("{name}:"),
    };
    keys.clean();
    let dir = dir.join("distributed");
    let env = |listen: Option<u16>, concurrency: usize| {
        let mut e = vec![
            ("NETRAVEN_DATABASE_URL", db.url()),
            ("NETRAVEN_REDIS_URL", redis_url.clone()),
            ("NETRAVEN_QUEUE_PREFIX", name.clone()),
            ("NETRAVEN_ENCRYPTION_KEY", ENCRYPTION_KEY.to_string()),
            ("NETRAVEN_JWT_SECRET", JWT_SECRET.to_string()),
            ("NETRAVEN_ADMIN_PASSWORD", PASSWORD.to_string()),
            ("NETRAVEN_WORKER_CONCURRENCY", concurrency.to_string()),
            ("NETRAVEN_DATA_DIR", ".".to_string()),
        ];
        if let Some(p) = listen {
            e.push(("NETRAVEN_API_LISTEN", format!("127.0.0.1:{p}")));
        }
        e
    };
    let per_worker = std::env::var("NETRAVEN_SCALE_WORKER_CONCURRENCY")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(CONCURRENCY / 2);
    let migrate = Command::new(bin)
        .arg("migrate")
        .envs(env(None, per_worker).iter().map(|(k, v)| (*k, v.as_str())))
        .env("RUST_LOG", "warn")
        .output()
        .expect("run netraven migrate");
    assert!(
        migrate.status.success(),
        "netraven migrate: {}",
        String::from_utf8_lossy(&migrate.stderr)
    );
    let mut procs: Vec<Proc> = [
        ("api", "api", Some(API_PORT)),
        ("scheduler", "scheduler", None),
        ("worker-1", "worker", None),
        ("worker-2", "worker", None),
    ]
    .into_iter()
    .map(|(name, role, port)| {
        Proc::start(bin, name, &[role], &dir.join(name), &env(port, per_worker))
    })
    .collect();
    let api = Api::connect(API_PORT, &mut procs);
    // Both workers heartbeat before the runs start, so both share them from the first device.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let st = api.get("/api/system/status");
        let live: u64 = st["zones"]
            .as_array()
            .map(|z| z.iter().filter_map(|z| z["live_workers"].as_u64()).sum())
            .unwrap_or(0);
        if live >= 2 {
            break;
        }
        procs.iter_mut().for_each(Proc::alive);
        assert!(
            Instant::now() < deadline,
            "workers not live: {}",
            st["zones"]
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let rows = server_rows(
        &api,
        &mut procs,
        Fleet {
            sim_pid,
            inv,
            devices,
        },
        ["distributed, first run", "distributed, unchanged re-run"],
        true,
        problems,
    );
    drop(procs);
    drop(keys);
    drop(db);
    rows
}

fn main() {
    // `cargo bench` passes --bench; a test run of the bench targets (`cargo test --benches`)
    // does not, and must not start a fleet.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let sizes: Vec<usize> = match std::env::var("NETRAVEN_SCALE_SIZES") {
        Ok(s) => s.split(',').filter_map(|x| x.trim().parse().ok()).collect(),
        Err(_) if std::env::var("NETRAVEN_BENCH_QUICK").is_ok() => vec![200, 600],
        Err(_) => vec![1000, 3000, 10000],
    };
    let port_base = std::env::var("NETRAVEN_SCALE_PORT_BASE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(PORT_BASE);
    let largest = sizes.iter().copied().max().unwrap_or(0);
    let fleet = u32::from(port_base)..u32::from(port_base) + largest as u32;
    assert!(
        fleet.end <= 32768
            && ![SERVE_PORT, API_PORT]
                .iter()
                .any(|p| fleet.contains(&u32::from(*p))),
        "simulator ports {fleet:?} must stay below the ephemeral range and clear of {SERVE_PORT} and {API_PORT}"
    );
    let bin = bin();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut rows = Vec::new();
    let mut problems = Vec::new();
    for &n in &sizes {
        let d = dir.path().join(format!("n{n}"));
        std::fs::create_dir_all(&d).expect("dir");
        let sim = Sim::start(&bin, &d, "inventory", n, port_base, &[]);
        let inv = sim.inventory.clone();
        let sim_pid = sim.child.id();
        if env_on("NETRAVEN_SCALE_BACKUP") {
            let repo = d.join("backups.git");
            rows.push(backup(&bin, sim_pid, &inv, &repo, n, "first run"));
            rows.push(backup(&bin, sim_pid, &inv, &repo, n, "unchanged re-run"));
        }
        if env_on("NETRAVEN_SCALE_SERVE") {
            rows.extend(serve_rows(&bin, sim_pid, &inv, &d, n, &mut problems));
        }
        if env_on("NETRAVEN_SCALE_DISTRIBUTED") {
            rows.extend(distributed_rows(&bin, sim_pid, &inv, &d, n, &mut problems));
        }
        drop(sim);
    }
    print_rows(&rows);
    for r in &rows {
        eprintln!("{} devices, {}: {}", r.devices, r.label, r.summary);
    }
    assert!(
        problems.is_empty(),
        "runs that do not count:\n{}",
        problems.join("\n")
    );
}

fn print_rows(rows: &[Row]) {
    println!(
        "| devices | run | wall s | devices/s | client or server CPU ms/device | peak RSS MB | simulator CPU ms/device |"
    );
    println!("|---:|---|---:|---:|---:|---:|---:|");
    for r in rows {
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
    let servers: Vec<&Row> = rows.iter().filter(|r| !r.procs.is_empty()).collect();
    if !servers.is_empty() {
        println!();
        println!(
            "| devices | run | git settled s | CPU ms/device per process | peak RSS MB per process | PostgreSQL / Redis CPU ms/device |"
        );
        println!("|---:|---|---:|---|---|---|");
        for r in &servers {
            let cpu: Vec<String> = r
                .procs
                .iter()
                .map(|p| format!("{} {:.2}", p.role, p.cpu_s * 1000.0 / r.devices as f64))
                .collect();
            let rss: Vec<String> = r
                .procs
                .iter()
                .map(|p| format!("{} {}", p.role, p.rss_mb))
                .collect();
            println!(
                "| {} | {} | {:.1} | {} | {} | {} |",
                r.devices,
                r.label,
                r.git_settled.unwrap_or(f64::NAN),
                cpu.join(", "),
                rss.join(", "),
                r.backing_cpu_ms
                    .map_or("–".to_string(), |(pg, redis)| format!(
                        "{pg:.2} / {redis:.2}"
                    ))
            );
        }
        println!();
        println!("| devices | run | endpoint | samples | p50 ms | p99 ms | max ms |");
        println!("|---:|---|---|---:|---:|---:|---:|");
        for r in &servers {
            let mode = r.label.split(',').next().unwrap_or("");
            let idle = format!("{mode}, idle after the runs");
            let lines = r.api.iter().map(|(e, s)| (r.label, e, s));
            let idle_lines = r.api_idle.iter().map(|(e, s)| (idle.as_str(), e, s));
            for (label, endpoint, s) in lines.chain(idle_lines) {
                println!(
                    "| {} | {} | `{}` | {} | {:.1} | {:.1} | {:.1} |",
                    r.devices,
                    label,
                    endpoint,
                    s.ms.len(),
                    s.pct(50.0),
                    s.pct(99.0),
                    s.pct(100.0)
                );
            }
        }
    }
    for label in [
        "first run",
        "unchanged re-run",
        "serve, first run",
        "serve, unchanged re-run",
        "distributed, first run",
        "distributed, unchanged re-run",
    ] {
        let of: Vec<&Row> = rows.iter().filter(|r| r.label == label).collect();
        if let (Some(small), Some(large)) = (of.first(), of.last())
            && of.len() > 1
        {
            println!(
                "{label}: CPU per device at {} devices / at {} devices = {:.2}",
                large.devices,
                small.devices,
                large.cpu_ms / small.cpu_ms.max(1e-9)
            );
        }
    }
}
