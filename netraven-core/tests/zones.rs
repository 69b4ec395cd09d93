//! Zones through the in-memory parts: a device's effective zone, a run spanning zones worked
//! by one worker per zone (each device by its own zone's worker), and the zone watch failing
//! the devices of a zone without a worker with `no_worker` (once, through the result path),
//! while a zone with a live worker is left alone.

use netraven_core::Secret;
use netraven_core::clock::{Clock, ManualClock, SystemClock};
use netraven_core::driver::DriverRegistry;
use netraven_core::engine::{Engine, EngineConfig, EngineParts};
use netraven_core::error::ErrorKind;
use netraven_core::maintenance::{Maintenance, MaintenanceConfig};
use netraven_core::memory::{FakeBehavior, FakeDriver, MemoryQueue, MemoryStore};
use netraven_core::model::*;
use netraven_core::normalise::Rules;
use netraven_core::prelude::*;
use netraven_core::zones::{TagZones, ZoneState, ZoneWatchConfig, effective_zone, zone_status};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

struct Rig {
    store: Arc<MemoryStore>,
    queue: Arc<MemoryQueue>,
    drivers: Arc<DriverRegistry>,
    driver: Arc<FakeDriver>,
    clock: Arc<dyn Clock>,
}

impl Rig {
    fn new(clock: Arc<dyn Clock>) -> Rig {
        let store = Arc::new(MemoryStore::new());
        let queue = Arc::new(MemoryQueue::new(clock.clone()));
        let driver = Arc::new(FakeDriver::new(
            "fake_ios",
            Rules::new::<&str, &str, &str>(&[], &[]).expect("rules"),
            FakeBehavior::default(),
        ));
        let mut reg = DriverRegistry::new();
        reg.register(driver.clone());
        Rig {
            store,
            queue,
            drivers: Arc::new(reg),
            driver,
            clock,
        }
    }

    /// A worker engine over the shared store and queue, for `zone`.
    fn engine(&self, worker: &str, zone: Option<&str>) -> Arc<Engine> {
        Arc::new(Engine::new(
            EngineParts {
                store: self.store.clone(),
                queue: self.queue.clone(),
                drivers: self.drivers.clone(),
                sink: Arc::new(netraven_core::snapshot::StoreSnapshotSink::new(
                    self.store.clone(),
                )),
                clock: self.clock.clone(),
            },
            EngineConfig {
                worker_id: worker.into(),
                concurrency: 4,
                device_timeout: Duration::from_secs(5),
                connect_timeout: Duration::from_secs(2),
                device_attempts: 1,
                claim_wait: Duration::from_millis(50),
                heartbeat_every: Duration::from_millis(100),
                zone: zone.map(str::to_string),
                ..EngineConfig::default()
            },
        ))
    }

    async fn tag(&self, name: &str, zone: Option<&str>) {
        self.store
            .create_tag(&Tag {
                id: 0,
                name: name.into(),
                description: None,
                zone: zone.map(str::to_string),
            })
            .await
            .expect("tag");
    }

    async fn device(&self, name: &str, tags: &[&str], zone: Option<&str>) -> Device {
        let mut d = Device::new(name, "127.0.0.1", "fake_ios").with_tags(tags.iter().copied());
        d.zone = zone.map(str::to_string);
        self.driver.script(
            name,
            FakeBehavior {
                config: format!("hostname {name}\n"),
                ..Default::default()
            },
        );
        self.store.create_device(&d).await.expect("device")
    }

    async fn job(&self, tags: &[&str]) -> Job {
        let mut c = Credential::new("lab", "netops", Secret::new("pw"));
        c.tags = vec!["lab".into()];
        self.store.create_credential(&c).await.expect("credential");
        self.store
            .create_job(&Job::backup(
                "zones",
                Targets {
                    device_ids: vec![],
                    tags: tags.iter().map(|t| t.to_string()).collect(),
                },
            ))
            .await
            .expect("job")
    }

    async fn results(&self, run: RunId) -> Vec<DeviceResult> {
        self.store
            .list_results(
                &ResultFilter {
                    run_id: Some(run),
                    ..Default::default()
                },
                Page::first(1000),
            )
            .await
            .expect("results")
            .items
    }
}

