//! Read models the web page needs beyond the resource routes: the dashboard's figures, the recent
//! results of a page of devices (sparklines, last failure reason, credential that worked) and a
//! preview of a schedule's next fire times. Every figure is computed here on the server, so the
//! page never pulls whole tables to count them.

use super::ApiState;
use super::error::{ApiError, ApiJson, ApiQuery, ApiResult};
use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Duration, Utc};
use netraven_core::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap, HashSet};

/// Pages of 100 runs the dashboard reads at most (10,000 runs in its window).
const MAX_RUN_PAGES: u32 = 100;
/// Pages of 100 results the dashboard reads at most (20,000 results in its window).
const MAX_RESULT_PAGES: u32 = 200;

/// Query of `GET /api/dashboard`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DashboardQuery {
    /// Days of run history for the charts (1 to 90, default 7).
    pub days: Option<u32>,
    /// A device without a successful result for this many hours is stale (1 to 720, default 24).
    pub stale_hours: Option<u32>,
}

/// One day of the runs chart.
#[derive(Debug, Default, Serialize)]
pub struct DayRuns {
    /// UTC day, `YYYY-MM-DD`.
    pub day: String,
    /// Runs queued that day by status.
    pub counts: BTreeMap<String, u32>,
    /// Median duration (started → finished) of that day's finished runs, in ms.
    pub p50_ms: Option<u64>,
    /// 95th percentile duration, in ms.
    pub p95_ms: Option<u64>,
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[u64], p: f64) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

fn run_ms(r: &Run) -> Option<u64> {
    let (s, f) = (r.started_at?, r.finished_at?);
    u64::try_from((f - s).num_milliseconds()).ok()
}

