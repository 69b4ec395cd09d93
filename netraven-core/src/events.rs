//! What happens, as it happens: device results, log lines, finished runs and failures of
//! background work, published by the engine and maintenance of this process ([`Events`]), a
//! per-run view that also sees work done by other processes ([`RunEvents`]), and the status of
//! background work ([`Health`]).
//!
//! ```
//! use netraven_core::events::{Event, Events};
//! use netraven_core::model::RunStatus;
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let events = Events::new();
//! let mut rx = events.subscribe();
//! events.publish(Event::RunFinished { run_id: 7, status: RunStatus::CompletedSuccess });
//! assert_eq!(rx.recv().await.ok().and_then(|e| e.run_id()), Some(7));
//! # }
//! ```

use crate::error::Result;
use crate::model::*;
use crate::store::{ResultStore, RunStore};
use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::broadcast;

/// One thing that happened.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Event {
    /// A device's result was recorded (exactly once per run and device).
    Result(DeviceResult),
    /// A log entry was written (its `id` is 0: the store assigns ids).
    Log(LogEntry),
    /// A run reached its final status.
    RunFinished {
        /// The run.
        run_id: RunId,
        /// Its final status.
        status: RunStatus,
    },
    /// A background step failed (see [`Health`]): the snapshot sink's flush (git commits),
    /// recovery, lease reaping, log pruning.
    BackgroundError {
        /// The step, e.g. `sink`.
        component: String,
        /// What went wrong.
        error: String,
        /// When.
        at: DateTime<Utc>,
    },
    /// This subscriber fell behind and missed this many events (a [`RunEvents`] re-reads the
    /// run's results from the store, so only log lines are lost).
    Lagged(u64),
}

impl Event {
    /// The run the event belongs to, if any.
    pub fn run_id(&self) -> Option<RunId> {
        match self {
            Event::Result(r) => Some(r.run_id),
            Event::Log(l) => l.run_id,
            Event::RunFinished { run_id, .. } => Some(*run_id),
            Event::BackgroundError { .. } | Event::Lagged(_) => None,
        }
    }
}

/// Events held for slow subscribers before they lag.
const CAPACITY: usize = 4096;

/// The event bus of one process. Cheap to clone; publishing without subscribers costs nothing
/// but a check.
#[derive(Debug, Clone)]
pub struct Events {
    tx: broadcast::Sender<Event>,
}

impl Default for Events {
    fn default() -> Self {
        Events::new()
    }
}

impl Events {
    /// A bus without subscribers.
    pub fn new() -> Self {
        Events {
            tx: broadcast::channel(CAPACITY).0,
        }
    }

    /// Sends an event to every current subscriber.
    pub fn publish(&self, event: Event) {
        if self.tx.receiver_count() > 0 {
            // No receiver left between the check and the send is not an error.
            let _ = self.tx.send(event);
        }
    }

    /// Every event from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.tx.subscribe()
    }

    /// The events of one run from now on (see [`RunEvents`]).
    /// `runs` and `results` are usually the same store (`store.clone()` twice).
    pub fn run(
        &self,
        runs: Arc<dyn RunStore>,
        results: Arc<dyn ResultStore>,
        run: RunId,
    ) -> RunEvents {
        RunEvents::new(self.subscribe(), runs, results, run)
    }
}

/// The events of one run, in order: its device results and log lines as this process's engine
/// produces them, then [`Event::RunFinished`], then the end (`None`).
///
/// It reads the store too, so it is complete for results whoever works on the run: results
/// recorded before it was created or by workers in other processes are read from the store
/// (every `poll`, default 0.5 s), each result comes exactly once, and it ends when the store
/// says the run is final. Log lines come only from this process's engine.
pub struct RunEvents {
    rx: broadcast::Receiver<Event>,
    runs: Arc<dyn RunStore>,
    results: Arc<dyn ResultStore>,
    run: RunId,
    seen: HashSet<DeviceId>,
    pending: VecDeque<Event>,
    done: bool,
    poll: Duration,
}

impl std::fmt::Debug for RunEvents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunEvents")
            .field("run", &self.run)
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

impl RunEvents {
    /// The events of `run` arriving on `rx` (subscribe before starting the run to miss no log
    /// line), completed from the store.
    pub fn new(
        rx: broadcast::Receiver<Event>,
        runs: Arc<dyn RunStore>,
        results: Arc<dyn ResultStore>,
        run: RunId,
    ) -> Self {
        RunEvents {
            rx,
            runs,
            results,
            run,
            seen: HashSet::new(),
            pending: VecDeque::new(),
            done: false,
            poll: Duration::from_millis(500),
        }
    }

    /// How often the store is read for results from elsewhere and the run's status.
    pub fn poll_every(mut self, every: Duration) -> Self {
        self.poll = every.max(Duration::from_millis(10));
        self
    }

