//! The job lifecycle engine: submission, the start of a run (device resolution and fan-out), the
//! per-device runner, the worker loop, run finalisation and recovery.
//!
//! - [`submit_run`] — creates a run (deduplicated) and queues its start task.
//! - [`dispatch`] — the worker loop: claims tasks, extends their leases while they run, completes,
//!   retries or releases them, and shuts down gracefully.
//! - [`runner`] — what a task does: a `StartRun` task resolves targets, fixes the run's device set
//!   and fans out one `Device` task per device; a `Device` task connects (trying credentials in
//!   order on auth failure only), fetches, normalises, redacts, stores the snapshot and records
//!   exactly one result; the result that completes the run sets its final status.
//! - [`Engine::recover`] — re-queues every unfinished run and device from the store, so a queue
//!   that lost its data (Redis flush, embedded queue after a crash) loses no work.

pub mod dispatch;
pub mod metrics;
pub mod runner;

use crate::clock::Clock;
use crate::credentials::CredentialIndex;
use crate::driver::DriverRegistry;
use crate::error::Result;
use crate::events::{Event, Events, Health, Roles};
use crate::model::*;
use crate::queue::{Queue, TaskKind, TaskSpec};
use crate::snapshot::SnapshotSink;
use crate::store::{
    CreatedRun, CredentialStore, DeviceStore, JobStore, LogStore, ResultStore, RunStore, Store,
    TagStore,
};
use std::sync::Arc;
use std::time::Duration;

pub use metrics::EngineMetrics;

/// Engine settings.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// This worker's identity (queue leases, log source).
    pub worker_id: String,
    /// Devices worked on at once by this worker.
    pub concurrency: usize,
    /// Deadline for one device, all steps included; a device that hangs fails with `timeout`.
    pub device_timeout: Duration,
    /// Deadline for connecting and logging in with one credential.
    pub connect_timeout: Duration,
    /// Deadline for one command.
    pub command_timeout: Duration,
    /// Queue lease length; the lease is extended every third of it while a task runs.
    pub lease: Duration,
    /// How long one claim call waits for work.
    pub claim_wait: Duration,
    /// Attempts for a device whose failure is retryable (connection, timeout).
    pub device_attempts: u32,
    /// Poison tasks: a task that failed (an error, a panic) this many times goes to the dead set
    /// and its outcome is recorded ([`Engine::bury`]); a device task whose deliveries ended this
    /// many times without being settled (its workers died on it) is recorded as failed.
    /// Hand-backs (shutdown, an outage of the store or queue) do not count. Default 5.
    pub max_deliveries: u32,
    /// Delay before retrying a device.
    pub retry_backoff: Duration,
    /// On shutdown, how long in-flight tasks may finish before their leases are released.
    pub shutdown_grace: Duration,
    /// Which device addresses may be connected to; checked before every connection and probe,
    /// so a refused device fails with `address_refused` and is sent nothing. The library's
    /// default allows loopback (an embedder runs on its own host); the server's configuration
    /// refuses it unless `security.allow_loopback` is set.
    pub address_policy: crate::netpolicy::AddressPolicy,
    /// The zone this worker claims device tasks from (`None`: the default zone, which also
    /// holds every run's start). See [`crate::zones`].
    pub zone: Option<String>,
    /// How often the worker reports its heartbeat to the queue ([`Queue::heartbeat`]), which
    /// `/api/system/status` and the zone watch read.
    pub heartbeat_every: Duration,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            worker_id: format!("worker-{}", uuid::Uuid::new_v4()),
            concurrency: 100,
            device_timeout: Duration::from_secs(180),
            connect_timeout: Duration::from_secs(30),
            command_timeout: Duration::from_secs(60),
            lease: Duration::from_secs(60),
            claim_wait: Duration::from_secs(1),
            device_attempts: 2,
            max_deliveries: crate::queue::DEFAULT_MAX_FAILURES,
            retry_backoff: Duration::from_secs(30),
            shutdown_grace: Duration::from_secs(30),
            address_policy: crate::netpolicy::AddressPolicy::default().allow_loopback(true),
            zone: None,
            heartbeat_every: Duration::from_secs(5),
        }
    }
}

