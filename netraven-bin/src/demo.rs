//! `netraven demo`: the newcomer's first command. Starts the library's demo fleet
//! ([`netraven::demo`]) on 127.0.0.1 and the embedded server over it, runs the demo job once,
//! prints the API address, the admin login and the first run's summary, and serves until Ctrl-C.

use crate::config::Config;
use crate::wiring::build;
use netraven::demo::{DemoOptions, register, report, start_fleet};
use netraven_core::prelude::*;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Runs the demo until `shutdown`.
pub async fn run(cfg: &Config, opts: &DemoOptions, shutdown: CancellationToken) -> Result<()> {
    let fleet = start_fleet(opts).await?;
    println!(
        "simulated fleet: {} devices on 127.0.0.1:{}..",
        fleet.devices().len(),
        fleet.port_base()
    );
    let mut cfg = cfg.clone();
    // Faulty demo devices should fail fast rather than after three minutes.
    cfg.worker.device_timeout_secs = cfg.worker.device_timeout_secs.min(20);
    cfg.worker.connect_timeout_secs = cfg.worker.connect_timeout_secs.min(10);
    cfg.worker.command_timeout_secs = cfg.worker.command_timeout_secs.min(10);
    cfg.worker.attempts = 1;
    let node = build(&cfg, "demo", false).await?;
    let job = register(node.nr.store().as_ref(), &fleet).await?;
    let listener = TcpListener::bind(&cfg.api.listen)
        .await
        .map_err(|e| Error::unavailable(format!("cannot listen on {}: {e}", cfg.api.listen)))?;
    let addr = listener
        .local_addr()
        .map_err(|e| Error::internal(e.to_string()))?;
    let server = tokio::spawn(crate::server::serve_node(
        node.clone(),
        listener,
        shutdown.clone(),
    ));
    println!(
        "web page: http://{addr}/   API: http://{addr}/api  (health: http://{addr}/api/health, metrics: http://{addr}/metrics)"
    );
    println!("data directory: {}", cfg.data_dir.display());
    let run = node.nr.run_now(job.id).await?;
    println!("first run {} of job '{}' started...", run.id, job.name);
    let run = tokio::select! {
        r = node.nr.wait(run.id) => r?,
        _ = shutdown.cancelled() => node.nr.store().get_run(run.id).await?,
    };
    print!("first {}", report(node.nr.store().as_ref(), &run).await?);
    println!("serving until Ctrl-C; log in with POST http://{addr}/api/auth/token");
    let r = server
        .await
        .map_err(|e| Error::internal(format!("server panicked: {e}")))?;
    drop(fleet);
    r
}
