//! [`Maintenance`]: the housekeeping one process per deployment does, as one service with a
//! [`Maintenance::run`] entry.
//!
//! Only the holder of the [`MAINTENANCE_LEASE`] acts, so any number of processes may run it. Each
//! round ([`Maintenance::round`]) it:
//! 1. recovers unfinished work from the store ([`Engine::recover`]) at start and every
//!    `recover_every` — this refills a queue that lost its data;
//! 2. reaps expired task leases ([`crate::queue::Queue::reap_expired`]);
//! 3. flushes the snapshot sink ([`SnapshotSink::flush`]; for git: commits pending snapshots in
//!    batches — the one git writer of the deployment);
//! 4. prunes log entries older than `log_retention`, and dead (poison) tasks older than
//!    `dead_retention` ([`crate::queue::Queue::prune_dead`]), every `prune_every`;
//! 5. watches zones ([`crate::zones::ZoneWatch`]) every `zone_watch_every`: a named zone with
//!    queued tasks and no live worker for `zones.zone_timeout` has its devices failed with
//!    `no_worker`.
//!
//! On shutdown it flushes the sink once more (a clean stop leaves git up to date) and releases
//! the lease.
//!
//! Failures are not only logged: each step's outcome goes to the engine's
//! [`Health`](crate::events::Health) (`lease`, `recover`, `reap`, `sink`, `prune`), and each
//! failure is published as [`Event::BackgroundError`] on the engine's events.

use crate::clock::Clock;
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::events::Event;
use crate::snapshot::SnapshotSink;
use crate::store::LeaseStore;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Name of the lease held by the process that does maintenance: one per deployment.
pub const MAINTENANCE_LEASE: &str = "maintenance";

/// Settings of [`Maintenance`].
#[derive(Debug, Clone)]
pub struct MaintenanceConfig {
    /// This process's identity (the lease holder name).
    pub holder: String,
    /// Length of the maintenance lease (renewed every round).
    pub lease: Duration,
    /// Pause between rounds.
    pub tick: Duration,
    /// How often unfinished work is recovered from the store.
    pub recover_every: Duration,
    /// How often old logs are pruned.
    pub prune_every: Duration,
    /// Log entries older than this are pruned.
    pub log_retention: Duration,
    /// Most log entries deleted per prune.
    pub prune_batch: u32,
    /// Dead (poison) tasks older than this are removed from the queue.
    pub dead_retention: Duration,
    /// How often zones are watched for missing workers.
    pub zone_watch_every: Duration,
    /// The zone watch's settings (zone timeout, live window).
    pub zones: crate::zones::ZoneWatchConfig,
    /// How long the final flush on shutdown may start new work (git: new commit batches);
    /// what is left stays pending in the store for the next leader.
    pub final_flush: Duration,
}

impl Default for MaintenanceConfig {
    /// Lease 30 s, a round every second, recovery every 30 s, pruning hourly of logs older than
    /// 30 days, a final flush of at most 10 s on shutdown.
    fn default() -> Self {
        MaintenanceConfig {
            holder: "maintenance".into(),
            lease: Duration::from_secs(30),
            tick: Duration::from_secs(1),
            recover_every: Duration::from_secs(30),
            prune_every: Duration::from_secs(3600),
            log_retention: Duration::from_secs(30 * 86_400),
            prune_batch: 10_000,
            dead_retention: Duration::from_secs(7 * 86_400),
            zone_watch_every: Duration::from_secs(5),
            zones: crate::zones::ZoneWatchConfig::default(),
            final_flush: Duration::from_secs(10),
        }
    }
}

/// What one round did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoundReport {
    /// This process held the lease and acted.
    pub leader: bool,
    /// Tasks re-queued by recovery (`None`: recovery was not due).
    pub recovered: Option<u64>,
    /// Expired task leases reaped.
    pub reaped: u64,
    /// The sink was flushed without error.
    pub flushed: bool,
    /// Log entries pruned (`None`: pruning was not due).
    pub pruned: Option<u64>,
    /// Devices failed because their zone had no worker (`None`: the watch was not due).
    pub no_worker: Option<u64>,
    /// Errors of the steps that failed (each step runs even when an earlier one failed).
    pub errors: Vec<String>,
}

/// The maintenance service. See the module documentation.
#[derive(Debug)]
pub struct Maintenance {
    engine: Arc<Engine>,
    leases: Arc<dyn LeaseStore>,
    sink: Arc<dyn SnapshotSink>,
    clock: Arc<dyn Clock>,
    config: MaintenanceConfig,
    last_recover: Option<tokio::time::Instant>,
    last_prune: Option<tokio::time::Instant>,
    last_zone_watch: Option<tokio::time::Instant>,
    zone_watch: crate::zones::ZoneWatch,
}

