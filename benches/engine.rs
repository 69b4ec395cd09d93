//! Engine overhead without any network: one backup run of N scripted devices (FakeDriver, ~30 KB
//! configs with secrets and volatile lines) through the real engine, on the in-memory store and
//! queue and on the SQLite store. What it measures is everything NetRaven adds around an SSH
//! session: queueing, credential ranking, normalisation/redaction, hashing, snapshot index,
//! results, logs, run tallies.
//!
//! Run: `cargo bench --bench engine`. Env: NETRAVEN_BENCH_DEVICES (memory store, default 10000),
//! NETRAVEN_BENCH_SQLITE_DEVICES (default a fifth of that), NETRAVEN_BENCH_STORES (`memory`,
//! `sqlite` or both, comma-separated; default both). "CPU µs per device" is the process's user +
//! system time (Linux `/proc/self/stat`) over the run: on a shared machine it moves less than
//! the wall time. NETRAVEN_BENCH_PERF_CTL names a `perf record --control fifo:CTL` FIFO: the bench
//! writes `enable` before each run and `disable` after it, so a profile started with `-D -1`
//! holds the runs only, not the set-up of the devices.

use netraven_core::clock::SystemClock;
use netraven_core::driver::DriverRegistry;
use netraven_core::engine::{Engine, EngineConfig, EngineParts};
use netraven_core::memory::{FakeBehavior, FakeDriver, MemoryQueue, MemoryStore};
use netraven_core::normalise::Rules;
use netraven_core::prelude::*;
use netraven_core::snapshot::StoreSnapshotSink;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn config(i: usize) -> String {
    let mut s =
        format!("! Last configuration change at {i}\nhostname r{i}\nenable secret 5 $1$abc{i}\n");
    let mut n = 0;
    while s.len() < 30_000 {
        s.push_str(&format!(
            "interface GigabitEthernet1/0/{n}\n description link {n} of r{i}\n switchport access vlan {}\n snmp-server community c{n} RO\n!\n",
            n % 4000
        ));
        n += 1;
    }
    s
}

async fn one_run(
    store: Arc<dyn Store>,
    devices: usize,
    concurrency: usize,
) -> (Duration, Option<Duration>, RunCounts) {
    let rules = Rules::new(
        &[r"^! Last configuration change"],
        &[
            (r"^(enable secret \d+ )\S+", "${1}{marker}"),
            (r"^(\s*snmp-server community )\S+", "${1}{marker}"),
        ],
    )
    .expect("rules");
    let driver = Arc::new(FakeDriver::new("fake_ios", rules, FakeBehavior::default()));
    let mut reg = DriverRegistry::new();
    reg.register(driver.clone());
    let mut c = Credential::new("bench", "ops", Secret::new("pw"));
    c.tags = vec!["bench".into()];
    store.create_credential(&c).await.expect("credential");
    for i in 0..devices {
        driver.script(
            format!("r{i}"),
            FakeBehavior {
                config: config(i),
                ..FakeBehavior::default()
            },
        );
        let d = Device::new(format!("r{i}"), "127.0.0.1", "fake_ios").with_tags(["bench"]);
        store.create_device(&d).await.expect("device");
    }
    let job = store
        .create_job(&Job::backup(
            "bench",
            Targets {
                device_ids: vec![],
                tags: vec!["bench".into()],
            },
        ))
        .await
        .expect("job");
    let engine = Arc::new(Engine::new(
        EngineParts {
            store: store.clone(),
            queue: Arc::new(MemoryQueue::new(Arc::new(SystemClock))),
            drivers: Arc::new(reg),
            sink: Arc::new(StoreSnapshotSink::new(store.clone())),
            clock: Arc::new(SystemClock),
        },
        EngineConfig {
            concurrency,
            claim_wait: Duration::from_millis(20),
            device_attempts: 1,
            ..EngineConfig::default()
        },
    ));
    perf_ctl("enable");
    let started = Instant::now();
    let cpu_before = cpu_time();
    let run = engine.run_now(job.id, None).await.expect("run").run;
    engine.drain().await.expect("drain");
    let run = store.get_run(run.id).await.expect("run");
    assert!(
        run.status.is_final() && run.counts.succeeded as usize == devices,
        "{run:?}"
    );
    let wall = started.elapsed();
    perf_ctl("disable");
    let cpu = cpu_time()
        .zip(cpu_before)
        .map(|(after, before)| after.saturating_sub(before));
    (wall, cpu, run.counts)
}

/// Tells a waiting `perf record --control` to start or stop sampling (when asked to).
fn perf_ctl(cmd: &str) {
    if let Ok(path) = std::env::var("NETRAVEN_BENCH_PERF_CTL") {
        use std::io::Write;
        if let Ok(mut f) = std::fs::OpenOptions::new().write(true).open(path) {
            let _ = writeln!(f, "{cmd}");
        }
    }
}

/// User + system CPU time of this process so far (Linux; `None` elsewhere).
fn cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which may hold spaces) closed by the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line: 12 and 13 after the name.
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    // USER_HZ is 100 on every Linux this runs on.
    Some(Duration::from_millis(ticks * 10))
}

fn main() {
    let env_n = |k: &str| std::env::var(k).ok().and_then(|v| v.parse::<usize>().ok());
    let devices = env_n("NETRAVEN_BENCH_DEVICES").unwrap_or(10_000);
    let sqlite_devices = env_n("NETRAVEN_BENCH_SQLITE_DEVICES").unwrap_or(devices / 5);
    let stores = std::env::var("NETRAVEN_BENCH_STORES").unwrap_or_else(|_| "memory,sqlite".into());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    println!(
        "| store | devices | concurrency | wall s | devices/s | engine µs per device | CPU µs per device |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for (name, n) in [("memory", devices), ("sqlite (WAL file)", sqlite_devices)] {
        if !stores.split(',').any(|s| name.starts_with(s.trim())) {
            continue;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let (wall, cpu) = rt.block_on(async {
            let store: Arc<dyn Store> = if name == "memory" {
                Arc::new(MemoryStore::new())
            } else {
                let cipher = Arc::new(netraven::store::cipher::AesGcmCipher::from_key(
                    &netraven::store::cipher::KeyMaterial::generate(),
                ));
                Arc::new(
                    netraven::store::sql::SqliteStore::open(dir.path().join("bench.db"), cipher)
                        .await
                        .expect("sqlite"),
                )
            };
            let (wall, cpu, _) = one_run(store, n, 100).await;
            (wall, cpu)
        });
        println!(
            "| {name} | {n} | 100 | {:.2} | {:.0} | {:.0} | {} |",
            wall.as_secs_f64(),
            n as f64 / wall.as_secs_f64(),
            wall.as_micros() as f64 / n as f64,
            cpu.map(|c| format!("{:.0}", c.as_micros() as f64 / n as f64))
                .unwrap_or_else(|| "-".into())
        );
    }
}
