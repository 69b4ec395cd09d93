//! Wiring: the library's [`Builder`](netraven::Builder) from [`Config::builder`], with the roles
//! a process plays.

use crate::config::Config;
use netraven::Netraven;
use netraven_core::prelude::*;
use std::sync::Arc;

/// The wired parts of one process: the library handle and the configuration it came from.
#[derive(Debug, Clone)]
pub struct Node {
    /// Effective configuration.
    pub config: Config,
    /// Store, queue, sink (git where this process holds the repository), engine, roles.
    pub nr: Netraven,
}

/// Opens the configured store (applying migrations), with its users and tokens.
pub async fn open_store(cfg: &Config) -> Result<Arc<dyn ServerStore>> {
    cfg.builder("cli")?.open_store().await
}

/// Wires every part from configuration. `distributed` roles (api, scheduler, worker as separate
/// processes) need the Redis queue: the embedded queue lives inside one process. Only roles that
/// commit (`serve`, `scheduler`, `demo`) open the git repository; the others write snapshots to
/// the store's index, which the maintenance leader commits. Only a `worker` process keeps
/// `worker.zone`.
pub async fn build(cfg: &Config, role: &str, distributed: bool) -> Result<Node> {
    if distributed && cfg.queue.redis_url.is_none() {
        return Err(Error::invalid(
            "separate api/scheduler/worker processes need queue.redis_url (NETRAVEN_REDIS_URL); \
             use `netraven serve` for a single process",
        ));
    }
    // Only a `worker` process works on a zone; `serve`'s worker is the default zone's.
    let mut cfg = cfg.clone();
    if role != "worker" {
        cfg.worker.zone = None;
    }
    let cfg = &cfg;
    let mut b = cfg.builder(role)?;
    if matches!(role, "api" | "worker") {
        b = b.without_git();
    }
    Ok(Node {
        config: cfg.clone(),
        nr: b.build().await?,
    })
}