/// `GET /api/dashboard?days=&stale_hours=`: device health counts, the failing-now list, the
/// latest runs and, per UTC day, runs by status with p50/p95 run durations.
pub async fn dashboard(
    State(st): State<ApiState>,
    ApiQuery(q): ApiQuery<DashboardQuery>,
) -> ApiResult<Json<Value>> {
    let days = q.days.unwrap_or(7);
    let stale_hours = q.stale_hours.unwrap_or(24);
    if !(1..=90).contains(&days) {
        return Err(ApiError::invalid("days must be 1 to 90"));
    }
    if !(1..=720).contains(&stale_hours) {
        return Err(ApiError::invalid("stale_hours must be 1 to 720"));
    }
    let now = Utc::now();
    let first_day = (now - Duration::days(i64::from(days) - 1)).date_naive();
    let since = first_day
        .and_hms_opt(0, 0, 0)
        .map(|t| t.and_utc())
        .unwrap_or(now);

    // Runs of the window, newest first.
    let mut by_day: BTreeMap<String, (BTreeMap<String, u32>, Vec<u64>)> = BTreeMap::new();
    for i in 0..i64::from(days) {
        let d = first_day + Duration::days(i);
        by_day.insert(d.format("%Y-%m-%d").to_string(), Default::default());
    }
    let mut all_ms = Vec::new();
    let mut latest_runs = Vec::new();
    let mut truncated = false;
    let filter = RunFilter {
        since: Some(since),
        ..RunFilter::default()
    };
    let mut page = 1;
    loop {
        let p = st.store.list_runs(&filter, Page::new(page, 100)).await?;
        for r in &p.items {
            if latest_runs.len() < 10 {
                latest_runs.push(r.clone());
            }
            let day = r.queued_at.date_naive().format("%Y-%m-%d").to_string();
            let slot = by_day.entry(day).or_default();
            *slot.0.entry(r.status.as_str().to_string()).or_default() += 1;
            if let Some(ms) = run_ms(r) {
                slot.1.push(ms);
                all_ms.push(ms);
            }
        }
        if page >= p.pages {
            break;
        }
        if page >= MAX_RUN_PAGES {
            truncated = true;
            break;
        }
        page += 1;
    }
    if latest_runs.is_empty() {
        // No run in the window: still show the most recent ones.
        latest_runs = st
            .store
            .list_runs(&RunFilter::default(), Page::new(1, 10))
            .await?
            .items;
    }
    let runs_by_day: Vec<DayRuns> = by_day
        .into_iter()
        .map(|(day, (counts, mut ms))| {
            ms.sort_unstable();
            DayRuns {
                day,
                counts,
                p50_ms: percentile(&ms, 50.0),
                p95_ms: percentile(&ms, 95.0),
            }
        })
        .collect();
    all_ms.sort_unstable();

    // Device health from the results of the stale window (at least 24 h), newest first: the
    // first result seen per device is its latest.
    let window_h = i64::from(stale_hours.max(24));
    let stale_since = now - Duration::hours(i64::from(stale_hours));
    let day_ago = now - Duration::hours(24);
    let rf = ResultFilter {
        since: Some(now - Duration::hours(window_h)),
        ..ResultFilter::default()
    };
    let mut latest: HashMap<DeviceId, DeviceResult> = HashMap::new();
    let mut fresh_ok: HashSet<DeviceId> = HashSet::new();
    let mut changed: HashSet<DeviceId> = HashSet::new();
    let mut page = 1;
    loop {
        let p = st.store.list_results(&rf, Page::new(page, 100)).await?;
        for r in p.items {
            if r.status == DeviceStatus::Success && r.finished_at >= stale_since {
                fresh_ok.insert(r.device_id);
            }
            if r.changed == Some(true) && r.finished_at >= day_ago {
                changed.insert(r.device_id);
            }
            latest.entry(r.device_id).or_insert(r);
        }
        if page >= p.pages {
            break;
        }
        if page >= MAX_RESULT_PAGES {
            truncated = true;
            break;
        }
        page += 1;
    }
    let total = st
        .store
        .list_devices(&DeviceFilter::default(), Page::new(1, 1))
        .await?
        .total;
    let ok = latest
        .values()
        .filter(|r| r.status == DeviceStatus::Success)
        .count();
    let mut failing: Vec<&DeviceResult> = latest
        .values()
        .filter(|r| r.status == DeviceStatus::Failed)
        .collect();
    failing.sort_by_key(|r| std::cmp::Reverse(r.finished_at));
    let failing_count = failing.len();
    failing.truncate(20);
    let ids: Vec<DeviceId> = failing.iter().map(|r| r.device_id).collect();
    let names: HashMap<DeviceId, String> = st
        .store
        .devices_by_ids(&ids)
        .await?
        .into_iter()
        .map(|d| (d.id, d.hostname.clone()))
        .collect();
    let failing: Vec<Value> = failing
        .into_iter()
        .map(|r| {
            json!({
                "device_id": r.device_id,
                "hostname": names.get(&r.device_id),
                "run_id": r.run_id,
                "error_kind": r.error_kind.map(|k| k.as_str()),
                "message": r.message,
                "finished_at": r.finished_at,
            })
        })
        .collect();
    Ok(Json(json!({
        "generated_at": now,
        "days": days,
        "stale_hours": stale_hours,
        "truncated": truncated,
        "devices": {
            "total": total,
            "ok": ok,
            "failing": failing_count,
            "stale": (total as usize).saturating_sub(fresh_ok.len()),
            "changed_24h": changed.len(),
        },
        "failing": failing,
        "latest_runs": latest_runs,
        "runs_by_day": runs_by_day,
        "duration": {
            "runs": all_ms.len(),
            "p50_ms": percentile(&all_ms, 50.0),
            "p95_ms": percentile(&all_ms, 95.0),
        },
    })))
}

/// Query of `GET /api/devices/recent`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecentQuery {
    /// Device ids, comma-separated (at most 100; none gives an empty answer).
    #[serde(default)]
    pub ids: String,
    /// Results per device (1 to 20, default 20).
    pub n: Option<u32>,
}

