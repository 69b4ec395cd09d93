//! [`Netraven::builder`]: the engine with its backends wired, as the reference server wires it.
//!
//! ```no_run
//! # async fn demo() -> netraven::core::Result<()> {
//! use netraven::Netraven;
//! let nr = Netraven::builder().data_dir("./netraven-data").build().await?;
//! nr.start(); // worker, scheduler and maintenance (git commits) in this process
//! // ... create devices and jobs through `nr.store()`, then:
//! // let run = nr.run_and_wait(job_id).await?;
//! nr.shutdown().await?;
//! # Ok(()) }
//! ```
//!
//! Defaults (the server's): SQLite in `<data_dir>/netraven.db`, credentials encrypted with the
//! key file `<data_dir>/secret.key` (created with mode 0600), the in-process queue, the built-in
//! SSH drivers with host keys pinned in the store, and git in `<data_dir>/configs.git` as the
//! snapshot sink, committed by the maintenance leader.

use netraven_core::clock::{Clock, SystemClock};
use netraven_core::driver::{Driver, DriverRegistry};
use netraven_core::engine::{Engine, EngineConfig, EngineParts};
use netraven_core::events::{Event, Health, RoleState, RunEvents};
use netraven_core::maintenance::{Maintenance, MaintenanceConfig};
use netraven_core::memory::MemoryStore;
use netraven_core::prelude::*;
use netraven_core::scheduler::{Scheduler, SchedulerConfig};
use netraven_core::snapshot::StoreSnapshotSink;
use netraven_store::cipher::AesGcmCipher;
use netraven_store::git::{GitWriter, GitWriterConfig};
use netraven_store::keys::{Rotation, load_cipher, rotate_key_file};
use netraven_store::queue::{EmbeddedQueue, RedisQueue, RedisQueueOptions};
use netraven_store::sql::{PostgresOptions, PostgresStore, SqliteOptions, SqliteStore};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Wraps the sink built so far in another (a mirror, a tee, an embedder's own layer).
pub type SinkLayer = Box<dyn FnOnce(Arc<dyn SnapshotSink>) -> Result<Arc<dyn SnapshotSink>> + Send>;

#[derive(Clone)]
enum StoreChoice {
    Sqlite,
    Postgres { url: String, schema: String },
    Memory,
    Custom(Arc<dyn Store>),
    CustomServer(Arc<dyn ServerStore>),
}

#[derive(Clone)]
enum QueueChoice {
    Embedded,
    Redis { url: String, prefix: String },
    Custom(Arc<dyn Queue>),
}

// Hand-written so that a URL's password never reaches `{:?}` of a builder.
impl std::fmt::Debug for StoreChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreChoice::Sqlite => f.write_str("Sqlite"),
            StoreChoice::Postgres { url, schema } => f
                .debug_struct("Postgres")
                .field("url", &netraven_core::secret::mask_url(url))
                .field("schema", schema)
                .finish(),
            StoreChoice::Memory => f.write_str("Memory"),
            StoreChoice::Custom(s) => f.debug_tuple("Custom").field(s).finish(),
            StoreChoice::CustomServer(s) => f.debug_tuple("CustomServer").field(s).finish(),
        }
    }
}

impl std::fmt::Debug for QueueChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            QueueChoice::Embedded => f.write_str("Embedded"),
            QueueChoice::Redis { url, prefix } => f
                .debug_struct("Redis")
                .field("url", &netraven_core::secret::mask_url(url))
                .field("prefix", prefix)
                .finish(),
            QueueChoice::Custom(q) => f.debug_tuple("Custom").field(q).finish(),
        }
    }
}

/// Builds a [`Netraven`]. Every setting has the reference server's default.
pub struct Builder {
    data_dir: PathBuf,
    store: StoreChoice,
    queue: QueueChoice,
    encryption_key: Option<String>,
    key_file: Option<PathBuf>,
    git: Option<GitWriterConfig>,
    git_enabled: bool,
    platforms_dir: Option<PathBuf>,
    ssh_options: netraven_drivers::SshOptions,
    drivers: Vec<Arc<dyn Driver>>,
    layers: Vec<SinkLayer>,
    base_sink: Option<Arc<dyn SnapshotSink>>,
    engine: EngineConfig,
    scheduler_tick: Duration,
    maintenance: MaintenanceConfig,
    role: String,
    clock: Arc<dyn Clock>,
    clock_driven: bool,
}

