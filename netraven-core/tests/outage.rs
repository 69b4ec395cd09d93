//! Reliability of the worker (issue #11): an outage of a backing service is not a device
//! failure, the attempt counter counts device attempts (not deliveries), and poison tasks (that
//! panic or fail again and again) go to the dead set once with their outcome recorded.

use async_trait::async_trait;
use netraven_core::Secret;
use netraven_core::clock::SystemClock;
use netraven_core::driver::DriverRegistry;
use netraven_core::engine::{Engine, EngineConfig, EngineParts};
use netraven_core::error::ErrorKind;
use netraven_core::memory::{FakeBehavior, FakeDriver, MemoryQueue, MemoryStore};
use netraven_core::model::*;
use netraven_core::normalise::Rules;
use netraven_core::prelude::*;
use netraven_core::queue::{Queue, TaskKind};
use netraven_core::snapshot::{SnapshotSink, StoreSnapshotSink};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

/// What the sink does on its first `n` puts.
#[derive(Debug, Clone, Copy)]
enum Fault {
    /// Fails with `unavailable` (the store or git is down).
    Unavailable,
    /// Panics (a bug on one device's data).
    Panic,
    /// Fails with `internal`.
    Internal,
}

/// A snapshot sink over the store that misbehaves on its first `left` puts.
#[derive(Debug)]
struct FlakySink {
    inner: StoreSnapshotSink,
    fault: Fault,
    left: AtomicU32,
    puts: AtomicU32,
}

#[async_trait]
impl SnapshotSink for FlakySink {
    async fn put(&self, snapshot: NewSnapshot) -> Result<SnapshotPut> {
        self.puts.fetch_add(1, Ordering::SeqCst);
        let faulty = self
            .left
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if faulty {
            match self.fault {
                Fault::Unavailable => return Err(Error::unavailable("database is down")),
                Fault::Internal => return Err(Error::internal("corrupt row")),
                Fault::Panic => panic!("the sink panicked on this device"),
            }
        }
        self.inner.put(snapshot).await
    }
    async fn latest(&self, device: DeviceId) -> Result<Option<Snapshot>> {
        self.inner.latest(device).await
    }
    async fn history(&self, device: DeviceId, page: Page) -> Result<Paged<SnapshotMeta>> {
        self.inner.history(device, page).await
    }
    async fn get(&self, id: SnapshotId) -> Result<Snapshot> {
        self.inner.get(id).await
    }
}

struct Rig {
    store: Arc<MemoryStore>,
    queue: Arc<MemoryQueue>,
    driver: Arc<FakeDriver>,
    sink: Arc<FlakySink>,
    engine: Arc<Engine>,
}

fn rig(fault: Fault, faults: u32, cfg: EngineConfig) -> Rig {
    let store = Arc::new(MemoryStore::new());
    let queue = Arc::new(MemoryQueue::new(Arc::new(SystemClock)));
    let driver = Arc::new(FakeDriver::new(
        "fake_ios",
        Rules::empty(),
        FakeBehavior {
            config: "hostname r\n".into(),
            ..FakeBehavior::default()
        },
    ));
    let mut reg = DriverRegistry::new();
    reg.register(driver.clone());
    let sink = Arc::new(FlakySink {
        inner: StoreSnapshotSink::new(store.clone()),
        fault,
        left: AtomicU32::new(faults),
        puts: AtomicU32::new(0),
    });
    let engine = Arc::new(Engine::new(
        EngineParts {
            store: store.clone(),
            queue: queue.clone(),
            drivers: Arc::new(reg),
            sink: sink.clone(),
            clock: Arc::new(SystemClock),
        },
        cfg,
    ));
    Rig {
        store,
        queue,
        driver,
        sink,
        engine,
    }
}

fn config() -> EngineConfig {
    EngineConfig {
        worker_id: "outage-worker".into(),
        concurrency: 4,
        device_timeout: Duration::from_secs(20),
        connect_timeout: Duration::from_secs(5),
        device_attempts: 1,
        retry_backoff: Duration::from_secs(1),
        claim_wait: Duration::from_millis(50),
        ..EngineConfig::default()
    }
}

