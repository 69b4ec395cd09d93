//! Handlers for running jobs, runs, per-device results and logs (including the live stream).

use super::ApiState;
use super::common::page_of;
use super::error::{ApiError, ApiPath, ApiQuery, ApiResult};
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use netraven_core::prelude::*;
use serde::Deserialize;
use serde_json::json;
use std::collections::VecDeque;
use std::convert::Infallible;
use std::time::Duration;

/// How often the log stream polls the store.
pub const STREAM_POLL: Duration = Duration::from_millis(500);

/// `POST /api/jobs/{id}/run` → 202 `{run_id, created, status}`.
pub async fn run_job(
    State(st): State<ApiState>,
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

fn parse_statuses(s: Option<&str>) -> ApiResult<Vec<RunStatus>> {
    let Some(s) = s.filter(|s| !s.is_empty()) else {
        return Ok(Vec::new());
    };
    s.split(',')
        .map(|p| {
            RunStatus::parse(&p.trim().to_ascii_uppercase())
                .ok_or_else(|| ApiError::invalid(format!("unknown run status '{p}'")))
        })
        .collect()
}

/// Query of `GET /api/runs`.
#[derive(Debug, Deserialize)]
pub struct RunQuery {
    /// Runs of this job.
    pub job_id: Option<JobId>,
    /// Status, or several separated by commas (`COMPLETED_SUCCESS,RUNNING`).
    pub status: Option<String>,
    /// Queued at or after.
    pub since: Option<DateTime<Utc>>,
    /// Queued before.
    pub until: Option<DateTime<Utc>>,
    /// Page.
    pub page: Option<u32>,
    /// Size.
    pub size: Option<u32>,
}

/// `GET /api/runs`.
pub async fn list_runs(
    State(st): State<ApiState>,
    ApiQuery(q): ApiQuery<RunQuery>,
) -> ApiResult<Json<Paged<Run>>> {
    let page = page_of(q.page, q.size)?;
    let f = RunFilter {
        job_id: q.job_id,
        statuses: parse_statuses(q.status.as_deref())?,
        since: q.since,
        until: q.until,
    };
    Ok(Json(st.store.list_runs(&f, page).await?))
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
pub struct ResultQuery {
    /// Of this device.
    pub device_id: Option<DeviceId>,
    /// Of this job.
    pub job_id: Option<JobId>,
    /// Of this run.
    pub run_id: Option<RunId>,
    /// `SUCCESS` or `FAILED`.
    pub status: Option<String>,
    /// Finished at or after.
    pub since: Option<DateTime<Utc>>,
    /// Finished before.
    pub until: Option<DateTime<Utc>>,
    /// Page.
    pub page: Option<u32>,
    /// Size.
    pub size: Option<u32>,
}

/// `GET /api/job-results`.
pub async fn list_results(
    State(st): State<ApiState>,
    ApiQuery(q): ApiQuery<ResultQuery>,
) -> ApiResult<Json<Paged<DeviceResult>>> {
    let page = page_of(q.page, q.size)?;
    let status = match q.status.as_deref().filter(|s| !s.is_empty()) {
        None => None,
        Some(s) => Some(
            DeviceStatus::parse(&s.to_ascii_uppercase())
                .ok_or_else(|| ApiError::invalid(format!("unknown result status '{s}'")))?,
        ),
    };
    let f = ResultFilter {
        run_id: q.run_id,
        job_id: q.job_id,
        device_id: q.device_id,
        status,
        since: q.since,
        until: q.until,
    };
    Ok(Json(st.store.list_results(&f, page).await?))
}

/// Query of `GET /api/logs`.
#[derive(Debug, Deserialize)]
pub struct LogQuery {
    /// Of this run.
    pub run_id: Option<RunId>,
    /// Of this device.
    pub device_id: Option<DeviceId>,
    /// Of this job.
    pub job_id: Option<JobId>,
    /// Minimum level: debug, info, warning, error.
    pub level: Option<String>,
    /// Kind: job, connection, session, snapshot, scheduler, system.
    pub kind: Option<String>,
    /// Source (`worker:<id>`, `scheduler`, `api`).
    pub source: Option<String>,
    /// At or after.
    pub since: Option<DateTime<Utc>>,
    /// Before.
    pub until: Option<DateTime<Utc>>,
    /// Message contains (literal).
    pub search: Option<String>,
    /// `asc` or `desc` (default).
    pub order: Option<Order>,
    /// Page.
    pub page: Option<u32>,
    /// Size.
    pub size: Option<u32>,
}

fn log_filter(q: LogQuery) -> ApiResult<LogFilter> {
    let min_level = match q.level.as_deref().filter(|s| !s.is_empty()) {
        None => None,
        Some(l) => Some(
            LogLevel::parse(l).ok_or_else(|| ApiError::invalid(format!("unknown level '{l}'")))?,
        ),
    };
    let kind = match q.kind.as_deref().filter(|s| !s.is_empty()) {
        None => None,
        Some(k) => Some(
            LogKind::parse(&k.to_ascii_lowercase())
                .ok_or_else(|| ApiError::invalid(format!("unknown log kind '{k}'")))?,
        ),
    };
    Ok(LogFilter {
        run_id: q.run_id,
        job_id: q.job_id,
        device_id: q.device_id,
        min_level,
        kind,
        source: q.source.filter(|s| !s.is_empty()),
        since: q.since,
        until: q.until,
        search: q.search.filter(|s| !s.is_empty()),
        after_id: None,
        order: q.order.unwrap_or_default(),
    })
}

/// `GET /api/logs`.
pub async fn list_logs(
    State(st): State<ApiState>,
    ApiQuery(q): ApiQuery<LogQuery>,
) -> ApiResult<Json<Paged<LogEntry>>> {
    let page = page_of(q.page, q.size)?;
    let f = log_filter(q)?;
    Ok(Json(st.store.list_logs(&f, page).await?))
}

/// Query of `GET /api/logs/stream`.
#[derive(Debug, Deserialize)]
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
        if s.polled_once {
            tokio::time::sleep(STREAM_POLL).await;
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

/// `GET /api/logs/stream?run_id=`: server-sent events. Each `log` event carries one log entry
/// (its `id` is the SSE id); when the run is final and every log was sent, an `end` event with
/// the run's status closes the stream.
pub async fn stream_logs(
    State(st): State<ApiState>,
    ApiQuery(q): ApiQuery<StreamQuery>,
) -> ApiResult<Response> {
    st.store.get_run(q.run_id).await?;
    let state = StreamState {
        st,
        run_id: q.run_id,
        after_id: q.after_id.unwrap_or(0),
        buf: VecDeque::new(),
        polled_once: false,
        done: false,
    };
    let stream = futures::stream::unfold(state, next_event);
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response())
}
