//! Scheduling: when a job fires, and the [`Scheduler`] that turns due fires into runs.
//!
//! Each fire is identified by (job, fire time); the store refuses a second run for the same pair,
//! so two schedulers, a restart or a retried tick never create a second run. Only the holder of
//! the `scheduler` lease acts. Jobs are read from the store on every tick, so edits, disables and
//! deletes take effect on the next tick.

use crate::clock::Clock;
use crate::engine::submit_run;
use crate::error::{Error, Result};
use crate::model::*;
use crate::queue::Queue;
use crate::store::Store;
use chrono::{DateTime, TimeZone, Utc};
use chrono_tz::Tz;
use croner::Cron;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Shortest interval accepted for an interval schedule.
pub const MIN_INTERVAL_SECS: u64 = 60;

/// Name of the scheduler leader lease.
pub const SCHEDULER_LEASE: &str = "scheduler";

fn parse_cron(expr: &str) -> Result<Cron> {
    if expr.split_whitespace().count() != 5 {
        return Err(Error::invalid(format!(
            "cron expression '{expr}' must have 5 fields (minute hour day month weekday)"
        )));
    }
    Cron::from_str(expr)
        .map_err(|e| Error::invalid(format!("cron expression '{expr}' is invalid: {e}")))
}

fn parse_tz(tz: &str) -> Result<Tz> {
    tz.parse::<Tz>()
        .map_err(|_| Error::invalid(format!("unknown time zone '{tz}'")))
}

/// Checks a schedule: interval ≥ 60 s, cron with 5 fields that parses, a known IANA time zone.
pub fn validate_schedule(s: &Schedule) -> Result<()> {
    match s {
        Schedule::Manual | Schedule::Once { .. } => Ok(()),
        Schedule::Interval { seconds } => {
            if *seconds < MIN_INTERVAL_SECS {
                Err(Error::invalid(format!(
                    "interval must be at least {MIN_INTERVAL_SECS} seconds"
                )))
            } else if *seconds > 366 * 86_400 {
                Err(Error::invalid("interval must be at most a year"))
            } else {
                Ok(())
            }
        }
        Schedule::Cron {
            expression,
            timezone,
        } => {
            parse_cron(expression)?;
            parse_tz(timezone)?;
            Ok(())
        }
    }
}

/// The next cron fire strictly after `after`, in `tz`, with DST rules applied: a fire whose local
/// time falls in a skipped hour happens once, right after the jump; a local time that occurs twice
/// (the repeated hour) fires once, at its first occurrence.
fn next_cron(cron: &Cron, tz: Tz, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let local_after = after.with_timezone(&tz);
    let mut cursor = local_after;
    for _ in 0..8 {
        let cand = cron.find_next_occurrence(&cursor, false).ok()?;
        // The second pass through a repeated hour has the same wall-clock time as a fire that
        // already happened one hour earlier: skip it.
        let earlier = cand.with_timezone(&Utc) - chrono::Duration::hours(1);
        let earlier_local = earlier.with_timezone(&tz);
        if earlier_local.naive_local() == cand.naive_local()
            && earlier >= after - chrono::Duration::hours(1)
            && cron.is_time_matching(&earlier_local).unwrap_or(false)
        {
            cursor = cand;
            continue;
        }
        let gap = gap_fire(cron, tz, local_after.naive_local(), cand.naive_local());
        return Some(gap.unwrap_or(cand.with_timezone(&Utc)));
    }
    None
}