impl std::fmt::Debug for Builder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Builder")
            .field("data_dir", &self.data_dir)
            .field("store", &self.store)
            .field("queue", &self.queue)
            .field("git_enabled", &self.git_enabled)
            .finish_non_exhaustive()
    }
}

impl Default for Builder {
    fn default() -> Self {
        Builder {
            data_dir: PathBuf::from("./netraven-data"),
            store: StoreChoice::Sqlite,
            queue: QueueChoice::Embedded,
            encryption_key: None,
            key_file: None,
            git: None,
            git_enabled: true,
            platforms_dir: None,
            ssh_options: netraven_drivers::SshOptions::default(),
            drivers: Vec::new(),
            layers: Vec::new(),
            base_sink: None,
            engine: EngineConfig::default(),
            scheduler_tick: Duration::from_secs(5),
            maintenance: MaintenanceConfig::default(),
            role: "node".into(),
            clock: Arc::new(SystemClock),
            clock_driven: false,
        }
    }
}

fn create_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| {
        Error::unavailable(format!("cannot create {}: {e}", dir.display())).with_source(e)
    })
}

impl Builder {
    /// Directory of the SQLite database, the key file and the git repository
    /// (default `./netraven-data`).
    pub fn data_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.data_dir = dir.into();
        self
    }

    /// SQLite in the data directory (the default).
    pub fn sqlite(mut self) -> Self {
        self.store = StoreChoice::Sqlite;
        self
    }

    /// PostgreSQL at `url`, in `schema`.
    pub fn postgres(mut self, url: impl Into<String>, schema: impl Into<String>) -> Self {
        self.store = StoreChoice::Postgres {
            url: url.into(),
            schema: schema.into(),
        };
        self
    }

    /// The in-memory store (nothing persists; host keys and history live as long as the
    /// process).
    pub fn in_memory(mut self) -> Self {
        self.store = StoreChoice::Memory;
        self
    }

    /// Any [`Store`] implementation (the engine's traits only: such a process keeps no API users,
    /// so [`Netraven::server_store`] is `None`).
    pub fn store(mut self, store: Arc<dyn Store>) -> Self {
        self.store = StoreChoice::Custom(store);
        self
    }

    /// Any [`ServerStore`] implementation (a [`Store`] that also keeps API users and tokens).
    pub fn server_store(mut self, store: Arc<dyn ServerStore>) -> Self {
        self.store = StoreChoice::CustomServer(store);
        self
    }

    /// The Redis queue at `url`, keys under `prefix` (needed when workers run in other
    /// processes).
    pub fn redis(mut self, url: impl Into<String>, prefix: impl Into<String>) -> Self {
        self.queue = QueueChoice::Redis {
            url: url.into(),
            prefix: prefix.into(),
        };
        self
    }

    /// Any [`Queue`] implementation.
    pub fn queue(mut self, queue: Arc<dyn Queue>) -> Self {
        self.queue = QueueChoice::Custom(queue);
        self
    }

    /// The credential key (base64, 32 bytes) instead of the key file.
    pub fn encryption_key(mut self, base64: Option<String>) -> Self {
        self.encryption_key = base64;
        self
    }

    /// The key file (default `<data_dir>/secret.key`).
    pub fn key_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.key_file = Some(path.into());
        self
    }

    /// The git repository (default `<data_dir>/configs.git`).
    pub fn git(mut self, repo: impl Into<PathBuf>) -> Self {
        self.git = Some(GitWriterConfig::new(repo));
        self.git_enabled = true;
        self
    }

    /// Full git writer settings (branch, layout, push remote, batching).
    pub fn git_config(mut self, config: GitWriterConfig) -> Self {
        self.git = Some(config);
        self.git_enabled = true;
        self
    }

    /// No git in this process: snapshots go to the store's index only and another process (the
    /// maintenance leader with git enabled) commits them. For API-only and worker-only processes.
    pub fn without_git(mut self) -> Self {
        self.git_enabled = false;
        self
    }

    /// A sink of your own instead of git and the store index (layers still wrap it); no git
    /// writer runs in this process. The one-shot backup uses it for its streaming git sink.
    pub fn sink(mut self, sink: Arc<dyn SnapshotSink>) -> Self {
        self.base_sink = Some(sink);
        self.git_enabled = false;
        self
    }

    /// A directory of platform files (`*.toml`) added to or overriding the built-ins.
    pub fn platform_dir(mut self, dir: Option<PathBuf>) -> Self {
        self.platforms_dir = dir;
        self
    }

    /// Options of the built-in SSH drivers (e.g. `max_output_bytes`, the largest output of one
    /// command).
    pub fn ssh_options(mut self, options: netraven_drivers::SshOptions) -> Self {
        self.ssh_options = options;
        self
    }

    /// A code driver, registered after the built-in platforms (so it overrides one by name).
    pub fn driver(mut self, driver: Arc<dyn Driver>) -> Self {
        self.drivers.push(driver);
        self
    }

    /// Wraps the sink (git, or the store index without git) in a layer; layers apply in order.
    pub fn sink_layer(
        mut self,
        layer: impl FnOnce(Arc<dyn SnapshotSink>) -> Result<Arc<dyn SnapshotSink>> + Send + 'static,
    ) -> Self {
        self.layers.push(Box::new(layer));
        self
    }

    /// Engine settings (concurrency, timeouts, attempts).
    pub fn engine_config(mut self, config: EngineConfig) -> Self {
        self.engine = config;
        self
    }

    /// How often the scheduler looks for due jobs (default 5 s).
    pub fn scheduler_tick(mut self, tick: Duration) -> Self {
        self.scheduler_tick = tick;
        self
    }

    /// Maintenance settings (log retention, intervals).
    pub fn maintenance_config(mut self, config: MaintenanceConfig) -> Self {
        self.maintenance = config;
        self
    }

    /// The role in this process's identity (`<role>-<host>-<random>`), for leases and logs.
    pub fn role(mut self, role: impl Into<String>) -> Self {
        self.role = role.into();
        self
    }

    /// The clock (tests). With a clock of its own, leases follow it; otherwise store leases
    /// are decided by PostgreSQL's clock and queue leases by Redis's (`TIME`), so processes
    /// whose clocks disagree never both hold one.
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self.clock_driven = true;
        self
    }

    fn key_path(&self) -> PathBuf {
        self.key_file
            .clone()
            .unwrap_or_else(|| self.data_dir.join("secret.key"))
    }

    /// The credential cipher: the configured key, or the key file (created on first use —
    /// except with PostgreSQL or Redis, where several hosts share the data: a key generated on
    /// one host would make every other host's credentials unreadable, so a missing key stops
    /// the process instead).
    pub fn cipher(&self) -> Result<AesGcmCipher> {
        let shared = matches!(self.store, StoreChoice::Postgres { .. })
            || matches!(self.queue, QueueChoice::Redis { .. });
        if self.encryption_key.is_none() {
            let path = self.key_path();
            if shared && !path.exists() {
                return Err(Error::invalid(format!(
                    "no credential encryption key: with PostgreSQL or Redis set                      security.encryption_key (NETRAVEN_ENCRYPTION_KEY) or provide the key file {}                      (a base64 AES-256 key, e.g. `openssl rand -base64 32`, the same on every host); \
                     refusing to generate one",
                    path.display()
                )));
            }
            create_dir(&self.data_dir)?;
        }
        load_cipher(self.encryption_key.as_deref(), &self.key_path())
    }

    /// Opens the configured store (applying migrations), without building the rest. Users and
    /// tokens included: refused for a store given with [`Builder::store`], which keeps none.
    pub async fn open_store(&self) -> Result<Arc<dyn ServerStore>> {
        self.open_store_with(true).await
    }

    /// [`Builder::open_store`], applying pending migrations only if `migrate` (`false` opens the
    /// schema as it is, e.g. to ask whether migrations are pending).
    pub async fn open_store_with(&self, migrate: bool) -> Result<Arc<dyn ServerStore>> {
        match self.open_parts(migrate).await? {
            (_, Some(server)) => Ok(server),
            (_, None) => Err(Error::invalid(
                "the store given to Builder::store keeps no users; give it with Builder::server_store",
            )),
        }
    }

    /// The engine's store and, when the backend keeps users, the same store as a
    /// [`ServerStore`].
    async fn open_parts(
        &self,
        migrate: bool,
    ) -> Result<(Arc<dyn Store>, Option<Arc<dyn ServerStore>>)> {
        let server: Arc<dyn ServerStore> = match &self.store {
            StoreChoice::Sqlite => {
                let cipher = Arc::new(self.cipher()?);
                let o = SqliteOptions {
                    migrate,
                    ..SqliteOptions::default()
                };
                let path = self.data_dir.join("netraven.db");
                Arc::new(SqliteStore::open_with(path, o, cipher).await?)
            }
            StoreChoice::Postgres { url, schema } => {
                let cipher = Arc::new(self.cipher()?);
                let o = PostgresOptions {
                    schema: schema.clone(),
                    migrate,
                    max_connections: postgres_pool_size(self.engine.concurrency),
                    server_clock: !self.clock_driven,
                    ..PostgresOptions::default()
                };
                Arc::new(PostgresStore::connect_with(url, o, cipher).await?)
            }
            StoreChoice::Memory => Arc::new(MemoryStore::new()),
            StoreChoice::CustomServer(s) => s.clone(),
            StoreChoice::Custom(s) => return Ok((s.clone(), None)),
        };
        Ok((server.clone(), Some(server)))
    }

    /// Rotates the credential key file: re-encrypts every credential of the SQL store with a new
    /// key, then swaps the key files (see [`netraven_store::keys`]). Refused when the key comes
    /// from configuration.
    pub async fn rotate_key(&self) -> Result<Rotation> {
        if self.encryption_key.is_some() {
            return Err(Error::invalid(
                "the key comes from configuration: rotate by re-encrypting with a key file (unset encryption_key) or replace the configured key yourself",
            ));
        }
        let current = Arc::new(self.cipher()?);
        match &self.store {
            StoreChoice::Sqlite => {
                let s = SqliteStore::open(self.data_dir.join("netraven.db"), current).await?;
                rotate_key_file(&self.key_path(), async |c| s.reencrypt_credentials(c).await).await
            }
            StoreChoice::Postgres { url, schema } => {
                let s = PostgresStore::connect(url, Some(schema), current).await?;
                rotate_key_file(&self.key_path(), async |c| s.reencrypt_credentials(c).await).await
            }
            _ => Err(Error::invalid(
                "key rotation applies to the SQLite and PostgreSQL stores",
            )),
        }
    }

    /// Opens every part.
    pub async fn build(self) -> Result<Netraven> {
        let id = format!(
            "{}-{}-{}",
            self.role,
            std::env::var("HOSTNAME")
                .ok()
                .filter(|h| !h.is_empty())
                .unwrap_or_else(|| "node".into()),
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        );
        let (store, server_store) = self.open_parts(true).await?;
        let clock = self.clock.clone();
        let queue: Arc<dyn Queue> = match &self.queue {
            QueueChoice::Embedded => Arc::new(EmbeddedQueue::new(clock.clone())),
            QueueChoice::Redis { url, prefix } => {
                let options = RedisQueueOptions {
                    server_time: !self.clock_driven,
                    ..RedisQueueOptions::default()
                };
                Arc::new(RedisQueue::connect_with(url, prefix, clock.clone(), options).await?)
            }
            QueueChoice::Custom(q) => q.clone(),
        };
        let missing = netraven_drivers::legacy_algorithms_missing();
        if !missing.is_empty() {
            tracing::warn!(
                missing = %missing.join(","),
                "libssh2 was built without the legacy SSH algorithms devices with legacy_ssh need \
                 (set the CFLAGS described in the netraven_drivers crate docs)"
            );
        }
        // Devices name jump hosts kept in the same store.
        let mut ssh_options = self.ssh_options.clone();
        if ssh_options.jump_hosts.is_none() {
            ssh_options.jump_hosts = Some(netraven_drivers::JumpHosts(store.clone()));
        }
        let mut drivers: DriverRegistry = netraven_drivers::build_registry_with(
            store.clone(),
            self.platforms_dir.as_deref(),
            ssh_options,
        )?;
        for d in self.drivers {
            drivers.register(d);
        }
        let git = if self.git_enabled {
            let cfg = self
                .git
                .unwrap_or_else(|| GitWriterConfig::new(self.data_dir.join("configs.git")));
            let store = store.clone();
            let git = tokio::task::spawn_blocking(move || GitWriter::open(cfg, store))
                .await
                .map_err(|e| Error::internal(format!("opening git failed: {e}")))??;
            // A repository that is not the deployment's stops the process at once.
            git.check_repository().await?;
            Some(git)
        } else {
            None
        };
        let mut sink: Arc<dyn SnapshotSink> = match (&git, self.base_sink) {
            (_, Some(own)) => own,
            (Some(g), None) => Arc::new(g.clone()),
            (None, None) => Arc::new(StoreSnapshotSink::new(store.clone())),
        };
        for layer in self.layers {
            sink = layer(sink)?;
        }
        let mut engine_cfg = self.engine;
        engine_cfg.worker_id = id.clone();
        let engine = Arc::new(Engine::new(
            EngineParts {
                store: store.clone(),
                queue: queue.clone(),
                drivers: Arc::new(drivers),
                sink: sink.clone(),
                clock: clock.clone(),
            },
            engine_cfg,
        ));
        let mut maintenance = self.maintenance;
        maintenance.holder = id.clone();
        Ok(Netraven {
            store,
            server_store,
            queue,
            sink,
            engine,
            clock,
            git,
            id,
            scheduler_tick: self.scheduler_tick,
            maintenance,
            shutdown: CancellationToken::new(),
            tasks: Arc::new(Mutex::new(Vec::new())),
        })
    }
}

