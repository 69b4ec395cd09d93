//! Fault-suite scenarios R9–R12 (`scripts/chaos` runs them, docs/reliability.md): three
//! schedulers over 24 simulated hours of one-minute schedules, on the real PostgreSQL store.
//!
//! The store's clock cannot be driven from outside a `netraven` process (every role reads the
//! system clock, leases PostgreSQL's), so these run three [`Scheduler`] instances in one process
//! over one PostgreSQL schema, sharing a [`ManualClock`] with the store's leases
//! (`server_clock` off: leases are decided by the time the schedulers pass). The clock steps 30
//! simulated seconds; at every step each live scheduler ticks, all three at once. The lease
//! holder is "killed" (stops ticking for a while) every few simulated hours, so the lease moves
//! between them. Each test prints one line starting with its scenario id; without
//! `NETRAVEN_TEST_PG_URL` they skip (print nothing), which `scripts/chaos` reports as a failure.

mod sql_support;

use chrono::{DateTime, TimeZone, Utc};
use netraven_core::clock::{Clock, ManualClock};
use netraven_core::memory::MemoryQueue;
use netraven_core::prelude::*;
use netraven_core::scheduler::{Scheduler, SchedulerConfig};
use netraven_store::sql::PostgresStore;
use sql_support::*;
use std::sync::Arc;
use std::time::Duration;

/// Seconds per simulated step.
const STEP: i64 = 30;
/// The leader lease: longer than a step, so a dead leader delays fires by a step or two.
const LEASE_TTL: Duration = Duration::from_secs(45);

/// Three schedulers over one store and one manual clock.
struct Day {
    store: Arc<PostgresStore>,
    clock: Arc<ManualClock>,
    schedulers: Vec<Scheduler>,
    /// Steps for which each scheduler stays dead.
    dead_for: Vec<u32>,
    /// Lease handovers seen (a different scheduler led than at the step before).
    handovers: u32,
    last_leader: Option<usize>,
    /// Every step whose ticks had more than one leader (must stay 0).
    double_leaders: u32,
}

impl Day {
    async fn new(start: DateTime<Utc>) -> Option<Day> {
        let store = Arc::new(pg(cipher()).await?);
        let clock = Arc::new(ManualClock::new(start));
        let queue = Arc::new(MemoryQueue::new(clock.clone()));
        let schedulers = (0..3)
            .map(|i| {
                Scheduler::new(
                    store.clone(),
                    queue.clone(),
                    clock.clone(),
                    SchedulerConfig {
                        holder: format!("day-scheduler-{i}"),
                        lease_ttl: LEASE_TTL,
                        tick: Duration::from_secs(STEP as u64),
                        skip_grace: Duration::from_secs(60),
                    },
                )
            })
            .collect();
        Some(Day {
            store,
            clock,
            schedulers,
            dead_for: vec![0; 3],
            handovers: 0,
            last_leader: None,
            double_leaders: 0,
        })
    }

    async fn job(
        &self,
        name: &str,
        schedule: Schedule,
        missed: MissedPolicy,
        overlap: OverlapPolicy,
    ) -> Job {
        let mut job = Job::backup(netraven_core::testkit::unique(name), Targets::default());
        job.schedule = schedule;
        job.missed = missed;
        job.overlap = overlap;
        job.created_at = self.clock.now();
        job.updated_at = self.clock.now();
        self.store.create_job(&job).await.expect("create job")
    }

    /// One step: the live schedulers tick at once, then the clock moves on.
    async fn step(&mut self) {
        let mut handles = Vec::new();
        for (i, s) in self.schedulers.iter().enumerate() {
            if self.dead_for[i] > 0 {
                self.dead_for[i] -= 1;
                continue;
            }
            let s = s.clone();
            handles.push((i, tokio::spawn(async move { s.tick().await })));
        }
        let mut leaders = Vec::new();
        for (i, h) in handles {
            let report = h.await.expect("join").expect("tick");
            if report.leader {
                leaders.push(i);
            }
        }
        if leaders.len() > 1 {
            self.double_leaders += 1;
        }
        if let Some(&l) = leaders.first() {
            if self.last_leader.is_some_and(|p| p != l) {
                self.handovers += 1;
            }
            self.last_leader = Some(l);
        }
        self.clock.advance(Duration::from_secs(STEP as u64));
    }

    /// Kills the current leader (it stops ticking) for `steps` steps.
    fn kill_leader(&mut self, steps: u32) {
        if let Some(l) = self.last_leader {
            self.dead_for[l] = steps;
        }
    }

