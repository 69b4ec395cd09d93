//! One clock for leases (issue #11): store leases are decided by PostgreSQL's `now()`, queue
//! leases by Redis `TIME`, not by each process's own clock. Needs `NETRAVEN_TEST_PG_URL` and
//! `NETRAVEN_TEST_REDIS_URL` (skipped without them, except under `CI=true`).

use netraven::Netraven;
use netraven::core::clock::{Clock, ManualClock};
use netraven::core::prelude::*;
use netraven::core::queue::{TaskKind, TaskSpec};
use netraven::store::cipher::KeyMaterial;
use netraven::store::queue::{RedisQueue, RedisQueueOptions};
use std::sync::Arc;
use std::time::Duration;

fn env(name: &str) -> Option<String> {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => Some(v),
        _ => {
            assert!(
                std::env::var("CI").map(|v| v != "true").unwrap_or(true),
                "{name} must be set when CI=true"
            );
            eprintln!("skipped: {name} not set");
            None
        }
    }
}

/// Two processes whose clocks are two hours apart: the one ahead must not take over a lease
/// the other holds (it would think it expired long ago).
#[tokio::test]
async fn store_leases_follow_the_database_clock() {
    let Some(url) = env("NETRAVEN_TEST_PG_URL") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let schema = format!("nrt_clock_{}", uuid::Uuid::new_v4().simple());
    let nr = Netraven::builder()
        .data_dir(tmp.path())
        .postgres(&url, &schema)
        .encryption_key(Some(KeyMaterial::generate().to_base64()))
        .without_git()
        .build()
        .await
        .unwrap();
    let store = nr.store();
    let real = chrono::Utc::now();
    let behind = real - chrono::Duration::hours(1);
    let ahead = real + chrono::Duration::hours(1);
    let ttl = Duration::from_secs(30);
    assert!(
        store
            .try_acquire_lease("clock-test", "slow-host", ttl, behind)
            .await
            .unwrap()
    );
    assert!(
        !store
            .try_acquire_lease("clock-test", "fast-host", ttl, ahead)
            .await
            .unwrap(),
        "a host whose clock runs ahead took over a live lease"
    );
    // The holder renews whatever its clock says.
    assert!(
        store
            .try_acquire_lease("clock-test", "slow-host", ttl, behind)
            .await
            .unwrap()
    );
    store
        .release_lease("clock-test", "slow-host")
        .await
        .unwrap();
    assert!(
        store
            .try_acquire_lease("clock-test", "fast-host", ttl, ahead)
            .await
            .unwrap()
    );
    drop(nr);
    let cipher = Arc::new(netraven::store::cipher::AesGcmCipher::from_key(
        &KeyMaterial::generate(),
    ));
    netraven::store::sql::PostgresStore::connect(&url, Some(&schema), cipher)
        .await
        .unwrap()
        .drop_schema()
        .await
        .unwrap();
}

/// Two workers whose clocks are an hour apart share a Redis queue: with the server's `TIME`
/// deciding, the one ahead neither reaps nor claims the other's live lease. (The same with each
/// worker's own clock — the behaviour before — hands the task to both.)
#[tokio::test]
async fn queue_leases_follow_the_redis_clock() {
    let Some(url) = env("NETRAVEN_TEST_REDIS_URL") else {
        return;
    };
    for server_time in [true, false] {
        let prefix = format!("nrt-clock-{}", uuid::Uuid::new_v4().simple());
        let now = chrono::Utc::now();
        let (a_clock, b_clock) = (
            Arc::new(ManualClock::new(now)),
            Arc::new(ManualClock::new(now + chrono::Duration::hours(1))),
        );
        let options = RedisQueueOptions {
            server_time,
            ..RedisQueueOptions::default()
        };
        let a = RedisQueue::connect_with(&url, &prefix, a_clock.clone(), options.clone())
            .await
            .unwrap();
        let b = RedisQueue::connect_with(&url, &prefix, b_clock.clone(), options)
            .await
            .unwrap();
        a.enqueue(TaskSpec::new(TaskKind::StartRun { run_id: 1 }))
            .await
            .unwrap();
        let lease = a
            .claim("worker-a", Duration::from_secs(60), Duration::ZERO)
            .await
            .unwrap()
            .expect("a task");
        let reaped = b.reap_expired().await.unwrap();
        let stolen = b
            .claim("worker-b", Duration::from_secs(60), Duration::ZERO)
            .await
            .unwrap();
        if server_time {
            assert_eq!(reaped, 0, "a worker ahead reaped a live lease");
            assert!(
                stolen.is_none(),
                "a live lease was handed to a second worker"
            );
            a.complete(&lease).await.unwrap();
        } else {
            // The defect this option fixes: each worker's own clock decides.
            assert_eq!(reaped, 1);
            assert!(stolen.is_some());
            let _ = a_clock.now();
        }
        a.purge().await.unwrap();
    }
}