/// One device with a credential and a backup job over it.
async fn one_device(r: &Rig, hostname: &str, b: Option<FakeBehavior>) -> (Device, Job) {
    let mut c = Credential::new("c", "netops", Secret::new("pw"));
    c.tags = vec!["lab".into()];
    r.store.create_credential(&c).await.unwrap();
    let d = Device::new(hostname, "127.0.0.1", "fake_ios").with_tags(["lab"]);
    if let Some(b) = b {
        r.driver.script(hostname, b);
    }
    let d = r.store.create_device(&d).await.unwrap();
    let job = r
        .store
        .create_job(&Job::backup(
            "j",
            Targets {
                device_ids: vec![d.id],
                tags: vec![],
            },
        ))
        .await
        .unwrap();
    (d, job)
}

/// Works the queue until it is empty; fails (instead of hanging) if that takes minutes.
async fn drain(r: &Rig) {
    tokio::time::timeout(Duration::from_secs(120), r.engine.drain())
        .await
        .expect("the queue never drained (a task is stuck)")
        .unwrap();
}

async fn results(r: &Rig, run: RunId) -> Vec<DeviceResult> {
    r.store
        .list_results(
            &ResultFilter {
                run_id: Some(run),
                ..Default::default()
            },
            Page::first(100),
        )
        .await
        .unwrap()
        .items
}

/// The sink (store, git) is unavailable for the first three puts: the device is not recorded
/// FAILED; its task is handed back with backoff and succeeds on the device's first attempt
/// once the sink is back.
#[tokio::test]
async fn an_unavailable_store_is_not_a_device_failure() {
    let r = rig(Fault::Unavailable, 3, config());
    let (d, job) = one_device(&r, "r1", None).await;
    let run = r.engine.run_now(job.id, None).await.unwrap().run;
    drain(&r).await;
    let run = r.store.get_run(run.id).await.unwrap();
    let res = results(&r, run.id).await;
    assert_eq!(res.len(), 1, "exactly one result");
    assert_eq!(
        (res[0].device_id, res[0].status, res[0].error_kind),
        (d.id, DeviceStatus::Success, None),
        "the outage was recorded as the device's failure: {:?}",
        res[0].message
    );
    assert_eq!(res[0].attempt, 1, "hand-backs used up device attempts");
    assert_eq!(run.status, RunStatus::CompletedSuccess);
    assert_eq!(r.sink.puts.load(Ordering::SeqCst), 4);
    assert_eq!(r.queue.stats().await.unwrap().dead, 0);
}

/// Deliveries handed back (a rolling restart releases in-flight tasks) use up no device
/// attempt: a device failing with `connection` gets its two attempts even after its task was
/// delivered and released three times.
#[tokio::test]
async fn released_deliveries_are_not_device_attempts() {
    let cfg = EngineConfig {
        device_attempts: 2,
        ..config()
    };
    let r = rig(Fault::Unavailable, 0, cfg);
    let down = FakeBehavior {
        connect_error: Some(ErrorKind::Connection),
        ..FakeBehavior::default()
    };
    let (d, job) = one_device(&r, "down", Some(down)).await;
    let run = r.engine.run_now(job.id, None).await.unwrap().run;
    // Start the run by hand, then deliver the device task three times and hand it back each time
    // (three workers stopped while holding it).
    let start = r
        .queue
        .claim("w", Duration::from_secs(30), Duration::ZERO)
        .await
        .unwrap()
        .unwrap();
    r.engine.process(&start).await.unwrap();
    r.queue.complete(&start).await.unwrap();
    for _ in 0..3 {
        let l = r
            .queue
            .claim("w", Duration::from_secs(30), Duration::ZERO)
            .await
            .unwrap()
            .expect("the device task");
        assert!(matches!(l.task.kind, TaskKind::Device { .. }));
        r.queue.release(&l).await.unwrap();
    }
    drain(&r).await;
    let res = results(&r, run.id).await;
    assert_eq!(res.len(), 1);
    assert_eq!(res[0].device_id, d.id);
    assert_eq!(res[0].status, DeviceStatus::Failed);
    assert_eq!(
        res[0].attempt, 2,
        "the result names the device attempt, not the delivery"
    );
    let logs = r
        .store
        .list_logs(
            &LogFilter {
                run_id: Some(run.id),
                ..LogFilter::default()
            },
            Page::first(100),
        )
        .await
        .unwrap();
    let retried = logs
        .items
        .iter()
        .filter(|l| l.message.starts_with("attempt 1 failed"))
        .count();
    assert_eq!(retried, 1, "the first device attempt was not retried");
}