    /// Runs `hours` simulated hours (the clock must sit on a step boundary): the leader dies
    /// for ten minutes every three hours, at a half minute.
    async fn run_hours(&mut self, hours: i64, mut each_step: impl AsyncFnMut(&mut Day)) {
        let steps = hours * 3600 / STEP;
        for n in 0..steps {
            if n % (3 * 3600 / STEP) == 3600 / STEP + 1 {
                self.kill_leader((600 / STEP) as u32);
            }
            self.step().await;
            each_step(self).await;
        }
    }

    async fn runs(&self, job: JobId) -> Vec<Run> {
        let mut out = Vec::new();
        let mut page = 1;
        loop {
            let p = self
                .store
                .list_runs(
                    &RunFilter {
                        job_id: Some(job),
                        ..Default::default()
                    },
                    Page::new(page, Page::MAX_SIZE),
                )
                .await
                .expect("runs");
            let n = p.items.len();
            out.extend(p.items);
            if n < Page::MAX_SIZE as usize {
                break;
            }
            page += 1;
        }
        out.sort_by_key(|r| r.fire_time);
        out
    }

    async fn drop_schema(&self) {
        self.store.drop_schema().await.expect("drop schema");
    }
}

fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, 0)
        .single()
        .expect("a valid time")
}

/// Fire times of the runs that are not skips.
fn fired(runs: &[Run]) -> Vec<DateTime<Utc>> {
    runs.iter()
        .filter(|r| r.status != RunStatus::Skipped)
        .filter_map(|r| r.fire_time)
        .collect()
}

fn distinct(times: &[DateTime<Utc>]) -> bool {
    let mut t = times.to_vec();
    t.dedup();
    t.len() == times.len()
}

/// R9: a one-minute schedule over 24 simulated hours makes exactly 1,440 runs, one per minute,
/// while the lease moves between three schedulers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r9_one_minute_schedule_makes_1440_runs_in_a_day() {
    let start = utc(2026, 6, 1, 0, 0);
    let Some(mut day) = Day::new(start).await else {
        return;
    };
    let every_minute = day
        .job(
            "r9-interval",
            Schedule::Interval { seconds: 60 },
            MissedPolicy::RunOnce,
            OverlapPolicy::Allow,
        )
        .await;
    let cron_minute = day
        .job(
            "r9-cron",
            Schedule::Cron {
                expression: "* * * * *".into(),
                timezone: "UTC".into(),
            },
            MissedPolicy::RunOnce,
            OverlapPolicy::Allow,
        )
        .await;
    day.run_hours(24, async |_| {}).await;
    // The fire at exactly 24:00 is due at the last step's time only after it: one more step.
    day.step().await;
    let mut figures = Vec::new();
    for job in [&every_minute, &cron_minute] {
        let runs = day.runs(job.id).await;
        let times = fired(&runs);
        let expected: Vec<_> = (1..=1440)
            .map(|m| start + chrono::Duration::minutes(m))
            .collect();
        assert_eq!(
            times.len(),
            1440,
            "{}: {} runs in 24 h",
            job.name,
            times.len()
        );
        assert!(distinct(&times), "{}: two runs for one fire", job.name);
        assert_eq!(
            times, expected,
            "{}: a fire is missing or off its minute",
            job.name
        );
        let late = runs
            .iter()
            .filter(|r| r.fire_time.is_some_and(|f| r.queued_at > f))
            .count();
        figures.push(format!(
            "{}={} (late={late})",
            if job.id == every_minute.id {
                "interval"
            } else {
                "cron"
            },
            times.len()
        ));
    }
    assert_eq!(day.double_leaders, 0, "two schedulers led in one step");
    assert!(
        day.handovers >= 4,
        "the lease never moved ({} handovers)",
        day.handovers
    );
    println!(
        "R9 24 simulated hours, 3 schedulers: runs {} (expected 1440 each); lease handovers={} double_leaders={}",
        figures.join(" "),
        day.handovers,
        day.double_leaders
    );
    day.drop_schema().await;
}

