//! `netraven demo`: the newcomer's first command. Starts the library's demo fleet
//! ([`netraven::demo`]) on 127.0.0.1 and the embedded server over it, prints the web page and the
//! admin login, runs the demo job once (live progress on a terminal), prints its summary, and
//! serves until Ctrl-C.

use crate::config::Config;
use crate::wiring::build;
use netraven::demo::{DemoOptions, job_devices, progress, register, report, start_fleet};
use netraven_core::prelude::*;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Runs the demo until `shutdown`; `bar` draws the first run's progress (see
/// `LogPlan::progress_bar`).
pub async fn run(
    cfg: &Config,
    opts: &DemoOptions,
    bar: bool,
    shutdown: CancellationToken,
) -> Result<()> {
    let mut cfg = cfg.clone();
    // The demo's simulated devices listen on 127.0.0.1.
    cfg.security.allow_loopback = true;
    // The demo's faulty devices fail within seconds, so the first summary does not wait on them.
    let w = &mut cfg.worker;
    (w.device_timeout_secs, w.attempts) = (w.device_timeout_secs.min(5), 1);
    w.connect_timeout_secs = w.connect_timeout_secs.min(5);
    w.command_timeout_secs = w.command_timeout_secs.min(5);
    let fleet = start_fleet(opts).await?;
    let node = build(&cfg, "demo", false).await?;
    let listener = crate::server::bind(&cfg).await?;
    let addr = listener
        .local_addr()
        .map_err(|e| Error::internal(e.to_string()))?;
    println!("web page: http://{addr}/   API: http://{addr}/api");
    match crate::server::first_admin(&node).await? {
        Some(pw) => println!("login: admin / {pw}   (shown once; `netraven user passwd admin`)"),
        None => println!("login: admin (NETRAVEN_ADMIN_PASSWORD, or as set when it was created)"),
    }
    println!(
        "simulated fleet: {} devices on 127.0.0.1:{}..; data directory: {}",
        fleet.devices().len(),
        fleet.port_base(),
        cfg.data_dir.display()
    );
    let job = register(node.nr.store().as_ref(), &fleet).await?;
    let server = tokio::spawn(crate::server::serve_node(
        node.clone(),
        listener,
        shutdown.clone(),
    ));
    let run = node.nr.run_now(job.id).await?;
    println!("first run {} of job '{}' started", run.id, job.name);
    let run = tokio::select! {
        r = watch(&node.nr, run.id, &job, bar) => r?,
        _ = shutdown.cancelled() => node.nr.store().get_run(run.id).await?,
    };
    print!("first {}", report(node.nr.store().as_ref(), &run).await?);
    println!("serving until Ctrl-C");
    let r = server
        .await
        .map_err(|e| Error::internal(format!("server panicked: {e}")))?;
    drop(fleet);
    r
}

/// Waits until run `id` is final, drawing its progress when `bar` is set.
async fn watch(nr: &netraven::Netraven, id: RunId, job: &Job, bar: bool) -> Result<Run> {
    if !bar {
        return nr.wait(id).await;
    }
    let devices = job_devices(nr.store().as_ref(), job).await?;
    let pb = indicatif::ProgressBar::new(devices.len() as u64);
    if let Ok(style) =
        indicatif::ProgressStyle::with_template("{bar:20} {pos}/{len} done: {wide_msg}")
    {
        pb.set_style(style);
    }
    loop {
        let p = progress(nr.store().as_ref(), id, &devices).await?;
        pb.set_message(p.message());
        pb.set_length(p.total.max(devices.len() as u64));
        pb.set_position(p.done);
        if p.running.is_empty() && p.total > 0 || nr.store().get_run(id).await?.status.is_final() {
            pb.finish_and_clear();
            return nr.wait(id).await;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