/// A device task that panics every time goes to the dead set once (after `max_deliveries`
/// failures), its device gets one FAILED result, the run finishes, and recovery does not queue
/// it again.
#[tokio::test]
async fn a_panicking_device_task_is_buried_once() {
    let r = rig(Fault::Panic, u32::MAX, config());
    let (d, job) = one_device(&r, "boom", None).await;
    let run = r.engine.run_now(job.id, None).await.unwrap().run;
    drain(&r).await;
    let res = results(&r, run.id).await;
    assert_eq!(res.len(), 1);
    assert_eq!(
        (res[0].device_id, res[0].status, res[0].error_kind),
        (d.id, DeviceStatus::Failed, Some(ErrorKind::Internal))
    );
    assert!(
        res[0].message.as_deref().unwrap_or("").contains("panicked"),
        "{:?}",
        res[0].message
    );
    let run = r.store.get_run(run.id).await.unwrap();
    assert!(run.status.is_final(), "the run stays {:?}", run.status);
    assert_eq!(
        r.sink.puts.load(Ordering::SeqCst),
        r.engine.config().max_deliveries,
        "the task was not tried exactly max_deliveries times"
    );
    assert_eq!(r.queue.stats().await.unwrap().dead, 1);
    assert_eq!(
        r.engine.recover().await.unwrap(),
        0,
        "recovery re-queued it"
    );
}

/// A task failing with another error (not an outage) the same way: dead once, outcome recorded.
#[tokio::test]
async fn a_device_task_failing_internally_is_buried_once() {
    let r = rig(Fault::Internal, u32::MAX, config());
    let (_d, job) = one_device(&r, "bad", None).await;
    let run = r.engine.run_now(job.id, None).await.unwrap().run;
    drain(&r).await;
    // `internal` from the sink is a device failure the engine records itself (not retryable):
    // one result, no dead task.
    let res = results(&r, run.id).await;
    assert_eq!(res.len(), 1);
    assert_eq!(res[0].status, DeviceStatus::Failed);
    assert_eq!(r.sink.puts.load(Ordering::SeqCst), 1);
    assert_eq!(r.engine.recover().await.unwrap(), 0);
}

/// Credentials whose listing panics (a bug met while starting a run).
#[derive(Debug)]
struct PanickyCredentials(Arc<MemoryStore>);

#[async_trait]
impl netraven_core::store::CredentialStore for PanickyCredentials {
    async fn create_credential(&self, cred: &Credential) -> Result<Credential> {
        self.0.create_credential(cred).await
    }
    async fn get_credential(&self, id: CredentialId) -> Result<Credential> {
        self.0.get_credential(id).await
    }
    async fn update_credential(&self, cred: &Credential) -> Result<Credential> {
        self.0.update_credential(cred).await
    }
    async fn delete_credential(&self, id: CredentialId) -> Result<()> {
        self.0.delete_credential(id).await
    }
    async fn list_credentials(&self, page: Page) -> Result<Paged<Credential>> {
        self.0.list_credentials(page).await
    }
    async fn all_credentials(&self) -> Result<Vec<Credential>> {
        panic!("credential listing panicked")
    }
    async fn record_credential_use(
        &self,
        id: CredentialId,
        success: bool,
        at: chrono::DateTime<chrono::Utc>,
    ) -> Result<()> {
        self.0.record_credential_use(id, success, at).await
    }
}

