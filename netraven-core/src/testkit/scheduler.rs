//! Scheduler checks that depend on a store's leases and fire dedupe.

use super::{t0, unique};
use crate::clock::{Clock, ManualClock};
use crate::model::*;
use crate::queue::Queue;
use crate::scheduler::{Scheduler, SchedulerConfig};
use crate::store::Store;
use std::sync::Arc;
use std::time::Duration;

/// Three schedulers ticking on one store create exactly one run per fire, even when the lease
/// changes hands between fires.
pub async fn one_run_per_fire_with_three_schedulers(store: Arc<dyn Store>, queue: Arc<dyn Queue>) {
    let clock = Arc::new(ManualClock::new(t0()));
    let mut job = Job::backup(unique("sched"), Targets::default());
    job.schedule = Schedule::Interval { seconds: 60 };
    job.overlap = OverlapPolicy::Allow;
    job.created_at = t0();
    job.updated_at = t0();
    let job = store.create_job(&job).await.expect("create job");
    let scheds: Vec<Scheduler> = (0..3)
        .map(|i| {
            Scheduler::new(
                store.clone(),
                queue.clone(),
                clock.clone(),
                SchedulerConfig {
                    holder: format!("{}-{i}", job.name),
                    lease_ttl: Duration::from_secs(20),
                    tick: Duration::from_secs(1),
                    skip_grace: Duration::from_secs(60),
                },
            )
        })
        .collect();
    for _minute in 0..5 {
        clock.advance(Duration::from_secs(30));
        for s in &scheds {
            s.tick().await.expect("tick");
        }
        clock.advance(Duration::from_secs(30));
        let mut handles = Vec::new();
        for s in scheds.clone() {
            handles.push(tokio::spawn(async move { s.tick().await.expect("tick") }));
        }
        let mut leaders = 0;
        for h in handles {
            if h.await.expect("join").leader {
                leaders += 1;
            }
        }
        assert!(leaders <= 1, "{leaders} schedulers acted in one tick");
    }
    // Let another scheduler take over after the leader dies.
    clock.advance(Duration::from_secs(25));
    for s in &scheds[1..] {
        s.tick().await.expect("tick");
    }
    let runs = store
        .list_runs(
            &RunFilter {
                job_id: Some(job.id),
                ..Default::default()
            },
            Page::first(100),
        )
        .await
        .expect("runs");
    let mut fires: Vec<_> = runs.items.iter().filter_map(|r| r.fire_time).collect();
    let n = fires.len();
    fires.sort();
    fires.dedup();
    assert_eq!(fires.len(), n, "two runs for one fire");
    assert!(n >= 5, "expected a run per minute, got {n}");
    assert_eq!(clock.now(), t0() + chrono::Duration::seconds(325));
}