/// If a wall-clock minute between `from` and `to` (exclusive) matches the cron line but does not
/// exist in `tz` (spring-forward gap), the instant right after that gap.
fn gap_fire(
    cron: &Cron,
    tz: Tz,
    from: chrono::NaiveDateTime,
    to: chrono::NaiveDateTime,
) -> Option<DateTime<Utc>> {
    // Walk hour by hour to find gaps cheaply; gaps are rare and at most a few per year.
    let mut t = from;
    let limit = to.min(from + chrono::Duration::days(400));
    while t < limit {
        t += chrono::Duration::hours(1);
        if matches!(tz.from_local_datetime(&t), chrono::LocalResult::None) {
            // Check each minute of the missing hour.
            let hour_start =
                t.date()
                    .and_hms_opt(t.time().format("%H").to_string().parse().ok()?, 0, 0)?;
            for m in 0..60 {
                let nm = hour_start + chrono::Duration::minutes(m);
                if nm <= from || nm >= to {
                    continue;
                }
                if !matches!(tz.from_local_datetime(&nm), chrono::LocalResult::None) {
                    continue;
                }
                if naive_matches(cron, nm) {
                    // The first existing local instant after the gap.
                    let mut after = nm;
                    loop {
                        after += chrono::Duration::minutes(1);
                        if let Some(dt) = tz.from_local_datetime(&after).earliest() {
                            let dt = dt.with_timezone(&Utc);
                            return Some(dt - chrono::Duration::seconds(dt.timestamp() % 60));
                        }
                    }
                }
            }
        }
    }
    None
}

fn naive_matches(cron: &Cron, naive: chrono::NaiveDateTime) -> bool {
    // Evaluate the pattern on the wall-clock fields alone, in UTC where every minute exists.
    let utc = Utc.from_utc_datetime(&naive);
    cron.is_time_matching(&utc).unwrap_or(false)
}

/// The next fire strictly after `after`, or `None` if the schedule never fires again.
pub fn next_fire(schedule: &Schedule, after: DateTime<Utc>) -> Result<Option<DateTime<Utc>>> {
    Ok(match schedule {
        Schedule::Manual => None,
        Schedule::Interval { seconds } => Some(after + chrono::Duration::seconds(*seconds as i64)),
        Schedule::Once { at } => (*at > after).then_some(*at),
        Schedule::Cron {
            expression,
            timezone,
        } => next_cron(&parse_cron(expression)?, parse_tz(timezone)?, after),
    })
}

/// The latest fire in `(since, now]`, and how many fires fell in that window (capped).
pub fn latest_due(
    schedule: &Schedule,
    since: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<Option<(DateTime<Utc>, u32)>> {
    match schedule {
        Schedule::Manual => Ok(None),
        Schedule::Once { at } => Ok((*at > since && *at <= now).then_some((*at, 1))),
        Schedule::Interval { seconds } => {
            let secs = (*seconds).max(1) as i64;
            let elapsed = (now - since).num_seconds();
            if elapsed < secs {
                return Ok(None);
            }
            let k = elapsed / secs;
            Ok(Some((
                since + chrono::Duration::seconds(k * secs),
                k.min(u32::MAX as i64) as u32,
            )))
        }
        Schedule::Cron {
            expression,
            timezone,
        } => {
            let cron = parse_cron(expression)?;
            let tz = parse_tz(timezone)?;
            let mut cursor = since;
            let mut latest = None;
            let mut count = 0u32;
            let mut steps = 0u32;
            while let Some(f) = next_cron(&cron, tz, cursor) {
                if f > now {
                    break;
                }
                latest = Some(f);
                count = count.saturating_add(1);
                cursor = f;
                steps += 1;
                // A long outage with a frequent line: jump close to now, only the latest matters.
                if steps == 10_000 && now - cursor > chrono::Duration::days(1) {
                    cursor = now - chrono::Duration::days(1);
                }
            }
            Ok(latest.map(|l| (l, count)))
        }
    }
}

/// Scheduler settings.
#[derive(Debug, Clone)]
pub struct SchedulerConfig {
    /// This scheduler's identity for the leader lease.
    pub holder: String,
    /// Leader lease lifetime; renewed every tick.
    pub lease_ttl: Duration,
    /// Time between ticks.
    pub tick: Duration,
    /// Under the `skip` missed-fire policy, a fire older than this is dropped.
    pub skip_grace: Duration,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        SchedulerConfig {
            holder: format!("scheduler-{}", uuid::Uuid::new_v4()),
            lease_ttl: Duration::from_secs(30),
            tick: Duration::from_secs(5),
            skip_grace: Duration::from_secs(60),
        }
    }
}

/// What one tick did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TickReport {
    /// Whether this scheduler held the lease.
    pub leader: bool,
    /// Runs created.
    pub created: Vec<RunId>,
    /// Fires recorded as skipped (overlap).
    pub skipped: Vec<RunId>,
}