/// The parts an engine works with.
#[derive(Debug, Clone)]
pub struct EngineParts {
    /// Source of truth.
    pub store: Arc<dyn Store>,
    /// Delivery.
    pub queue: Arc<dyn Queue>,
    /// Platform drivers.
    pub drivers: Arc<DriverRegistry>,
    /// Where snapshots go.
    pub sink: Arc<dyn SnapshotSink>,
    /// Time.
    pub clock: Arc<dyn Clock>,
}

/// The store traits a worker uses, each a focused trait of at most a dozen methods: a worker
/// never sees snapshots' index, host keys, leases or users (tags only to read their zones).
/// Usually all seven are the same store ([`WorkerStores::new`]); an embedder may split them
/// over backends.
#[derive(Debug, Clone)]
pub struct WorkerStores {
    /// Targets and device details.
    pub devices: Arc<dyn DeviceStore>,
    /// Credentials and their use statistics.
    pub credentials: Arc<dyn CredentialStore>,
    /// Jobs (read only).
    pub jobs: Arc<dyn JobStore>,
    /// Runs and their device sets.
    pub runs: Arc<dyn RunStore>,
    /// Device results.
    pub results: Arc<dyn ResultStore>,
    /// Log entries.
    pub logs: Arc<dyn LogStore>,
    /// Tags (read for their zones when a run fans out).
    pub tags: Arc<dyn TagStore>,
}

impl WorkerStores {
    /// All seven from one store.
    pub fn new(store: Arc<dyn Store>) -> Self {
        WorkerStores {
            tags: store.clone(),
            devices: store.clone(),
            credentials: store.clone(),
            jobs: store.clone(),
            runs: store.clone(),
            results: store.clone(),
            logs: store,
        }
    }
}

impl From<Arc<dyn Store>> for WorkerStores {
    fn from(store: Arc<dyn Store>) -> Self {
        WorkerStores::new(store)
    }
}

/// The job lifecycle engine. Cheap to share (`Arc<Engine>`); any number of engines on any number
/// of machines can work on the same store and queue.
#[derive(Debug)]
pub struct Engine {
    pub(crate) stores: WorkerStores,
    pub(crate) queue: Arc<dyn Queue>,
    pub(crate) drivers: Arc<DriverRegistry>,
    pub(crate) sink: Arc<dyn SnapshotSink>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) config: EngineConfig,
    pub(crate) metrics: Arc<EngineMetrics>,
    pub(crate) runs: RunCache,
    pub(crate) events: Events,
    pub(crate) health: Health,
    pub(crate) roles: Roles,
    pub(crate) scheduler_status: crate::scheduler::SchedulerStatus,
}

/// What every device of a run needs from the store, read once per run: the run's fixed facts
/// (job, trigger, message), the job's kind and the credential index. Without it each device would
/// re-read the run, the job (whose target list can hold every device id of the fleet) and every
/// credential, which makes a run cost O(devices²) and a store round trip per device. Credentials
/// and jobs edited during a run take effect from the next run.
#[derive(Debug, Default)]
pub(crate) struct RunCache {
    runs: tokio::sync::Mutex<std::collections::VecDeque<(RunId, Arc<RunContext>)>>,
}

/// The per-run facts a worker shares between the devices of one run.
#[derive(Debug)]
pub(crate) struct RunContext {
    /// The run's job.
    pub(crate) job_id: JobId,
    /// What started the run.
    pub(crate) trigger: Trigger,
    /// The run's message as it was when the run's first device was worked on (a syslog
    /// trigger's message; it only changes when the run finishes).
    pub(crate) message: Option<String>,
    /// The kind of the run's job.
    pub(crate) kind: JobKind,
    /// Credentials indexed by id and by tag.
    pub(crate) credentials: Arc<CredentialIndex>,
}

