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
    let (c, q) = fresh();
    zones_are_claimed_only_by_their_workers(q.await, c).await;
    let (c, q) = fresh();
    zone_tasks_keep_their_zone_through_leases_retries_and_hand_backs(q.await, c).await;
    let (c, q) = fresh();
    heartbeats_name_worker_and_zone(q.await, c).await;
    let (c, q) = fresh();
    batch_enqueue_dedupes_in_order(q.await, c).await;
    let (c, q) = fresh();
    batch_claimers_never_share_a_task(q.await, c).await;
    let (c, q) = fresh();
    batch_leases_are_fenced_per_task(q.await, c).await;
    let (c, q) = fresh();
    batch_settles_each_op_like_the_single_calls(q.await, c).await;
    let (c, q) = fresh();
    batch_claims_keep_to_their_zone(q.await, c).await;
}

fn zoned(run: i64, d: i64, zone: &str) -> TaskSpec {
    dev(run, d).in_zone(Some(zone.to_string()))
}

/// Claims everything `zone`'s worker can get right now.
async fn claim_all(q: &dyn Queue, worker: &str, zone: Option<&str>) -> Vec<Lease> {
    let mut out = Vec::new();
    while let Some(l) = q.claim_in(worker, zone, LEASE, NOW).await.expect("claim") {
        out.push(l);
    }
    out
}

/// A task of zone A is never claimed by a worker of zone B or of the default zone; a run's
/// start (no zone) only by the default zone; per-zone counts add up to the totals.
pub async fn zones_are_claimed_only_by_their_workers(q: Arc<dyn Queue>, _clock: Arc<ManualClock>) {
    q.enqueue(TaskSpec::new(TaskKind::StartRun { run_id: 1 }))
        .await
        .expect("enqueue start");
    q.enqueue(zoned(1, 1, "site-a")).await.expect("enqueue a");
    q.enqueue(zoned(1, 2, "site-a")).await.expect("enqueue a");
    q.enqueue(zoned(1, 3, "site_b")).await.expect("enqueue b");
    q.enqueue(dev(1, 4)).await.expect("enqueue default");
    let stats = q.stats().await.expect("stats");
    assert_eq!(stats.ready, 5, "stats count every zone: {stats:?}");
    let zones = q.zone_stats().await.expect("zone stats");
    assert_eq!(
        zones.first().map(|z| z.zone.clone()),
        Some(None),
        "{zones:?}"
    );
    let ready = |name: Option<&str>| {
        zones
            .iter()
            .find(|z| z.zone.as_deref() == name)
            .map_or(0, |z| z.stats.ready)
    };
    assert_eq!(
        (ready(None), ready(Some("site-a")), ready(Some("site_b"))),
        (2, 2, 1),
        "{zones:?}"
    );
    // A zone nobody enqueued to has nothing.
    assert!(
        claim_all(q.as_ref(), "w-c", Some("site-c"))
            .await
            .is_empty()
    );
    let b = claim_all(q.as_ref(), "w-b", Some("site_b")).await;
    assert_eq!(b.len(), 1, "{b:?}");
    assert_eq!(
        b[0].task.kind,
        TaskKind::Device {
            run_id: 1,
            device_id: 3
        }
    );
    assert_eq!(b[0].task.zone.as_deref(), Some("site_b"));
    let default = claim_all(q.as_ref(), "w-default", None).await;
    let kinds: HashSet<TaskKind> = default.iter().map(|l| l.task.kind.clone()).collect();
    assert_eq!(
        kinds,
        HashSet::from([
            TaskKind::StartRun { run_id: 1 },
            TaskKind::Device {
                run_id: 1,
                device_id: 4
            }
        ]),
        "the default zone got another zone's task or missed its own"
    );
    assert!(default.iter().all(|l| l.task.zone.is_none()));
    let a = claim_all(q.as_ref(), "w-a", Some("site-a")).await;
    let devices: HashSet<TaskKind> = a.iter().map(|l| l.task.kind.clone()).collect();
    assert_eq!(devices.len(), 2, "{a:?}");
    assert!(a.iter().all(|l| l.task.zone.as_deref() == Some("site-a")));
    for l in a.iter().chain(&b).chain(&default) {
        q.complete(l).await.expect("complete");
    }
    let s = q.stats().await.expect("stats");
    assert_eq!((s.ready, s.leased, s.delayed), (0, 0, 0), "{s:?}");
}

