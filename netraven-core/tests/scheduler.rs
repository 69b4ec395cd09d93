//! Scheduling rules, on a fake clock: next fires, DST, missed fires, overlap, edits.

use chrono::{DateTime, TimeZone, Utc};
use netraven_core::clock::{Clock, ManualClock};
use netraven_core::memory::{MemoryQueue, MemoryStore};
use netraven_core::prelude::*;
use netraven_core::scheduler::{
    Scheduler, SchedulerConfig, latest_due, next_fire, validate_schedule,
};
use std::sync::Arc;
use std::time::Duration;

fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap()
}

fn cron(expr: &str, tz: &str) -> Schedule {
    Schedule::Cron {
        expression: expr.into(),
        timezone: tz.into(),
    }
}

#[test]
fn validation_rules() {
    assert!(validate_schedule(&Schedule::Interval { seconds: 59 }).is_err());
    assert!(validate_schedule(&Schedule::Interval { seconds: 60 }).is_ok());
    assert!(validate_schedule(&cron("0 3 * * *", "Europe/Berlin")).is_ok());
    assert!(
        validate_schedule(&cron("0 3 * * * *", "UTC")).is_err(),
        "6 fields"
    );
    assert!(validate_schedule(&cron("0 25 * * *", "UTC")).is_err());
    assert!(validate_schedule(&cron("0 3 * * *", "Mars/Olympus")).is_err());
}

#[test]
fn cron_fires_in_its_time_zone() {
    // 03:00 in Berlin (UTC+1 in winter) is 02:00 UTC.
    let n = next_fire(&cron("0 3 * * *", "Europe/Berlin"), utc(2026, 1, 10, 12, 0)).unwrap();
    assert_eq!(n, Some(utc(2026, 1, 11, 2, 0)));
}

#[test]
fn a_fire_in_the_skipped_hour_runs_once_after_the_jump() {
    // Berlin springs forward on 2026-03-29 at 02:00 → 03:00; 02:30 does not exist that day.
    let s = cron("30 2 * * *", "Europe/Berlin");
    let n = next_fire(&s, utc(2026, 3, 28, 12, 0)).unwrap().unwrap();
    assert_eq!(
        n,
        utc(2026, 3, 29, 1, 0),
        "runs at 03:00 local, right after the jump"
    );
    let after = next_fire(&s, n).unwrap().unwrap();
    assert_eq!(
        after,
        utc(2026, 3, 30, 0, 30),
        "and once only: next is 02:30 CEST on the 30th"
    );
}

#[test]
fn a_fire_in_the_repeated_hour_runs_once() {
    // Berlin falls back on 2026-10-25 at 03:00 → 02:00; 02:30 happens twice.
    let s = cron("30 2 * * *", "Europe/Berlin");
    let first = next_fire(&s, utc(2026, 10, 24, 12, 0)).unwrap().unwrap();
    assert_eq!(
        first,
        utc(2026, 10, 25, 0, 30),
        "first occurrence, still CEST"
    );
    let second = next_fire(&s, first).unwrap().unwrap();
    assert_eq!(
        second,
        utc(2026, 10, 26, 1, 30),
        "the repeated 02:30 does not fire again"
    );
}

#[test]
fn hourly_cron_across_the_repeated_hour_fires_each_hour_label_once() {
    let s = cron("15 * * * *", "Europe/Berlin");
    let mut t = utc(2026, 10, 24, 23, 0);
    let mut fires = Vec::new();
    for _ in 0..5 {
        t = next_fire(&s, t).unwrap().unwrap();
        fires.push(
            t.with_timezone(&chrono_tz::Europe::Berlin)
                .format("%H:%M")
                .to_string(),
        );
    }
    assert_eq!(fires, vec!["01:15", "02:15", "03:15", "04:15", "05:15"]);
}

#[test]
fn missed_fires_collapse_to_the_latest() {
    let s = Schedule::Interval { seconds: 3600 };
    let since = utc(2026, 1, 1, 0, 0);
    assert_eq!(latest_due(&s, since, utc(2026, 1, 1, 0, 59)).unwrap(), None);
    let (f, n) = latest_due(&s, since, utc(2026, 1, 1, 5, 30))
        .unwrap()
        .unwrap();
    assert_eq!((f, n), (utc(2026, 1, 1, 5, 0), 5));
    let once = Schedule::Once {
        at: utc(2026, 1, 1, 3, 0),
    };
    assert!(
        latest_due(&once, since, utc(2026, 1, 1, 2, 0))
            .unwrap()
            .is_none()
    );
    assert!(
        latest_due(&once, since, utc(2026, 1, 1, 4, 0))
            .unwrap()
            .is_some()
    );
    assert!(
        latest_due(&once, utc(2026, 1, 1, 3, 0), utc(2026, 1, 2, 0, 0))
            .unwrap()
            .is_none(),
        "once fires once"
    );
}

struct Rig {
    store: Arc<MemoryStore>,
    queue: Arc<MemoryQueue>,
    clock: Arc<ManualClock>,
    sched: Scheduler,
}

fn rig() -> Rig {
    let clock = Arc::new(ManualClock::new(utc(2026, 1, 1, 0, 0)));
    let store = Arc::new(MemoryStore::new());
    let queue = Arc::new(MemoryQueue::new(clock.clone()));
    let sched = Scheduler::new(
        store.clone(),
        queue.clone(),
        clock.clone(),
        SchedulerConfig {
            holder: "s1".into(),
            ..Default::default()
        },
    );
    Rig {
        store,
        queue,
        clock,
        sched,
    }
}