/// R10: misfire policies. Every scheduler is down for 7 minutes spanning a fire of an hourly
/// job and 7 fires of a one-minute job: `run_once` runs the latest missed fire once when they
/// return, `skip` drops a fire older than the grace (60 s).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r10_misfire_policies_after_a_scheduler_outage() {
    let start = utc(2026, 6, 2, 0, 0);
    let Some(mut day) = Day::new(start).await else {
        return;
    };
    let hourly = |_: ()| Schedule::Cron {
        expression: "0 * * * *".into(),
        timezone: "UTC".into(),
    };
    let h_once = day
        .job(
            "r10-hourly-once",
            hourly(()),
            MissedPolicy::RunOnce,
            OverlapPolicy::Allow,
        )
        .await;
    let h_skip = day
        .job(
            "r10-hourly-skip",
            hourly(()),
            MissedPolicy::Skip,
            OverlapPolicy::Allow,
        )
        .await;
    let m_once = day
        .job(
            "r10-minute-once",
            Schedule::Interval { seconds: 60 },
            MissedPolicy::RunOnce,
            OverlapPolicy::Allow,
        )
        .await;
    // Outage: from 11:55:30 to 12:02:30 (the steps at 11:56:00 … 12:02:00 do not tick).
    let outage_from = utc(2026, 6, 2, 11, 55) + chrono::Duration::seconds(30);
    let outage_steps = (7 * 60 / STEP) as u32;
    let steps = 24 * 3600 / STEP + 1;
    for _ in 0..steps {
        if day.clock.now() == outage_from {
            day.dead_for = vec![outage_steps; 3];
        }
        day.step().await;
    }
    let noon = utc(2026, 6, 2, 12, 0);
    let once = fired(&day.runs(h_once.id).await);
    let skip = fired(&day.runs(h_skip.id).await);
    let minute = day.runs(m_once.id).await;
    let minute_times = fired(&minute);
    assert_eq!(once.len(), 24, "run_once hourly: {once:?}");
    assert!(once.contains(&noon), "run_once ran the missed 12:00 fire");
    let noon_run = day
        .runs(h_once.id)
        .await
        .into_iter()
        .find(|r| r.fire_time == Some(noon));
    let noon_queued = noon_run.map(|r| r.queued_at);
    assert_eq!(
        noon_queued,
        Some(utc(2026, 6, 2, 12, 2) + chrono::Duration::seconds(30))
    );
    assert_eq!(skip.len(), 23, "skip hourly: {skip:?}");
    assert!(
        !skip.contains(&noon),
        "skip dropped the 12:00 fire (2.5 min old)"
    );
    // The minute job missed 11:56 … 12:02 (7 fires) and ran 12:02 once for them.
    assert_eq!(
        minute_times.len(),
        1440 - 6,
        "run_once minute: {}",
        minute_times.len()
    );
    assert!(distinct(&minute_times));
    println!(
        "R10 scheduler outage 11:55:30-12:02:30: hourly run_once runs={} (12:00 run at 12:02:30), hourly skip runs={} (12:00 dropped), minute run_once runs={} (7 missed fires ran once)",
        once.len(),
        skip.len(),
        minute_times.len()
    );
    day.drop_schema().await;
}

/// R11: DST in America/New_York. Spring forward (2026-03-08, 02:00 → 03:00): a daily 02:30
/// fires once, right after the jump; the local day has 23 hours of one-minute fires. Fall back
/// (2026-11-01, 02:00 → 01:00): a daily 01:30 fires once, at its first occurrence; the
/// repeated hour does not fire twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r11_dst_spring_and_fall_in_new_york() {
    let ny = |e: &str| Schedule::Cron {
        expression: e.into(),
        timezone: "America/New_York".into(),
    };
    let mut lines = Vec::new();
    // (local midnight in UTC, hours in that local day, daily line, its one expected fire,
    //  hourly fires expected, minute fires expected)
    let days = [
        (
            "spring",
            utc(2026, 3, 8, 5, 0),
            23,
            "30 2 * * *",
            utc(2026, 3, 8, 7, 0),
            23,
            23 * 60,
        ),
        (
            "fall",
            utc(2026, 11, 1, 4, 0),
            25,
            "30 1 * * *",
            utc(2026, 11, 1, 5, 30),
            24,
            24 * 60,
        ),
    ];
    for (name, midnight, hours, daily_line, daily_fire, hourly_n, minute_n) in days {
        let Some(mut day) = Day::new(midnight).await else {
            return;
        };
        let daily = day
            .job(
                "r11-daily",
                ny(daily_line),
                MissedPolicy::RunOnce,
                OverlapPolicy::Allow,
            )
            .await;
        let hourly = day
            .job(
                "r11-hourly",
                ny("0 * * * *"),
                MissedPolicy::RunOnce,
                OverlapPolicy::Allow,
            )
            .await;
        let minute = day
            .job(
                "r11-minute",
                ny("* * * * *"),
                MissedPolicy::RunOnce,
                OverlapPolicy::Allow,
            )
            .await;
        day.run_hours(hours, async |_| {}).await;
        day.step().await;
        let d = fired(&day.runs(daily.id).await);
        let h = fired(&day.runs(hourly.id).await);
        let m = fired(&day.runs(minute.id).await);
        assert_eq!(d, vec![daily_fire], "{name}: daily {daily_line}");
        assert_eq!(h.len(), hourly_n, "{name}: hourly {h:?}");
        assert_eq!(m.len(), minute_n, "{name}: minute fires");
        assert!(
            distinct(&h) && distinct(&m),
            "{name}: two runs for one fire"
        );
        // No fire in the local day's missing (spring) or second (fall) 01:xx/02:xx hour.
        let wall: Vec<_> = m
            .iter()
            .map(|t| t.with_timezone(&chrono_tz::America::New_York).naive_local())
            .collect();
        let mut w = wall.clone();
        w.sort();
        w.dedup();
        assert_eq!(
            w.len(),
            wall.len(),
            "{name}: a wall-clock minute fired twice"
        );
        lines.push(format!(
            "{name} ({hours} h local day): daily '{daily_line}' fired once at {daily_fire}, hourly={} minute={}",
            h.len(),
            m.len()
        ));
        day.drop_schema().await;
    }
    println!("R11 DST America/New_York: {}", lines.join("; "));
}

