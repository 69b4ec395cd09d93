//! Engine overhead without any network: one backup run of N scripted devices (FakeDriver, ~30 KB
//! configs with secrets and volatile lines) through the real engine, on the in-memory store and
//! queue and on the SQLite store. What it measures is everything NetRaven adds around an SSH
//! session: queueing, credential ranking, normalisation/redaction, hashing, snapshot index,
//! results, logs, run tallies.
//!
//! Run: `cargo bench --bench engine` (env NETRAVEN_BENCH_DEVICES, default 10000).

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
) -> (Duration, RunCounts) {
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
    let started = Instant::now();
    let run = engine.run_now(job.id, None).await.expect("run").run;
    engine.drain().await.expect("drain");
    let run = store.get_run(run.id).await.expect("run");
    assert!(
        run.status.is_final() && run.counts.succeeded as usize == devices,
        "{run:?}"
    );
    (started.elapsed(), run.counts)
}

fn main() {
    let devices: usize = std::env::var("NETRAVEN_BENCH_DEVICES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    println!("| store | devices | concurrency | wall s | devices/s | engine µs per device |");
    println!("|---|---:|---:|---:|---:|---:|");
    for (name, n) in [("memory", devices), ("sqlite (WAL file)", devices / 5)] {
        let dir = tempfile::tempdir().expect("tempdir");
        let wall = rt.block_on(async {
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
            one_run(store, n, 100).await.0
        });
        println!(
            "| {name} | {n} | 100 | {:.2} | {:.0} | {:.0} |",
            wall.as_secs_f64(),
            n as f64 / wall.as_secs_f64(),
            wall.as_micros() as f64 / n as f64
        );
    }
}