/// Runs whose context a worker keeps at once (a worker rarely works on more runs at a time).
const CACHED_RUNS: usize = 8;

impl RunCache {
    /// The context of `run`, read from the store on first use; `None` when the run does not
    /// exist. The lock is held while reading so that the devices of a run starting at once read
    /// the store once, not once each. A failed read is not kept (the next device reads again).
    pub(crate) async fn for_run(
        &self,
        run: RunId,
        stores: &WorkerStores,
    ) -> Result<Option<Arc<RunContext>>> {
        let mut runs = self.runs.lock().await;
        if let Some((_, ctx)) = runs.iter().find(|(id, _)| *id == run) {
            return Ok(Some(ctx.clone()));
        }
        let r = match stores.runs.get_run(run).await {
            Ok(r) => r,
            Err(e) if e.kind() == crate::error::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let kind = stores.jobs.get_job(r.job_id).await?.kind;
        let credentials = Arc::new(CredentialIndex::new(
            stores.credentials.all_credentials().await?,
        ));
        let ctx = Arc::new(RunContext {
            job_id: r.job_id,
            trigger: r.trigger,
            message: r.message,
            kind,
            credentials,
        });
        if runs.len() >= CACHED_RUNS {
            runs.pop_front();
        }
        runs.push_back((run, ctx.clone()));
        Ok(Some(ctx))
    }
}

impl Engine {
    /// An engine over the given parts (the store is split into the [`WorkerStores`] it uses).
    pub fn new(parts: EngineParts, config: EngineConfig) -> Self {
        Engine::with_stores(
            WorkerStores::new(parts.store),
            parts.queue,
            parts.drivers,
            parts.sink,
            parts.clock,
            config,
        )
    }

    /// An engine over the focused store traits it uses, possibly from different backends.
    pub fn with_stores(
        stores: WorkerStores,
        queue: Arc<dyn Queue>,
        drivers: Arc<DriverRegistry>,
        sink: Arc<dyn SnapshotSink>,
        clock: Arc<dyn Clock>,
        config: EngineConfig,
    ) -> Self {
        Engine {
            stores,
            queue,
            drivers,
            sink,
            clock,
            config,
            metrics: Arc::new(EngineMetrics::default()),
            runs: RunCache::default(),
            events: Events::new(),
            health: Health::new(),
            roles: Roles::new(),
            scheduler_status: Default::default(),
        }
    }

    /// The events of this engine (device results, log lines, finished runs) and of the
    /// maintenance over it (background failures).
    pub fn events(&self) -> &Events {
        &self.events
    }

    /// The status of the background work over this engine (maintenance steps).
    pub fn health(&self) -> &Health {
        &self.health
    }

    /// The roles the process over this engine runs and their states (api, worker, scheduler,
    /// maintenance), kept by whoever supervises them.
    pub fn roles(&self) -> &Roles {
        &self.roles
    }

    /// Writes log entries and publishes them.
    pub(crate) async fn write_logs(&self, entries: &[LogEntry]) -> Result<()> {
        for e in entries {
            self.events.publish(Event::Log(e.clone()));
        }
        self.stores.logs.append_logs(entries).await
    }

    /// Publishes a run's final status.
    pub(crate) fn run_finished(&self, run_id: RunId, status: RunStatus) {
        self.events.publish(Event::RunFinished { run_id, status });
    }

    /// The settings.
    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// Counters for `/metrics`.
    pub fn metrics(&self) -> Arc<EngineMetrics> {
        self.metrics.clone()
    }

    /// The store traits the engine uses.
    pub fn stores(&self) -> &WorkerStores {
        &self.stores
    }

