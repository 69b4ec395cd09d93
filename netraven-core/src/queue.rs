//! [`Queue`]: at-least-once delivery of work to workers, with leases and attempt fencing.
//!
//! The queue only delivers; the store is the source of truth. A task that a dead worker held is
//! handed out again once its lease expires ([`Queue::reap_expired`]); every claim bumps the task's
//! attempt number, and every later call made with an older attempt is refused with
//! [`crate::ErrorKind::Stale`], so a worker that lost its lease cannot complete or extend it.
//! Every backend must pass [`crate::testkit::queue`] (feature `testkit`).

use crate::error::Result;
use crate::model::{DeviceId, RunId};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::fmt::Debug;
use std::time::Duration;

/// The work a task stands for.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum TaskKind {
    /// Resolve a run's devices and fan them out.
    StartRun {
        /// The run.
        run_id: RunId,
    },
    /// Work on one device of a run.
    Device {
        /// The run.
        run_id: RunId,
        /// The device.
        device_id: DeviceId,
    },
}

impl TaskKind {
    /// The natural dedupe key of the task: one live task per run start or (run, device).
    pub fn dedupe_key(&self) -> String {
        match self {
            TaskKind::StartRun { run_id } => format!("run:{run_id}"),
            TaskKind::Device { run_id, device_id } => format!("dev:{run_id}:{device_id}"),
        }
    }
}

/// A task to enqueue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskSpec {
    /// The work.
    pub kind: TaskKind,
    /// While a task with this key is queued or leased, enqueuing another is a no-op.
    pub dedupe_key: Option<String>,
    /// Not deliverable before this time (`None`: now).
    pub run_at: Option<DateTime<Utc>>,
    /// After this many failures ([`Queue::retry`] calls), the task moves to the dead set.
    pub max_attempts: u32,
    /// The zone whose workers may claim it ([`Queue::claim_in`]); `None`: the default zone.
    /// Only device tasks have one; a run's start is always in the default zone.
    pub zone: Option<String>,
}

/// Failures after which a task is poison and goes to the dead set (the default of
/// [`TaskSpec::new`] and of the engine's `max_deliveries`).
pub const DEFAULT_MAX_FAILURES: u32 = 5;

impl TaskSpec {
    /// A task for `kind`, deduplicated by its natural key, deliverable now, dead after
    /// [`DEFAULT_MAX_FAILURES`] failures.
    pub fn new(kind: TaskKind) -> Self {
        TaskSpec {
            dedupe_key: Some(kind.dedupe_key()),
            kind,
            run_at: None,
            max_attempts: DEFAULT_MAX_FAILURES,
            zone: None,
        }
    }

    /// Builder-style: the zone whose workers may claim the task (`None`: the default zone).
    pub fn in_zone(mut self, zone: Option<String>) -> Self {
        self.zone = zone;
        self
    }
}

/// A task as stored in a queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Task {
    /// Queue-assigned id, unique within the queue.
    pub id: String,
    /// The work.
    pub kind: TaskKind,
    /// Dedupe key.
    pub dedupe_key: Option<String>,
    /// Claims so far (1 on first delivery). Used as the fencing token.
    pub attempt: u32,
    /// Failure limit for [`Queue::retry`].
    pub max_attempts: u32,
    /// Failures so far: [`Queue::retry`] calls (a failed device attempt, an error, a panic).
    /// A device's attempt number is `failures + 1`, whatever the number of deliveries.
    #[serde(default)]
    pub failures: u32,
    /// Deliveries handed back untouched ([`Queue::release`], [`Queue::defer`]: a shutdown, an
    /// outage of the store). `attempt - 1 - failures - released` deliveries before this one
    /// ended without being settled (the worker died or lost its lease).
    #[serde(default)]
    pub released: u32,
    /// The zone whose workers may claim it; `None`: the default zone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
}

impl Task {
    /// Deliveries before this one that ended without being settled: the worker holding it
    /// died (or lost its lease) while working on it. A task that keeps killing its workers is
    /// poison.
    pub fn lost_deliveries(&self) -> u32 {
        self.attempt
            .saturating_sub(1)
            .saturating_sub(self.failures)
            .saturating_sub(self.released)
    }
}

/// A claimed task: the holder may work on it until `expires_at` unless it extends the lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The task, with the attempt number of this claim.
    pub task: Task,
    /// The claiming worker.
    pub worker_id: String,
    /// Lease expiry.
    pub expires_at: DateTime<Utc>,
}

/// Outcome of [`Queue::enqueue`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Enqueued {
    /// A new task was queued.
    New(String),
    /// A live task with the same dedupe key exists; nothing was queued.
    Duplicate(String),
}

