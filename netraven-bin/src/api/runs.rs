//! Handlers for running jobs, runs, per-device results and logs (including the live stream).

use super::ApiState;
use super::common::{any_of, page_items, page_of, parse_sort, read_all, single, values};
use super::error::{ApiError, ApiPath, ApiQuery, ApiResult};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use chrono::{DateTime, Utc};
use netraven_core::prelude::*;
use serde::Deserialize;
use serde_json::json;
use std::collections::VecDeque;
use std::convert::Infallible;
use std::time::Duration;

/// How often the log stream polls the store.
pub const STREAM_POLL: Duration = Duration::from_millis(500);

/// Manual runs a user may start per [`RUN_WINDOW`].
pub const RUNS_PER_MINUTE: u32 = 30;
/// The window of [`RUNS_PER_MINUTE`].
pub const RUN_WINDOW: std::time::Duration = std::time::Duration::from_secs(60);

/// `POST /api/jobs/{id}/run` → 202 `{run_id, created, status}`; 409 naming the active run when
/// the job forbids overlap, 429 with `Retry-After` past [`RUNS_PER_MINUTE`] per user.
pub async fn run_job(
    State(st): State<ApiState>,
    Extension(who): Extension<super::auth::Principal>,
    ApiPath(id): ApiPath<JobId>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let key = match headers.get("idempotency-key") {
        None => None,
        Some(v) => {
            let k = v
                .to_str()
                .ok()
                .map(str::trim)
                .filter(|k| !k.is_empty() && k.len() <= 200)
                .ok_or_else(|| {
                    ApiError::invalid("Idempotency-Key must be 1 to 200 visible ASCII characters")
                })?;
            Some(k.to_string())
        }
    };
    let job = st.store.get_job(id).await?;
    if job.overlap == OverlapPolicy::Forbid && st.store.job_has_active_run(id).await? {
        // A retried request with the same key gets its run back; anything else is refused.
        let active = st
            .store
            .active_runs()
            .await?
            .into_iter()
            .find(|r| r.job_id == id);
        if let Some(run) = active
            && (key.is_none() || run.idempotency_key != key)
        {
            return Err(ApiError::conflict(format!(
                "job '{}' forbids overlapping runs and run {} is still active",
                job.name, run.id
            )));
        }
    }
    // Manual triggers per user are limited (a flood of runs would starve scheduled work).
    let uid = format!("run-trigger:{}", who.user.id);
    if let Err(wait) = st
        .run_limiter
        .check(&uid, None, RUNS_PER_MINUTE, RUN_WINDOW)
    {
        let mut resp = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_requests",
            format!("at most {RUNS_PER_MINUTE} manual runs a minute per user; try again later"),
        )
        .into_response();
        resp.headers_mut().insert(
            axum::http::header::RETRY_AFTER,
            axum::http::HeaderValue::from(wait.as_secs().max(1)),
        );
        return Ok(resp);
    }
    st.run_limiter.failed_from(&uid, None);
    let c = st.engine.run_now(id, key).await?;
    tracing::info!(
        job_id = id,
        run_id = c.run.id,
        created = c.created,
        "run requested"
    );
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "run_id": c.run.id, "created": c.created, "status": c.run.status })),
    )
        .into_response())
}

fn parse_statuses(v: &[String]) -> ApiResult<Vec<RunStatus>> {
    v.iter()
        .flat_map(|s| s.split(','))
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| {
            RunStatus::parse(&p.to_ascii_uppercase())
                .ok_or_else(|| ApiError::invalid(format!("status: unknown run status '{p}'")))
        })
        .collect()
}

/// Query of `GET /api/runs`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunQuery {
    /// Runs of this job (repeat for any of several).
    #[serde(default)]
    pub job_id: Vec<JobId>,
    /// Status (repeat, or separate by commas, for any of several: `COMPLETED_SUCCESS,RUNNING`).
    #[serde(default)]
    pub status: Vec<String>,
    /// Queued at or after.
    pub since: Option<DateTime<Utc>>,
    /// Queued before.
    pub until: Option<DateTime<Utc>>,
    /// `id`, `queued_at`, `started_at`, `finished_at`, `status`, `job_id` (`-` in front:
    /// descending). Default: newest first (`-queued_at`, then `-id`).
    pub sort: Option<String>,
    /// Page.
    pub page: Option<u32>,
    /// Size (≤ 100).
    pub size: Option<u32>,
}