    /// What the scheduler of this process last did (recorded by a scheduler given it with
    /// [`crate::scheduler::Scheduler::with_status`]).
    pub fn scheduler_status(&self) -> &crate::scheduler::SchedulerStatus {
        &self.scheduler_status
    }

    /// The drivers by platform name.
    pub fn drivers(&self) -> &Arc<DriverRegistry> {
        &self.drivers
    }

    /// The queue.
    pub fn queue(&self) -> &Arc<dyn Queue> {
        &self.queue
    }

    /// The snapshot sink.
    pub fn sink(&self) -> &Arc<dyn SnapshotSink> {
        &self.sink
    }

    /// The clock.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// Starts a manual run of a job now. The same `idempotency_key` returns the same run.
    pub async fn run_now(
        &self,
        job_id: JobId,
        idempotency_key: Option<String>,
    ) -> Result<CreatedRun> {
        self.stores.jobs.get_job(job_id).await?;
        submit_run(
            self.stores.runs.as_ref(),
            self.queue.as_ref(),
            &NewRun {
                job_id,
                trigger: Trigger::Manual,
                fire_time: None,
                idempotency_key,
                status: RunStatus::Queued,
                message: None,
                queued_at: self.clock.now(),
            },
        )
        .await
    }

    /// Re-queues every unfinished piece of work the store knows of: a start task for every
    /// `QUEUED` run, and a device task for every device of a `RUNNING` run that has no result.
    /// Dedupe keys make this harmless when the tasks are still queued. Returns tasks newly queued.
    pub async fn recover(&self) -> Result<u64> {
        let mut queued = 0;
        for run in self.stores.runs.active_runs().await? {
            match run.status {
                RunStatus::Queued => {
                    if matches!(
                        self.queue
                            .enqueue(TaskSpec::new(TaskKind::StartRun { run_id: run.id }))
                            .await?,
                        crate::queue::Enqueued::New(_)
                    ) {
                        queued += 1;
                    }
                }
                RunStatus::Running => {
                    let pending = self.stores.runs.pending_device_ids(run.id).await?;
                    if pending.is_empty() {
                        // Every device has a result but the run was not closed (crash between
                        // the last result and finish_run): close it now.
                        let run = self.stores.runs.get_run(run.id).await?;
                        if run.counts.is_complete() {
                            self.finish(run.id, run.job_id, run.counts).await?;
                        }
                        continue;
                    }
                    let specs = self.device_task_specs(run.id, &pending).await?;
                    queued += self
                        .queue
                        .enqueue_many(specs)
                        .await?
                        .iter()
                        .filter(|e| matches!(e, crate::queue::Enqueued::New(_)))
                        .count() as u64;
                }
                _ => {}
            }
        }
        if queued > 0 {
            tracing::info!(queued, "recovery re-queued unfinished work from the store");
        }
        Ok(queued)
    }

    pub(crate) fn device_task_spec(
        &self,
        run_id: RunId,
        device_id: DeviceId,
        zone: Option<String>,
    ) -> TaskSpec {
        let mut spec = TaskSpec::new(TaskKind::Device { run_id, device_id }).in_zone(zone);
        spec.max_attempts = self
            .config
            .device_attempts
            .max(self.config.max_deliveries)
            .max(1);
        spec
    }

    /// The device tasks of `ids` in `run`, each in its device's effective zone
    /// ([`crate::zones`]; tags read once). A device gone from the store gets the default zone
    /// (its task then records that it is missing).
    pub(crate) async fn device_task_specs(
        &self,
        run_id: RunId,
        ids: &[DeviceId],
    ) -> Result<Vec<TaskSpec>> {
        let tags = crate::zones::TagZones::load(self.stores.tags.as_ref()).await?;
        let mut zones = std::collections::HashMap::with_capacity(ids.len());
        for chunk in ids.chunks(1000) {
            for d in self.stores.devices.devices_by_ids(chunk).await? {
                zones.insert(d.id, tags.zone_of(&d));
            }
        }
        Ok(ids
            .iter()
            .map(|&id| self.device_task_spec(run_id, id, zones.remove(&id).flatten()))
            .collect())
    }

