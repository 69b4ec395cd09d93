//! The worker loop: claim tasks with bounded concurrency, keep their leases alive, finish them,
//! and shut down gracefully.

use super::Engine;
use super::runner::TaskOutcome;
use crate::error::{ErrorKind, Result};
use crate::queue::{Lease, RetryOutcome};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

impl Engine {
    /// Works on tasks until `shutdown` is cancelled. Then it stops claiming, lets in-flight tasks
    /// finish for up to `shutdown_grace`, and hands the rest back to the queue (released, so
    /// another worker takes them at once).
    pub async fn run_worker(self: Arc<Self>, shutdown: CancellationToken) -> Result<()> {
        let permits = Arc::new(Semaphore::new(self.config.concurrency.max(1)));
        let abort = CancellationToken::new();
        let mut tasks = JoinSet::new();
        let mut last_reap = tokio::time::Instant::now();
        let zone = self.config.zone.clone();
        tracing::info!(worker = %self.config.worker_id, concurrency = self.config.concurrency, zone = zone.as_deref().unwrap_or("(default)"), "worker started");
        // The heartbeat runs on its own, so a worker busy with long devices still shows live.
        let beat_stop = CancellationToken::new();
        let beat = {
            let queue = self.queue.clone();
            let worker = self.config.worker_id.clone();
            let zone = zone.clone();
            let every = self.config.heartbeat_every.max(Duration::from_millis(100));
            let stop = beat_stop.clone();
            tokio::spawn(async move {
                loop {
                    if let Err(e) = queue.heartbeat(&worker, zone.as_deref()).await {
                        tracing::warn!(error = %e, "reporting the worker's heartbeat failed");
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(every) => {}
                        _ = stop.cancelled() => return,
                    }
                }
            })
        };
        loop {
            while tasks.try_join_next().is_some() {}
            let permit = tokio::select! {
                p = permits.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
                _ = shutdown.cancelled() => break,
            };
            if last_reap.elapsed() >= Duration::from_secs(5) {
                last_reap = tokio::time::Instant::now();
                if let Err(e) = self.queue.reap_expired().await {
                    tracing::warn!(error = %e, "reaping expired leases failed");
                }
            }
            // Every free slot claims in the same call: one queue round trip for up to
            // `concurrency` tasks instead of one per task.
            let mut slots = vec![permit];
            while let Ok(p) = permits.clone().try_acquire_owned() {
                slots.push(p);
            }
            let claimed = tokio::select! {
                c = self.queue.claim_many_in(&self.config.worker_id, zone.as_deref(), slots.len(), self.config.lease, self.config.claim_wait) => c,
                _ = shutdown.cancelled() => break,
            };
            match claimed {
                Ok(leases) => {
                    for lease in leases {
                        let Some(permit) = slots.pop() else {
                            // More than asked for (a backend's bug): hand it straight back.
                            if let Err(e) = self.queue.release(&lease).await {
                                tracing::warn!(task = %lease.task.id, error = %e, "could not hand back a task claimed beyond the free slots");
                            }
                            continue;
                        };
                        self.metrics.tasks_claimed.fetch_add(1, Ordering::Relaxed);
                        let engine = self.clone();
                        let abort = abort.child_token();
                        tasks.spawn(async move {
                            engine.handle(lease, abort).await;
                            drop(permit);
                        });
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "claiming a task failed; backing off");
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                        _ = shutdown.cancelled() => break,
                    }
                }
            }
        }
        let in_flight = tasks.len();
        if in_flight > 0 {
            tracing::info!(in_flight, "worker stopping: waiting for in-flight tasks");
        }
        let drained = tokio::time::timeout(self.config.shutdown_grace, async {
            while tasks.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            // Out of patience: each task hands its lease back (see `handle`).
            abort.cancel();
            while tasks.join_next().await.is_some() {}
        }
        beat_stop.cancel();
        let _ = beat.await;
        tracing::info!(worker = %self.config.worker_id, "worker stopped");
        Ok(())
    }

