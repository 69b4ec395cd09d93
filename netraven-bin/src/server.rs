//! Running the server's roles: `serve` (everything in one process), `api`, `scheduler` and
//! `worker`. Each takes a shutdown token and returns when it has stopped cleanly.

use crate::api::{ApiState, ensure_admin, router};
use crate::config::Config;
use crate::wiring::{Node, build};
use netraven_core::prelude::*;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Shortest JWT signing secret accepted (HS256 keys shorter than the hash are guessable).
pub const MIN_JWT_SECRET: usize = 32;

/// Reads the JWT secret from configuration, or from `<data_dir>/jwt.secret` (created once with
/// mode 0600 — only with SQLite and the embedded queue: with PostgreSQL or Redis several hosts
/// must share one secret, so a missing one stops the process instead of being generated).
pub fn jwt_secret(cfg: &Config) -> Result<Vec<u8>> {
    if let Some(s) = &cfg.api.jwt_secret {
        if s.len() < MIN_JWT_SECRET {
            return Err(Error::invalid(format!(
                "api.jwt_secret (NETRAVEN_JWT_SECRET) is {} bytes; at least {MIN_JWT_SECRET} are required",
                s.len()
            )));
        }
        return Ok(s.as_bytes().to_vec());
    }
    let path = cfg.data_dir.join("jwt.secret");
    if (cfg.database.url.is_some() || cfg.queue.redis_url.is_some()) && !path.exists() {
        return Err(Error::invalid(format!(
            "no JWT secret: with PostgreSQL or Redis set api.jwt_secret (NETRAVEN_JWT_SECRET, at \
             least {MIN_JWT_SECRET} bytes, the same on every API host) or provide {}; refusing to \
             generate one",
            path.display()
        )));
    }
    // Same file handling as the credential key: generated once with mode 0600, never
    // overwritten when damaged.
    let key = netraven_store::cipher::load_or_create_key_file(&path)?;
    Ok(key.to_base64().into_bytes())
}

/// The node's store with its users and tokens (what the API needs).
fn server_store(node: &Node) -> Result<std::sync::Arc<dyn ServerStore>> {
    node.nr
        .server_store()
        .cloned()
        .ok_or_else(|| Error::invalid("the API needs a store that keeps users and tokens"))
}

/// Creates the first admin user if there is none (password from `NETRAVEN_ADMIN_PASSWORD`, else
/// generated and returned to be shown once).
pub async fn first_admin(node: &Node) -> Result<Option<String>> {
    let password = std::env::var("NETRAVEN_ADMIN_PASSWORD").ok();
    ensure_admin(server_store(node)?, password).await
}

/// Serves the API on `listener` until `shutdown`, after [`first_admin`] (a generated password
/// is printed once).
pub async fn run_api(
    node: &Node,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> Result<()> {
    if let Some(pw) = first_admin(node).await? {
        println!(
            "created user 'admin' with password: {pw}\n(shown once; change it with `netraven user passwd admin`)"
        );
    }
    let state = ApiState::new(
        server_store(node)?,
        node.nr.engine().clone(),
        node.nr.sink().clone(),
        jwt_secret(&node.config)?,
    );
    let allowed = &node.config.security.allowed_commands;
    let state = if allowed.is_empty() {
        state
    } else {
        state.with_allowed_commands(allowed)?
    };
    let app = router(state.with_shutdown(shutdown.clone()));
    let addr = listener
        .local_addr()
        .map_err(|e| Error::internal(e.to_string()))?;
    tracing::info!(%addr, "API listening");
    // The client address keys the failed-login limiter.
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(async move { shutdown.cancelled().await })
    .await
    .map_err(|e| Error::new(ErrorKind::Unavailable, format!("API server failed: {e}")))
}

/// Binds the configured API address.
pub async fn bind(cfg: &Config) -> Result<TcpListener> {
    TcpListener::bind(&cfg.api.listen).await.map_err(|e| {
        Error::new(
            ErrorKind::Unavailable,
            format!("cannot listen on {}: {e}", cfg.api.listen),
        )
    })
}

/// `netraven serve`: API, scheduler, maintenance and a worker in one process.
pub async fn serve(cfg: &Config, shutdown: CancellationToken) -> Result<()> {
    let node = build(cfg, "serve", false).await?;
    let listener = bind(cfg).await?;
    serve_node(node, listener, shutdown).await
}

/// Runs every role of an already wired node (used by `serve` and `demo`): the library's worker,
/// scheduler and maintenance, and the API, each supervised ([`netraven::Netraven::spawn_role`]):
/// a role that fails or panics is logged, stops the others gracefully and makes this return its
/// error (the process exits non-zero).
pub async fn serve_node(
    node: Node,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> Result<()> {
    node.nr.start();
    let (n, stop) = (node.clone(), node.nr.shutdown_token());
    netraven::integrations::start_notifier(&node.nr, &node.config.notify, stop.clone())?;
    start_syslog(&node, stop.clone()).await?;
    node.nr
        .spawn_role("api", async move { run_api(&n, listener, stop).await });
    node.nr.stop_on(shutdown).await
}

/// `netraven api`: the REST API alone (supervised like every role).
pub async fn api(cfg: &Config, shutdown: CancellationToken) -> Result<()> {
    let node = build(cfg, "api", true).await?;
    let listener = bind(cfg).await?;
    let (n, stop) = (node.clone(), node.nr.shutdown_token());
    start_syslog(&node, stop.clone()).await?;
    node.nr
        .spawn_role("api", async move { run_api(&n, listener, stop).await });
    node.nr.stop_on(shutdown).await
}

/// Starts the syslog listener (`[syslog]`) when it is configured: run by the roles that face
/// the network, `serve` and `api`.
pub async fn start_syslog(node: &Node, shutdown: CancellationToken) -> Result<()> {
    if let Some((udp, tcp)) = netraven::syslog::start(
        &node.nr,
        &node.config.syslog,
        node.config.platforms_dir.as_deref(),
        shutdown,
    )
    .await?
    {
        tracing::info!(?udp, ?tcp, "syslog listener started");
    }
    Ok(())
}

/// `netraven scheduler`: the scheduler and maintenance (recovery, git writer, log pruning). Any
/// number may run; leases make exactly one act. A role that fails stops the process (non-zero).
pub async fn scheduler(cfg: &Config, shutdown: CancellationToken) -> Result<()> {
    let node = build(cfg, "scheduler", true).await?;
    node.nr.start_scheduler();
    node.nr.start_maintenance();
    node.nr.stop_on(shutdown).await
}

/// `netraven worker`: works on devices until shutdown, then finishes or hands back its tasks. A
/// worker that fails or panics stops the process (non-zero).
pub async fn worker(cfg: &Config, shutdown: CancellationToken) -> Result<()> {
    let node = build(cfg, "worker", true).await?;
    netraven::integrations::start_notifier(&node.nr, &cfg.notify, node.nr.shutdown_token())?;
    node.nr.start_worker();
    node.nr.stop_on(shutdown).await
}