/// Fields `GET /api/runs` sorts by.
pub const RUN_SORT: &[&str] = &[
    "id",
    "queued_at",
    "started_at",
    "finished_at",
    "status",
    "job_id",
];

/// `GET /api/runs`.
pub async fn list_runs(
    State(st): State<ApiState>,
    ApiQuery(q): ApiQuery<RunQuery>,
) -> ApiResult<Json<Paged<Run>>> {
    let page = page_of(q.page, q.size)?;
    let sort = parse_sort(q.sort.as_deref(), RUN_SORT)?;
    let f = RunFilter {
        job_id: single(&q.job_id),
        statuses: parse_statuses(&q.status)?,
        since: q.since,
        until: q.until,
    };
    if q.job_id.len() <= 1 && sort.is_none() {
        return Ok(Json(st.store.list_runs(&f, page).await?));
    }
    let all = read_all(|p| st.store.list_runs(&f, p)).await?;
    let items = all
        .into_iter()
        .filter(|r| any_of(&r.job_id, &q.job_id))
        .collect();
    Ok(Json(page_items(items, sort.as_ref(), page)))
}

/// `GET /api/runs/{id}`.
pub async fn get_run(
    State(st): State<ApiState>,
    ApiPath(id): ApiPath<RunId>,
) -> ApiResult<Json<Run>> {
    Ok(Json(st.store.get_run(id).await?))
}

/// Query of `GET /api/job-results`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResultQuery {
    /// Of this device (repeat for any of several).
    #[serde(default)]
    pub device_id: Vec<DeviceId>,
    /// Of this job (repeat for any of several).
    #[serde(default)]
    pub job_id: Vec<JobId>,
    /// Of this run (repeat for any of several).
    #[serde(default)]
    pub run_id: Vec<RunId>,
    /// `SUCCESS` or `FAILED` (repeat for either).
    #[serde(default)]
    pub status: Vec<String>,
    /// Finished at or after.
    pub since: Option<DateTime<Utc>>,
    /// Finished before.
    pub until: Option<DateTime<Utc>>,
    /// `id`, `finished_at`, `duration_ms`, `device_id`, `status` (`-` in front: descending).
    /// Default: newest first.
    pub sort: Option<String>,
    /// Page.
    pub page: Option<u32>,
    /// Size (≤ 100).
    pub size: Option<u32>,
}

/// Fields `GET /api/job-results` sorts by.
pub const RESULT_SORT: &[&str] = &["id", "finished_at", "duration_ms", "device_id", "status"];

/// `GET /api/job-results`.
pub async fn list_results(
    State(st): State<ApiState>,
    ApiQuery(q): ApiQuery<ResultQuery>,
) -> ApiResult<Json<Paged<DeviceResult>>> {
    let page = page_of(q.page, q.size)?;
    let sort = parse_sort(q.sort.as_deref(), RESULT_SORT)?;
    let statuses = values(q.status)
        .iter()
        .map(|s| {
            DeviceStatus::parse(&s.to_ascii_uppercase())
                .ok_or_else(|| ApiError::invalid(format!("status: unknown result status '{s}'")))
        })
        .collect::<ApiResult<Vec<_>>>()?;
    let f = ResultFilter {
        run_id: single(&q.run_id),
        job_id: single(&q.job_id),
        device_id: single(&q.device_id),
        status: single(&statuses),
        since: q.since,
        until: q.until,
    };
    let repeated = [
        q.run_id.len(),
        q.job_id.len(),
        q.device_id.len(),
        statuses.len(),
    ]
    .iter()
    .any(|n| *n > 1);
    if !repeated && sort.is_none() {
        return Ok(Json(st.store.list_results(&f, page).await?));
    }
    let all = read_all(|p| st.store.list_results(&f, p)).await?;
    let items = all
        .into_iter()
        .filter(|r| any_of(&r.run_id, &q.run_id) && any_of(&r.job_id, &q.job_id))
        .filter(|r| any_of(&r.device_id, &q.device_id) && any_of(&r.status, &statuses))
        .collect();
    Ok(Json(page_items(items, sort.as_ref(), page)))
}

