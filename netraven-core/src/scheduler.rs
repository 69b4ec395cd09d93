//! Scheduling: when a job fires, and the [`Scheduler`] that turns due fires into runs.
//!
//! Each fire is identified by (job, fire time); the store refuses a second run for the same pair,
//! so two schedulers, a restart or a retried tick never create a second run. Only the holder of
//! the `scheduler` lease acts. Jobs are read from the store on every tick, so edits, disables and
//! deletes take effect on the next tick.

use crate::clock::Clock;
use crate::engine::submit_run;
use crate::error::Result;
use crate::model::*;
use crate::queue::Queue;
pub use crate::schedule::{MIN_INTERVAL_SECS, latest_due, next_fire, validate_schedule};
use crate::store::{JobStore, LeaseStore, LogStore, RunStore, Store};
use chrono::{DateTime, Utc};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Name of the scheduler leader lease.
pub const SCHEDULER_LEASE: &str = "scheduler";

/// Scheduler settings.
#[derive(Debug, Clone)]
pub struct SchedulerConfig {
    /// This scheduler's identity for the leader lease.
    pub holder: String,
    /// Leader lease lifetime; renewed every tick.
    pub lease_ttl: Duration,
    /// Time between ticks.
    pub tick: Duration,
    /// Under the `skip` missed-fire policy, a fire older than this is dropped.
    pub skip_grace: Duration,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        SchedulerConfig {
            holder: format!("scheduler-{}", uuid::Uuid::new_v4()),
            lease_ttl: Duration::from_secs(30),
            tick: Duration::from_secs(5),
            skip_grace: Duration::from_secs(60),
        }
    }
}

/// What one tick did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TickReport {
    /// Whether this scheduler held the lease.
    pub leader: bool,
    /// Runs created.
    pub created: Vec<RunId>,
    /// Fires recorded as skipped (overlap).
    pub skipped: Vec<RunId>,
}

/// What the schedulers of one process last did, for status pages: shared by cloning; a
/// [`Scheduler`] given one with [`Scheduler::with_status`] records every tick in it.
#[derive(Debug, Clone, Default)]
pub struct SchedulerStatus {
    state: Arc<std::sync::Mutex<SchedulerState>>,
}

/// A snapshot of a [`SchedulerStatus`].
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct SchedulerState {
    /// The lease holder name of this process's scheduler (none: no scheduler ran here yet).
    pub holder: Option<String>,
    /// Whether it held the leader lease at its last tick.
    pub leader: bool,
    /// When its last tick ended.
    pub last_tick: Option<DateTime<Utc>>,
    /// The error of the last tick, if it failed.
    pub last_error: Option<String>,
    /// Runs it created since the process started.
    pub runs_created: u64,
}

impl SchedulerStatus {
    /// The current state.
    pub fn get(&self) -> SchedulerState {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn record(&self, holder: &str, at: DateTime<Utc>, tick: &Result<TickReport>) {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        s.holder = Some(holder.to_string());
        s.last_tick = Some(at);
        match tick {
            Ok(r) => {
                s.leader = r.leader;
                s.last_error = None;
                s.runs_created += r.created.len() as u64;
            }
            Err(e) => s.last_error = Some(e.to_string()),
        }
    }
}

/// The store traits the scheduler uses (each at most a dozen methods).
#[derive(Debug, Clone)]
pub struct SchedulerStores {
    /// Scheduled jobs (read only).
    pub jobs: Arc<dyn JobStore>,
    /// Runs: fire dedupe, overlap checks.
    pub runs: Arc<dyn RunStore>,
    /// The leader lease.
    pub leases: Arc<dyn LeaseStore>,
    /// Log entries.
    pub logs: Arc<dyn LogStore>,
}

impl SchedulerStores {
    /// All four from one store.
    pub fn new(store: Arc<dyn Store>) -> Self {
        SchedulerStores {
            jobs: store.clone(),
            runs: store.clone(),
            leases: store.clone(),
            logs: store,
        }
    }
}

/// Turns due fires into runs.
#[derive(Debug, Clone)]
pub struct Scheduler {
    stores: SchedulerStores,
    queue: Arc<dyn Queue>,
    clock: Arc<dyn Clock>,
    config: SchedulerConfig,
    status: SchedulerStatus,
}

impl Scheduler {
    /// A scheduler over a store and queue (it keeps the [`SchedulerStores`] it uses).
    pub fn new(
        store: Arc<dyn Store>,
        queue: Arc<dyn Queue>,
        clock: Arc<dyn Clock>,
        config: SchedulerConfig,
    ) -> Self {
        Scheduler::with_stores(SchedulerStores::new(store), queue, clock, config)
    }

    /// A scheduler over the focused store traits it uses.
    pub fn with_stores(
        stores: SchedulerStores,
        queue: Arc<dyn Queue>,
        clock: Arc<dyn Clock>,
        config: SchedulerConfig,
    ) -> Self {
        Scheduler {
            stores,
            queue,
            clock,
            config,
            status: SchedulerStatus::default(),
        }
    }

