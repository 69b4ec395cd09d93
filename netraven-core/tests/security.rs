//! Security properties of the engine: refused addresses get nothing, a device not trusted yet
//! gets one credential, a command job never runs twice on a device, an unreadable credential is
//! skipped.

use netraven_core::Secret;
use netraven_core::clock::SystemClock;
use netraven_core::driver::DriverRegistry;
use netraven_core::engine::{Engine, EngineConfig, EngineParts};
use netraven_core::error::ErrorKind;
use netraven_core::memory::{FakeBehavior, FakeDriver, MemoryQueue, MemoryStore};
use netraven_core::model::*;
use netraven_core::netpolicy::AddressPolicy;
use netraven_core::normalise::Rules;
use netraven_core::prelude::*;
use netraven_core::queue::{Lease, Task, TaskKind};
use netraven_core::snapshot::StoreSnapshotSink;
use std::sync::Arc;
use std::time::Duration;

struct Rig {
    store: Arc<MemoryStore>,
    driver: Arc<FakeDriver>,
    engine: Arc<Engine>,
}

fn rig(policy: AddressPolicy) -> Rig {
    rig_with(policy, 1)
}

fn rig_with(policy: AddressPolicy, attempts: u32) -> Rig {
    let store = Arc::new(MemoryStore::new());
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let driver = Arc::new(FakeDriver::new(
        "fake_ios",
        Rules::new::<&str, &str, &str>(&[], &[(r"^(secret )\S+", "${1}{marker}")]).unwrap(),
        FakeBehavior::default(),
    ));
    let mut reg = DriverRegistry::new();
    reg.register(driver.clone());
    let engine = Arc::new(Engine::new(
        EngineParts {
            store: store.clone(),
            queue: Arc::new(MemoryQueue::new(clock.clone())),
            drivers: Arc::new(reg),
            sink: Arc::new(StoreSnapshotSink::new(store.clone())),
            clock,
        },
        EngineConfig {
            worker_id: "sec".into(),
            device_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(2),
            device_attempts: attempts,
            retry_backoff: Duration::ZERO,
            claim_wait: Duration::from_millis(20),
            address_policy: policy,
            ..EngineConfig::default()
        },
    ));
    Rig {
        store,
        driver,
        engine,
    }
}

async fn cred(store: &MemoryStore, name: &str, password: &str, priority: i32) -> Credential {
    let mut c = Credential::new(name, "netops", Secret::new(password));
    c.priority = priority;
    c.tags = vec!["lab".into()];
    store.create_credential(&c).await.unwrap()
}

async fn device(r: &Rig, name: &str, address: &str, b: FakeBehavior) -> Device {
    let d = Device::new(name, address, "fake_ios").with_tags(["lab"]);
    let mut b = b;
    b.config = format!("hostname {name}\nsecret s3cr3t\n");
    r.driver.script(name, b);
    r.store.create_device(&d).await.unwrap()
}

async fn run_job(r: &Rig, kind: JobKind, ids: Vec<DeviceId>) -> (Run, Vec<DeviceResult>) {
    let mut job = Job::backup(
        format!("j{}", uuid::Uuid::new_v4()),
        Targets {
            device_ids: ids,
            tags: vec![],
        },
    );
    job.kind = kind;
    let job = r.store.create_job(&job).await.unwrap();
    let run = r.engine.run_now(job.id, None).await.unwrap().run;
    r.engine.drain().await.unwrap();
    let run = r.store.get_run(run.id).await.unwrap();
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
        .unwrap()
        .items;
    (run, results)
}

#[tokio::test]
async fn a_device_at_a_refused_address_fails_before_any_credential_is_sent() {
    let r = rig(AddressPolicy::with_networks(&["10.0.0.0/8"]).unwrap());
    cred(&r.store, "c", "pw", 1).await;
    let meta = device(&r, "meta", "169.254.169.254", FakeBehavior::default()).await;
    let outside = device(&r, "outside", "192.0.2.7", FakeBehavior::default()).await;
    let (_, results) = run_job(&r, JobKind::Backup, vec![meta.id, outside.id]).await;
    assert_eq!(results.len(), 2);
    for res in &results {
        assert_eq!(res.error_kind, Some(ErrorKind::AddressRefused), "{res:?}");
    }
    assert!(
        r.driver.attempts().is_empty(),
        "a refused device saw a login"
    );
    // Reachability probes are refused too.
    let (_, results) = run_job(&r, JobKind::Reachability, vec![meta.id]).await;
    assert_eq!(results[0].error_kind, Some(ErrorKind::AddressRefused));

    // The default policy refuses loopback unless it is allowed.
    let r = rig(AddressPolicy::default());
    cred(&r.store, "c", "pw", 1).await;
    let lo = device(&r, "lo", "127.0.0.1", FakeBehavior::default()).await;
    let (_, results) = run_job(&r, JobKind::Backup, vec![lo.id]).await;
    assert_eq!(results[0].error_kind, Some(ErrorKind::AddressRefused));
    assert!(r.driver.attempts().is_empty());
    let r = rig(AddressPolicy::default().allow_loopback(true));
    cred(&r.store, "c", "pw", 1).await;
    let lo = device(&r, "lo", "127.0.0.1", FakeBehavior::default()).await;
    let (run, _) = run_job(&r, JobKind::Backup, vec![lo.id]).await;
    assert_eq!(run.status, RunStatus::CompletedSuccess);
}

