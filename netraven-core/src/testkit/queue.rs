//! The queue conformance suite.

use crate::clock::{Clock, ManualClock};
use crate::error::ErrorKind;
use crate::queue::*;
use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

const LEASE: Duration = Duration::from_secs(30);
const NOW: Duration = Duration::ZERO;

fn dev(run: i64, d: i64) -> TaskSpec {
    TaskSpec::new(TaskKind::Device {
        run_id: run,
        device_id: d,
    })
}

/// Runs every check, each on a fresh queue from `make` (given the clock the queue must use).
pub async fn run_all<F, Fut>(make: F)
where
    F: Fn(Arc<ManualClock>) -> Fut,
    Fut: Future<Output = Arc<dyn Queue>>,
{
    let fresh = || {
        let clock = Arc::new(ManualClock::new(super::t0()));
        (clock.clone(), make(clock))
    };
    let (c, q) = fresh();
    enqueue_claim_complete(q.await, c).await;
    let (c, q) = fresh();
    dedupe_while_live(q.await, c).await;
    let (c, q) = fresh();
    expired_lease_is_reclaimed_and_stale_holder_fenced(q.await, c).await;
    let (c, q) = fresh();
    retry_is_delayed(q.await, c).await;
    let (c, q) = fresh();
    max_attempts_moves_to_dead(q.await, c).await;
    let (c, q) = fresh();
    release_makes_ready_again(q.await, c).await;
    let (c, q) = fresh();
    delayed_run_at(q.await, c).await;
    let (c, q) = fresh();
    concurrent_claimers_never_share_a_task(q.await, c).await;
    let (c, q) = fresh();
    hand_backs_count_no_failure(q.await, c).await;
    let (c, q) = fresh();
    dead_tasks_are_pruned_after_retention(q.await, c).await;
}

/// A task goes in, comes out once with attempt 1, and is gone after completion.
pub async fn enqueue_claim_complete(q: Arc<dyn Queue>, _clock: Arc<ManualClock>) {
    assert!(
        q.claim("w1", LEASE, NOW).await.expect("claim").is_none(),
        "empty queue gave a task"
    );
    let id = match q.enqueue(dev(1, 1)).await.expect("enqueue") {
        Enqueued::New(id) => id,
        other => panic!("first enqueue was {other:?}"),
    };
    let l = q
        .claim("w1", LEASE, NOW)
        .await
        .expect("claim")
        .expect("a task");
    assert_eq!(l.task.id, id);
    assert_eq!(l.task.attempt, 1, "first delivery must be attempt 1");
    assert_eq!(
        l.task.kind,
        TaskKind::Device {
            run_id: 1,
            device_id: 1
        }
    );
    assert_eq!(q.stats().await.expect("stats").leased, 1);
    assert!(
        q.claim("w2", LEASE, NOW).await.expect("claim").is_none(),
        "leased task delivered twice"
    );
    q.complete(&l).await.expect("complete");
    let s = q.stats().await.expect("stats");
    assert_eq!(
        (s.ready, s.leased, s.delayed),
        (0, 0, 0),
        "completed task still counted: {s:?}"
    );
    assert_eq!(
        q.complete(&l).await.expect_err("double complete").kind(),
        ErrorKind::Stale
    );
}

/// A dedupe key admits one live task; after completion it can be used again.
pub async fn dedupe_while_live(q: Arc<dyn Queue>, _clock: Arc<ManualClock>) {
    let first = q.enqueue(dev(2, 1)).await.expect("enqueue");
    let second = q.enqueue(dev(2, 1)).await.expect("enqueue");
    assert!(matches!(first, Enqueued::New(_)));
    assert!(
        matches!(second, Enqueued::Duplicate(_)),
        "duplicate accepted: {second:?}"
    );
    let l = q
        .claim("w", LEASE, NOW)
        .await
        .expect("claim")
        .expect("task");
    assert!(
        matches!(
            q.enqueue(dev(2, 1)).await.expect("enqueue"),
            Enqueued::Duplicate(_)
        ),
        "a leased task's key must still dedupe"
    );
    q.complete(&l).await.expect("complete");
    assert!(matches!(
        q.enqueue(dev(2, 1)).await.expect("enqueue"),
        Enqueued::New(_)
    ));
    assert_eq!(q.stats().await.expect("stats").ready, 1);
}

