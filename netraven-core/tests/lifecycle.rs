//! The job lifecycle through the in-memory parts: fan-out, credential fallback, timeouts,
//! unreachable devices, unchanged configs, duplicate delivery, shutdown and recovery.

use netraven_core::Secret;
use netraven_core::clock::{Clock, ManualClock, SystemClock};
use netraven_core::driver::DriverRegistry;
use netraven_core::engine::{Engine, EngineConfig, EngineParts};
use netraven_core::error::ErrorKind;
use netraven_core::memory::{FakeBehavior, FakeDriver, MemoryQueue, MemoryStore};
use netraven_core::model::*;
use netraven_core::normalise::Rules;
use netraven_core::prelude::*;
use netraven_core::queue::{Lease, Queue, Task, TaskKind};
use netraven_core::snapshot::StoreSnapshotSink;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

struct Rig {
    store: Arc<MemoryStore>,
    queue: Arc<MemoryQueue>,
    driver: Arc<FakeDriver>,
    engine: Arc<Engine>,
}

fn rules() -> Rules {
    Rules::new(
        &[r"^! Last change"],
        &[(r"^(snmp-server community )\S+", "${1}{marker}")],
    )
    .unwrap()
}

fn config_for(host: &str) -> String {
    format!(
        "! Last change {}\nhostname {host}\nsnmp-server community s3cr3t RO\n",
        uuid::Uuid::new_v4()
    )
}

fn rig_with(clock: Arc<dyn Clock>, cfg: EngineConfig) -> Rig {
    let store = Arc::new(MemoryStore::new());
    let queue = Arc::new(MemoryQueue::new(clock.clone()));
    let driver = Arc::new(FakeDriver::new(
        "fake_ios",
        rules(),
        FakeBehavior::default(),
    ));
    let mut reg = DriverRegistry::new();
    reg.register(driver.clone());
    let engine = Arc::new(Engine::new(
        EngineParts {
            store: store.clone(),
            queue: queue.clone(),
            drivers: Arc::new(reg),
            sink: Arc::new(StoreSnapshotSink::new(store.clone())),
            clock,
        },
        cfg,
    ));
    Rig {
        store,
        queue,
        driver,
        engine,
    }
}

fn test_config() -> EngineConfig {
    EngineConfig {
        worker_id: "test-worker".into(),
        concurrency: 20,
        device_timeout: Duration::from_secs(5),
        connect_timeout: Duration::from_secs(2),
        device_attempts: 1,
        claim_wait: Duration::from_millis(50),
        ..EngineConfig::default()
    }
}

async fn cred(
    store: &MemoryStore,
    name: &str,
    password: &str,
    priority: i32,
    tags: &[&str],
) -> Credential {
    let mut c = Credential::new(name, "netops", Secret::new(password));
    c.priority = priority;
    c.tags = tags.iter().map(|s| s.to_string()).collect();
    store.create_credential(&c).await.unwrap()
}

async fn device(r: &Rig, name: &str, tags: &[&str], b: FakeBehavior) -> Device {
    let d = Device::new(name, "127.0.0.1", "fake_ios").with_tags(tags.iter().copied());
    let mut b = b;
    if b.config.is_empty() {
        b.config = config_for(name);
    }
    r.driver.script(name, b);
    r.store.create_device(&d).await.unwrap()
}

/// A manual backup job over the given device ids.
async fn job_for(store: &MemoryStore, ids: Vec<DeviceId>) -> Job {
    store
        .create_job(&Job::backup(
            format!("j{}", uuid::Uuid::new_v4()),
            Targets {
                device_ids: ids,
                tags: vec![],
            },
        ))
        .await
        .unwrap()
}