/// Outcome of [`Queue::retry`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryOutcome {
    /// The task will be delivered again at the requested time.
    Scheduled,
    /// The task had used all its attempts and was moved to the dead set.
    Dead,
}

/// How [`Queue::settle_many`] settles one lease: the batch form of [`Queue::complete`],
/// [`Queue::retry`], [`Queue::release`] and [`Queue::defer`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SettleOp<'a> {
    /// [`Queue::complete`].
    Complete,
    /// [`Queue::retry`] at `at` for `reason`.
    Retry {
        /// When the task is deliverable again.
        at: DateTime<Utc>,
        /// Why it failed.
        reason: &'a str,
    },
    /// [`Queue::release`].
    Release,
    /// [`Queue::defer`] to `at`.
    Defer {
        /// When the task is deliverable again.
        at: DateTime<Utc>,
    },
}

/// What [`Queue::settle_many`] did with one lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settled {
    /// Completed, released or deferred.
    Done,
    /// Retried: scheduled again or moved to the dead set.
    Retried(RetryOutcome),
}

/// Task counts by state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct QueueStats {
    /// Deliverable now.
    pub ready: u64,
    /// Waiting for their time (retries, scheduled).
    pub delayed: u64,
    /// Claimed by a worker.
    pub leased: u64,
    /// Gave up.
    pub dead: u64,
}

/// One worker's last heartbeat ([`Queue::heartbeat`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerBeat {
    /// The worker.
    pub worker_id: String,
    /// The zone it claims from (`None`: the default zone).
    pub zone: Option<String>,
    /// When it last reported (the queue's clock).
    pub at: DateTime<Utc>,
}

/// Task counts of one zone ([`Queue::zone_stats`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ZoneStats {
    /// The zone (`None`: the default zone).
    pub zone: Option<String>,
    /// Its tasks by state.
    pub stats: QueueStats,
}