/// R12: overlap `forbid` over 24 simulated hours of a one-minute schedule whose runs last
/// 150 s: never two runs at once, every fire either ran or was recorded skipped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r12_overlap_forbid_never_runs_two_at_once() {
    let start = utc(2026, 6, 3, 0, 0);
    let Some(mut day) = Day::new(start).await else {
        return;
    };
    let job = day
        .job(
            "r12-forbid",
            Schedule::Interval { seconds: 60 },
            MissedPolicy::RunOnce,
            OverlapPolicy::Forbid,
        )
        .await;
    let mut max_active = 0usize;
    // A worker on the same clock: starts a queued run at once, finishes it 150 s later.
    day.run_hours(24, async |day: &mut Day| {
        let now = day.clock.now();
        let active: Vec<Run> = day
            .store
            .active_runs()
            .await
            .expect("active runs")
            .into_iter()
            .filter(|r| r.job_id == job.id)
            .collect();
        max_active = max_active.max(active.len());
        for r in active {
            match r.status {
                RunStatus::Queued => {
                    day.store
                        .start_run(r.id, &[], now)
                        .await
                        .expect("start run");
                }
                RunStatus::Running
                    if r.started_at
                        .is_some_and(|s| now - s >= chrono::Duration::seconds(150)) =>
                {
                    day.store
                        .finish_run(r.id, RunStatus::CompletedSuccess, now, None)
                        .await
                        .expect("finish run");
                }
                _ => {}
            }
        }
    })
    .await;
    day.step().await;
    let runs = day.runs(job.id).await;
    let ran: Vec<&Run> = runs
        .iter()
        .filter(|r| r.status != RunStatus::Skipped)
        .collect();
    let skipped = runs
        .iter()
        .filter(|r| r.status == RunStatus::Skipped)
        .count();
    let fires: Vec<_> = runs.iter().filter_map(|r| r.fire_time).collect();
    assert!(distinct(&fires), "two records for one fire");
    assert_eq!(fires.len(), 1440, "every fire ran or was skipped");
    // Intervals [started, finished) of the runs never overlap.
    let mut spans: Vec<(DateTime<Utc>, DateTime<Utc>)> = ran
        .iter()
        .filter_map(|r| {
            Some((
                r.started_at?,
                r.finished_at.unwrap_or(DateTime::<Utc>::MAX_UTC),
            ))
        })
        .collect();
    spans.sort();
    let overlaps = spans.windows(2).filter(|w| w[1].0 < w[0].1).count();
    assert_eq!(max_active, 1, "two runs of the job were active at once");
    assert_eq!(overlaps, 0, "two runs' spans overlap");
    assert!(skipped > 0 && !ran.is_empty());
    println!(
        "R12 overlap forbid, 150 s runs on a one-minute schedule over 24 simulated hours: fires={} ran={} skipped={} max_active={max_active} overlapping_spans={overlaps}",
        fires.len(),
        ran.len(),
        skipped
    );
    day.drop_schema().await;
}
