//! Wiring: turns a [`Config`] into running parts. This is the only place that knows which
//! backend serves which trait; everything else speaks the core traits.

use crate::config::Config;
use netraven_core::clock::{Clock, SystemClock};
use netraven_core::engine::{Engine, EngineConfig, EngineParts};
use netraven_core::prelude::*;
use netraven_core::scheduler::{Scheduler, SchedulerConfig};
use netraven_core::snapshot::StoreSnapshotSink;
use netraven_store::cipher::{AesGcmCipher, KeyMaterial, load_or_create_key_file};
use netraven_store::git::{GitWriter, GitWriterConfig};
use netraven_store::queue::{EmbeddedQueue, RedisQueue};
use netraven_store::sql::{PostgresOptions, PostgresStore, SqliteOptions, SqliteStore};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Name of the lease held by the process that runs maintenance (recovery, git commits, log
/// pruning): one per deployment.
pub const MAINTENANCE_LEASE: &str = "maintenance";

/// The wired parts of one process.
#[derive(Debug, Clone)]
pub struct Node {
    /// Effective configuration.
    pub config: Config,
    /// Source of truth.
    pub store: Arc<dyn Store>,
    /// Delivery.
    pub queue: Arc<dyn Queue>,
    /// Snapshot sink (store index; git is written by the maintenance leader).
    pub sink: Arc<dyn SnapshotSink>,
    /// The engine.
    pub engine: Arc<Engine>,
    /// Time.
    pub clock: Arc<dyn Clock>,
    /// This process's identity.
    pub id: String,
}

/// Loads the credential cipher: the configured key, or the key file (created on first start in
/// the embedded default).
pub fn cipher(cfg: &Config) -> Result<Arc<AesGcmCipher>> {
    let key = match &cfg.security.encryption_key {
        Some(b64) => KeyMaterial::from_base64(b64)?,
        None => {
            std::fs::create_dir_all(&cfg.data_dir).map_err(|e| {
                Error::new(
                    ErrorKind::Unavailable,
                    format!("cannot create {}", cfg.data_dir.display()),
                )
                .with_source(e)
            })?;
            load_or_create_key_file(&cfg.key_file())?
        }
    };
    let mut cipher = AesGcmCipher::from_key(&key);
    // Keys of an interrupted or earlier `keys rotate` still decrypt (never encrypt).
    for ext in ["key.next", "key.prev"] {
        let path = cfg.key_file().with_extension(ext);
        if path.exists() {
            cipher = cipher.with_old_key(&netraven_store::cipher::load_key_file(&path)?)?;
        }
    }
    Ok(Arc::new(cipher))
}

/// Opens the configured store (PostgreSQL if `database.url` is set, else SQLite in the data
/// directory) and applies migrations.
pub async fn open_store(cfg: &Config, cipher: Arc<dyn SecretCipher>) -> Result<Arc<dyn Store>> {
    open_store_with(cfg, cipher, true).await
}

/// [`open_store`], applying pending migrations only if `migrate`.
pub async fn open_store_with(
    cfg: &Config,
    cipher: Arc<dyn SecretCipher>,
    migrate: bool,
) -> Result<Arc<dyn Store>> {
    match &cfg.database.url {
        Some(url) if url.starts_with("postgres") => {
            let schema = cfg.database.schema.clone();
            let o = PostgresOptions {
                schema,
                migrate,
                ..Default::default()
            };
            Ok(Arc::new(PostgresStore::connect_with(url, o, cipher).await?))
        }
        Some(url) => Err(Error::invalid(format!(
            "database.url must be a postgres:// URL (got '{}'); leave it unset for SQLite",
            crate::config::mask_url_password(url)
        ))),
        None => {
            std::fs::create_dir_all(&cfg.data_dir).map_err(|e| {
                Error::new(
                    ErrorKind::Unavailable,
                    format!("cannot create {}", cfg.data_dir.display()),
                )
                .with_source(e)
            })?;
            let o = SqliteOptions {
                migrate,
                ..Default::default()
            };
            let path = cfg.data_dir.join("netraven.db");
            Ok(Arc::new(SqliteStore::open_with(path, o, cipher).await?))
        }
    }
}

/// Engine settings from configuration.
pub fn engine_config(cfg: &Config, id: &str) -> EngineConfig {
    let w = &cfg.worker;
    EngineConfig {
        worker_id: id.to_string(),
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

/// Wires every part from configuration. `distributed` roles (api, scheduler, worker as separate
/// processes) need the Redis queue: the embedded queue lives inside one process.
pub async fn build(cfg: &Config, role: &str, distributed: bool) -> Result<Node> {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let id = format!(
        "{role}-{}-{}",
        hostname(),
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    let store = open_store(cfg, cipher(cfg)?).await?;
    let queue: Arc<dyn Queue> = match &cfg.queue.redis_url {
        Some(url) => Arc::new(RedisQueue::connect(url, &cfg.queue.prefix, clock.clone()).await?),
        None if distributed => {
            return Err(Error::invalid(
                "separate api/scheduler/worker processes need queue.redis_url (NETRAVEN_REDIS_URL); \
                 use `netraven serve` for a single process",
            ));
        }
        None => Arc::new(EmbeddedQueue::new(clock.clone())),
    };
    let drivers = netraven_drivers::build_registry(store.clone(), cfg.platforms_dir.as_deref())?;
    let sink: Arc<dyn SnapshotSink> = Arc::new(StoreSnapshotSink::new(store.clone()));
    let engine = Arc::new(Engine::new(
        EngineParts {
            store: store.clone(),
            queue: queue.clone(),
            drivers: Arc::new(drivers),
            sink: sink.clone(),
            clock: clock.clone(),
        },
        engine_config(cfg, &id),
    ));
    Ok(Node {
        config: cfg.clone(),
        store,
        queue,
        sink,
        engine,
        clock,
        id,
    })
}

impl Node {
    /// The scheduler of this node.
    pub fn scheduler(&self) -> Scheduler {
        Scheduler::new(
            self.store.clone(),
            self.queue.clone(),
            self.clock.clone(),
            SchedulerConfig {
                holder: self.id.clone(),
                tick: Duration::from_secs(self.config.scheduler.tick_secs.max(1)),
                ..SchedulerConfig::default()
            },
        )
    }

    /// Maintenance until `shutdown`, done only by the holder of the maintenance lease: recovery
    /// of unfinished work from the store (at start and every 30 s), reaping expired leases,
    /// committing pending snapshots to git (the one git writer), and pruning old logs.
    pub async fn run_maintenance(&self, shutdown: CancellationToken) -> Result<()> {
        let mut git_cfg = GitWriterConfig::new(self.config.git_repo());
        git_cfg.push_remote = self.config.git.push_remote.clone();
        let git = GitWriter::open(git_cfg, self.store.clone())?;
        let mut last_recover: Option<tokio::time::Instant> = None;
        let mut last_prune: Option<tokio::time::Instant> = None;
        loop {
            let leader = self
                .store
                .try_acquire_lease(
                    MAINTENANCE_LEASE,
                    &self.id,
                    Duration::from_secs(30),
                    self.clock.now(),
                )
                .await
                .unwrap_or(false);
            if leader {
                if last_recover.is_none_or(|t| t.elapsed() >= Duration::from_secs(30)) {
                    last_recover = Some(tokio::time::Instant::now());
                    if let Err(e) = self.engine.recover().await {
                        tracing::warn!(error = %e, "recovery failed");
                    }
                }
                if let Err(e) = self.queue.reap_expired().await {
                    tracing::warn!(error = %e, "reaping expired leases failed");
                }
                // The git writer and the store log their own successes (one line per event).
                if let Err(e) = git.commit_pending().await {
                    tracing::warn!(error = %e, "committing snapshots to git failed");
                }
                if last_prune.is_none_or(|t| t.elapsed() >= Duration::from_secs(3600)) {
                    last_prune = Some(tokio::time::Instant::now());
                    let before = self.clock.now()
                        - chrono::Duration::days(self.config.logs.retention_days as i64);
                    if let Err(e) = self.store.prune_logs(before, 10_000).await {
                        tracing::warn!(error = %e, "pruning logs failed");
                    }
                }
            }
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
        // Commit what is pending before leaving, so a clean shutdown leaves git up to date.
        if let Err(e) = git.commit_all_pending().await {
            tracing::warn!(error = %e, "final git commit failed");
        }
        let _ = self.store.release_lease(MAINTENANCE_LEASE, &self.id).await;
        Ok(())
    }
}

fn hostname() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "node".into())
}

/// A token cancelled on SIGINT or SIGTERM.
pub fn shutdown_on_signals() -> CancellationToken {
    let token = CancellationToken::new();
    let t = token.clone();
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        {
            let mut term =
                match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot listen for SIGTERM");
                        let _ = ctrl_c.await;
                        t.cancel();
                        return;
                    }
                };
            tokio::select! {
                _ = ctrl_c => {}
                _ = term.recv() => {}
            }
        }
        #[cfg(not(unix))]
        {
            let _ = ctrl_c.await;
        }
        tracing::info!("shutdown requested");
        t.cancel();
    });
    token
}