    /// Sets the run's final status from its tallies and logs the summary (once).
    pub(crate) async fn finish(
        &self,
        run_id: RunId,
        job_id: JobId,
        counts: RunCounts,
    ) -> Result<()> {
        let status = counts.final_status();
        let now = self.clock.now();
        if self
            .stores
            .runs
            .finish_run(run_id, status, now, None)
            .await?
        {
            self.metrics.run_finished(status);
            let mut e = LogEntry::new(
                now,
                if status == RunStatus::CompletedSuccess {
                    LogLevel::Info
                } else {
                    LogLevel::Warning
                },
                LogKind::Job,
                self.source(),
                format!(
                    "run finished {}: {} devices, {} ok ({} changed, {} unchanged), {} failed",
                    status.as_str(),
                    counts.total,
                    counts.succeeded,
                    counts.changed,
                    counts.unchanged,
                    counts.failed
                ),
            );
            e.run_id = Some(run_id);
            e.job_id = Some(job_id);
            e.fields = serde_json::json!({ "status": status.as_str(), "counts": counts });
            self.write_logs(&[e]).await?;
            self.run_finished(run_id, status);
        }
        Ok(())
    }

    pub(crate) fn source(&self) -> String {
        format!("worker:{}", self.config.worker_id)
    }
}

/// Creates a run (deduplicated by (job, fire time) or idempotency key) and queues its start.
pub async fn submit_run(
    runs: &dyn RunStore,
    queue: &dyn Queue,
    new: &NewRun,
) -> Result<CreatedRun> {
    let created = runs.create_run(new).await?;
    if created.run.status == RunStatus::Queued {
        queue
            .enqueue(TaskSpec::new(TaskKind::StartRun {
                run_id: created.run.id,
            }))
            .await?;
    }
    Ok(created)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::MemoryStore;
    use crate::store::JobStore;

    /// The devices of one run share the context read at the run's first device: the run, the
    /// job and the credentials are not read again per device (a job's target list can hold the
    /// whole fleet).
    #[tokio::test]
    async fn run_context_is_read_once_per_run() {
        let store = Arc::new(MemoryStore::new());
        let job = store
            .create_job(&Job::backup("j", Targets::default()))
            .await
            .unwrap();
        let new_run = |key: &str| NewRun {
            job_id: job.id,
            trigger: Trigger::Syslog,
            fire_time: None,
            idempotency_key: Some(key.into()),
            status: RunStatus::Queued,
            message: Some("changed by alice".into()),
            queued_at: chrono::Utc::now(),
        };
        let one = store.create_run(&new_run("1")).await.unwrap().run;
        let two = store.create_run(&new_run("2")).await.unwrap().run;
        let stores = WorkerStores::new(store.clone());
        let cache = RunCache::default();
        let first = cache.for_run(one.id, &stores).await.unwrap().unwrap();
        assert_eq!(first.kind, JobKind::Backup);
        assert_eq!(first.job_id, job.id);
        assert_eq!(first.trigger, Trigger::Syslog);
        assert_eq!(first.message.as_deref(), Some("changed by alice"));
        // Gone from the store: a second device of the same run still gets the context ...
        store.delete_job(job.id).await.unwrap();
        let again = cache.for_run(one.id, &stores).await.unwrap().unwrap();
        assert!(Arc::ptr_eq(&first, &again));
        // ... while another run reads the store (and finds the job gone) ...
        assert!(cache.for_run(two.id, &stores).await.is_err());
        // ... and a run that does not exist has no context.
        assert!(
            cache
                .for_run(two.id + 100, &stores)
                .await
                .unwrap()
                .is_none()
        );
    }
}