/// Query of `GET /api/logs`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogQuery {
    /// Of this run (repeat for any of several).
    #[serde(default)]
    pub run_id: Vec<RunId>,
    /// Of this device (repeat for any of several).
    #[serde(default)]
    pub device_id: Vec<DeviceId>,
    /// Of this job (repeat for any of several).
    #[serde(default)]
    pub job_id: Vec<JobId>,
    /// Minimum level: debug, info, warning, error.
    pub level: Option<String>,
    /// Kind: job, connection, session, snapshot, scheduler, system (repeat for any of several).
    #[serde(default)]
    pub kind: Vec<String>,
    /// Source (`worker:<id>`, `scheduler`, `api`; repeat for any of several).
    #[serde(default)]
    pub source: Vec<String>,
    /// At or after.
    pub since: Option<DateTime<Utc>>,
    /// Before.
    pub until: Option<DateTime<Utc>>,
    /// Message contains (literal).
    pub search: Option<String>,
    /// Cursor: only entries with an id greater than this, oldest first.
    pub after_id: Option<i64>,
    /// `asc` or `desc` (default; with `after_id`: asc).
    pub order: Option<Order>,
    /// `time` or `id` (`-` in front: newest first), the same as `order`.
    pub sort: Option<String>,
    /// Page.
    pub page: Option<u32>,
    /// Size (≤ 100).
    pub size: Option<u32>,
}

/// Fields `GET /api/logs` sorts by (both give the time, id order).
pub const LOG_SORT: &[&str] = &["time", "id"];

fn log_filter(q: &LogQuery, kinds: &[LogKind]) -> ApiResult<LogFilter> {
    let min_level = match q.level.as_deref().filter(|s| !s.is_empty()) {
        None => None,
        Some(l) => Some(
            LogLevel::parse(l)
                .ok_or_else(|| ApiError::invalid(format!("level: unknown level '{l}'")))?,
        ),
    };
    let sort = parse_sort(q.sort.as_deref(), LOG_SORT)?;
    let order = match (sort, q.order, q.after_id) {
        (Some(s), _, _) => {
            if s.desc {
                Order::Desc
            } else {
                Order::Asc
            }
        }
        (None, Some(o), _) => o,
        (None, None, Some(_)) => Order::Asc,
        (None, None, None) => Order::Desc,
    };
    Ok(LogFilter {
        run_id: single(&q.run_id),
        job_id: single(&q.job_id),
        device_id: single(&q.device_id),
        min_level,
        kind: single(kinds),
        source: single(&q.source),
        since: q.since,
        until: q.until,
        search: q.search.clone().filter(|s| !s.is_empty()),
        after_id: q.after_id,
        order,
    })
}

/// `GET /api/logs`.
pub async fn list_logs(
    State(st): State<ApiState>,
    ApiQuery(mut q): ApiQuery<LogQuery>,
) -> ApiResult<Json<Paged<LogEntry>>> {
    let page = page_of(q.page, q.size)?;
    q.source = values(std::mem::take(&mut q.source));
    let kinds = values(std::mem::take(&mut q.kind))
        .iter()
        .map(|k| {
            LogKind::parse(&k.to_ascii_lowercase())
                .ok_or_else(|| ApiError::invalid(format!("kind: unknown log kind '{k}'")))
        })
        .collect::<ApiResult<Vec<_>>>()?;
    let f = log_filter(&q, &kinds)?;
    let repeated = [
        q.run_id.len(),
        q.job_id.len(),
        q.device_id.len(),
        kinds.len(),
        q.source.len(),
    ]
    .iter()
    .any(|n| *n > 1);
    if !repeated {
        return Ok(Json(st.store.list_logs(&f, page).await?));
    }
    let all = read_all(|p| st.store.list_logs(&f, p)).await?;
    let items = all
        .into_iter()
        .filter(|e| q.run_id.is_empty() || e.run_id.is_some_and(|r| q.run_id.contains(&r)))
        .filter(|e| q.job_id.is_empty() || e.job_id.is_some_and(|j| q.job_id.contains(&j)))
        .filter(|e| q.device_id.is_empty() || e.device_id.is_some_and(|d| q.device_id.contains(&d)))
        .filter(|e| any_of(&e.kind, &kinds) && any_of(&e.source, &q.source))
        .collect();
    // The store already ordered the rows; paging keeps that order.
    Ok(Json(page_items(items, None, page)))
}