async fn wait_final(store: &MemoryStore, run: RunId) -> Run {
    for _ in 0..2000 {
        let r = store.get_run(run).await.unwrap();
        if r.status.is_final() {
            return r;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("run {run} did not finish");
}

#[tokio::test(start_paused = true)]
async fn fifty_devices_with_mixed_outcomes() {
    let r = rig_with(Arc::new(SystemClock), test_config());
    let c1 = cred(&r.store, "first", "pw-one", 1, &["lab"]).await;
    let c2 = cred(&r.store, "second", "pw-two", 2, &["lab"]).await;
    let mut ids = Vec::new();
    for i in 0..30 {
        ids.push(
            device(&r, &format!("ok-{i}"), &["lab"], FakeBehavior::default())
                .await
                .id,
        );
    }
    for i in 0..10 {
        let b = FakeBehavior {
            accept_passwords: vec!["pw-two".into()],
            ..Default::default()
        };
        ids.push(device(&r, &format!("auth-{i}"), &["lab"], b).await.id);
    }
    for i in 0..5 {
        let b = FakeBehavior {
            hang: true,
            ..Default::default()
        };
        device(&r, &format!("hang-{i}"), &["lab"], b).await;
    }
    for i in 0..5 {
        let b = FakeBehavior {
            connect_error: Some(ErrorKind::Connection),
            ..Default::default()
        };
        device(&r, &format!("down-{i}"), &["lab"], b).await;
    }
    let job = r
        .store
        .create_job(&Job::backup(
            "nightly",
            Targets {
                device_ids: vec![ids[0], ids[1]],
                tags: vec!["lab".into()],
            },
        ))
        .await
        .unwrap();

    let run = r.engine.run_now(job.id, None).await.unwrap().run;
    r.engine.drain().await.unwrap();
    let run = wait_final(&r.store, run.id).await;
    assert_eq!(run.status, RunStatus::CompletedPartialFailure);
    assert_eq!(run.counts.total, 50, "ids ∪ tags, deduplicated");
    assert_eq!(
        (run.counts.succeeded, run.counts.failed, run.counts.changed),
        (40, 10, 40)
    );

    let results = r
        .store
        .list_results(
            &ResultFilter {
                run_id: Some(run.id),
                ..Default::default()
            },
            Page::first(100),
        )
        .await
        .unwrap();
    assert_eq!(results.total, 50, "exactly one result per device");
    for res in &results.items {
        let d = r.store.get_device(res.device_id).await.unwrap();
        let h = d.hostname.as_str();
        if h.starts_with("ok-") {
            assert_eq!(res.status, DeviceStatus::Success, "{h}");
            assert_eq!(res.credential_id, Some(c1.id), "{h}");
        } else if h.starts_with("auth-") {
            assert_eq!(res.status, DeviceStatus::Success, "{h}");
            assert_eq!(
                res.credential_id,
                Some(c2.id),
                "{h} must fall back to the second credential"
            );
        } else if h.starts_with("hang-") {
            assert_eq!(res.error_kind, Some(ErrorKind::Timeout), "{h}");
        } else {
            assert_eq!(res.error_kind, Some(ErrorKind::Connection), "{h}");
        }
    }
    // A device that is down is tried once, not with every credential.
    let attempts = r.driver.attempts();
    assert!(!attempts.iter().any(|(h, _)| h.starts_with("down-")));
    assert_eq!(attempts.iter().filter(|(h, _)| h == "auth-0").count(), 2);
    let c1_after = r.store.get_credential(c1.id).await.unwrap();
    assert_eq!((c1_after.success_count, c1_after.failure_count), (30, 10));

    // Stored configs are normalised and redacted.
    let snap = r.store.latest_snapshot(ids[0]).await.unwrap().unwrap();
    let content = r.store.get_snapshot(snap.id).await.unwrap().content;
    assert_eq!(
        content,
        "hostname ok-0\nsnmp-server community <removed> RO\n"
    );

    // Logs cover each step and never hold a secret.
    let logs = r
        .store
        .list_logs(
            &LogFilter {
                run_id: Some(run.id),
                order: Order::Asc,
                ..Default::default()
            },
            Page::first(10_000),
        )
        .await
        .unwrap();
    let text: Vec<&str> = logs.items.iter().map(|e| e.message.as_str()).collect();
    assert!(
        text.iter()
            .any(|m| m.starts_with("run started") && m.contains("50 devices resolved"))
    );
    assert!(text.iter().any(|m| m.contains("rejected; trying the next")));
    assert!(
        text.iter()
            .any(|m| m.starts_with("logged in with credential 'second'"))
    );
    assert!(text.iter().any(|m| m.contains("configuration changed")));
    assert!(text.iter().any(|m| m.contains("device failed (timeout)")));
    assert!(
        text.last()
            .unwrap()
            .starts_with("run finished COMPLETED_PARTIAL_FAILURE")
    );
    let all = serde_json::to_string(&logs.items).unwrap();
    for secret in ["pw-one", "pw-two", "s3cr3t"] {
        assert!(!all.contains(secret), "a log entry leaked '{secret}'");
    }

    // A second run: the configs differ only in volatile lines, so nothing changes.
    for i in 0..30 {
        r.driver
            .set_config(&format!("ok-{i}"), config_for(&format!("ok-{i}")));
    }
    let run2 = r.engine.run_now(job.id, None).await.unwrap().run;
    r.engine.drain().await.unwrap();
    let run2 = wait_final(&r.store, run2.id).await;
    assert_eq!((run2.counts.changed, run2.counts.unchanged), (0, 40));
    let history = r
        .store
        .list_snapshots(ids[0], Page::first(10))
        .await
        .unwrap();
    assert_eq!(
        history.total, 1,
        "an unchanged device makes no new snapshot"
    );
}

fn lease_for(run: RunId, device: DeviceId, attempt: u32) -> Lease {
    Lease {
        task: Task {
            id: format!("dup-{attempt}"),
            kind: TaskKind::Device {
                run_id: run,
                device_id: device,
            },
            dedupe_key: None,
            attempt,
            max_attempts: 3,
            failures: 0,
            released: 0,
            zone: None,
        },
        worker_id: "w".into(),
        expires_at: chrono::Utc::now(),
    }
}

#[tokio::test]
async fn a_device_task_delivered_twice_records_one_result() {
    let r = rig_with(Arc::new(SystemClock), test_config());
    cred(&r.store, "c", "pw", 1, &["lab"]).await;
    let d = device(&r, "r1", &["lab"], FakeBehavior::default()).await;
    let job = job_for(&r.store, vec![d.id]).await;
    let run = r.engine.run_now(job.id, None).await.unwrap().run;
    r.store
        .start_run(run.id, &[d.id], chrono::Utc::now())
        .await
        .unwrap();
    let (l1, l2) = (lease_for(run.id, d.id, 1), lease_for(run.id, d.id, 2));
    let (a, b) = tokio::join!(r.engine.process(&l1), r.engine.process(&l2));
    a.unwrap();
    b.unwrap();
    r.engine.process(&lease_for(run.id, d.id, 3)).await.unwrap();
    let results = r
        .store
        .list_results(
            &ResultFilter {
                run_id: Some(run.id),
                ..Default::default()
            },
            Page::first(10),
        )
        .await
        .unwrap();
    assert_eq!(results.total, 1);
    let run = r.store.get_run(run.id).await.unwrap();
    assert_eq!(run.status, RunStatus::CompletedSuccess);
    assert_eq!(run.counts.done(), 1);
}

#[tokio::test]
async fn no_devices_and_no_credentials_have_their_own_status() {
    let r = rig_with(Arc::new(SystemClock), test_config());
    let empty = r
        .store
        .create_job(&Job::backup(
            "empty",
            Targets {
                device_ids: vec![],
                tags: vec!["nothing".into()],
            },
        ))
        .await
        .unwrap();
    let run = r.engine.run_now(empty.id, None).await.unwrap().run;
    r.engine.drain().await.unwrap();
    assert_eq!(
        wait_final(&r.store, run.id).await.status,
        RunStatus::CompletedNoDevices
    );

    cred(&r.store, "other", "pw", 1, &["elsewhere"]).await;
    device(&r, "lonely-1", &["lab"], FakeBehavior::default()).await;
    device(&r, "lonely-2", &["lab"], FakeBehavior::default()).await;
    let job = r
        .store
        .create_job(&Job::backup(
            "nocreds",
            Targets {
                device_ids: vec![],
                tags: vec!["lab".into()],
            },
        ))
        .await
        .unwrap();
    let run = r.engine.run_now(job.id, None).await.unwrap().run;
    r.engine.drain().await.unwrap();
    let run = wait_final(&r.store, run.id).await;
    assert_eq!(run.status, RunStatus::CompletedNoCredentials);
    let results = r
        .store
        .list_results(
            &ResultFilter {
                run_id: Some(run.id),
                ..Default::default()
            },
            Page::first(10),
        )
        .await
        .unwrap();
    assert_eq!(results.total, 2, "every device still gets its one result");
    assert!(
        results
            .items
            .iter()
            .all(|x| x.error_kind == Some(ErrorKind::NoCredentials))
    );
    assert!(r.driver.attempts().is_empty(), "nothing was tried");
}

#[tokio::test]
async fn every_credential_rejected_fails_with_no_credentials() {
    let r = rig_with(Arc::new(SystemClock), test_config());
    cred(&r.store, "a", "wrong-1", 1, &["lab"]).await;
    cred(&r.store, "b", "wrong-2", 2, &["lab"]).await;
    let d = device(
        &r,
        "r1",
        &["lab"],
        FakeBehavior {
            accept_passwords: vec!["right".into()],
            ..Default::default()
        },
    )
    .await;
    let job = job_for(&r.store, vec![d.id]).await;
    let run = r.engine.run_now(job.id, None).await.unwrap().run;
    r.engine.drain().await.unwrap();
    let run = wait_final(&r.store, run.id).await;
    assert_eq!(run.status, RunStatus::CompletedFailure);
    let res = r.store.get_result(run.id, d.id).await.unwrap().unwrap();
    assert_eq!(res.error_kind, Some(ErrorKind::NoCredentials));
    assert_eq!(r.driver.attempts().len(), 2);
}

#[tokio::test]
async fn a_retryable_failure_is_retried_then_recorded() {
    let clock = Arc::new(ManualClock::new(netraven_core::testkit::t0()));
    let cfg = EngineConfig {
        device_attempts: 2,
        retry_backoff: Duration::from_secs(30),
        ..test_config()
    };
    let r = rig_with(clock.clone(), cfg);
    cred(&r.store, "c", "pw", 1, &["lab"]).await;
    let d = device(
        &r,
        "flaky",
        &["lab"],
        FakeBehavior {
            connect_error: Some(ErrorKind::Timeout),
            ..Default::default()
        },
    )
    .await;
    let job = job_for(&r.store, vec![d.id]).await;
    let run = r.engine.run_now(job.id, None).await.unwrap().run;
    let worker_stop = CancellationToken::new();
    let worker = tokio::spawn(r.engine.clone().run_worker(worker_stop.clone()));
    // First attempt fails and is scheduled 30 s later (queue clock); nothing recorded yet.
    for _ in 0..200 {
        if r.queue.stats().await.unwrap().delayed == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        r.queue.stats().await.unwrap().delayed,
        1,
        "retry not scheduled"
    );
    assert!(r.store.get_result(run.id, d.id).await.unwrap().is_none());
    clock.advance(Duration::from_secs(31));
    let run = wait_final(&r.store, run.id).await;
    worker_stop.cancel();
    worker.await.unwrap().unwrap();
    let res = r.store.get_result(run.id, d.id).await.unwrap().unwrap();
    assert_eq!((res.error_kind, res.attempt), (Some(ErrorKind::Timeout), 2));
}

#[tokio::test]
async fn a_queue_that_lost_its_data_is_refilled_from_the_store() {
    let r = rig_with(Arc::new(SystemClock), test_config());
    cred(&r.store, "c", "pw", 1, &["lab"]).await;
    for i in 0..10 {
        device(&r, &format!("r{i}"), &["lab"], FakeBehavior::default()).await;
    }
    let job = r
        .store
        .create_job(&Job::backup(
            "j",
            Targets {
                device_ids: vec![],
                tags: vec!["lab".into()],
            },
        ))
        .await
        .unwrap();
    let run = r.engine.run_now(job.id, None).await.unwrap().run;
    // Process the start task only: the run is RUNNING with 10 device tasks queued.
    let start = r
        .queue
        .claim("w", Duration::from_secs(30), Duration::ZERO)
        .await
        .unwrap()
        .unwrap();
    r.engine.process(&start).await.unwrap();
    r.queue.complete(&start).await.unwrap();
    assert_eq!(r.queue.stats().await.unwrap().ready, 10);
    // Do three devices, then lose the queue.
    for _ in 0..3 {
        let l = r
            .queue
            .claim("w", Duration::from_secs(30), Duration::ZERO)
            .await
            .unwrap()
            .unwrap();
        r.engine.process(&l).await.unwrap();
    }
    let fresh = rig_with(Arc::new(SystemClock), test_config());
    let engine = Arc::new(Engine::new(
        EngineParts {
            store: r.store.clone(),
            queue: fresh.queue.clone(),
            drivers: Arc::new({
                let mut reg = DriverRegistry::new();
                reg.register(r.driver.clone());
                reg
            }),
            sink: Arc::new(StoreSnapshotSink::new(r.store.clone())),
            clock: Arc::new(SystemClock),
        },
        test_config(),
    ));
    assert_eq!(engine.recover().await.unwrap(), 7);
    assert_eq!(engine.recover().await.unwrap(), 0, "recovery is idempotent");
    engine.drain().await.unwrap();
    let run = wait_final(&r.store, run.id).await;
    assert_eq!(run.status, RunStatus::CompletedSuccess);
    assert_eq!(run.counts.done(), 10);
}

#[tokio::test]
async fn a_dead_workers_task_is_leased_again_and_finished_once() {
    let clock = Arc::new(ManualClock::new(netraven_core::testkit::t0()));
    let r = rig_with(clock.clone(), test_config());
    cred(&r.store, "c", "pw", 1, &["lab"]).await;
    let d = device(&r, "r1", &["lab"], FakeBehavior::default()).await;
    let job = job_for(&r.store, vec![d.id]).await;
    let run = r.engine.run_now(job.id, None).await.unwrap().run;
    let start = r
        .queue
        .claim("w", Duration::from_secs(60), Duration::ZERO)
        .await
        .unwrap()
        .unwrap();
    r.engine.process(&start).await.unwrap();
    r.queue.complete(&start).await.unwrap();
    // A worker claims the device task and dies without a word.
    let dead = r
        .queue
        .claim("dead", Duration::from_secs(60), Duration::ZERO)
        .await
        .unwrap()
        .unwrap();
    drop(dead);
    clock.advance(Duration::from_secs(61));
    assert_eq!(r.queue.reap_expired().await.unwrap(), 1);
    r.engine.drain().await.unwrap();
    let run = wait_final(&r.store, run.id).await;
    assert_eq!(run.status, RunStatus::CompletedSuccess);
    assert_eq!(
        r.store
            .get_result(run.id, d.id)
            .await
            .unwrap()
            .unwrap()
            .attempt,
        1,
        "a delivery lost with its worker is not a device attempt (it counts towards the \
         poison limit, `max_deliveries`, instead)"
    );
}

#[tokio::test(start_paused = true)]
async fn shutdown_releases_work_that_does_not_finish_in_time() {
    let cfg = EngineConfig {
        shutdown_grace: Duration::from_secs(1),
        device_timeout: Duration::from_secs(600),
        ..test_config()
    };
    let r = rig_with(Arc::new(SystemClock), cfg);
    cred(&r.store, "c", "pw", 1, &["lab"]).await;
    let slow = device(
        &r,
        "slow",
        &["lab"],
        FakeBehavior {
            delay: Duration::from_secs(60),
            ..Default::default()
        },
    )
    .await;
    let job = job_for(&r.store, vec![slow.id]).await;
    let run = r.engine.run_now(job.id, None).await.unwrap().run;
    let stop = CancellationToken::new();
    let worker = tokio::spawn(r.engine.clone().run_worker(stop.clone()));
    for _ in 0..100 {
        if r.queue.stats().await.unwrap().leased == 1
            && r.store.get_run(run.id).await.unwrap().status == RunStatus::Running
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    stop.cancel();
    worker.await.unwrap().unwrap();
    let s = r.queue.stats().await.unwrap();
    assert_eq!(
        (s.ready, s.leased),
        (1, 0),
        "the in-flight device was handed back"
    );
    assert!(r.store.get_result(run.id, slow.id).await.unwrap().is_none());
}

mockall::mock! {
    Drv {}
    #[async_trait::async_trait]
    impl netraven_core::driver::Driver for Drv {
        fn platform(&self) -> &str;
        fn rules(&self) -> &Rules;
        async fn connect(
            &self,
            device: &Device,
            credential: &Credential,
            timeout: Duration,
        ) -> netraven_core::Result<Box<dyn netraven_core::driver::Session>>;
        async fn probe(&self, device: &Device, timeout: Duration) -> netraven_core::Result<Duration>;
    }
}

#[tokio::test]
async fn pinned_credential_first_and_no_fallback_after_a_connection_failure() {
    let store = Arc::new(MemoryStore::new());
    let low = cred(&store, "low", "a", 50, &["lab"]).await;
    let high = cred(&store, "high", "b", 1, &["lab"]).await;
    let pinned = cred(&store, "pinned", "c", 99, &[]).await;
    let mut d = Device::new("r1", "127.0.0.1", "mock").with_tags(["lab"]);
    d.credential_id = Some(pinned.id);
    let d = store.create_device(&d).await.unwrap();

    let mut drv = MockDrv::new();
    let mut seq = mockall::Sequence::new();
    drv.expect_platform().return_const("mock".to_string());
    drv.expect_rules().return_const(Rules::empty());
    let pinned_id = pinned.id;
    drv.expect_connect()
        .withf(move |_, c, _| c.id == pinned_id)
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_, _, _| Err(netraven_core::Error::new(ErrorKind::Auth, "denied")));
    let high_id = high.id;
    drv.expect_connect()
        .withf(move |_, c, _| c.id == high_id)
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_, _, _| Err(netraven_core::Error::new(ErrorKind::Connection, "reset")));
    let low_id = low.id;
    drv.expect_connect()
        .withf(move |_, c, _| c.id == low_id)
        .times(0);

    let mut reg = DriverRegistry::new();
    reg.register(Arc::new(drv));
    let engine = Arc::new(Engine::new(
        EngineParts {
            store: store.clone(),
            queue: Arc::new(MemoryQueue::new(Arc::new(SystemClock))),
            drivers: Arc::new(reg),
            sink: Arc::new(StoreSnapshotSink::new(store.clone())),
            clock: Arc::new(SystemClock),
        },
        test_config(),
    ));
    let job = job_for(&store, vec![d.id]).await;
    let run = engine.run_now(job.id, None).await.unwrap().run;
    engine.drain().await.unwrap();
    let res = store.get_result(run.id, d.id).await.unwrap().unwrap();
    assert_eq!(res.error_kind, Some(ErrorKind::Connection));
    assert_eq!(
        store.get_credential(pinned.id).await.unwrap().failure_count,
        1
    );
}

impl std::fmt::Debug for MockDrv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MockDrv")
    }
}