async fn wait_final(store: &MemoryStore, run: RunId) -> Run {
    for _ in 0..1000 {
        let r = store.get_run(run).await.expect("run");
        if r.status.is_final() {
            return r;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("run {run} did not finish");
}

#[test]
fn a_devices_own_zone_wins_then_its_first_zoned_tag() {
    let tags = TagZones::from_pairs([("site-a", "a"), ("site-b", "b")]);
    let mut d = DeviceSpec::new("r1", "192.0.2.1", "cisco_ios");
    assert_eq!(tags.zone_of(&d), None, "no zone anywhere: the default zone");
    d.tags = vec!["lab".into(), "site-b".into(), "site-a".into()];
    assert_eq!(
        tags.zone_of(&d).as_deref(),
        Some("b"),
        "the first tag (in the device's order) that has a zone"
    );
    d.zone = Some("own".into());
    assert_eq!(
        tags.zone_of(&d).as_deref(),
        Some("own"),
        "its own zone wins"
    );
    d.zone = None;
    d.tags = vec!["lab".into()];
    assert_eq!(effective_zone(&d, |_| None), None);
}

#[test]
fn zone_names_are_short_identifiers() {
    for ok in ["a", "site-1", "dc_east", "0"] {
        validate_zone(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
    }
    for bad in ["", "Site", "a b", "a:b", "ü", &"x".repeat(64)] {
        assert_eq!(
            validate_zone(bad).expect_err(bad).kind(),
            ErrorKind::InvalidInput
        );
    }
    let mut d = Device::new("r1", "192.0.2.1", "cisco_ios");
    d.zone = Some("a:b".into());
    assert!(d.validate().is_err(), "a device with a bad zone is refused");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_over_two_zones_is_worked_by_each_zones_own_worker() {
    let r = Rig::new(Arc::new(SystemClock));
    r.tag("site-a", Some("a")).await;
    let mut zone_of: HashMap<DeviceId, Option<&str>> = HashMap::new();
    for i in 0..4 {
        let d = r.device(&format!("a-{i}"), &["lab", "site-a"], None).await;
        zone_of.insert(d.id, Some("a"));
    }
    for i in 0..3 {
        // Its own zone, whatever its tags say.
        let d = r
            .device(&format!("b-{i}"), &["lab", "site-a"], Some("b"))
            .await;
        zone_of.insert(d.id, Some("b"));
    }
    for i in 0..2 {
        let d = r.device(&format!("d-{i}"), &["lab"], None).await;
        zone_of.insert(d.id, None);
    }
    let job = r.job(&["lab"]).await;
    let workers = [
        r.engine("w-default", None),
        r.engine("w-a", Some("a")),
        r.engine("w-b", Some("b")),
    ];
    let stop = CancellationToken::new();
    let handles: Vec<_> = workers
        .iter()
        .map(|e| tokio::spawn(e.clone().run_worker(stop.clone())))
        .collect();
    let run = workers[0].run_now(job.id, None).await.expect("run").run;
    let run = wait_final(&r.store, run.id).await;
    assert_eq!(run.status, RunStatus::CompletedSuccess, "{run:?}");
    assert_eq!(run.counts.total, 9);
    let results = r.results(run.id).await;
    assert_eq!(results.len(), 9, "one result per device");
    // Each device was worked on by its own zone's worker (the source of its result's log).
    for res in &results {
        let logs = r
            .store
            .list_logs(
                &LogFilter {
                    run_id: Some(run.id),
                    device_id: Some(res.device_id),
                    search: Some("device succeeded".into()),
                    ..Default::default()
                },
                Page::first(10),
            )
            .await
            .expect("logs")
            .items;
        assert_eq!(logs.len(), 1, "{logs:?}");
        let want = match zone_of[&res.device_id] {
            Some("a") => "worker:w-a",
            Some("b") => "worker:w-b",
            _ => "worker:w-default",
        };
        assert_eq!(logs[0].source, want, "device {}", res.device_id);
    }
    // The status shows each zone's live worker and nothing queued.
    let zones = zone_status(r.queue.as_ref(), r.clock.now(), Duration::from_secs(20))
        .await
        .expect("zones");
    let by: HashMap<Option<String>, (u64, ZoneState, u64)> = zones
        .iter()
        .map(|z| (z.zone.clone(), (z.live_workers, z.state, z.queued)))
        .collect();
    assert_eq!(by[&None], (1, ZoneState::Ok, 0), "{zones:?}");
    assert_eq!(by[&Some("a".into())], (1, ZoneState::Ok, 0), "{zones:?}");
    assert_eq!(by[&Some("b".into())], (1, ZoneState::Ok, 0), "{zones:?}");
    stop.cancel();
    for h in handles {
        h.await.expect("join").expect("worker");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zone_without_worker_fails_its_devices_with_no_worker_after_the_timeout() {
    let clock = Arc::new(ManualClock::new(netraven_core::testkit::t0()));
    let r = Rig::new(clock.clone());
    r.tag("far", Some("far")).await;
    r.tag("near", Some("near")).await;
    let mut far = Vec::new();
    for i in 0..3 {
        far.push(
            r.device(&format!("far-{i}"), &["lab", "far"], None)
                .await
                .id,
        );
    }
    let near = r.device("near-0", &["lab", "near"], None).await.id;
    let home = r.device("home-0", &["lab"], None).await.id;
    let job = r.job(&["lab"]).await;
    let default = r.engine("w-default", None);
    let run = default.run_now(job.id, None).await.expect("run").run;
    // The default zone's worker starts the run and backs up its own device; the others wait.
    default.drain().await.expect("drain");
    assert!(
        !r.store
            .get_run(run.id)
            .await
            .expect("run")
            .status
            .is_final()
    );
    // A worker of `near` is alive (it beats) but has not claimed yet.
    r.queue
        .heartbeat("w-near", Some("near"))
        .await
        .expect("beat");
    let mut maintenance = Maintenance::new(
        default.clone(),
        r.store.clone(),
        MaintenanceConfig {
            holder: "m1".into(),
            zone_watch_every: Duration::ZERO,
            zones: ZoneWatchConfig {
                zone_timeout: Duration::from_secs(60),
                live_window: Duration::from_secs(20),
                ..ZoneWatchConfig::default()
            },
            ..MaintenanceConfig::default()
        },
    );
    let first = maintenance.round().await;
    assert!(first.errors.is_empty(), "{first:?}");
    assert_eq!(first.no_worker, Some(0), "not before the timeout");
    let zones = zone_status(r.queue.as_ref(), clock.now(), Duration::from_secs(20))
        .await
        .expect("zones");
    let far_status = zones
        .iter()
        .find(|z| z.zone.as_deref() == Some("far"))
        .expect("far listed");
    assert_eq!(
        (far_status.state, far_status.queued),
        (ZoneState::NoWorker, 3)
    );
    let near_status = zones
        .iter()
        .find(|z| z.zone.as_deref() == Some("near"))
        .expect("near listed");
    assert_eq!(
        (near_status.state, near_status.live_workers),
        (ZoneState::Ok, 1)
    );

    clock.advance(Duration::from_secs(61));
    r.queue
        .heartbeat("w-near", Some("near"))
        .await
        .expect("beat");
    let second = maintenance.round().await;
    assert!(second.errors.is_empty(), "{second:?}");
    assert_eq!(second.no_worker, Some(3), "the three devices of `far` fail");
    let results = r.results(run.id).await;
    let by: HashMap<DeviceId, &DeviceResult> = results.iter().map(|x| (x.device_id, x)).collect();
    for id in &far {
        let res = by.get(id).expect("a result for each far device");
        assert_eq!(res.status, DeviceStatus::Failed);
        assert_eq!(res.error_kind, Some(ErrorKind::NoWorker), "{res:?}");
        assert!(
            res.message.as_deref().unwrap_or("").contains("far"),
            "{res:?}"
        );
    }
    assert_eq!(by[&home].status, DeviceStatus::Success);
    assert!(
        !by.contains_key(&near),
        "a zone with a live worker is left alone"
    );
    // Nothing of `far` is left to hand out, and a third pass records nothing more.
    let third = maintenance.round().await;
    assert_eq!(third.no_worker, Some(0));
    assert_eq!(r.results(run.id).await.len(), 4);

    // The worker of `near` finally claims: the run completes with one result per device.
    let near_worker = r.engine("w-near", Some("near"));
    near_worker.drain().await.expect("drain near");
    let run = wait_final(&r.store, run.id).await;
    assert_eq!(run.status, RunStatus::CompletedPartialFailure, "{run:?}");
    assert_eq!((run.counts.succeeded, run.counts.failed), (2, 3));
    assert_eq!(r.results(run.id).await.len(), 5);
}