async fn job(r: &Rig, schedule: Schedule, overlap: OverlapPolicy, missed: MissedPolicy) -> Job {
    let mut j = Job::backup(format!("j{}", uuid::Uuid::new_v4()), Targets::default());
    j.schedule = schedule;
    j.overlap = overlap;
    j.missed = missed;
    j.created_at = r.clock.now();
    j.updated_at = r.clock.now();
    r.store.create_job(&j).await.unwrap()
}

async fn runs(r: &Rig, job: JobId) -> Vec<Run> {
    r.store
        .list_runs(
            &RunFilter {
                job_id: Some(job),
                ..Default::default()
            },
            Page::first(100),
        )
        .await
        .unwrap()
        .items
}

#[tokio::test]
async fn interval_job_fires_once_per_period_and_ticks_are_idempotent() {
    let r = rig();
    let j = job(
        &r,
        Schedule::Interval { seconds: 600 },
        OverlapPolicy::Allow,
        MissedPolicy::RunOnce,
    )
    .await;
    r.sched.tick().await.unwrap();
    assert!(runs(&r, j.id).await.is_empty(), "not due yet");
    r.clock.advance(Duration::from_secs(600));
    assert_eq!(r.sched.tick().await.unwrap().created.len(), 1);
    assert!(
        r.sched.tick().await.unwrap().created.is_empty(),
        "a second tick makes no second run"
    );
    assert_eq!(
        r.queue.stats().await.unwrap().ready,
        1,
        "the run's start was queued"
    );
    r.clock.advance(Duration::from_secs(600));
    r.sched.tick().await.unwrap();
    let rs = runs(&r, j.id).await;
    assert_eq!(rs.len(), 2);
    assert_eq!(rs[0].fire_time, Some(utc(2026, 1, 1, 0, 20)));
}

#[tokio::test]
async fn missed_fires_run_once_or_are_skipped_by_policy() {
    let r = rig();
    let once = job(
        &r,
        Schedule::Interval { seconds: 60 },
        OverlapPolicy::Allow,
        MissedPolicy::RunOnce,
    )
    .await;
    let skip = job(
        &r,
        Schedule::Interval { seconds: 3600 },
        OverlapPolicy::Allow,
        MissedPolicy::Skip,
    )
    .await;
    // The scheduler was down for 5 hours and 30 minutes.
    r.clock.advance(Duration::from_secs(5 * 3600 + 1800));
    r.sched.tick().await.unwrap();
    assert_eq!(
        runs(&r, once.id).await.len(),
        1,
        "many missed fires, one run"
    );
    assert!(
        runs(&r, skip.id).await.is_empty(),
        "a fire 30 min late is skipped under 'skip'"
    );
    r.clock.advance(Duration::from_secs(1800));
    r.sched.tick().await.unwrap();
    assert_eq!(
        runs(&r, skip.id).await.len(),
        1,
        "the next on-time fire runs"
    );
}

#[tokio::test]
async fn overlap_forbid_records_a_skip_while_a_run_is_active() {
    let r = rig();
    let j = job(
        &r,
        Schedule::Interval { seconds: 60 },
        OverlapPolicy::Forbid,
        MissedPolicy::RunOnce,
    )
    .await;
    r.clock.advance(Duration::from_secs(60));
    r.sched.tick().await.unwrap();
    r.clock.advance(Duration::from_secs(60));
    let rep = r.sched.tick().await.unwrap();
    assert_eq!(rep.skipped.len(), 1);
    let rs = runs(&r, j.id).await;
    assert_eq!(rs[0].status, RunStatus::Skipped);
    assert_eq!(rs[1].status, RunStatus::Queued);
    let logs = r
        .store
        .list_logs(
            &LogFilter {
                job_id: Some(j.id),
                kind: Some(LogKind::Scheduler),
                ..Default::default()
            },
            Page::first(10),
        )
        .await
        .unwrap();
    assert!(logs.items.iter().any(|e| e.message.contains("skipped")));
}

#[tokio::test]
async fn edits_disables_and_deletes_take_effect_on_the_next_tick() {
    let r = rig();
    let mut j = job(
        &r,
        Schedule::Interval { seconds: 60 },
        OverlapPolicy::Allow,
        MissedPolicy::RunOnce,
    )
    .await;
    r.clock.advance(Duration::from_secs(30));
    j.schedule = Schedule::Interval { seconds: 3600 };
    j.updated_at = r.clock.now();
    r.store.update_job(&j).await.unwrap();
    r.clock.advance(Duration::from_secs(60));
    r.sched.tick().await.unwrap();
    assert!(
        runs(&r, j.id).await.is_empty(),
        "the new interval counts from the edit"
    );
    j.enabled = false;
    r.store.update_job(&j).await.unwrap();
    r.clock.advance(Duration::from_secs(7200));
    r.sched.tick().await.unwrap();
    assert!(
        runs(&r, j.id).await.is_empty(),
        "a disabled job does not fire"
    );
    r.store.delete_job(j.id).await.unwrap();
    r.sched.tick().await.unwrap();
    assert!(
        runs(&r, j.id).await.is_empty(),
        "a deleted job does not fire"
    );
}

#[tokio::test]
async fn only_the_lease_holder_schedules() {
    let r = rig();
    let other = Scheduler::new(
        r.store.clone(),
        r.queue.clone(),
        r.clock.clone(),
        SchedulerConfig {
            holder: "s2".into(),
            ..Default::default()
        },
    );
    assert!(r.sched.tick().await.unwrap().leader);
    assert!(!other.tick().await.unwrap().leader);
    r.clock.advance(Duration::from_secs(31));
    assert!(
        other.tick().await.unwrap().leader,
        "the lease moves when its holder stops renewing"
    );
}