/// A device's `timeout_multiplier` scales its deadlines: a device answering its connect in 3 s
/// fails under a 1 s connect timeout, and is backed up with a multiplier of 4; a multiplier
/// below 1 shortens the deadline. (Paused tokio time: no wall-clock timing.)
#[tokio::test(start_paused = true)]
async fn a_device_timeout_multiplier_scales_its_deadlines() {
    let cfg = EngineConfig {
        connect_timeout: Duration::from_secs(1),
        device_timeout: Duration::from_secs(5),
        ..test_config()
    };
    let r = rig_with(Arc::new(SystemClock), cfg);
    cred(&r.store, "c", "pw", 1, &["lab"]).await;
    let slow = |delay_ms| FakeBehavior {
        delay: Duration::from_millis(delay_ms),
        ..Default::default()
    };
    let plain = device(&r, "slow-plain", &["lab"], slow(3000)).await;
    let mut scaled = device(&r, "slow-scaled", &["lab"], slow(3000)).await;
    scaled.timeout_multiplier = Some(4.0);
    let scaled = r.store.update_device(&scaled).await.unwrap();
    let mut short = device(&r, "quick-but-short", &["lab"], slow(700)).await;
    short.timeout_multiplier = Some(0.5);
    let short = r.store.update_device(&short).await.unwrap();
    let job = job_for(&r.store, vec![plain.id, scaled.id, short.id]).await;
    let run = r.engine.run_now(job.id, None).await.unwrap().run;
    r.engine.drain().await.unwrap();
    let run = wait_final(&r.store, run.id).await;
    let res = |id| {
        let store = r.store.clone();
        let run = run.id;
        async move { store.get_result(run, id).await.unwrap().unwrap() }
    };
    assert_eq!(res(plain.id).await.error_kind, Some(ErrorKind::Timeout));
    assert_eq!(res(scaled.id).await.status, DeviceStatus::Success);
    assert_eq!(res(short.id).await.error_kind, Some(ErrorKind::Timeout));
    // A multiplier out of range is refused.
    let mut bad = scaled.clone();
    bad.timeout_multiplier = Some(1000.0);
    assert_eq!(
        r.store.update_device(&bad).await.unwrap_err().kind(),
        ErrorKind::InvalidInput
    );
}