/// A zone's task stays in its zone when its lease expires, when it is retried, released or
/// deferred; fencing works as in the default zone; dedupe keys hold across zones.
pub async fn zone_tasks_keep_their_zone_through_leases_retries_and_hand_backs(
    q: Arc<dyn Queue>,
    clock: Arc<ManualClock>,
) {
    q.enqueue(zoned(2, 1, "dc1")).await.expect("enqueue");
    assert!(
        matches!(
            q.enqueue(dev(2, 1)).await.expect("enqueue again"),
            Enqueued::Duplicate(_)
        ),
        "a live task's dedupe key must hold whatever the zone"
    );
    let first = q
        .claim_in("w1", Some("dc1"), LEASE, NOW)
        .await
        .expect("claim")
        .expect("a task");
    // The lease expires: the task is reaped back into its own zone.
    clock.advance(LEASE + Duration::from_secs(1));
    q.reap_expired().await.expect("reap");
    assert!(claim_all(q.as_ref(), "w-default", None).await.is_empty());
    assert!(claim_all(q.as_ref(), "w-x", Some("dc2")).await.is_empty());
    let second = q
        .claim_in("w2", Some("dc1"), LEASE, NOW)
        .await
        .expect("claim")
        .expect("reaped task back in its zone");
    assert_eq!(second.task.attempt, 2);
    assert_eq!(
        q.complete(&first).await.expect_err("stale").kind(),
        ErrorKind::Stale,
        "the first holder must be fenced off"
    );
    // Retried: delayed in its zone.
    let at = crate::clock::add(clock.now(), Duration::from_secs(10));
    assert_eq!(
        q.retry(&second, at, "boom").await.expect("retry"),
        RetryOutcome::Scheduled
    );
    clock.advance(Duration::from_secs(11));
    assert!(claim_all(q.as_ref(), "w-default", None).await.is_empty());
    let third = q
        .claim_in("w3", Some("dc1"), LEASE, NOW)
        .await
        .expect("claim")
        .expect("retried task back in its zone");
    assert_eq!(third.task.failures, 1);
    // Released and deferred: back in its zone.
    q.release(&third).await.expect("release");
    assert!(claim_all(q.as_ref(), "w-default", None).await.is_empty());
    let fourth = q
        .claim_in("w4", Some("dc1"), LEASE, NOW)
        .await
        .expect("claim")
        .expect("released task back in its zone");
    q.defer(
        &fourth,
        crate::clock::add(clock.now(), Duration::from_secs(5)),
    )
    .await
    .expect("defer");
    clock.advance(Duration::from_secs(6));
    q.reap_expired().await.expect("promote");
    assert!(claim_all(q.as_ref(), "w-default", None).await.is_empty());
    let fifth = q
        .claim_in("w5", Some("dc1"), LEASE, NOW)
        .await
        .expect("claim")
        .expect("deferred task back in its zone");
    assert_eq!(fifth.task.zone.as_deref(), Some("dc1"));
    q.complete(&fifth).await.expect("complete");
    let s = q.stats().await.expect("stats");
    assert_eq!((s.ready, s.leased, s.delayed), (0, 0, 0), "{s:?}");
    // Once completed, the key is free again.
    assert!(matches!(
        q.enqueue(zoned(2, 1, "dc1")).await.expect("enqueue"),
        Enqueued::New(_)
    ));
}

