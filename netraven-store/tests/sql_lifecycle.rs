//! The engine and scheduler on the SQL stores: a whole run on SQLite (and PostgreSQL when
//! configured), and three schedulers on one store making one run per fire.

mod sql_support;

use netraven_core::clock::SystemClock;
use netraven_core::driver::DriverRegistry;
use netraven_core::engine::{Engine, EngineConfig, EngineParts};
use netraven_core::memory::{FakeBehavior, FakeDriver, MemoryQueue};
use netraven_core::normalise::Rules;
use netraven_core::prelude::*;
use netraven_core::snapshot::StoreSnapshotSink;
use netraven_store::sql::SqliteStore;
use sql_support::*;
use std::sync::Arc;
use std::time::Duration;

async fn whole_run(store: Arc<dyn Store>) {
    let driver = Arc::new(FakeDriver::new(
        "fake_ios",
        Rules::new(&[r"^! time"], &[(r"^(secret )\S+", "${1}{marker}")]).expect("rules"),
        FakeBehavior::default(),
    ));
    let mut reg = DriverRegistry::new();
    reg.register(driver.clone());
    let queue = Arc::new(MemoryQueue::new(Arc::new(SystemClock)));
    let engine = Arc::new(Engine::new(
        EngineParts {
            store: store.clone(),
            queue,
            drivers: Arc::new(reg),
            sink: Arc::new(StoreSnapshotSink::new(store.clone())),
            clock: Arc::new(SystemClock),
        },
        EngineConfig {
            claim_wait: Duration::from_millis(50),
            device_attempts: 1,
            ..EngineConfig::default()
        },
    ));
    let tag = netraven_core::testkit::unique("lab");
    let mut c = Credential::new(
        netraven_core::testkit::unique("cred"),
        "ops",
        Secret::new("right"),
    );
    c.tags = vec![tag.clone()];
    store.create_credential(&c).await.expect("credential");
    for i in 0..20 {
        let name = netraven_core::testkit::unique(&format!("r{i}"));
        let b = FakeBehavior {
            config: format!("! time {i}\nhostname {name}\nsecret s3cr3t\n"),
            accept_passwords: if i == 0 { vec!["other".into()] } else { vec![] },
            ..FakeBehavior::default()
        };
        driver.script(&name, b);
        let d = Device::new(&name, "127.0.0.1", "fake_ios").with_tags([tag.as_str()]);
        store.create_device(&d).await.expect("device");
    }
    let job = store
        .create_job(&Job::backup(
            netraven_core::testkit::unique("job"),
            Targets {
                device_ids: vec![],
                tags: vec![tag],
            },
        ))
        .await
        .expect("job");
    let run = engine.run_now(job.id, None).await.expect("run").run;
    engine.drain().await.expect("drain");
    let run = store.get_run(run.id).await.expect("get run");
    assert_eq!(run.status, RunStatus::CompletedPartialFailure);
    assert_eq!(
        (
            run.counts.total,
            run.counts.succeeded,
            run.counts.failed,
            run.counts.changed
        ),
        (20, 19, 1, 19)
    );
    let results = store
        .list_results(
            &ResultFilter {
                run_id: Some(run.id),
                ..Default::default()
            },
            Page::first(100),
        )
        .await
        .expect("results");
    assert_eq!(results.total, 20);
    let ok = results
        .items
        .iter()
        .find(|r| r.status == DeviceStatus::Success)
        .expect("a success");
    let snap = store
        .get_snapshot(ok.snapshot_id.expect("snapshot id"))
        .await
        .expect("snapshot");
    assert!(snap.content.contains("secret <removed>") && !snap.content.contains("s3cr3t"));
    let logs = store
        .list_logs(
            &LogFilter {
                run_id: Some(run.id),
                ..Default::default()
            },
            Page::first(100),
        )
        .await
        .expect("logs");
    assert!(logs.total >= 40);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_engine_runs_a_whole_run_on_sqlite() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteStore::open(dir.path().join("netraven.db"), cipher())
        .await
        .expect("open");
    whole_run(Arc::new(store)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_engine_runs_a_whole_run_on_postgres() {
    let Some(store) = pg(cipher()).await else {
        return;
    };
    let handle = store.clone();
    whole_run(Arc::new(store)).await;
    handle.drop_schema().await.expect("drop schema");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_schedulers_on_sqlite_make_one_run_per_fire() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteStore::open(dir.path().join("netraven.db"), cipher())
        .await
        .expect("open");
    let queue = Arc::new(MemoryQueue::new(Arc::new(SystemClock)));
    netraven_core::testkit::scheduler::one_run_per_fire_with_three_schedulers(
        Arc::new(store),
        queue,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_schedulers_on_postgres_make_one_run_per_fire() {
    let Some(store) = pg(cipher()).await else {
        return;
    };
    let handle = store.clone();
    let queue = Arc::new(MemoryQueue::new(Arc::new(SystemClock)));
    netraven_core::testkit::scheduler::one_run_per_fire_with_three_schedulers(
        Arc::new(store),
        queue,
    )
    .await;
    handle.drop_schema().await.expect("drop schema");
}
