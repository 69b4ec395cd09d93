//! Schedule maths: what a [`Schedule`] is, whether it is valid, and when it fires. A leaf module
//! (it imports only the error type), so the model can validate jobs and the [`crate::scheduler`]
//! can compute fires without an import circle.

use crate::error::{Error, Result};
use chrono::{DateTime, TimeZone, Utc};
use chrono_tz::Tz;
use croner::Cron;
use serde::{Deserialize, Serialize};
use std::str::FromStr;

/// When a job fires.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Schedule {
    /// Only when triggered by a user.
    Manual,
    /// Every `seconds` (at least 60).
    Interval {
        /// Period in seconds.
        seconds: u64,
    },
    /// A 5-field cron line evaluated in an IANA time zone.
    Cron {
        /// `min hour day-of-month month day-of-week`.
        expression: String,
        /// IANA zone name, e.g. `Europe/Berlin`. Defaults to `UTC`.
        #[serde(default = "utc_name")]
        timezone: String,
    },
    /// Once, at the given time.
    Once {
        /// When to fire.
        at: DateTime<Utc>,
    },
}

fn utc_name() -> String {
    "UTC".to_string()
}

/// Shortest interval accepted for an interval schedule.
pub const MIN_INTERVAL_SECS: u64 = 60;

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