/// Heartbeats are listed with their worker's zone and time, and only when recent enough.
pub async fn heartbeats_name_worker_and_zone(q: Arc<dyn Queue>, clock: Arc<ManualClock>) {
    let t0 = clock.now();
    q.heartbeat("w-a", Some("site-a")).await.expect("beat");
    q.heartbeat("w-default", None).await.expect("beat");
    let all = q
        .workers(crate::clock::sub(t0, Duration::from_secs(1)))
        .await
        .expect("workers");
    let seen: HashSet<(String, Option<String>)> = all
        .iter()
        .map(|b| (b.worker_id.clone(), b.zone.clone()))
        .collect();
    assert_eq!(
        seen,
        HashSet::from([
            ("w-a".to_string(), Some("site-a".to_string())),
            ("w-default".to_string(), None)
        ]),
        "{all:?}"
    );
    clock.advance(Duration::from_secs(60));
    q.heartbeat("w-default", None).await.expect("beat");
    let recent = q
        .workers(crate::clock::sub(clock.now(), Duration::from_secs(30)))
        .await
        .expect("workers");
    assert_eq!(recent.len(), 1, "{recent:?}");
    assert_eq!(recent[0].worker_id, "w-default");
    assert!(recent[0].at >= crate::clock::sub(clock.now(), Duration::from_secs(1)));
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

/// A batch enqueue queues in order; a spec whose key a live task or an earlier spec of the
/// batch holds is a duplicate; delays and zones apply per spec.
pub async fn batch_enqueue_dedupes_in_order(q: Arc<dyn Queue>, clock: Arc<ManualClock>) {
    q.enqueue(dev(20, 1)).await.expect("enqueue");
    let mut later = dev(20, 4);
    later.run_at = Some(clock.now() + chrono::Duration::seconds(60));
    let out = q
        .enqueue_many(vec![
            dev(20, 1),
            dev(20, 2),
            dev(20, 2),
            zoned(20, 3, "site-a"),
            later,
        ])
        .await
        .expect("enqueue many");
    assert_eq!(out.len(), 5, "{out:?}");
    assert!(matches!(out[0], Enqueued::Duplicate(_)), "{out:?}");
    assert!(matches!(out[1], Enqueued::New(_)), "{out:?}");
    match (&out[1], &out[2]) {
        (Enqueued::New(a), Enqueued::Duplicate(b)) => assert_eq!(a, b, "{out:?}"),
        _ => panic!("a key taken earlier in the batch was queued again: {out:?}"),
    }
    assert!(matches!(out[3], Enqueued::New(_)), "{out:?}");
    assert!(matches!(out[4], Enqueued::New(_)), "{out:?}");
    let s = q.stats().await.expect("stats");
    assert_eq!((s.ready, s.delayed), (3, 1), "{s:?}");
    assert!(
        q.enqueue_many(Vec::new())
            .await
            .expect("empty batch")
            .is_empty()
    );
}

/// Eight workers claim 200 tasks in batches of up to 7 and complete each batch in one call: no
/// task is delivered twice, none is lost, every lease is the claimer's with attempt 1.
pub async fn batch_claimers_never_share_a_task(q: Arc<dyn Queue>, _clock: Arc<ManualClock>) {
    let out = q
        .enqueue_many((0..200).map(|d| dev(21, d)).collect())
        .await
        .expect("enqueue many");
    assert!(out.iter().all(|e| matches!(e, Enqueued::New(_))));
    assert!(
        q.claim_many_in("w", None, 0, LEASE, NOW)
            .await
            .expect("claim none")
            .is_empty(),
        "a claim of at most 0 tasks gave some"
    );
    let mut handles = Vec::new();
    for w in 0..8 {
        let q = q.clone();
        handles.push(tokio::spawn(async move {
            let worker = format!("bw{w}");
            let mut got = Vec::new();
            loop {
                let batch = q
                    .claim_many_in(&worker, None, 7, LEASE, NOW)
                    .await
                    .expect("claim many");
                if batch.is_empty() {
                    return got;
                }
                assert!(batch.len() <= 7, "{} tasks for at most 7", batch.len());
                for l in &batch {
                    assert_eq!(l.worker_id, worker);
                    assert_eq!(l.task.attempt, 1);
                    assert!(l.task.zone.is_none());
                }
                let done = q.complete_many(&batch).await.expect("complete many");
                assert_eq!(done.len(), batch.len());
                for r in done {
                    r.expect("complete of a live lease");
                }
                got.extend(batch.into_iter().map(|l| l.task.id));
            }
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
    let s = q.stats().await.expect("stats");
    assert_eq!((s.ready, s.leased), (0, 0), "{s:?}");
}

/// Each lease of a batch is its own: extending one keeps only that one; once the other
/// expires and is claimed again, settling the old batch is refused for that task only.
pub async fn batch_leases_are_fenced_per_task(q: Arc<dyn Queue>, clock: Arc<ManualClock>) {
    q.enqueue_many(vec![dev(22, 1), dev(22, 2)])
        .await
        .expect("enqueue many");
    let old = q
        .claim_many_in("w-old", None, 5, LEASE, NOW)
        .await
        .expect("claim many");
    assert_eq!(old.len(), 2, "{old:?}");
    assert_ne!(old[0].task.id, old[1].task.id);
    assert!(
        q.claim_many_in("w-other", None, 5, LEASE, NOW)
            .await
            .expect("claim many")
            .is_empty(),
        "a leased task was delivered twice"
    );
    clock.advance(LEASE / 2);
    q.extend(&old[0], LEASE).await.expect("extend");
    clock.advance(LEASE * 3 / 4);
    assert_eq!(
        q.reap_expired().await.expect("reap"),
        1,
        "exactly the unextended lease expires"
    );
    let new = q
        .claim_many_in("w-new", None, 5, LEASE, NOW)
        .await
        .expect("claim many");
    assert_eq!(new.len(), 1, "{new:?}");
    assert_eq!(new[0].task.id, old[1].task.id);
    assert_eq!(new[0].task.attempt, old[1].task.attempt + 1);
    let done = q.complete_many(&old).await.expect("complete many");
    assert_eq!(done.len(), 2);
    assert!(
        done[0].is_ok(),
        "the live lease of the batch: {:?}",
        done[0]
    );
    assert_eq!(
        done[1].as_ref().map_err(|e| e.kind()),
        Err(ErrorKind::Stale),
        "the lost lease of the batch was settled"
    );
    let done = q.complete_many(&new).await.expect("complete many");
    assert!(done[0].is_ok(), "the new holder: {:?}", done[0]);
    let s = q.stats().await.expect("stats");
    assert_eq!((s.ready, s.leased, s.delayed), (0, 0, 0), "{s:?}");
}

/// One batch settle can complete, retry, release and defer, each as its single call would:
/// retry counts a failure (dead at the limit, freeing the key), release and defer count a
/// hand-back, and a lease settled twice in one batch is refused the second time.
pub async fn batch_settles_each_op_like_the_single_calls(
    q: Arc<dyn Queue>,
    clock: Arc<ManualClock>,
) {
    let mut poison = dev(23, 5);
    poison.max_attempts = 1;
    q.enqueue_many(vec![
        dev(23, 1),
        dev(23, 2),
        dev(23, 3),
        dev(23, 4),
        poison.clone(),
    ])
    .await
    .expect("enqueue many");
    let ls = q
        .claim_many_in("w", None, 10, LEASE, NOW)
        .await
        .expect("claim many");
    assert_eq!(ls.len(), 5, "{ls:?}");
    let by = |d: i64| {
        ls.iter()
            .find(|l| {
                l.task.kind
                    == TaskKind::Device {
                        run_id: 23,
                        device_id: d,
                    }
            })
            .expect("claimed")
    };
    let later = clock.now() + chrono::Duration::seconds(30);
    let out = q
        .settle_many(&[
            (by(1), SettleOp::Complete),
            (
                by(2),
                SettleOp::Retry {
                    at: later,
                    reason: "e",
                },
            ),
            (by(3), SettleOp::Release),
            (by(4), SettleOp::Defer { at: later }),
            (
                by(5),
                SettleOp::Retry {
                    at: later,
                    reason: "poison",
                },
            ),
            (by(1), SettleOp::Complete),
        ])
        .await
        .expect("settle many");
    assert_eq!(out.len(), 6);
    assert_eq!(out[0].as_ref().ok(), Some(&Settled::Done), "{out:?}");
    assert_eq!(
        out[1].as_ref().ok(),
        Some(&Settled::Retried(RetryOutcome::Scheduled)),
        "{out:?}"
    );
    assert_eq!(out[2].as_ref().ok(), Some(&Settled::Done), "{out:?}");
    assert_eq!(out[3].as_ref().ok(), Some(&Settled::Done), "{out:?}");
    assert_eq!(
        out[4].as_ref().ok(),
        Some(&Settled::Retried(RetryOutcome::Dead)),
        "{out:?}"
    );
    assert_eq!(
        out[5].as_ref().map_err(|e| e.kind()).err(),
        Some(ErrorKind::Stale),
        "a lease settled twice in one batch: {out:?}"
    );
    let s = q.stats().await.expect("stats");
    assert_eq!(
        (s.ready, s.delayed, s.leased, s.dead),
        (1, 2, 0, 1),
        "{s:?}"
    );
    assert!(
        matches!(q.enqueue(poison).await.expect("enqueue"), Enqueued::New(_)),
        "the dead task kept its dedupe key"
    );
    let released = q
        .claim_many_in("w2", None, 10, LEASE, NOW)
        .await
        .expect("claim many");
    let r3 = released
        .iter()
        .find(|l| l.task.id == by(3).task.id)
        .expect("the released task is ready at once");
    assert_eq!(
        (r3.task.attempt, r3.task.failures, r3.task.released),
        (2, 0, 1)
    );
    clock.advance(Duration::from_secs(31));
    q.reap_expired().await.expect("reap");
    let due = q
        .claim_many_in("w3", None, 10, LEASE, NOW)
        .await
        .expect("claim many");
    let r2 = due
        .iter()
        .find(|l| l.task.id == by(2).task.id)
        .expect("the retried task is due");
    assert_eq!(
        (r2.task.attempt, r2.task.failures, r2.task.released),
        (2, 1, 0)
    );
    let r4 = due
        .iter()
        .find(|l| l.task.id == by(4).task.id)
        .expect("the deferred task is due");
    assert_eq!(
        (r4.task.attempt, r4.task.failures, r4.task.released),
        (2, 0, 1)
    );
}

/// A batch claim takes only its zone's tasks, and waits (bounded) rather than take another's.
pub async fn batch_claims_keep_to_their_zone(q: Arc<dyn Queue>, _clock: Arc<ManualClock>) {
    q.enqueue_many(vec![
        zoned(24, 1, "site-a"),
        zoned(24, 2, "site-a"),
        zoned(24, 3, "site_b"),
        dev(24, 4),
        TaskSpec::new(TaskKind::StartRun { run_id: 24 }),
    ])
    .await
    .expect("enqueue many");
    assert!(
        q.claim_many_in("w-c", Some("site-c"), 10, LEASE, Duration::from_millis(50))
            .await
            .expect("claim many")
            .is_empty(),
        "a zone nobody enqueued to got a task"
    );
    let a = q
        .claim_many_in("w-a", Some("site-a"), 10, LEASE, NOW)
        .await
        .expect("claim many");
    assert_eq!(a.len(), 2, "{a:?}");
    assert!(a.iter().all(|l| l.task.zone.as_deref() == Some("site-a")));
    let d = q
        .claim_many_in("w-d", None, 10, LEASE, NOW)
        .await
        .expect("claim many");
    assert_eq!(d.len(), 2, "{d:?}");
    assert!(d.iter().all(|l| l.task.zone.is_none()));
    let b = q
        .claim_many_in("w-b", Some("site_b"), 10, LEASE, NOW)
        .await
        .expect("claim many");
    assert_eq!(b.len(), 1, "{b:?}");
    assert_eq!(b[0].task.zone.as_deref(), Some("site_b"));
    let all: Vec<Lease> = a.into_iter().chain(d).chain(b).collect();
    for r in q.complete_many(&all).await.expect("complete many") {
        r.expect("complete");
    }
    let zones = q.zone_stats().await.expect("zone stats");
    assert!(
        zones
            .iter()
            .all(|z| z.stats.leased == 0 && z.stats.ready == 0),
        "{zones:?}"
    );
}