/// Turns due fires into runs.
#[derive(Debug, Clone)]
pub struct Scheduler {
    store: Arc<dyn Store>,
    queue: Arc<dyn Queue>,
    clock: Arc<dyn Clock>,
    config: SchedulerConfig,
}

impl Scheduler {
    /// A scheduler over a store and queue.
    pub fn new(
        store: Arc<dyn Store>,
        queue: Arc<dyn Queue>,
        clock: Arc<dyn Clock>,
        config: SchedulerConfig,
    ) -> Self {
        Scheduler {
            store,
            queue,
            clock,
            config,
        }
    }

    /// One pass: if this scheduler holds the lease, create a run for every due fire.
    pub async fn tick(&self) -> Result<TickReport> {
        let now = self.clock.now();
        let mut report = TickReport::default();
        if !self
            .store
            .try_acquire_lease(
                SCHEDULER_LEASE,
                &self.config.holder,
                self.config.lease_ttl,
                now,
            )
            .await?
        {
            return Ok(report);
        }
        report.leader = true;
        for job in self.store.scheduled_jobs().await? {
            if let Err(e) = self.tick_job(&job, now, &mut report).await {
                tracing::warn!(job_id = job.id, error = %e, "scheduling a job failed");
            }
        }
        Ok(report)
    }

    async fn tick_job(&self, job: &Job, now: DateTime<Utc>, report: &mut TickReport) -> Result<()> {
        let last = self.store.last_fire_time(job.id).await?;
        // After an edit, the schedule counts from the edit, not from older fires.
        let since = match last {
            Some(l) if l > job.updated_at => l,
            _ => job.updated_at,
        };
        let Some((fire, missed)) = latest_due(&job.schedule, since, now)? else {
            return Ok(());
        };
        if job.missed == MissedPolicy::Skip
            && now - fire > chrono::Duration::from_std(self.config.skip_grace).unwrap_or_default()
        {
            return Ok(());
        }
        if job.overlap == OverlapPolicy::Forbid && self.store.job_has_active_run(job.id).await? {
            let created = self
                .store
                .create_run(&NewRun {
                    job_id: job.id,
                    trigger: Trigger::Schedule,
                    fire_time: Some(fire),
                    idempotency_key: None,
                    status: RunStatus::Skipped,
                    message: Some("skipped: a run of this job is still active".into()),
                    queued_at: now,
                })
                .await?;
            if created.created {
                report.skipped.push(created.run.id);
                self.log(job, Some(created.run.id), LogLevel::Warning, format!(
                    "fire at {fire} skipped: a run of job '{}' is still active (overlap forbid)",
                    job.name
                ))
                .await;
            }
            return Ok(());
        }
        let created = submit_run(
            self.store.as_ref(),
            self.queue.as_ref(),
            &NewRun {
                job_id: job.id,
                trigger: Trigger::Schedule,
                fire_time: Some(fire),
                idempotency_key: None,
                status: RunStatus::Queued,
                message: None,
                queued_at: now,
            },
        )
        .await?;
        if created.created {
            report.created.push(created.run.id);
            let extra = if missed > 1 {
                format!(" ({missed} fires were due; running once)")
            } else {
                String::new()
            };
            self.log(
                job,
                Some(created.run.id),
                LogLevel::Info,
                format!("job '{}' fired for {fire}{extra}", job.name),
            )
            .await;
        }
        Ok(())
    }

    async fn log(&self, job: &Job, run: Option<RunId>, level: LogLevel, msg: String) {
        let mut e = LogEntry::new(
            self.clock.now(),
            level,
            LogKind::Scheduler,
            "scheduler",
            msg,
        );
        e.job_id = Some(job.id);
        e.run_id = run;
        if let Err(err) = self.store.append_logs(&[e]).await {
            tracing::warn!(error = %err, "could not write a scheduler log entry");
        }
    }

    /// Ticks until `shutdown`, then gives up the lease.
    pub async fn run(&self, shutdown: CancellationToken) -> Result<()> {
        loop {
            if let Err(e) = self.tick().await {
                tracing::warn!(error = %e, "scheduler tick failed");
            }
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(self.config.tick) => {}
            }
        }
        let _ = self
            .store
            .release_lease(SCHEDULER_LEASE, &self.config.holder)
            .await;
        Ok(())
    }
}