    /// Records every tick of [`Scheduler::run`] in `status` (e.g. the engine's, for the API).
    pub fn with_status(mut self, status: SchedulerStatus) -> Self {
        self.status = status;
        self
    }

    /// One pass: if this scheduler holds the lease, create a run for every due fire.
    pub async fn tick(&self) -> Result<TickReport> {
        let now = self.clock.now();
        let mut report = TickReport::default();
        if !self
            .stores
            .leases
            .try_acquire_lease(
                SCHEDULER_LEASE,
                &self.config.holder,
                self.config.lease_ttl,
                now,
            )
            .await?
        {
            return Ok(report);
        }
        report.leader = true;
        for job in self.stores.jobs.scheduled_jobs().await? {
            if let Err(e) = self.tick_job(&job, now, &mut report).await {
                tracing::warn!(job_id = job.id, error = %e, "scheduling a job failed");
            }
        }
        Ok(report)
    }

    async fn tick_job(&self, job: &Job, now: DateTime<Utc>, report: &mut TickReport) -> Result<()> {
        let last = self.stores.runs.last_fire_time(job.id).await?;
        // After an edit, the schedule counts from the edit, not from older fires.
        let since = match last {
            Some(l) if l > job.updated_at => l,
            _ => job.updated_at,
        };
        let Some((fire, missed)) = latest_due(&job.schedule, since, now)? else {
            return Ok(());
        };
        if job.missed == MissedPolicy::Skip
            && now - fire > chrono::Duration::from_std(self.config.skip_grace).unwrap_or_default()
        {
            return Ok(());
        }
        let coalesce = match job.overlap {
            OverlapPolicy::Allow => false,
            OverlapPolicy::Forbid => self.stores.runs.job_has_active_run(job.id).await?,
            // A run of the job already waits for the active one: this fire joins it.
            // (the active one and one waiting behind it: two active runs).
            OverlapPolicy::Queue => {
                self.stores.runs.job_has_active_run(job.id).await?
                    && self
                        .stores
                        .runs
                        .active_runs()
                        .await?
                        .iter()
                        .filter(|r| r.job_id == job.id)
                        .count()
                        >= 2
            }
        };
        if coalesce {
            let created = self
                .stores
                .runs
                .create_run(&NewRun {
                    job_id: job.id,
                    trigger: Trigger::Schedule,
                    fire_time: Some(fire),
                    idempotency_key: None,
                    status: RunStatus::Skipped,
                    message: Some(match job.overlap {
                        OverlapPolicy::Queue => {
                            "skipped: a run of this job is already waiting (overlap queue)".into()
                        }
                        _ => "skipped: a run of this job is still active".into(),
                    }),
                    queued_at: now,
                })
                .await?;
            if created.created {
                report.skipped.push(created.run.id);
                self.log(
                    job,
                    Some(created.run.id),
                    LogLevel::Warning,
                    format!(
                        "fire at {fire} skipped: a run of job '{}' is still active (overlap {})",
                        job.name,
                        if job.overlap == OverlapPolicy::Queue {
                            "queue: one run already waits"
                        } else {
                            "forbid"
                        }
                    ),
                )
                .await;
            }
            return Ok(());
        }
        let created = submit_run(
            self.stores.runs.as_ref(),
            self.queue.as_ref(),
            &NewRun {
                job_id: job.id,
                trigger: Trigger::Schedule,
                fire_time: Some(fire),
                idempotency_key: None,
                status: RunStatus::Queued,
                message: None,
                queued_at: now,
            },
        )
        .await?;
        if created.created {
            report.created.push(created.run.id);
            let extra = if missed > 1 {
                format!(" ({missed} fires were due; running once)")
            } else {
                String::new()
            };
            self.log(
                job,
                Some(created.run.id),
                LogLevel::Info,
                format!("job '{}' fired for {fire}{extra}", job.name),
            )
            .await;
        }
        Ok(())
    }

    async fn log(&self, job: &Job, run: Option<RunId>, level: LogLevel, msg: String) {
        let mut e = LogEntry::new(
            self.clock.now(),
            level,
            LogKind::Scheduler,
            "scheduler",
            msg,
        );
        e.job_id = Some(job.id);
        e.run_id = run;
        if let Err(err) = self.stores.logs.append_logs(&[e]).await {
            tracing::warn!(error = %err, "could not write a scheduler log entry");
        }
    }

    /// Ticks until `shutdown`, then gives up the lease.
    pub async fn run(&self, shutdown: CancellationToken) -> Result<()> {
        loop {
            let tick = self.tick().await;
            if let Err(e) = &tick {
                tracing::warn!(error = %e, "scheduler tick failed");
            }
            self.status
                .record(&self.config.holder, self.clock.now(), &tick);
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(self.config.tick) => {}
            }
        }
        let _ = self
            .stores
            .leases
            .release_lease(SCHEDULER_LEASE, &self.config.holder)
            .await;
        Ok(())
    }
}
