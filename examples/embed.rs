//! Embedding NetRaven: back up a (simulated) fleet from your own program with the library alone.
//!
//! It starts three simulated devices on 127.0.0.1, wires the in-memory store and queue, the
//! built-in SSH drivers and the snapshot sink, runs one backup job through the engine, and prints
//! each device's result and the stored configuration of the first one.
//!
//! Run: `cargo run --example embed --features sim`

use netraven::core::clock::SystemClock;
use netraven::core::engine::{Engine, EngineConfig, EngineParts};
use netraven::core::memory::{MemoryQueue, MemoryStore};
use netraven::core::prelude::*;
use netraven::core::snapshot::StoreSnapshotSink;
use netraven::drivers::sim::{SimConfig, SimFleet};
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<()> {
    // Three devices to talk to (use your real inventory instead).
    let fleet = SimFleet::start(SimConfig {
        devices: 3,
        platforms: vec![
            "cisco_ios".into(),
            "arista_eos".into(),
            "juniper_junos".into(),
        ],
        ..SimConfig::default()
    })
    .await?;

    // The parts: any Store, Queue and SnapshotSink implementation works here (SQLite,
    // PostgreSQL, Redis from netraven::store, or your own).
    let store = Arc::new(MemoryStore::new());
    let clock = Arc::new(SystemClock);
    let drivers = netraven::drivers::build_registry(store.clone(), None)?;
    let engine = Arc::new(Engine::new(
        EngineParts {
            store: store.clone(),
            queue: Arc::new(MemoryQueue::new(clock.clone())),
            drivers: Arc::new(drivers),
            sink: Arc::new(StoreSnapshotSink::new(store.clone())),
            clock,
        },
        EngineConfig::default(),
    ));

    // Devices and credentials; each simulated device has its own login, pinned to it here.
    let mut ids = Vec::new();
    for dev in fleet.devices() {
        let cred = store.create_credential(&dev.credential()).await?;
        let mut d = dev.core_device();
        d.credential_id = Some(cred.id);
        ids.push(store.create_device(&d).await?.id);
    }
    let job = store
        .create_job(&Job::backup(
            "nightly",
            Targets {
                device_ids: ids,
                tags: vec![],
            },
        ))
        .await?;

    // Run it now and work until the queue is empty (a server would call `run_worker`).
    let run = engine.run_now(job.id, None).await?.run;
    engine.drain().await?;
    let run = store.get_run(run.id).await?;
    println!(
        "run {}: {} ({} devices)",
        run.id,
        run.status.as_str(),
        run.counts.total
    );
    let results = store
        .list_results(
            &ResultFilter {
                run_id: Some(run.id),
                ..Default::default()
            },
            Page::first(100),
        )
        .await?;
    for r in &results.items {
        let d = store.get_device(r.device_id).await?;
        println!(
            "  {:<12} {:<8} {}",
            d.hostname,
            r.status.as_str(),
            r.message.as_deref().unwrap_or("")
        );
    }
    if let Some(snap) = results.items.iter().find_map(|r| r.snapshot_id) {
        let s = store.get_snapshot(snap).await?;
        println!(
            "\nfirst lines of {}'s stored configuration:",
            s.meta.hostname
        );
        for line in s.content.lines().take(15) {
            println!("  {line}");
        }
    }
    Ok(())
}