/// The wired engine and its backends. Cheap to clone (clones share the parts and the started
/// tasks).
#[derive(Debug, Clone)]
pub struct Netraven {
    store: Arc<dyn Store>,
    server_store: Option<Arc<dyn ServerStore>>,
    queue: Arc<dyn Queue>,
    sink: Arc<dyn SnapshotSink>,
    engine: Arc<Engine>,
    clock: Arc<dyn Clock>,
    git: Option<GitWriter>,
    id: String,
    scheduler_tick: Duration,
    maintenance: MaintenanceConfig,
    shutdown: CancellationToken,
    tasks: Arc<Mutex<Vec<JoinHandle<Result<()>>>>>,
}

impl Netraven {
    /// A builder with the reference server's defaults (SQLite, the key file, the built-in SSH
    /// drivers, the in-process queue and git under `./netraven-data`).
    ///
    /// Here everything in memory, with a scripted driver instead of SSH devices:
    ///
    /// ```
    /// use netraven::Netraven;
    /// use netraven::core::memory::{FakeBehavior, FakeDriver};
    /// use netraven::core::normalise::Rules;
    /// use netraven::core::prelude::*;
    /// use std::sync::Arc;
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<()> {
    /// let config = FakeBehavior { config: "hostname r1\n".into(), ..FakeBehavior::default() };
    /// let nr = Netraven::builder()
    ///     .in_memory()
    ///     .without_git()
    ///     .driver(Arc::new(FakeDriver::new("lab_os", Rules::empty(), config)))
    ///     .build()
    ///     .await?;
    /// let cred = nr.store().upsert_credential(&Credential::new("lab", "u", Secret::new("p"))).await?;
    /// let mut dev = Device::new("r1", "192.0.2.1", "lab_os");
    /// dev.credential_id = Some(cred.id);
    /// let dev = nr.store().upsert_device(&dev).await?;
    /// let job = nr.store().upsert_job(&Job::backup("lab", Targets { device_ids: vec![dev.id], tags: vec![] })).await?;
    /// let run = nr.run_and_wait(job.id).await?; // no worker started: this call works the queue
    /// assert_eq!(run.status, RunStatus::CompletedSuccess);
    /// # Ok(()) }
    /// ```
    pub fn builder() -> Builder {
        Builder::default()
    }

    /// The store (source of truth).
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The same store with its users and tokens (what the reference server's API needs), unless
    /// it was given with [`Builder::store`].
    pub fn server_store(&self) -> Option<&Arc<dyn ServerStore>> {
        self.server_store.as_ref()
    }

    /// The queue.
    pub fn queue(&self) -> &Arc<dyn Queue> {
        &self.queue
    }

    /// The snapshot sink (git and its layers).
    pub fn sink(&self) -> &Arc<dyn SnapshotSink> {
        &self.sink
    }

    /// The engine.
    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    /// The clock.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// The git writer, when git is enabled in this process.
    pub fn git(&self) -> Option<&GitWriter> {
        self.git.as_ref()
    }

    /// This process's identity.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The token [`Netraven::shutdown`] cancels; pass it to roles you run yourself.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// A scheduler over these parts.
    pub fn scheduler(&self) -> Scheduler {
        Scheduler::new(
            self.store.clone(),
            self.queue.clone(),
            self.clock.clone(),
            SchedulerConfig {
                holder: self.id.clone(),
                tick: self.scheduler_tick,
                ..SchedulerConfig::default()
            },
        )
        .with_status(self.engine.scheduler_status().clone())
    }

    /// The maintenance service over these parts (recovery, lease reaping, git commits, log
    /// pruning).
    pub fn maintenance(&self) -> Maintenance {
        Maintenance::new(
            self.engine.clone(),
            self.store.clone(),
            self.maintenance.clone(),
        )
    }

    /// Runs `task` as the role `role` of this process, supervised: its state is kept in
    /// [`Engine::roles`](netraven_core::engine::Engine::roles) (running, stopped, failed with the
    /// error's kind); a role that ends with an error or panics is logged and stops the others
    /// (the shutdown token is cancelled, so [`Netraven::stop_on`] returns its error and a server
    /// exits non-zero for its supervisor to restart it).
    pub fn spawn_role(
        &self,
        role: &'static str,
        task: impl Future<Output = Result<()>> + Send + 'static,
    ) {
        let token = self.shutdown.clone();
        let roles = self.engine.roles().clone();
        roles.set(role, RoleState::Running, None);
        let inner = tokio::spawn(task);
        let handle = tokio::spawn(async move {
            let r = match inner.await {
                Ok(r) => r,
                Err(e) if e.is_panic() => {
                    let p = e.into_panic();
                    let what = p
                        .downcast_ref::<&str>()
                        .map(|s| (*s).to_string())
                        .or_else(|| p.downcast_ref::<String>().cloned())
                        .unwrap_or_else(|| "a panic".into());
                    Err(Error::internal(format!("the {role} role panicked: {what}")))
                }
                Err(e) => Err(Error::internal(format!("the {role} role was aborted: {e}"))),
            };
            match &r {
                Ok(()) => {
                    roles.set(role, RoleState::Stopped, None);
                    tracing::info!(role, "role stopped");
                }
                Err(e) => {
                    roles.set(role, RoleState::Failed, Some(e.kind()));
                    tracing::error!(role, error = %e, "a role failed; stopping the process");
                    token.cancel();
                }
            }
            r
        });
        if let Ok(mut tasks) = self.tasks.lock() {
            tasks.push(handle);
        }
    }

    /// Starts a worker, the scheduler and maintenance in this process (until
    /// [`Netraven::shutdown`]).
    pub fn start(&self) {
        self.start_worker();
        self.start_scheduler();
        self.start_maintenance();
    }

    /// Starts a worker.
    pub fn start_worker(&self) {
        self.spawn_role(
            "worker",
            self.engine.clone().run_worker(self.shutdown.clone()),
        );
    }

    /// Starts the scheduler (it acts only while it holds the scheduler lease).
    pub fn start_scheduler(&self) {
        let (s, token) = (self.scheduler(), self.shutdown.clone());
        self.spawn_role("scheduler", async move { s.run(token).await });
    }

    /// Starts maintenance (it acts only while it holds the maintenance lease).
    pub fn start_maintenance(&self) {
        self.spawn_role("maintenance", self.maintenance().run(self.shutdown.clone()));
    }

    /// Starts a manual run of `job` now.
    pub async fn run_now(&self, job: JobId) -> Result<Run> {
        Ok(self.engine.run_now(job, None).await?.run)
    }

    /// Starts a manual run of `job` and waits until it is final. Something must work on it: a
    /// started worker ([`Netraven::start`]) or, if none was started, this call drains the queue
    /// itself. Git is flushed before returning, so the run's snapshots are committed.
    pub async fn run_and_wait(&self, job: JobId) -> Result<Run> {
        let run = self.run_now(job).await?;
        let working = self.tasks.lock().map(|t| !t.is_empty()).unwrap_or(false);
        if !working {
            self.engine.drain().await?;
        }
        let run = self.wait(run.id).await?;
        self.sink.flush().await?;
        Ok(run)
    }

    /// Starts a manual run of `job` and returns it with its events (subscribed before the run
    /// is queued, so nothing is missed). Something must work on it: [`Netraven::start`]ed
    /// workers here, or workers in other processes (then only results, not log lines, arrive).
    pub async fn run_with_events(&self, job: JobId) -> Result<(Run, RunEvents)> {
        let rx = self.engine.events().subscribe();
        let run = self.run_now(job).await?;
        let events = RunEvents::new(rx, self.store.clone(), self.store.clone(), run.id);
        Ok((run, events))
    }

    /// The events of run `run` from now on: device results (also those recorded before, or by
    /// workers elsewhere, read from the store), this process's log lines, then
    /// [`Event::RunFinished`]; see [`RunEvents`].
    pub fn subscribe(&self, run: RunId) -> RunEvents {
        self.engine
            .events()
            .run(self.store.clone(), self.store.clone(), run)
    }

    /// Every event of this process: results, log lines, finished runs, background failures
    /// ([`Event::BackgroundError`], e.g. git commits failing).
    pub fn events(&self) -> tokio::sync::broadcast::Receiver<Event> {
        self.engine.events().subscribe()
    }

    /// The status of this process's background work (maintenance steps; `sink` is the git
    /// commits): [`Health::is_healthy`], and each step's last success and error.
    pub fn health(&self) -> &Health {
        self.engine.health()
    }

    /// Waits until run `id` is final.
    pub async fn wait(&self, id: RunId) -> Result<Run> {
        loop {
            let r = self.store.get_run(id).await?;
            if r.status.is_final() {
                return Ok(r);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until `shutdown` fires or a started task fails, then stops everything (see
    /// [`Netraven::shutdown`]).
    pub async fn stop_on(&self, shutdown: CancellationToken) -> Result<()> {
        tokio::select! {
            _ = shutdown.cancelled() => {}
            _ = self.shutdown.cancelled() => {}
        }
        self.shutdown().await
    }

    /// Stops what [`Netraven::start`] started (workers finish or hand back their tasks,
    /// maintenance commits what is pending) and waits for it; returns the first error.
    pub async fn shutdown(&self) -> Result<()> {
        self.shutdown.cancel();
        let tasks: Vec<_> = match self.tasks.lock() {
            Ok(mut t) => t.drain(..).collect(),
            Err(_) => Vec::new(),
        };
        let mut first = None;
        for t in tasks {
            match t.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    first.get_or_insert(e);
                }
                Err(e) => {
                    first.get_or_insert(Error::internal(format!("a task panicked: {e}")));
                }
            }
        }
        first.map_or(Ok(()), Err)
    }
}

/// PostgreSQL connections of one process, from its worker concurrency: a quarter of the devices
/// worked on at once (a device task holds a connection only for its short store calls, never
/// while it talks to the device) plus 6 for the scheduler, maintenance and the API, between 8 and
/// 64. The default concurrency of 100 gives 31. A pool that stays exhausted for its acquire
/// timeout (10 s) fails the call with `unavailable`, which hands the device task back instead of
/// failing the device.
pub fn postgres_pool_size(concurrency: usize) -> u32 {
    let n = concurrency.div_ceil(4).saturating_add(6).clamp(8, 64);
    u32::try_from(n).unwrap_or(64)
}

/// A token cancelled on SIGINT or SIGTERM (for [`Netraven::start`]ed processes: pass it on or
/// call [`Netraven::shutdown`] when it fires).
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