#[tokio::test]
async fn a_device_not_trusted_yet_is_offered_one_credential_per_attempt() {
    let r = rig(AddressPolicy::default().allow_loopback(true));
    let first = cred(&r.store, "first", "pw-one", 1).await;
    cred(&r.store, "second", "pw-two", 2).await;
    cred(&r.store, "third", "pw-three", 3).await;
    let rogue = device(
        &r,
        "rogue",
        "127.0.0.1",
        FakeBehavior {
            accept_passwords: vec!["never".into()],
            untrusted_host: true,
            ..FakeBehavior::default()
        },
    )
    .await;
    let (_, results) = run_job(&r, JobKind::Backup, vec![rogue.id]).await;
    assert_eq!(results[0].error_kind, Some(ErrorKind::Auth), "{results:?}");
    let tried: Vec<CredentialId> = r.driver.attempts().iter().map(|a| a.1).collect();
    assert_eq!(
        tried,
        vec![first.id],
        "only the first candidate was offered"
    );
    // The ranking is unchanged, so the next run offers the same one again, not the next.
    let c = r.store.get_credential(first.id).await.unwrap();
    assert_eq!(c.failure_count, 0);
    run_job(&r, JobKind::Backup, vec![rogue.id]).await;
    let tried: Vec<CredentialId> = r.driver.attempts().iter().map(|a| a.1).collect();
    assert_eq!(tried, vec![first.id, first.id]);

    // A trusted device (its rejections are ordinary) still gets the next candidates.
    let known = device(
        &r,
        "known",
        "127.0.0.1",
        FakeBehavior {
            accept_passwords: vec!["pw-three".into()],
            ..FakeBehavior::default()
        },
    )
    .await;
    let (run, _) = run_job(&r, JobKind::Backup, vec![known.id]).await;
    assert_eq!(run.status, RunStatus::CompletedSuccess);
}

#[tokio::test]
async fn attempt_n_on_a_device_not_trusted_yet_offers_at_most_n_credentials() {
    let r = rig_with(AddressPolicy::default().allow_loopback(true), 3);
    let first = cred(&r.store, "first", "pw-one", 1).await;
    let second = cred(&r.store, "second", "pw-two", 2).await;
    cred(&r.store, "third", "pw-three", 3).await;
    let new = device(
        &r,
        "new",
        "127.0.0.1",
        FakeBehavior {
            accept_passwords: vec!["pw-two".into()],
            untrusted_host: true,
            ..FakeBehavior::default()
        },
    )
    .await;
    let (run, results) = run_job(&r, JobKind::Backup, vec![new.id]).await;
    assert_eq!(run.status, RunStatus::CompletedSuccess, "{results:?}");
    let tried: Vec<CredentialId> = r.driver.attempts().iter().map(|a| a.1).collect();
    assert_eq!(
        tried,
        vec![first.id, first.id, second.id],
        "attempt 1 offers one credential, attempt 2 two"
    );
}

fn lease_for(run: RunId, device: DeviceId, attempt: u32) -> Lease {
    Lease {
        task: Task {
            id: format!("t-{attempt}"),
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
async fn a_redelivered_command_task_records_interrupted_instead_of_running_again() {
    let r = rig(AddressPolicy::default().allow_loopback(true));
    cred(&r.store, "c", "pw", 1).await;
    let d = device(&r, "r1", "127.0.0.1", FakeBehavior::default()).await;
    let mut job = Job::backup(
        "reload",
        Targets {
            device_ids: vec![d.id],
            tags: vec![],
        },
    );
    job.kind = JobKind::Command {
        commands: vec!["clear counters".into()],
    };
    let job = r.store.create_job(&job).await.unwrap();
    let run = r.engine.run_now(job.id, None).await.unwrap().run;
    r.store
        .start_run(run.id, &[d.id], chrono::Utc::now())
        .await
        .unwrap();
    // An earlier delivery started the commands and its worker died before any result.
    assert!(
        r.store
            .mark_device_started(run.id, d.id, chrono::Utc::now())
            .await
            .unwrap()
    );
    r.engine.process(&lease_for(run.id, d.id, 2)).await.unwrap();
    let res = r.store.get_result(run.id, d.id).await.unwrap().unwrap();
    assert_eq!(res.error_kind, Some(ErrorKind::Interrupted), "{res:?}");
    assert!(res.output.is_none(), "the commands ran a second time");

    // A first delivery runs them, once.
    let d2 = device(&r, "r2", "127.0.0.1", FakeBehavior::default()).await;
    let (run, results) = run_job(
        &r,
        JobKind::Command {
            commands: vec!["show clock".into()],
        },
        vec![d2.id],
    )
    .await;
    assert_eq!(run.status, RunStatus::CompletedSuccess, "{results:?}");
    assert!(
        results[0]
            .output
            .as_deref()
            .unwrap_or("")
            .contains("output of show clock")
    );
    assert!(
        !r.store
            .mark_device_started(run.id, d2.id, chrono::Utc::now())
            .await
            .unwrap(),
        "the successful attempt marked the device as started"
    );
}

#[tokio::test]
async fn an_unreadable_credential_is_skipped_not_fatal() {
    let r = rig(AddressPolicy::default().allow_loopback(true));
    let good = cred(&r.store, "good", "pw", 2).await;
    // What a store returns for a row its key cannot open.
    let mut broken = Credential::new("broken", "netops", Secret::default());
    broken.priority = 1;
    broken.tags = vec!["lab".into()];
    broken.unreadable = true;
    let broken = r.store.create_credential(&broken).await.unwrap();
    let d = device(&r, "r1", "127.0.0.1", FakeBehavior::default()).await;
    let (run, results) = run_job(&r, JobKind::Backup, vec![d.id]).await;
    assert_eq!(run.status, RunStatus::CompletedSuccess, "{results:?}");
    assert_eq!(results[0].credential_id, Some(good.id));
    let tried: Vec<CredentialId> = r.driver.attempts().iter().map(|a| a.1).collect();
    assert!(
        !tried.contains(&broken.id),
        "an unreadable credential was tried"
    );
    assert!(broken.info().unreadable);
}