    /// Runs one task under a lease kept alive by a heartbeat, then completes, retries or
    /// releases it.
    async fn handle(&self, lease: Lease, abort: CancellationToken) {
        let lost = CancellationToken::new();
        let heartbeat = {
            let queue = self.queue.clone();
            let lease = lease.clone();
            let every = (self.config.lease / 3).max(Duration::from_millis(50));
            let lease_for = self.config.lease;
            let lost = lost.clone();
            async move {
                loop {
                    tokio::time::sleep(every).await;
                    match queue.extend(&lease, lease_for).await {
                        Ok(_) => {}
                        Err(e) if e.kind() == ErrorKind::Stale => {
                            tracing::warn!(task = %lease.task.id, "lease lost; abandoning the task");
                            lost.cancel();
                            return;
                        }
                        Err(e) => tracing::warn!(error = %e, "extending a lease failed"),
                    }
                }
            }
        };
        // A panic in the task is caught here: it counts as a failure of the task (poison after
        // `max_attempts`), never as a lost lease that recovery would hand out forever.
        let work = async {
            use futures::FutureExt;
            let run = std::panic::AssertUnwindSafe(self.process(&lease)).catch_unwind();
            tokio::select! {
                r = run => Some(r.unwrap_or_else(|panic| {
                    let what = panic
                        .downcast_ref::<&str>()
                        .map(|s| (*s).to_string())
                        .or_else(|| panic.downcast_ref::<String>().cloned())
                        .unwrap_or_else(|| "a panic".into());
                    Err(crate::Error::internal(format!("the task panicked: {what}")))
                })),
                _ = abort.cancelled() => None,
                _ = lost.cancelled() => None,
            }
        };
        let result = tokio::select! {
            r = work => r,
            _ = heartbeat => None,
        };
        let now = self.clock.now();
        let done = match result {
            Some(Ok(TaskOutcome::Done)) => self.queue.complete(&lease).await,
            Some(Ok(TaskOutcome::Retry(at, reason))) => {
                self.retry_or_bury(&lease, at, &reason).await
            }
            Some(Ok(TaskOutcome::Defer(at, _))) => self.queue.defer(&lease, at).await,
            Some(Err(e)) if e.kind() == ErrorKind::Unavailable => {
                // An outage is not the task's fault: hand it back with backoff, count nothing.
                let at = crate::clock::add(now, self.outage_backoff(lease.task.released));
                tracing::warn!(task = %lease.task.id, error = %e, %at, "a backing service is unavailable; the task is handed back");
                self.queue.defer(&lease, at).await
            }
            Some(Err(e)) => {
                tracing::warn!(task = %lease.task.id, error = %e, failures = lease.task.failures + 1, "task failed; it will be retried");
                let at =
                    crate::clock::add(now, self.config.retry_backoff.min(Duration::from_secs(5)));
                self.retry_or_bury(&lease, at, &e.to_string()).await
            }
            None if lost.is_cancelled() => Ok(()),
            None => self.queue.release(&lease).await,
        };
        if let Err(e) = done {
            tracing::warn!(task = %lease.task.id, error = %e, "could not settle a task with the queue");
        }
    }

    /// Counts a failure of the task with the queue; when that moves it to the dead set, records
    /// its final outcome in the store ([`Engine::bury`]).
    async fn retry_or_bury(
        &self,
        lease: &Lease,
        at: chrono::DateTime<chrono::Utc>,
        reason: &str,
    ) -> Result<()> {
        if self.queue.retry(lease, at, reason).await? == RetryOutcome::Dead {
            let mut task = lease.task.clone();
            task.failures += 1;
            if let Err(e) = self.bury(&task, reason).await {
                // The task is dead but its outcome is not recorded: recovery queues it again
                // (a new task with fresh counters), which is what we want while the store is down.
                tracing::warn!(task = %lease.task.id, error = %e, "could not record a dead task's outcome");
            }
        }
        Ok(())
    }

    /// Works until the queue has no deliverable task in this worker's zone (tests, one-shot
    /// commands). Not for servers: use [`Engine::run_worker`].
    pub async fn drain(self: &Arc<Self>) -> Result<()> {
        let shutdown = CancellationToken::new();
        let worker = tokio::spawn(self.clone().run_worker(shutdown.clone()));
        loop {
            tokio::time::sleep(Duration::from_millis(20)).await;
            let zones = self.queue.zone_stats().await?;
            let busy = zones
                .iter()
                .filter(|z| z.zone == self.config.zone)
                .any(|z| z.stats.ready + z.stats.leased + z.stats.delayed > 0);
            if !busy {
                break;
            }
        }
        shutdown.cancel();
        worker
            .await
            .map_err(|e| crate::Error::internal(format!("worker task panicked: {e}")))?
    }
}
