//! A layered snapshot sink: every configuration also goes to a plain directory, next to git.
//!
//! `DirectoryMirror` (shipped in `netraven::store::mirror`) wraps the sink below it — here git,
//! the default — like object_store's wrappers: `put` goes to git, then the file is written
//! atomically as `<dir>/<hostname>.cfg`, the same name git uses. The example first runs the
//! public sink conformance suite on the layered sink, then backs up a simulated fleet through the
//! builder with the layer added, and checks that the directory is byte-identical to git's HEAD.
//!
//! Run: `cargo run --example custom_sink --features sim`

use netraven::Netraven;
use netraven::core::memory::MemoryStore;
use netraven::core::prelude::*;
use netraven::drivers::sim::{SimConfig, SimFleet};
use netraven::store::git::{GitWriter, GitWriterConfig};
use netraven::store::mirror::DirectoryMirror;
use std::sync::Arc;

#[tokio::main]
pub async fn main() -> Result<()> {
    let dir = std::env::temp_dir().join(format!("netraven-sink-{}", std::process::id()));

    // 1. The layer over git passes the conformance suite every sink must pass.
    let store = Arc::new(MemoryStore::new());
    let git = GitWriter::open(GitWriterConfig::new(dir.join("suite.git")), store)?;
    let mirror = DirectoryMirror::new(dir.join("suite-mirror"), Arc::new(git))?;
    netraven::core::testkit::sink::run_all(Arc::new(mirror), 1).await;
    println!("sink conformance suite: passed");

    // 2. The same layer in a real deployment, through the builder.
    let fleet = SimFleet::start(SimConfig {
        devices: 4,
        ..SimConfig::default()
    })
    .await?;
    let mirror_dir = dir.join("mirror");
    let layer_dir = mirror_dir.clone();
    let nr = Netraven::builder()
        .data_dir(dir.join("data"))
        .sink_layer(move |git| Ok(Arc::new(DirectoryMirror::new(layer_dir, git)?)))
        .build()
        .await?;
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
        .create_job(&Job::backup("mirrored", targets.clone()))
        .await?;
    let run = nr.run_and_wait(job.id).await?;
    println!("run {}: {}", run.id, run.status.as_str());

    // 3. Every device's file in the directory equals the file in git's HEAD, byte for byte.
    let git = nr
        .git()
        .ok_or_else(|| Error::internal("git is the default sink"))?;
    let head = git
        .head_commit()
        .await?
        .ok_or_else(|| Error::internal("nothing was committed"))?;
    for id in targets.device_ids {
        let meta = nr
            .store()
            .latest_snapshot(id)
            .await?
            .ok_or_else(|| Error::internal(format!("device {id} has no snapshot")))?;
        let in_git = git.read_blob(&head, &git.path_for(&meta)).await?;
        let path = mirror_dir.join(netraven::core::snapshot::device_file_name(&meta.hostname));
        let on_disk = std::fs::read_to_string(&path)
            .map_err(|e| Error::internal(format!("{}: {e}", path.display())))?;
        if on_disk != in_git {
            return Err(Error::internal(format!(
                "{} differs from git",
                path.display()
            )));
        }
        println!("{} = git {head:.8}:{}", path.display(), git.path_for(&meta));
    }
    println!(
        "mirror matches git HEAD for {} devices",
        fleet.devices().len()
    );
    Ok(())
}