    /// The run.
    pub fn run_id(&self) -> RunId {
        self.run
    }

    /// Queues the run's results the store has and this stream has not yielded; true when the
    /// run is final (then [`Event::RunFinished`] is queued after them).
    async fn catch_up(&mut self) -> Result<bool> {
        let run = self.runs.get_run(self.run).await?;
        let mut page = 1;
        loop {
            let filter = ResultFilter {
                run_id: Some(self.run),
                ..ResultFilter::default()
            };
            let p = self
                .results
                .list_results(&filter, Page::new(page, 1000))
                .await?;
            let mut fresh: Vec<DeviceResult> = p
                .items
                .into_iter()
                .filter(|r| !self.seen.contains(&r.device_id))
                .collect();
            fresh.sort_by_key(|r| (r.finished_at, r.id));
            for r in fresh {
                self.seen.insert(r.device_id);
                self.pending.push_back(Event::Result(r));
            }
            if page >= p.pages {
                break;
            }
            page += 1;
        }
        if run.status.is_final() {
            self.pending.push_back(Event::RunFinished {
                run_id: run.id,
                status: run.status,
            });
            self.done = true;
        }
        Ok(run.status.is_final())
    }

    /// The next event, or `None` after [`Event::RunFinished`]. Errors come from the store.
    pub async fn next(&mut self) -> Option<Result<Event>> {
        loop {
            if let Some(e) = self.pending.pop_front() {
                return Some(Ok(e));
            }
            if self.done {
                return None;
            }
            let received = tokio::select! {
                r = self.rx.recv() => Some(r),
                _ = tokio::time::sleep(self.poll) => None,
            };
            match received {
                Some(Ok(e)) if e.run_id() == Some(self.run) => match e {
                    Event::Result(r) => {
                        if self.seen.insert(r.device_id) {
                            return Some(Ok(Event::Result(r)));
                        }
                    }
                    // Results recorded elsewhere come first, then the end.
                    Event::RunFinished { .. } => {
                        if let Err(e) = self.catch_up().await {
                            return Some(Err(e));
                        }
                    }
                    other => return Some(Ok(other)),
                },
                Some(Ok(_)) => {}
                Some(Err(broadcast::error::RecvError::Lagged(n))) => {
                    self.pending.push_back(Event::Lagged(n));
                    if let Err(e) = self.catch_up().await {
                        return Some(Err(e));
                    }
                }
                // The engine is gone, or nothing happened for a while: ask the store.
                Some(Err(broadcast::error::RecvError::Closed)) | None => {
                    if let Err(e) = self.catch_up().await {
                        return Some(Err(e));
                    }
                    if matches!(received, Some(Err(_))) && !self.done {
                        tokio::time::sleep(self.poll).await;
                    }
                }
            }
        }
    }

    /// The events as a [`futures::Stream`].
    pub fn into_stream(self) -> impl futures::Stream<Item = Result<Event>> + Send {
        futures::stream::unfold(self, |mut s| async move { s.next().await.map(|e| (e, s)) })
    }
}

/// The status of one background step.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ComponentStatus {
    /// The step, e.g. `sink`.
    pub component: String,
    /// When it last succeeded.
    pub last_ok: Option<DateTime<Utc>>,
    /// Its last error, while it is failing.
    pub last_error: Option<String>,
    /// Since when it has been failing.
    pub failing_since: Option<DateTime<Utc>>,
    /// Failures in a row.
    pub failures: u64,
}

impl ComponentStatus {
    /// Whether the step's last attempt succeeded.
    pub fn is_ok(&self) -> bool {
        self.last_error.is_none()
    }
}

/// The status of this process's background work (maintenance steps: recovery, reaping, the
/// sink's flush — git commits —, pruning). Failures are also published as
/// [`Event::BackgroundError`]. Cheap to clone; clones share the state.
#[derive(Debug, Clone, Default)]
pub struct Health {
    state: Arc<Mutex<BTreeMap<String, ComponentStatus>>>,
}

impl Health {
    /// No step has run yet.
    pub fn new() -> Self {
        Health::default()
    }

    fn with<R>(&self, component: &str, f: impl FnOnce(&mut ComponentStatus) -> R) -> R {
        let mut g = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let entry = g
            .entry(component.to_string())
            .or_insert_with(|| ComponentStatus {
                component: component.to_string(),
                last_ok: None,
                last_error: None,
                failing_since: None,
                failures: 0,
            });
        f(entry)
    }

    /// Records a success of `component`.
    pub fn ok(&self, component: &str, at: DateTime<Utc>) {
        self.with(component, |s| {
            s.last_ok = Some(at);
            s.last_error = None;
            s.failing_since = None;
            s.failures = 0;
        });
    }

    /// Records a failure of `component`.
    pub fn failed(&self, component: &str, error: &str, at: DateTime<Utc>) {
        self.with(component, |s| {
            s.last_error = Some(error.to_string());
            s.failing_since.get_or_insert(at);
            s.failures += 1;
        });
    }

