//! Maintenance as one library service: one leader acts, recovery refills the queue from the
//! store, the sink is flushed (git commits), old logs are pruned, and `run` flushes and hands
//! the lease over on shutdown.

use async_trait::async_trait;
use netraven_core::clock::{Clock, ManualClock};
use netraven_core::driver::DriverRegistry;
use netraven_core::engine::{Engine, EngineConfig, EngineParts};
use netraven_core::maintenance::{Maintenance, MaintenanceConfig};
use netraven_core::memory::{MemoryQueue, MemoryStore};
use netraven_core::model::*;
use netraven_core::prelude::*;
use netraven_core::snapshot::StoreSnapshotSink;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// A sink that counts flushes (what the git writer turns into commits).
#[derive(Debug)]
struct CountingSink {
    inner: StoreSnapshotSink,
    flushes: AtomicUsize,
    /// When set, flushes fail (a full disk under the git repository).
    fail: std::sync::atomic::AtomicBool,
}

#[async_trait]
impl SnapshotSink for CountingSink {
    async fn put(&self, s: NewSnapshot) -> Result<SnapshotPut> {
        self.inner.put(s).await
    }
    async fn latest(&self, d: DeviceId) -> Result<Option<Snapshot>> {
        self.inner.latest(d).await
    }
    async fn history(&self, d: DeviceId, p: Page) -> Result<Paged<SnapshotMeta>> {
        self.inner.history(d, p).await
    }
    async fn get(&self, id: SnapshotId) -> Result<Snapshot> {
        self.inner.get(id).await
    }
    async fn flush(&self) -> Result<()> {
        self.flushes.fetch_add(1, Ordering::SeqCst);
        if self.fail.load(Ordering::SeqCst) {
            return Err(Error::unavailable("git: no space left on device"));
        }
        Ok(())
    }
}

struct Rig {
    store: Arc<MemoryStore>,
    queue: Arc<MemoryQueue>,
    sink: Arc<CountingSink>,
    clock: Arc<ManualClock>,
}

impl Rig {
    fn new() -> Rig {
        let store = Arc::new(MemoryStore::new());
        let clock = Arc::new(ManualClock::new(netraven_core::testkit::t0()));
        Rig {
            queue: Arc::new(MemoryQueue::new(clock.clone())),
            sink: Arc::new(CountingSink {
                inner: StoreSnapshotSink::new(store.clone()),
                flushes: AtomicUsize::new(0),
                fail: std::sync::atomic::AtomicBool::new(false),
            }),
            store,
            clock,
        }
    }

    /// One process's maintenance over the shared store, queue and sink.
    fn maintenance(&self, holder: &str) -> Maintenance {
        self.maintenance_of(self.engine(), holder)
    }

    fn engine(&self) -> Arc<Engine> {
        let clock: Arc<dyn Clock> = self.clock.clone();
        Arc::new(Engine::new(
            EngineParts {
                store: self.store.clone(),
                queue: self.queue.clone(),
                drivers: Arc::new(DriverRegistry::new()),
                sink: self.sink.clone(),
                clock,
            },
            EngineConfig::default(),
        ))
    }

    fn maintenance_of(&self, engine: Arc<Engine>, holder: &str) -> Maintenance {
        Maintenance::new(
            engine,
            self.store.clone(),
            MaintenanceConfig {
                holder: holder.into(),
                tick: Duration::from_millis(10),
                log_retention: Duration::from_secs(7 * 86_400),
                ..MaintenanceConfig::default()
            },
        )
    }
}

#[tokio::test]
async fn one_leader_recovers_flushes_and_prunes() {
    let rig = Rig::new();
    let job = rig
        .store
        .create_job(&Job::backup("j", Targets::default()))
        .await
        .unwrap();
    // A queued run the queue never heard of (a Redis that lost its data).
    rig.store
        .create_run(&NewRun {
            job_id: job.id,
            trigger: Trigger::Manual,
            fire_time: None,
            idempotency_key: None,
            status: RunStatus::Queued,
            message: None,
            queued_at: rig.clock.now(),
        })
        .await
        .unwrap();
    let now = rig.clock.now();
    let old = now - chrono::Duration::days(10);
    rig.store
        .append_logs(&[
            LogEntry::new(old, LogLevel::Info, LogKind::Job, "t", "old"),
            LogEntry::new(now, LogLevel::Info, LogKind::Job, "t", "new"),
        ])
        .await
        .unwrap();

    let mut a = rig.maintenance("a");
    let mut b = rig.maintenance("b");
    let ra = a.round().await;
    assert!(ra.leader && ra.errors.is_empty(), "{ra:?}");
    assert_eq!(ra.recovered, Some(1));
    assert_eq!(rig.queue.stats().await.unwrap().ready, 1);
    assert!(ra.flushed);
    assert_eq!(ra.pruned, Some(1));
    assert_eq!(rig.sink.flushes.load(Ordering::SeqCst), 1);

    // The other process does nothing while the lease is held.
    let rb = b.round().await;
    assert!(!rb.leader);
    assert_eq!((rb.recovered, rb.pruned, rb.flushed), (None, None, false));
    assert_eq!(rig.sink.flushes.load(Ordering::SeqCst), 1);

    // The leader's next round flushes again; recovery and pruning wait for their interval.
    let ra = a.round().await;
    assert!(ra.leader && ra.flushed);
    assert_eq!((ra.recovered, ra.pruned), (None, None));
    assert_eq!(rig.sink.flushes.load(Ordering::SeqCst), 2);
    // Recovery is idempotent: the start task is queued once.
    assert_eq!(rig.queue.stats().await.unwrap().ready, 1);
}

#[tokio::test]
async fn run_flushes_on_shutdown_and_hands_the_lease_over() {
    let rig = Rig::new();
    let a = rig.maintenance("a");
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(a.run(shutdown.clone()));
    while rig.sink.flushes.load(Ordering::SeqCst) == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    shutdown.cancel();
    let before = rig.sink.flushes.load(Ordering::SeqCst);
    task.await.unwrap().unwrap();
    assert!(
        rig.sink.flushes.load(Ordering::SeqCst) > before,
        "a clean stop flushes once more"
    );
    // The lease was released: another process leads at once, without waiting for expiry.
    let mut b = rig.maintenance("b");
    assert!(b.round().await.leader);
}

#[tokio::test]
async fn a_failing_flush_is_a_status_and_an_event_not_only_a_log_line() {
    let rig = Rig::new();
    let engine = rig.engine();
    let mut events = engine.events().subscribe();
    let mut m = rig.maintenance_of(engine.clone(), "a");
    rig.sink.fail.store(true, Ordering::SeqCst);
    let r = m.round().await;
    assert!(r.leader && !r.flushed, "{r:?}");
    assert!(!engine.health().is_healthy());
    let sink = engine
        .health()
        .components()
        .into_iter()
        .find(|c| c.component == "sink")
        .expect("the sink has a status");
    assert_eq!(sink.failures, 1);
    assert!(
        sink.last_error
            .as_deref()
            .is_some_and(|e| e.contains("no space left")),
        "{sink:?}"
    );
    match events.try_recv() {
        Ok(netraven_core::events::Event::BackgroundError {
            component, error, ..
        }) => {
            assert_eq!(component, "sink");
            assert!(error.contains("no space left"), "{error}");
        }
        other => panic!("expected a background error event, got {other:?}"),
    }
    rig.sink.fail.store(false, Ordering::SeqCst);
    let r = m.round().await;
    assert!(r.flushed, "{r:?}");
    assert!(
        engine.health().is_healthy(),
        "{:?}",
        engine.health().components()
    );
}