/// A run's start task that panics every time goes to the dead set once and fails its run; it
/// is not started again by recovery.
#[tokio::test]
async fn a_poison_start_task_fails_its_run_once() {
    let r = rig(Fault::Unavailable, 0, config());
    let (_d, job) = one_device(&r, "r1", None).await;
    let mut stores = netraven_core::engine::WorkerStores::new(r.store.clone());
    stores.credentials = Arc::new(PanickyCredentials(r.store.clone()));
    let engine = Arc::new(Engine::with_stores(
        stores,
        r.queue.clone(),
        r.engine.drivers().clone(),
        r.sink.clone(),
        Arc::new(SystemClock),
        config(),
    ));
    let run = engine.run_now(job.id, None).await.unwrap().run;
    tokio::time::timeout(Duration::from_secs(120), engine.drain())
        .await
        .expect("the queue never drained (the start task is stuck)")
        .unwrap();
    let run = r.store.get_run(run.id).await.unwrap();
    assert_eq!(run.status, RunStatus::FailedError);
    assert!(
        run.message.as_deref().unwrap_or("").contains("panicked"),
        "{:?}",
        run.message
    );
    assert_eq!(r.queue.stats().await.unwrap().dead, 1);
    assert_eq!(
        engine.recover().await.unwrap(),
        0,
        "recovery started it again"
    );
}

/// Overlap `queue`: a second run of a job waits (QUEUED) while the first is active, then runs;
/// the two never overlap (the second starts after the first finished, by the store's times).
#[tokio::test]
async fn overlap_queue_runs_one_after_the_other() {
    let r = rig(Fault::Unavailable, 0, config());
    let slow = FakeBehavior {
        config: "hostname slow\n".into(),
        delay: Duration::from_millis(1500),
        ..FakeBehavior::default()
    };
    let (_d, mut job) = one_device(&r, "slow", Some(slow)).await;
    job.overlap = OverlapPolicy::Queue;
    let job = r.store.update_job(&job).await.unwrap();
    let first = r.engine.run_now(job.id, None).await.unwrap().run;
    let second = r.engine.run_now(job.id, None).await.unwrap().run;
    assert_ne!(first.id, second.id);
    drain(&r).await;
    let first = r.store.get_run(first.id).await.unwrap();
    let second = r.store.get_run(second.id).await.unwrap();
    assert_eq!(first.status, RunStatus::CompletedSuccess);
    assert_eq!(second.status, RunStatus::CompletedSuccess);
    let (Some(first_end), Some(second_start)) = (first.finished_at, second.started_at) else {
        panic!("runs without times: {first:?} {second:?}");
    };
    assert!(
        second_start >= first_end,
        "the queued run started at {second_start}, before the first finished at {first_end}"
    );
    assert_eq!(r.queue.stats().await.unwrap().dead, 0);
}

/// Overlap `queue` in the scheduler: while a run is active and one already waits, a further
/// fire is recorded as skipped instead of queueing a third.
#[tokio::test]
async fn overlap_queue_keeps_at_most_one_waiting_run() {
    use netraven_core::clock::ManualClock;
    use netraven_core::scheduler::{Scheduler, SchedulerConfig};
    let r = rig(Fault::Unavailable, 0, config());
    let (_d, mut job) = one_device(&r, "r1", None).await;
    let clock = Arc::new(ManualClock::new(chrono::Utc::now()));
    job.overlap = OverlapPolicy::Queue;
    job.schedule = Schedule::Interval { seconds: 60 };
    let job = r.store.update_job(&job).await.unwrap();
    let s = Scheduler::new(
        r.store.clone(),
        r.queue.clone(),
        clock.clone(),
        SchedulerConfig::default(),
    );
    let mut created = Vec::new();
    let mut skipped = Vec::new();
    for _ in 0..3 {
        clock.advance(Duration::from_secs(61));
        let t = s.tick().await.unwrap();
        created.extend(t.created);
        skipped.extend(t.skipped);
    }
    // Nothing worked on the queue: the first run is still active, the second waits behind it,
    // and the third fire is coalesced into the waiting one.
    assert_eq!(created.len(), 2, "created {created:?}, skipped {skipped:?}");
    assert_eq!(skipped.len(), 1);
    let _ = job;
}
