//! Queue round trips per second (enqueue → claim → complete, no-op work) for the Redis queue and
//! the embedded queue. A plain timing harness (`harness = false`), not criterion: one figure per
//! scenario is what docs/benchmarks.md records.
//!
//! ```text
//! NETRAVEN_TEST_REDIS_URL=redis://127.0.0.1:6379 cargo bench -p netraven-store --bench queue_redis
//! ```
//!
//! The per-task figures make three Redis script calls per round trip (no batching across tasks):
//! the concurrent figure comes from many workers sharing the multiplexed connections, which
//! pipelines their commands. The batch figures make three script calls per batch: each worker
//! enqueues `batch` tasks in one call (`enqueue_many`), claims up to as many in one
//! (`claim_many_in`) and completes what it got in one (`complete_many`).

use netraven_core::clock::{Clock, SystemClock};
use netraven_core::queue::*;
use netraven_store::queue::{EmbeddedQueue, RedisQueue};
use std::sync::Arc;
use std::time::{Duration, Instant};

const LEASE: Duration = Duration::from_secs(60);

fn spec(run: i64, d: i64) -> TaskSpec {
    TaskSpec::new(TaskKind::Device {
        run_id: run,
        device_id: d,
    })
}

async fn round_trips(q: Arc<dyn Queue>, workers: usize, per_worker: usize, run: i64) -> f64 {
    let start = Instant::now();
    let mut handles = Vec::new();
    for w in 0..workers {
        let q = q.clone();
        handles.push(tokio::spawn(async move {
            let worker = format!("bench-w{w}");
            for i in 0..per_worker {
                let d = (w * per_worker + i) as i64;
                q.enqueue(spec(run, d)).await.map_err(|e| e.to_string())?;
                let Some(l) = q
                    .claim(&worker, LEASE, Duration::ZERO)
                    .await
                    .map_err(|e| e.to_string())?
                else {
                    return Err("nothing to claim".to_string());
                };
                q.complete(&l).await.map_err(|e| e.to_string())?;
            }
            Ok::<(), String>(())
        }));
    }
    for h in handles {
        match h.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => panic!("bench worker failed: {e}"),
            Err(e) => panic!("bench worker panicked: {e}"),
        }
    }
    (workers * per_worker) as f64 / start.elapsed().as_secs_f64()
}

/// Round trips per second with `workers` workers, each doing `rounds` rounds of: enqueue
/// `batch` tasks in one call, claim until it has claimed as many (usually one call of up to
/// `batch`), complete them in one call.
async fn batch_round_trips(
    q: Arc<dyn Queue>,
    workers: usize,
    rounds: usize,
    batch: usize,
    run: i64,
) -> f64 {
    let start = Instant::now();
    let mut handles = Vec::new();
    for w in 0..workers {
        let q = q.clone();
        handles.push(tokio::spawn(async move {
            let worker = format!("bench-bw{w}");
            for r in 0..rounds {
                let first = ((w * rounds + r) * batch) as i64;
                let specs = (first..first + batch as i64)
                    .map(|d| spec(run, d))
                    .collect();
                q.enqueue_many(specs).await.map_err(|e| e.to_string())?;
                // Another worker may have taken some of ours; there are always as many ready
                // as every worker still needs, so this ends.
                let mut need = batch;
                while need > 0 {
                    let got = q
                        .claim_many_in(&worker, None, need, LEASE, Duration::from_secs(1))
                        .await
                        .map_err(|e| e.to_string())?;
                    if got.is_empty() {
                        return Err("nothing to claim".to_string());
                    }
                    need -= got.len();
                    for done in q.complete_many(&got).await.map_err(|e| e.to_string())? {
                        done.map_err(|e| e.to_string())?;
                    }
                }
            }
            Ok::<(), String>(())
        }));
    }
    for h in handles {
        match h.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => panic!("bench worker failed: {e}"),
            Err(e) => panic!("bench worker panicked: {e}"),
        }
    }
    (workers * rounds * batch) as f64 / start.elapsed().as_secs_f64()
}

fn main() {
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => panic!("runtime: {e}"),
    };
    rt.block_on(async {
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let embedded: Arc<dyn Queue> = Arc::new(EmbeddedQueue::new(clock.clone()));
        let r = round_trips(embedded.clone(), 1, 100_000, 1).await;
        println!("embedded queue, 1 worker:   {r:>10.0} round trips/s");
        let r = round_trips(embedded.clone(), 16, 10_000, 2).await;
        println!("embedded queue, 16 workers: {r:>10.0} round trips/s");
        let r = batch_round_trips(embedded, 16, 1_000, 16, 6).await;
        println!("embedded queue, 16 workers, batches of 16: {r:>10.0} round trips/s");

        let Ok(url) = std::env::var("NETRAVEN_TEST_REDIS_URL") else {
            println!("redis queue: skipped: NETRAVEN_TEST_REDIS_URL not set");
            return;
        };
        let prefix = format!("nrbench-{}", uuid::Uuid::new_v4().simple());
        let q = match RedisQueue::connect(&url, &prefix, clock).await {
            Ok(q) => Arc::new(q),
            Err(e) => panic!("redis: {e}"),
        };
        let dyn_q: Arc<dyn Queue> = q.clone();
        let r = round_trips(dyn_q.clone(), 1, 3_000, 3).await;
        println!("redis queue, 1 worker:      {r:>10.0} round trips/s");
        let r = round_trips(dyn_q.clone(), 16, 1_500, 4).await;
        println!("redis queue, 16 workers:    {r:>10.0} round trips/s");
        let r = round_trips(dyn_q.clone(), 64, 500, 5).await;
        println!("redis queue, 64 workers:    {r:>10.0} round trips/s");
        for (batch, run) in [(8, 7), (16, 8), (64, 9)] {
            let rounds = 40_000 / (16 * batch);
            let r = batch_round_trips(dyn_q.clone(), 16, rounds, batch, run).await;
            println!("redis queue, 16 workers, batches of {batch:>2}: {r:>10.0} round trips/s");
        }
        if let Err(e) = q.purge().await {
            eprintln!("cleanup failed: {e}");
        }
    });
}
