//! Running the server's roles: `serve` (everything in one process), `api`, `scheduler` and
//! `worker`. Each takes a shutdown token and returns when it has stopped cleanly.

use crate::api::{ApiState, ensure_admin, router};
use crate::config::Config;
use crate::wiring::{Node, build};
use netraven_core::prelude::*;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Reads the JWT secret from configuration, or from `<data_dir>/jwt.secret` (created once with
/// mode 0600).
pub fn jwt_secret(cfg: &Config) -> Result<Vec<u8>> {
    if let Some(s) = &cfg.api.jwt_secret {
        return Ok(s.as_bytes().to_vec());
    }
    // Same file handling as the credential key: generated once with mode 0600, never
    // overwritten when damaged.
    let key = netraven_store::cipher::load_or_create_key_file(&cfg.data_dir.join("jwt.secret"))?;
    Ok(key.to_base64().into_bytes())
}

/// Serves the API on `listener` until `shutdown`. Creates the first admin user if there is none
/// and prints its generated password once.
pub async fn run_api(
    node: &Node,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> Result<()> {
    if let Some(password) = ensure_admin(
        node.store.clone(),
        std::env::var("NETRAVEN_ADMIN_PASSWORD").ok(),
    )
    .await?
    {
        println!(
            "created user 'admin' with password: {password}\n(shown once; change it with `netraven user passwd admin`)"
        );
    }
    let state = ApiState::new(
        node.store.clone(),
        node.engine.clone(),
        node.sink.clone(),
        jwt_secret(&node.config)?,
    );
    let app = router(state);
    let addr = listener
        .local_addr()
        .map_err(|e| Error::internal(e.to_string()))?;
    tracing::info!(%addr, "API listening");
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
        .map_err(|e| Error::new(ErrorKind::Unavailable, format!("API server failed: {e}")))
}

async fn bind(cfg: &Config) -> Result<TcpListener> {
    TcpListener::bind(&cfg.api.listen).await.map_err(|e| {
        Error::new(
            ErrorKind::Unavailable,
            format!("cannot listen on {}: {e}", cfg.api.listen),
        )
    })
}

/// Spawns a role and turns its outcome into one error type.
async fn join_all(handles: Vec<tokio::task::JoinHandle<Result<()>>>) -> Result<()> {
    let mut first_err = None;
    for h in handles {
        match h.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::error!(error = %e, "a server role failed");
                first_err.get_or_insert(e);
            }
            Err(e) => {
                first_err.get_or_insert(Error::internal(format!("a server role panicked: {e}")));
            }
        }
    }
    first_err.map_or(Ok(()), Err)
}

/// `netraven serve`: API, scheduler, maintenance and a worker in one process.
pub async fn serve(cfg: &Config, shutdown: CancellationToken) -> Result<()> {
    let node = build(cfg, "serve", false).await?;
    let listener = bind(cfg).await?;
    serve_node(node, listener, shutdown).await
}

/// Runs every role of an already wired node (used by `serve` and `demo`).
pub async fn serve_node(
    node: Node,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> Result<()> {
    let mut handles = Vec::new();
    let (n, s) = (node.clone(), shutdown.clone());
    handles.push(tokio::spawn(async move { run_api(&n, listener, s).await }));
    let (n, s) = (node.clone(), shutdown.clone());
    handles.push(tokio::spawn(async move { n.scheduler().run(s).await }));
    let (n, s) = (node.clone(), shutdown.clone());
    handles.push(tokio::spawn(async move { n.run_maintenance(s).await }));
    let (n, s) = (node.clone(), shutdown.clone());
    handles.push(tokio::spawn(
        async move { n.engine.clone().run_worker(s).await },
    ));
    let r = join_all(handles).await;
    // A role that failed stops the others too.
    shutdown.cancel();
    r
}

/// `netraven api`: the REST API alone.
pub async fn api(cfg: &Config, shutdown: CancellationToken) -> Result<()> {
    let node = build(cfg, "api", true).await?;
    let listener = bind(cfg).await?;
    run_api(&node, listener, shutdown).await
}

/// `netraven scheduler`: the scheduler and maintenance (recovery, git writer, log pruning). Any
/// number may run; leases make exactly one act.
pub async fn scheduler(cfg: &Config, shutdown: CancellationToken) -> Result<()> {
    let node = build(cfg, "scheduler", true).await?;
    let (n, s) = (node.clone(), shutdown.clone());
    let sched = tokio::spawn(async move { n.scheduler().run(s).await });
    let (n, s) = (node.clone(), shutdown.clone());
    let maint = tokio::spawn(async move { n.run_maintenance(s).await });
    join_all(vec![sched, maint]).await
}

/// `netraven worker`: works on devices until shutdown, then finishes or hands back its tasks.
pub async fn worker(cfg: &Config, shutdown: CancellationToken) -> Result<()> {
    let node = build(cfg, "worker", true).await?;
    node.engine.clone().run_worker(shutdown).await
}