    /// Every step's status, by name.
    pub fn components(&self) -> Vec<ComponentStatus> {
        self.state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect()
    }

    /// Whether every step's last attempt succeeded.
    pub fn is_healthy(&self) -> bool {
        self.components().iter().all(ComponentStatus::is_ok)
    }
}

/// The state of one role of a process (api, worker, scheduler, maintenance).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RoleState {
    /// Working.
    Running,
    /// Ended without error (shutdown).
    Stopped,
    /// Ended with an error or a panic; the process stops.
    Failed,
}

/// One role's state, as `/api/health` shows it: never the error's text (it may name a path or a
/// host), only its kind.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RoleStatus {
    /// The role.
    pub role: String,
    /// Its state.
    pub state: RoleState,
    /// The kind of the error it failed with.
    pub error_kind: Option<crate::error::ErrorKind>,
    /// Since when it is in this state.
    pub since: DateTime<Utc>,
}

/// The roles this process runs and their states (see [`RoleState`]). Cheap to clone; clones
/// share the state.
#[derive(Debug, Clone, Default)]
pub struct Roles {
    state: Arc<Mutex<BTreeMap<String, RoleStatus>>>,
}

impl Roles {
    /// No role yet.
    pub fn new() -> Self {
        Roles::default()
    }

    /// Sets `role`'s state (`error_kind` only for [`RoleState::Failed`]).
    pub fn set(&self, role: &str, state: RoleState, error_kind: Option<crate::error::ErrorKind>) {
        let mut g = self.state.lock().unwrap_or_else(|p| p.into_inner());
        g.insert(
            role.to_string(),
            RoleStatus {
                role: role.to_string(),
                state,
                error_kind,
                since: Utc::now(),
            },
        );
    }

    /// Every role's status, by name.
    pub fn all(&self) -> Vec<RoleStatus> {
        self.state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect()
    }

    /// Whether no role failed.
    pub fn none_failed(&self) -> bool {
        self.all().iter().all(|r| r.state != RoleState::Failed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::MemoryStore;
    use crate::store::{JobStore, RunStore};
    use crate::testkit::t0;

    #[test]
    fn health_tracks_failures_until_a_success() {
        let h = Health::new();
        assert!(h.is_healthy());
        h.failed("sink", "git: disk full", t0());
        h.failed("sink", "git: disk full", t0());
        let s = &h.components()[0];
        assert_eq!((s.failures, s.failing_since), (2, Some(t0())));
        assert!(!h.is_healthy());
        h.ok("sink", t0());
        assert!(h.is_healthy());
        assert_eq!(h.components()[0].last_ok, Some(t0()));
    }

    #[tokio::test]
    async fn run_events_see_results_from_the_store_and_end_when_final() {
        let store = Arc::new(MemoryStore::new());
        let job = store
            .create_job(&Job::backup("j", Targets::default()))
            .await
            .expect("job");
        let run = store
            .create_run(&NewRun {
                job_id: job.id,
                trigger: Trigger::Manual,
                fire_time: None,
                idempotency_key: None,
                status: RunStatus::Queued,
                message: None,
                queued_at: t0(),
            })
            .await
            .expect("run")
            .run;
        store.start_run(run.id, &[1, 2], t0()).await.expect("start");
        let events = Events::new();
        let mut sub = events
            .run(store.clone(), store.clone(), run.id)
            .poll_every(Duration::from_millis(20));
        let result = |device_id| DeviceResult {
            id: 0,
            run_id: run.id,
            job_id: job.id,
            device_id,
            status: DeviceStatus::Success,
            error_kind: None,
            message: None,
            duration_ms: 1,
            credential_id: None,
            snapshot_id: None,
            changed: Some(true),
            output: None,
            attempt: 1,
            started_at: t0(),
            finished_at: t0(),
        };
        // Device 1 is recorded by "another process" (store only), device 2 by this one.
        store.record_result(&result(1)).await.expect("record");
        store.record_result(&result(2)).await.expect("record");
        events.publish(Event::Result(result(2)));
        events.publish(Event::Result(result(2)));
        let mut devices = Vec::new();
        for _ in 0..2 {
            match sub.next().await {
                Some(Ok(Event::Result(r))) => devices.push(r.device_id),
                other => panic!("expected a result, got {other:?}"),
            }
        }
        devices.sort();
        assert_eq!(devices, vec![1, 2], "each result exactly once");
        store
            .finish_run(run.id, RunStatus::CompletedSuccess, t0(), None)
            .await
            .expect("finish");
        assert!(matches!(
            sub.next().await,
            Some(Ok(Event::RunFinished {
                status: RunStatus::CompletedSuccess,
                ..
            }))
        ));
        assert!(sub.next().await.is_none());
    }
}