/// A work queue with leases.
///
/// ```
/// # use netraven_core::prelude::*;
/// use netraven_core::clock::SystemClock;
/// use netraven_core::memory::MemoryQueue;
/// use netraven_core::queue::{TaskKind, TaskSpec};
/// use std::{sync::Arc, time::Duration};
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<()> {
/// let q = MemoryQueue::new(Arc::new(SystemClock));
/// q.enqueue(TaskSpec::new(TaskKind::StartRun { run_id: 1 })).await?;
/// let lease = q.claim("w1", Duration::from_secs(30), Duration::ZERO).await?.expect("a task");
/// q.complete(&lease).await?;
/// assert_eq!(q.stats().await?.ready, 0);
/// # Ok(()) }
/// ```
#[async_trait]
pub trait Queue: Send + Sync + Debug + 'static {
    /// Queues a task (see [`TaskSpec::dedupe_key`]).
    async fn enqueue(&self, spec: TaskSpec) -> Result<Enqueued>;
    /// Claims the next deliverable task of the default zone for `worker_id` with a lease of
    /// `lease_for`, waiting up to `wait` for one to arrive. `None` when nothing was deliverable
    /// in time. The same as [`Queue::claim_in`] with no zone.
    async fn claim(
        &self,
        worker_id: &str,
        lease_for: Duration,
        wait: Duration,
    ) -> Result<Option<Lease>> {
        self.claim_in(worker_id, None, lease_for, wait).await
    }
    /// Claims the next deliverable task of `zone` (`None`: the default zone) — never a task of
    /// another zone — with the same lease and fencing rules as [`Queue::claim`].
    async fn claim_in(
        &self,
        worker_id: &str,
        zone: Option<&str>,
        lease_for: Duration,
        wait: Duration,
    ) -> Result<Option<Lease>>;
    /// Claims up to `max` deliverable tasks of `zone` at once, each with its own lease of
    /// `lease_for` and its own attempt number (fencing token), with the same rules as
    /// [`Queue::claim_in`]. Waits up to `wait` for the first task, never for more: the result is
    /// empty only when nothing was deliverable in time. No task is handed to two claimers. The
    /// default claims one by one; a backend overrides it to claim in one round trip.
    async fn claim_many_in(
        &self,
        worker_id: &str,
        zone: Option<&str>,
        max: usize,
        lease_for: Duration,
        wait: Duration,
    ) -> Result<Vec<Lease>> {
        let mut out = Vec::new();
        if max == 0 {
            return Ok(out);
        }
        let Some(first) = self.claim_in(worker_id, zone, lease_for, wait).await? else {
            return Ok(out);
        };
        out.push(first);
        while out.len() < max {
            match self
                .claim_in(worker_id, zone, lease_for, Duration::ZERO)
                .await?
            {
                Some(l) => out.push(l),
                None => break,
            }
        }
        Ok(out)
    }
    /// Queues several tasks, in order, with the same rules as [`Queue::enqueue`] (a later spec
    /// whose dedupe key an earlier one of the batch took is a duplicate). One outcome per spec.
    /// An error may leave a prefix of the batch queued (retrying is harmless with dedupe keys).
    /// The default enqueues one by one; a backend overrides it to enqueue in few round trips.
    async fn enqueue_many(&self, specs: Vec<TaskSpec>) -> Result<Vec<Enqueued>> {
        let mut out = Vec::with_capacity(specs.len());
        for spec in specs {
            out.push(self.enqueue(spec).await?);
        }
        Ok(out)
    }
    /// Settles several leases, each on its own: one result per item, in order. A lease that was
    /// lost is refused with [`crate::ErrorKind::Stale`] in its own slot without failing the
    /// others. The outer error is for the call as a whole (e.g. the backend is unreachable);
    /// then some items may have been settled. The default settles one by one; a backend
    /// overrides it to settle in one round trip.
    async fn settle_many(&self, batch: &[(&Lease, SettleOp<'_>)]) -> Result<Vec<Result<Settled>>> {
        let mut out = Vec::with_capacity(batch.len());
        for (lease, op) in batch {
            let r = match *op {
                SettleOp::Complete => self.complete(lease).await.map(|()| Settled::Done),
                SettleOp::Retry { at, reason } => {
                    self.retry(lease, at, reason).await.map(Settled::Retried)
                }
                SettleOp::Release => self.release(lease).await.map(|()| Settled::Done),
                SettleOp::Defer { at } => self.defer(lease, at).await.map(|()| Settled::Done),
            };
            match r {
                Err(e) if e.kind() != crate::error::ErrorKind::Stale => return Err(e),
                r => out.push(r),
            }
        }
        Ok(out)
    }
    /// Completes several leases ([`Queue::settle_many`] with [`SettleOp::Complete`]): one
    /// result per lease, a lost lease refused as Stale in its own slot.
    async fn complete_many(&self, leases: &[Lease]) -> Result<Vec<Result<()>>> {
        let batch: Vec<(&Lease, SettleOp<'_>)> =
            leases.iter().map(|l| (l, SettleOp::Complete)).collect();
        Ok(self
            .settle_many(&batch)
            .await?
            .into_iter()
            .map(|r| r.map(|_| ()))
            .collect())
    }
    /// Records that `worker_id`, claiming from `zone`, is alive now. The default records
    /// nothing (such a queue shows no workers, so zones are never watched on it).
    async fn heartbeat(&self, worker_id: &str, zone: Option<&str>) -> Result<()> {
        let _ = (worker_id, zone);
        Ok(())
    }
    /// Workers whose last heartbeat is at or after `since`, with their zones.
    async fn workers(&self, since: DateTime<Utc>) -> Result<Vec<WorkerBeat>> {
        let _ = since;
        Ok(Vec::new())
    }
    /// Task counts per zone, for every zone that has tasks (the default zone always listed
    /// first). The default: everything in the default zone.
    async fn zone_stats(&self) -> Result<Vec<ZoneStats>> {
        Ok(vec![ZoneStats {
            zone: None,
            stats: self.stats().await?,
        }])
    }
    /// Extends a lease; Stale if the lease was lost (expired and reclaimed, or completed).
    async fn extend(&self, lease: &Lease, lease_for: Duration) -> Result<DateTime<Utc>>;
    /// Removes a finished task; Stale if the lease was lost.
    async fn complete(&self, lease: &Lease) -> Result<()>;
    /// Counts a failure of the task and schedules it again at `at`, or moves it to the dead set
    /// once its failures reach `max_attempts`; Stale if the lease was lost.
    async fn retry(&self, lease: &Lease, at: DateTime<Utc>, reason: &str) -> Result<RetryOutcome>;
    /// Hands a task back untouched (shutdown); it is deliverable again at once. Counts no
    /// failure.
    async fn release(&self, lease: &Lease) -> Result<()>;
    /// Hands a task back untouched, deliverable again at `at` (backoff during an outage of a
    /// backing service). Counts no failure. The default releases it at once.
    async fn defer(&self, lease: &Lease, at: DateTime<Utc>) -> Result<()> {
        let _ = at;
        self.release(lease).await
    }
    /// Removes dead tasks that died before `before`; returns how many. The default keeps them.
    async fn prune_dead(&self, before: DateTime<Utc>) -> Result<u64> {
        let _ = before;
        Ok(0)
    }
    /// Returns tasks whose leases expired to the ready set; returns how many. Also promotes
    /// delayed tasks whose time came.
    async fn reap_expired(&self) -> Result<u64>;
    /// Counts by state, over every zone.
    async fn stats(&self) -> Result<QueueStats>;
}
