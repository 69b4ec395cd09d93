//! Following a run as it happens: each device's result and log lines arrive while the run is
//! working, then the run's final status.
//!
//! `run_with_events` subscribes before the run is queued, so nothing is missed; results recorded
//! by workers in other processes are read from the store, so the stream is complete for results
//! wherever the work happens.
//!
//! Run: `cargo run --example events --features sim`

use netraven::Netraven;
use netraven::core::events::Event;
use netraven::core::prelude::*;
use netraven::drivers::sim::{SimConfig, SimFleet};

#[tokio::main]
pub async fn main() -> Result<()> {
    let fleet = SimFleet::start(SimConfig {
        devices: 3,
        ..SimConfig::default()
    })
    .await?;
    // In memory, no git: this example is about the events.
    let nr = Netraven::builder()
        .in_memory()
        .without_git()
        .build()
        .await?;
    let mut targets = Targets::default();
    for dev in fleet.devices() {
        let cred = nr.store().upsert_credential(&dev.credential()).await?;
        let mut device = dev.core_device();
        device.credential_id = Some(cred.id);
        targets
            .device_ids
            .push(nr.store().upsert_device(&device).await?.id);
    }
    let job = nr
        .store()
        .upsert_job(&Job::backup("watched", targets))
        .await?;
    nr.start(); // a worker in this process
    let (run, mut events) = nr.run_with_events(job.id).await?;
    let mut results = 0;
    let mut finished = None;
    while let Some(event) = events.next().await {
        match event? {
            Event::Result(r) => {
                results += 1;
                println!("result: device {} {}", r.device_id, r.status.as_str());
            }
            Event::Log(l) => println!("log:    {}", l.message),
            Event::RunFinished { status, .. } => finished = Some(status),
            _ => {}
        }
    }
    nr.shutdown().await?;
    let status = finished.ok_or_else(|| Error::internal("the stream ended before the run"))?;
    println!("run {}: {} ({results} results)", run.id, status.as_str());
    if results != fleet.devices().len() || status != RunStatus::CompletedSuccess {
        return Err(Error::internal("expected one successful result per device"));
    }
    Ok(())
}
