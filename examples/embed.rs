//! Embedding NetRaven: the whole server-less engine in your own program — SQLite, the credential
//! key file, the built-in SSH drivers, the in-process queue and git, wired by the same builder
//! the reference server uses.
//!
//! It starts three simulated devices on 127.0.0.1, registers them, runs one backup job, and
//! prints the run's status and the git commit holding the configurations.
//!
//! Run: `cargo run --example embed --features sim`

use netraven::Netraven;
use netraven::core::prelude::*;
use netraven::drivers::sim::{SimConfig, SimFleet};

#[tokio::main]
pub async fn main() -> Result<()> {
    // Three devices to talk to (use your real inventory instead).
    let devices = 3;
    let fleet = SimFleet::start(SimConfig {
        devices,
        ..SimConfig::default()
    })
    .await?;
    // Everything lives under one directory: netraven.db, secret.key, configs.git.
    let dir = std::env::temp_dir().join(format!("netraven-embed-{}", std::process::id()));
    let nr = Netraven::builder().data_dir(&dir).build().await?;
    let mut targets = Targets::default();
    for dev in fleet.devices() {
        let cred = nr.store().create_credential(&dev.credential()).await?;
        let mut device = dev.core_device();
        device.credential_id = Some(cred.id);
        targets
            .device_ids
            .push(nr.store().create_device(&device).await?.id);
    }
    let job = nr
        .store()
        .create_job(&Job::backup("nightly", targets))
        .await?;
    // Works the run to the end and commits its snapshots to git.
    let run = nr.run_and_wait(job.id).await?;
    println!("run {}: {}", run.id, run.status.as_str());
    let git = nr
        .git()
        .ok_or_else(|| Error::internal("git is the default sink"))?;
    let head = git.head_commit().await?.unwrap_or_default();
    println!("git {}: commit {head}", git.config().path.display());
    Ok(())
}
