//! Wiring: turns a [`Config`] into the library's [`Builder`] settings. The builder (in the
//! `netraven` crate) opens the backends; this file only maps configuration onto it.

use crate::config::Config;
use netraven::{Builder, Netraven};
use netraven_core::engine::EngineConfig;
use netraven_core::maintenance::MaintenanceConfig;
use netraven_core::prelude::*;
use netraven_store::git::GitWriterConfig;
use std::sync::Arc;
use std::time::Duration;

/// The wired parts of one process: the library handle and the configuration it came from.
#[derive(Debug, Clone)]
pub struct Node {
    /// Effective configuration.
    pub config: Config,
    /// Store, queue, sink (git where this process holds the repository), engine, roles.
    pub nr: Netraven,
}

/// Engine settings from configuration.
pub fn engine_config(cfg: &Config) -> EngineConfig {
    let w = &cfg.worker;
    EngineConfig {
        concurrency: w.concurrency.max(1),
        device_timeout: Duration::from_secs(w.device_timeout_secs.max(1)),
        connect_timeout: Duration::from_secs(w.connect_timeout_secs.max(1)),
        command_timeout: Duration::from_secs(w.command_timeout_secs.max(1)),
        device_attempts: w.attempts.max(1),
        retry_backoff: Duration::from_secs(w.retry_backoff_secs),
        shutdown_grace: Duration::from_secs(w.shutdown_grace_secs),
        lease: Duration::from_secs(w.lease_secs.max(1)),
        ..EngineConfig::default()
    }
}

/// The library builder for this configuration: store, queue, key, git, platforms, engine,
/// scheduler and maintenance settings.
pub fn builder(cfg: &Config, role: &str) -> Result<Builder> {
    let mut git = GitWriterConfig::new(cfg.git_repo());
    git.push_remote = cfg.git.push_remote.clone();
    let mut b = Netraven::builder()
        .data_dir(&cfg.data_dir)
        .encryption_key(cfg.security.encryption_key.clone())
        .key_file(cfg.key_file())
        .git_config(git)
        .platform_dir(cfg.platforms_dir.clone())
        .engine_config(engine_config(cfg))
        .scheduler_tick(Duration::from_secs(cfg.scheduler.tick_secs.max(1)))
        .maintenance_config(MaintenanceConfig {
            log_retention: Duration::from_secs(u64::from(cfg.logs.retention_days) * 86_400),
            ..MaintenanceConfig::default()
        })
        .role(role);
    match &cfg.database.url {
        Some(url) if url.starts_with("postgres") => b = b.postgres(url, &cfg.database.schema),
        Some(url) => {
            return Err(Error::invalid(format!(
                "database.url must be a postgres:// URL (got '{}'); leave it unset for SQLite",
                crate::config::mask_url_password(url)
            )));
        }
        None => {}
    }
    if let Some(url) = &cfg.queue.redis_url {
        b = b.redis(url, &cfg.queue.prefix);
    }
    Ok(b)
}

/// Opens the configured store (applying migrations).
pub async fn open_store(cfg: &Config) -> Result<Arc<dyn Store>> {
    builder(cfg, "cli")?.open_store().await
}

/// Wires every part from configuration. `distributed` roles (api, scheduler, worker as separate
/// processes) need the Redis queue: the embedded queue lives inside one process. Only roles that
/// commit (`serve`, `scheduler`, `demo`) open the git repository; the others write snapshots to
/// the store's index, which the maintenance leader commits.
pub async fn build(cfg: &Config, role: &str, distributed: bool) -> Result<Node> {
    if distributed && cfg.queue.redis_url.is_none() {
        return Err(Error::invalid(
            "separate api/scheduler/worker processes need queue.redis_url (NETRAVEN_REDIS_URL); \
             use `netraven serve` for a single process",
        ));
    }
    let mut b = builder(cfg, role)?;
    if matches!(role, "api" | "worker") {
        b = b.without_git();
    }
    Ok(Node {
        config: cfg.clone(),
        nr: b.build().await?,
    })
}