/// Query of `GET /api/logs/stream`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamQuery {
    /// The run to follow.
    pub run_id: RunId,
    /// Resume after this log id.
    pub after_id: Option<i64>,
}

struct StreamState {
    st: ApiState,
    run_id: RunId,
    after_id: i64,
    buf: VecDeque<LogEntry>,
    polled_once: bool,
    done: bool,
}

async fn next_event(mut s: StreamState) -> Option<(Result<Event, Infallible>, StreamState)> {
    loop {
        if let Some(e) = s.buf.pop_front() {
            s.after_id = s.after_id.max(e.id);
            let ev = Event::default()
                .event("log")
                .id(e.id.to_string())
                .json_data(&e)
                .unwrap_or_else(|_| Event::default().event("log").data("{}"));
            return Some((Ok(ev), s));
        }
        if s.done {
            return None;
        }
        if s.polled_once && s.st.shutdown.is_cancelled() {
            // The server is shutting down: end the stream now (every log read so far was
            // sent) with a final event, so the graceful shutdown does not wait for the run. A
            // client resumes on another server with Last-Event-ID.
            s.done = true;
            let ev = Event::default()
                .event("end")
                .json_data(json!({ "run_id": s.run_id, "status": null, "reason": "shutdown" }))
                .unwrap_or_else(|_| Event::default().event("end").data("{}"));
            return Some((Ok(ev), s));
        }
        if s.polled_once {
            tokio::select! {
                _ = tokio::time::sleep(STREAM_POLL) => {}
                _ = s.st.shutdown.cancelled() => {}
            }
        }
        s.polled_once = true;
        // Read the run's status before the logs: a run that is final here has written its
        // last log already, so an empty read afterwards means the stream is complete.
        let run = match s.st.store.get_run(s.run_id).await {
            Ok(r) => Some(r),
            Err(e) => {
                tracing::warn!(run_id = s.run_id, error = %e, "log stream: run unreadable");
                None
            }
        };
        let filter = LogFilter {
            run_id: Some(s.run_id),
            after_id: Some(s.after_id),
            order: Order::Asc,
            ..LogFilter::default()
        };
        match s.st.store.list_logs(&filter, Page::new(1, 500)).await {
            Ok(p) => s.buf.extend(p.items),
            Err(e) => {
                tracing::warn!(run_id = s.run_id, error = %e, "log stream: logs unreadable");
            }
        }
        let final_status = run.as_ref().filter(|r| r.status.is_final());
        if s.buf.is_empty()
            && let Some(r) = final_status
        {
            s.done = true;
            let ev = Event::default()
                .event("end")
                .json_data(json!({ "run_id": r.id, "status": r.status, "counts": r.counts }))
                .unwrap_or_else(|_| Event::default().event("end").data("{}"));
            return Some((Ok(ev), s));
        }
    }
}

/// `GET /api/logs/stream?run_id=&after_id=`: server-sent events, resumed after the
/// `Last-Event-ID` header (it wins over `after_id`) so a reconnect neither loses nor repeats lines. Each `log` event carries one log entry
/// (its `id` is the SSE id); when the run is final and every log was sent, an `end` event with
/// the run's status closes the stream. When the server shuts down (SIGTERM), the stream ends at
/// once with an `end` event whose `reason` is `shutdown` (and `status` null): reconnect with
/// `Last-Event-ID` to another server.
pub async fn stream_logs(
    State(st): State<ApiState>,
    headers: HeaderMap,
    ApiQuery(q): ApiQuery<StreamQuery>,
) -> ApiResult<Response> {
    st.store.get_run(q.run_id).await?;
    // A reconnecting EventSource sends the id of the last event it got: resume right after it.
    let last_event = match headers.get("last-event-id") {
        None => None,
        Some(v) => Some(
            v.to_str()
                .ok()
                .and_then(|s| s.trim().parse::<i64>().ok())
                .ok_or_else(|| ApiError::invalid("Last-Event-ID must be a log id"))?,
        ),
    };
    let state = StreamState {
        st,
        run_id: q.run_id,
        after_id: last_event.or(q.after_id).unwrap_or(0),
        buf: VecDeque::new(),
        polled_once: false,
        done: false,
    };
    let stream = futures::stream::unfold(state, next_event);
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response())
}