impl Maintenance {
    /// Maintenance over `engine` — its queue (reaping), recovery, log store (pruning) and
    /// snapshot sink (flushed every round) — with the maintenance lease in `leases`.
    pub fn new(
        engine: Arc<Engine>,
        leases: Arc<dyn LeaseStore>,
        config: MaintenanceConfig,
    ) -> Self {
        let zone_watch = crate::zones::ZoneWatch::new(
            engine.clone(),
            config.zones.clone(),
            config.holder.clone(),
        );
        Maintenance {
            leases,
            sink: engine.sink().clone(),
            clock: engine.clock().clone(),
            engine,
            config,
            last_recover: None,
            last_prune: None,
            last_zone_watch: None,
            zone_watch,
        }
    }

    /// The settings.
    pub fn config(&self) -> &MaintenanceConfig {
        &self.config
    }

    /// Records a step's outcome in the engine's health and publishes a failure.
    fn step<T>(
        &self,
        component: &str,
        r: &std::result::Result<T, Error>,
        report: &mut RoundReport,
    ) {
        let now = self.clock.now();
        match r {
            Ok(_) => self.engine.health().ok(component, now),
            Err(e) => {
                tracing::warn!(error = %e, step = component, "maintenance step failed");
                report.errors.push(format!("{component}: {e}"));
                self.engine.health().failed(component, &e.to_string(), now);
                self.engine.events().publish(Event::BackgroundError {
                    component: component.to_string(),
                    error: e.to_string(),
                    at: now,
                });
            }
        }
    }

    /// One round: acquire or renew the lease, and if held, do what is due. Step errors are
    /// logged and reported, never returned, so one failing backend does not stop the others.
    pub async fn round(&mut self) -> RoundReport {
        let mut report = RoundReport::default();
        let lease = self
            .leases
            .try_acquire_lease(
                MAINTENANCE_LEASE,
                &self.config.holder,
                self.config.lease,
                self.clock.now(),
            )
            .await;
        self.step("lease", &lease, &mut report);
        report.leader = lease.unwrap_or(false);
        if !report.leader {
            return report;
        }
        let now = tokio::time::Instant::now();
        if self
            .last_recover
            .is_none_or(|t| now.duration_since(t) >= self.config.recover_every)
        {
            self.last_recover = Some(now);
            let r = self.engine.recover().await;
            self.step("recover", &r, &mut report);
            report.recovered = r.ok();
        }
        let r = self.engine.queue().reap_expired().await;
        self.step("reap", &r, &mut report);
        report.reaped = r.unwrap_or(0);
        let r = self.sink.flush().await;
        self.step("sink", &r, &mut report);
        report.flushed = r.is_ok();
        if self
            .last_zone_watch
            .is_none_or(|t| now.duration_since(t) >= self.config.zone_watch_every)
        {
            self.last_zone_watch = Some(now);
            let r = self.zone_watch.check().await;
            self.step("zones", &r, &mut report);
            report.no_worker = r.ok().map(|r| r.failed);
        }
        if self
            .last_prune
            .is_none_or(|t| now.duration_since(t) >= self.config.prune_every)
        {
            self.last_prune = Some(now);
            let retention = chrono::Duration::from_std(self.config.log_retention)
                .unwrap_or(chrono::Duration::MAX);
            let before = self.clock.now() - retention;
            // The store logs what it deleted (one line per prune).
            let r = self
                .engine
                .stores()
                .logs
                .prune_logs(before, self.config.prune_batch)
                .await;
            self.step("prune", &r, &mut report);
            report.pruned = r.ok();
            let keep = chrono::Duration::from_std(self.config.dead_retention)
                .unwrap_or(chrono::Duration::MAX);
            let cutoff = self
                .clock
                .now()
                .checked_sub_signed(keep)
                .unwrap_or(chrono::DateTime::<chrono::Utc>::MIN_UTC);
            let r = self.engine.queue().prune_dead(cutoff).await;
            self.step("prune_dead", &r, &mut report);
        }
        report
    }

    /// Runs rounds every `tick` until `shutdown`, then flushes the sink once more and releases
    /// the lease. Returns the error of the final flush, if any.
    pub async fn run(mut self, shutdown: CancellationToken) -> Result<()> {
        tracing::info!(holder = %self.config.holder, "maintenance started");
        let mut was_leader = false;
        loop {
            let r = self.round().await;
            if r.leader != was_leader {
                tracing::info!(leader = r.leader, "maintenance leadership changed");
                was_leader = r.leader;
            }
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(self.config.tick) => {}
            }
        }
        let flushed = if was_leader {
            let deadline = tokio::time::Instant::now() + self.config.final_flush;
            let r = self.sink.flush_until(deadline).await;
            if let Ok(false) = r {
                tracing::info!(
                    "final flush stopped at its time limit; the pending snapshots stay in the store for the next leader"
                );
            }
            let r = r.map(|_| ());
            self.step("sink", &r, &mut RoundReport::default());
            r
        } else {
            Ok(())
        };
        if let Err(e) = self
            .leases
            .release_lease(MAINTENANCE_LEASE, &self.config.holder)
            .await
        {
            tracing::warn!(error = %e, "releasing the maintenance lease failed");
        }
        tracing::info!("maintenance stopped");
        flushed
    }
}