/// A lease that expires is handed out again with a higher attempt; the old holder is fenced.
pub async fn expired_lease_is_reclaimed_and_stale_holder_fenced(
    q: Arc<dyn Queue>,
    clock: Arc<ManualClock>,
) {
    q.enqueue(dev(3, 1)).await.expect("enqueue");
    let old = q
        .claim("dead-worker", LEASE, NOW)
        .await
        .expect("claim")
        .expect("task");
    clock.advance(LEASE / 2);
    assert_eq!(
        q.reap_expired().await.expect("reap"),
        0,
        "live lease reaped"
    );
    clock.advance(LEASE);
    assert_eq!(
        q.reap_expired().await.expect("reap"),
        1,
        "expired lease not reaped"
    );
    let new = q
        .claim("w2", LEASE, NOW)
        .await
        .expect("claim")
        .expect("reclaimed task");
    assert_eq!(new.task.id, old.task.id);
    assert_eq!(new.task.attempt, old.task.attempt + 1);
    assert_eq!(
        q.extend(&old, LEASE)
            .await
            .expect_err("stale extend")
            .kind(),
        ErrorKind::Stale
    );
    assert_eq!(
        q.complete(&old).await.expect_err("stale complete").kind(),
        ErrorKind::Stale
    );
    assert_eq!(
        q.retry(&old, clock.now(), "x")
            .await
            .expect_err("stale retry")
            .kind(),
        ErrorKind::Stale
    );
    let exp = q.extend(&new, LEASE).await.expect("extend");
    assert!(exp > clock.now());
    q.complete(&new).await.expect("complete by the new holder");
}

/// A retried task is not deliverable before its time, then is, with the next attempt number.
pub async fn retry_is_delayed(q: Arc<dyn Queue>, clock: Arc<ManualClock>) {
    q.enqueue(dev(4, 1)).await.expect("enqueue");
    let l = q
        .claim("w", LEASE, NOW)
        .await
        .expect("claim")
        .expect("task");
    let at = clock.now() + chrono::Duration::seconds(10);
    assert_eq!(
        q.retry(&l, at, "timeout").await.expect("retry"),
        RetryOutcome::Scheduled
    );
    assert!(
        q.claim("w", LEASE, NOW).await.expect("claim").is_none(),
        "retry delivered early"
    );
    assert_eq!(q.stats().await.expect("stats").delayed, 1);
    clock.advance(Duration::from_secs(11));
    q.reap_expired().await.expect("reap");
    let again = q
        .claim("w", LEASE, NOW)
        .await
        .expect("claim")
        .expect("retried task");
    assert_eq!(again.task.attempt, 2);
    q.complete(&again).await.expect("complete");
}

/// After `max_attempts`, retry moves a task to the dead set and frees its dedupe key.
pub async fn max_attempts_moves_to_dead(q: Arc<dyn Queue>, clock: Arc<ManualClock>) {
    let mut spec = dev(5, 1);
    spec.max_attempts = 2;
    q.enqueue(spec.clone()).await.expect("enqueue");
    let l = q
        .claim("w", LEASE, NOW)
        .await
        .expect("claim")
        .expect("task");
    assert_eq!(
        q.retry(&l, clock.now(), "e").await.expect("retry"),
        RetryOutcome::Scheduled
    );
    q.reap_expired().await.expect("reap");
    let l = q
        .claim("w", LEASE, NOW)
        .await
        .expect("claim")
        .expect("task");
    assert_eq!(l.task.attempt, 2);
    assert_eq!(
        q.retry(&l, clock.now(), "e").await.expect("retry"),
        RetryOutcome::Dead
    );
    clock.advance(Duration::from_secs(1));
    q.reap_expired().await.expect("reap");
    assert!(
        q.claim("w", LEASE, NOW).await.expect("claim").is_none(),
        "dead task delivered"
    );
    assert_eq!(q.stats().await.expect("stats").dead, 1);
    assert!(
        matches!(q.enqueue(spec).await.expect("enqueue"), Enqueued::New(_)),
        "dead task kept its dedupe key"
    );
}

/// A released task is deliverable again at once.
pub async fn release_makes_ready_again(q: Arc<dyn Queue>, _clock: Arc<ManualClock>) {
    q.enqueue(dev(6, 1)).await.expect("enqueue");
    let l = q
        .claim("w", LEASE, NOW)
        .await
        .expect("claim")
        .expect("task");
    q.release(&l).await.expect("release");
    let again = q
        .claim("w2", LEASE, NOW)
        .await
        .expect("claim")
        .expect("released task");
    assert_eq!(again.task.id, l.task.id);
    q.complete(&again).await.expect("complete");
}