/// `GET /api/devices/recent?ids=1,2,3`: per device, its last `n` results (newest first, without
/// command output), its last success and last failure, and the name of the credential that
/// last logged in (never a secret).
pub async fn recent_results(
    State(st): State<ApiState>,
    ApiQuery(q): ApiQuery<RecentQuery>,
) -> ApiResult<Json<Value>> {
    let n = q.n.unwrap_or(20);
    if !(1..=20).contains(&n) {
        return Err(ApiError::invalid("n must be 1 to 20"));
    }
    let mut ids = Vec::new();
    for p in q.ids.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let id: DeviceId = p
            .parse()
            .map_err(|_| ApiError::invalid(format!("ids: '{p}' is not a device id")))?;
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    if ids.len() > 100 {
        return Err(ApiError::invalid("at most 100 ids"));
    }
    let mut cred_names: HashMap<CredentialId, Option<String>> = HashMap::new();
    // The newest success of every device in one read (it may be older than the `n` recent).
    let mut latest = st.store.latest_results(&ids).await?;
    let mut out = serde_json::Map::new();
    for id in ids {
        let f = ResultFilter {
            device_id: Some(id),
            ..ResultFilter::default()
        };
        let recent = st.store.list_results(&f, Page::new(1, n)).await?.items;
        let last_success = latest.remove(&id).and_then(|l| l.latest_success);
        let last_failure = recent
            .iter()
            .find(|r| r.status == DeviceStatus::Failed)
            .cloned();
        let credential = match last_success.as_ref().and_then(|r| r.credential_id) {
            None => None,
            Some(cid) => {
                if let Some(name) = cred_names.get(&cid) {
                    name.clone()
                } else {
                    let name = match st.store.get_credential(cid).await {
                        Ok(c) => Some(c.name),
                        Err(e) if e.kind() == ErrorKind::NotFound => None,
                        Err(e) => return Err(e.into()),
                    };
                    cred_names.insert(cid, name.clone());
                    name
                }
            }
        };
        let brief = |r: &DeviceResult| {
            json!({
                "run_id": r.run_id,
                "status": r.status,
                "changed": r.changed,
                "error_kind": r.error_kind.map(|k| k.as_str()),
                "message": r.message,
                "duration_ms": r.duration_ms,
                "snapshot_id": r.snapshot_id,
                "finished_at": r.finished_at,
            })
        };
        out.insert(
            id.to_string(),
            json!({
                "recent": recent.iter().map(brief).collect::<Vec<_>>(),
                "last_success": last_success.as_ref().map(brief),
                "last_failure": last_failure.as_ref().map(brief),
                "credential": credential,
            }),
        );
    }
    Ok(Json(Value::Object(out)))
}

/// Body of `POST /api/jobs/preview`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PreviewInput {
    /// The schedule to preview.
    pub schedule: Schedule,
    /// Count from this time (default now).
    #[serde(default)]
    pub after: Option<DateTime<Utc>>,
    /// How many fire times (1 to 20, default 5).
    #[serde(default)]
    pub count: Option<u32>,
}

/// `POST /api/jobs/preview`: the next fire times of a schedule. An invalid schedule is not an
/// error of this request: it answers 200 with `valid: false` and the reason, so a form can check
/// the schedule while it is being typed. Nothing is stored.
pub async fn preview_schedule(ApiJson(b): ApiJson<PreviewInput>) -> ApiResult<Json<Value>> {
    let count = b.count.unwrap_or(5);
    if !(1..=20).contains(&count) {
        return Err(ApiError::invalid("count must be 1 to 20"));
    }
    if let Err(e) = netraven_core::scheduler::validate_schedule(&b.schedule) {
        return Ok(Json(
            json!({ "valid": false, "detail": e.message(), "fires": [] }),
        ));
    }
    let mut at = b.after.unwrap_or_else(Utc::now);
    let mut fires = Vec::new();
    while fires.len() < count as usize {
        match netraven_core::scheduler::next_fire(&b.schedule, at) {
            Ok(Some(t)) if t > at => {
                fires.push(t);
                at = t;
            }
            Ok(_) => break,
            Err(e) => {
                return Ok(Json(
                    json!({ "valid": false, "detail": e.message(), "fires": [] }),
                ));
            }
        }
    }
    Ok(Json(json!({ "valid": true, "fires": fires })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_is_nearest_rank() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&v, 50.0), Some(50));
        assert_eq!(percentile(&v, 95.0), Some(95));
        assert_eq!(percentile(&[7], 95.0), Some(7));
        assert_eq!(percentile(&[], 50.0), None);
    }
}