/// A task with a future `run_at` waits for it.
pub async fn delayed_run_at(q: Arc<dyn Queue>, clock: Arc<ManualClock>) {
    let mut spec = dev(7, 1);
    spec.run_at = Some(clock.now() + chrono::Duration::seconds(60));
    q.enqueue(spec).await.expect("enqueue");
    assert!(q.claim("w", LEASE, NOW).await.expect("claim").is_none());
    clock.advance(Duration::from_secs(61));
    q.reap_expired().await.expect("reap");
    let l = q
        .claim("w", LEASE, NOW)
        .await
        .expect("claim")
        .expect("due task");
    q.complete(&l).await.expect("complete");
}

/// 50 concurrent claimers take 200 tasks; no task is delivered twice and none is lost.
pub async fn concurrent_claimers_never_share_a_task(q: Arc<dyn Queue>, _clock: Arc<ManualClock>) {
    for d in 0..200 {
        q.enqueue(dev(8, d)).await.expect("enqueue");
    }
    let mut handles = Vec::new();
    for w in 0..50 {
        let q = q.clone();
        handles.push(tokio::spawn(async move {
            let mut got = Vec::new();
            while let Some(l) = q.claim(&format!("w{w}"), LEASE, NOW).await.expect("claim") {
                got.push(l.task.id.clone());
                q.complete(&l).await.expect("complete");
            }
            got
        }));
    }
    let mut all = Vec::new();
    for h in handles {
        all.extend(h.await.expect("claimer panicked"));
    }
    let unique: HashSet<_> = all.iter().collect();
    assert_eq!(
        all.len(),
        200,
        "tasks delivered {} times in total",
        all.len()
    );
    assert_eq!(unique.len(), 200, "a task was delivered twice");
}

/// Releases and deferrals (shutdown, an outage) count no failure: a task with `max_attempts`
/// 2 handed back three times is still not dead after one failure; deferral delays it; the
/// counters come back with the task.
pub async fn hand_backs_count_no_failure(q: Arc<dyn Queue>, clock: Arc<ManualClock>) {
    let mut spec = dev(9, 1);
    spec.max_attempts = 2;
    q.enqueue(spec).await.expect("enqueue");
    for _ in 0..2 {
        let l = q
            .claim("w", LEASE, NOW)
            .await
            .expect("claim")
            .expect("task");
        q.release(&l).await.expect("release");
    }
    let l = q
        .claim("w", LEASE, NOW)
        .await
        .expect("claim")
        .expect("task");
    q.defer(&l, clock.now() + chrono::Duration::seconds(30))
        .await
        .expect("defer");
    assert!(
        q.claim("w", LEASE, NOW).await.expect("claim").is_none(),
        "a deferred task was delivered before its time"
    );
    clock.advance(Duration::from_secs(31));
    q.reap_expired().await.expect("reap");
    let l = q
        .claim("w", LEASE, NOW)
        .await
        .expect("claim")
        .expect("task");
    assert_eq!(
        (l.task.attempt, l.task.failures, l.task.released),
        (4, 0, 3)
    );
    assert_eq!(l.task.lost_deliveries(), 0);
    assert_eq!(
        q.retry(&l, clock.now(), "e").await.expect("retry"),
        RetryOutcome::Scheduled,
        "hand-backs were counted as failures"
    );
    clock.advance(Duration::from_secs(1));
    q.reap_expired().await.expect("reap");
    let l = q
        .claim("w", LEASE, NOW)
        .await
        .expect("claim")
        .expect("task");
    assert_eq!(l.task.failures, 1);
    assert_eq!(
        q.retry(&l, clock.now(), "e").await.expect("retry"),
        RetryOutcome::Dead
    );
}

/// Dead tasks older than the retention are removed; younger ones stay.
pub async fn dead_tasks_are_pruned_after_retention(q: Arc<dyn Queue>, clock: Arc<ManualClock>) {
    for d in 0..2 {
        let mut spec = dev(10, d);
        spec.max_attempts = 1;
        q.enqueue(spec).await.expect("enqueue");
        let l = q
            .claim("w", LEASE, NOW)
            .await
            .expect("claim")
            .expect("task");
        assert_eq!(
            q.retry(&l, clock.now(), "e").await.expect("retry"),
            RetryOutcome::Dead
        );
        clock.advance(Duration::from_secs(3600));
    }
    assert_eq!(q.stats().await.expect("stats").dead, 2);
    let cutoff = clock.now() - chrono::Duration::seconds(5400);
    assert_eq!(q.prune_dead(cutoff).await.expect("prune"), 1);
    assert_eq!(q.stats().await.expect("stats").dead, 1);
    assert_eq!(q.prune_dead(cutoff).await.expect("prune again"), 0);
}
