//! Health, status, Prometheus metrics and the OpenAPI document.

use super::auth::Access;
use super::error::ApiResult;
use super::{ApiState, ReqBody, RespBody, RouteSpec, routes};
use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use netraven_core::prelude::*;
use serde_json::{Value, json};
use std::fmt::Write;
use std::sync::atomic::Ordering;
use utoipa::OpenApi;

/// `GET /api/health` (no auth, liveness): the process answers, with the state of each of its
/// roles (api, worker, scheduler, maintenance: `running`, `stopped` or `failed` with the
/// error's kind, never its text). 503 when a role failed (the process is stopping). Touches no
/// backend.
pub async fn health(State(st): State<ApiState>) -> Response {
    let roles = st.engine.roles();
    let ok = roles.none_failed();
    let code = match ok {
        true => axum::http::StatusCode::OK,
        false => axum::http::StatusCode::SERVICE_UNAVAILABLE,
    };
    let body = json!({
        "status": if ok { "ok" } else { "failed" },
        "version": env!("CARGO_PKG_VERSION"),
        "commit": crate::GIT_COMMIT,
        "roles": roles.all(),
    });
    (code, Json(body)).into_response()
}

/// `GET /api/ready` (no auth, readiness): 200 when the store answers with every migration
/// applied and the queue answers, else 503. Each check says only ok or why not.
pub async fn ready(State(st): State<ApiState>) -> Response {
    let store = match st.store.schema_status().await {
        Ok(s) if s.is_current() => json!({ "ok": true }),
        Ok(s) => json!({ "ok": false, "error": "migrations_pending", "pending": s.pending }),
        Err(e) => {
            tracing::warn!(error = %e, "readiness: store unreachable");
            json!({ "ok": false, "error": e.kind().as_str() })
        }
    };
    let queue = match st.engine.queue().stats().await {
        Ok(_) => json!({ "ok": true }),
        Err(e) => {
            tracing::warn!(error = %e, "readiness: queue unreachable");
            json!({ "ok": false, "error": e.kind().as_str() })
        }
    };
    let ready = store["ok"] == json!(true) && queue["ok"] == json!(true);
    let code = match ready {
        true => axum::http::StatusCode::OK,
        false => axum::http::StatusCode::SERVICE_UNAVAILABLE,
    };
    let status = if ready { "ready" } else { "not_ready" };
    let body = json!({ "status": status, "store": store, "queue": queue });
    (code, Json(body)).into_response()
}

/// Scheduled jobs' next fire times the status shows at most.
const NEXT_FIRES: usize = 10;
/// Uncommitted snapshots the status counts at most.
const PENDING_CAP: u32 = 100;

/// The scheduler part of the status: this process's scheduler (leader or not, last tick) and
/// the next fires of every enabled scheduled job, soonest first.
async fn scheduler_status(st: &ApiState) -> Value {
    let s = st.engine.scheduler_status().get();
    let now = Utc::now();
    let next = match st.store.scheduled_jobs().await {
        Ok(jobs) => {
            let mut fires: Vec<Value> = jobs
                .iter()
                .filter_map(|j| {
                    let at = netraven_core::scheduler::next_fire(&j.schedule, now).ok()??;
                    Some(json!({ "job_id": j.id, "job": j.name, "at": at }))
                })
                .collect();
            fires.sort_by(|a, b| a["at"].as_str().cmp(&b["at"].as_str()));
            fires.truncate(NEXT_FIRES);
            json!(fires)
        }
        Err(e) => {
            tracing::warn!(error = %e, "status: scheduled jobs unreadable");
            json!(null)
        }
    };
    json!({
        "running_here": s.holder.is_some(),
        "holder": s.holder,
        "leader": s.leader,
        "last_tick": s.last_tick,
        "last_error": s.last_error,
        "runs_created": s.runs_created,
        "next_fires": next,
    })
}

/// The zones part of the status: every zone with tasks or live workers (the default zone
/// first, `zone: null`), its live workers (heartbeat within the live window), queued device
/// tasks and state (`ok`, or `no_worker`: its tasks wait, and a named zone's fail with
/// `no_worker` after `worker.zone_timeout_secs`).
async fn zones_status(st: &ApiState) -> Value {
    let now = st.engine.clock().now();
    match netraven_core::zones::zone_status(
        st.engine.queue().as_ref(),
        now,
        netraven_core::zones::DEFAULT_LIVE_WINDOW,
    )
    .await
    {
        Ok(zones) => json!(zones),
        Err(e) => {
            tracing::warn!(error = %e, "status: zones unreadable");
            json!(null)
        }
    }
}

/// `GET /api/system/status`: the store, the queue (ready, leased, delayed, dead), the zones
/// (live workers, queued tasks, state), the scheduler (leader, last tick, next fires), the git
/// writer (last commit step, pending snapshots), this process's worker (its counters and
/// in-flight devices) and the maintenance steps.
pub async fn status(State(st): State<ApiState>) -> ApiResult<Json<Value>> {
    let schema = st.store.schema_status().await;
    let store = match st.store.active_runs().await {
        Ok(runs) => json!({ "ok": true, "active_runs": runs.len() }),
        Err(e) => {
            tracing::warn!(error = %e, "status: store unreachable");
            json!({ "ok": false, "error": e.kind().as_str() })
        }
    };
    let queue = match st.engine.queue().stats().await {
        Ok(s) => json!({ "ok": true, "stats": s, "ready": s.ready, "leased": s.leased,
                         "delayed": s.delayed, "dead": s.dead }),
        Err(e) => {
            tracing::warn!(error = %e, "status: queue unreachable");
            json!({ "ok": false, "error": e.kind().as_str() })
        }
    };
    let steps = st.engine.health().components();
    let git = match st.store.uncommitted_snapshots(PENDING_CAP).await {
        Ok(p) => json!({
            "pending_snapshots": p.len(),
            "pending_at_least": p.len() as u32 >= PENDING_CAP,
            "commit_step": steps.iter().find(|c| c.component.contains("git") || c.component.contains("sink")),
        }),
        Err(e) => {
            tracing::warn!(error = %e, "status: snapshots unreadable");
            json!({ "error": e.kind().as_str() })
        }
    };
    let m = st.engine.metrics();
    let healthy = store["ok"] == json!(true) && queue["ok"] == json!(true);
    Ok(Json(json!({
        "status": if healthy { "ok" } else { "degraded" },
        "version": env!("CARGO_PKG_VERSION"),
        "api_version": "v1",
        "commit": crate::GIT_COMMIT,
        "schema": schema.ok(),
        "uptime_seconds": st.started.elapsed().as_secs(),
        "store": store,
        "queue": queue,
        "zones": zones_status(&st).await,
        "scheduler": scheduler_status(&st).await,
        "git": git,
        "maintenance": steps,
        "workers": {
            "worker_id": st.engine.config().worker_id,
            "zone": st.engine.config().zone,
            "concurrency": st.engine.config().concurrency,
            "in_flight": m.active_devices.load(Ordering::Relaxed),
            "active_devices": m.active_devices.load(Ordering::Relaxed),
            "devices_ok": m.devices_ok.load(Ordering::Relaxed),
            "devices_failed": m.devices_failed.load(Ordering::Relaxed),
            "tasks_claimed": m.tasks_claimed.load(Ordering::Relaxed),
        },
    })))
}

/// `GET /metrics` (no auth: counters only): Prometheus text format.
pub async fn metrics(State(st): State<ApiState>) -> Response {
    let m = st.engine.metrics();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# HELP netraven_runs_finished_total Runs that reached a final status in this process.\n# TYPE netraven_runs_finished_total counter"
    );
    for status in RunStatus::ALL.into_iter().filter(|s| s.is_final()) {
        let n = m
            .runs_finished()
            .iter()
            .find(|(s, _)| *s == status)
            .map(|(_, n)| *n)
            .unwrap_or(0);
        let _ = writeln!(
            out,
            "netraven_runs_finished_total{{status=\"{}\"}} {n}",
            status.as_str()
        );
    }
    let _ = writeln!(
        out,
        "# HELP netraven_devices_total Devices finished by this process, by outcome.\n# TYPE netraven_devices_total counter"
    );
    let _ = writeln!(
        out,
        "netraven_devices_total{{outcome=\"success\"}} {}",
        m.devices_ok.load(Ordering::Relaxed)
    );
    let _ = writeln!(
        out,
        "netraven_devices_total{{outcome=\"failed\"}} {}",
        m.devices_failed.load(Ordering::Relaxed)
    );
    let (buckets, count, sum) = m.durations();
    let _ = writeln!(
        out,
        "# HELP netraven_device_duration_seconds Time spent per device.\n# TYPE netraven_device_duration_seconds histogram"
    );
    for (le, c) in buckets {
        let _ = writeln!(
            out,
            "netraven_device_duration_seconds_bucket{{le=\"{le}\"}} {c}"
        );
    }
    let _ = writeln!(
        out,
        "netraven_device_duration_seconds_bucket{{le=\"+Inf\"}} {count}\nnetraven_device_duration_seconds_sum {sum}\nnetraven_device_duration_seconds_count {count}"
    );
    let _ = writeln!(
        out,
        "# HELP netraven_active_sessions Device sessions in progress in this process.\n# TYPE netraven_active_sessions gauge\nnetraven_active_sessions {}",
        m.active_devices.load(Ordering::Relaxed)
    );
    let _ = writeln!(
        out,
        "# HELP netraven_tasks_claimed_total Queue tasks claimed by this process.\n# TYPE netraven_tasks_claimed_total counter\nnetraven_tasks_claimed_total {}",
        m.tasks_claimed.load(Ordering::Relaxed)
    );
    let _ = writeln!(
        out,
        "# HELP netraven_queue_tasks Queue tasks by state.\n# TYPE netraven_queue_tasks gauge"
    );
    match st.engine.queue().stats().await {
        Ok(q) => {
            for (state, n) in [
                ("ready", q.ready),
                ("delayed", q.delayed),
                ("leased", q.leased),
                ("dead", q.dead),
            ] {
                let _ = writeln!(out, "netraven_queue_tasks{{state=\"{state}\"}} {n}");
            }
            let _ = writeln!(
                out,
                "# HELP netraven_queue_up Whether the queue answered.\n# TYPE netraven_queue_up gauge\nnetraven_queue_up 1"
            );
        }
        Err(e) => {
            tracing::warn!(error = %e, "metrics: queue unreachable");
            let _ = writeln!(
                out,
                "# HELP netraven_queue_up Whether the queue answered.\n# TYPE netraven_queue_up gauge\nnetraven_queue_up 0"
            );
        }
    }
    let _ = writeln!(
        out,
        "# HELP netraven_uptime_seconds Seconds since the API started.\n# TYPE netraven_uptime_seconds gauge\nnetraven_uptime_seconds {}",
        st.started.elapsed().as_secs()
    );
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        out,
    )
        .into_response()
}

/// The component schemas derived from the Rust types (utoipa), referenced by name from the
/// route table.
#[derive(utoipa::OpenApi)]
#[openapi(components(schemas(
    Device,
    DeviceSpec,
    HostKeyPolicy,
    Transport,
    Tag,
    CredentialInfo,
    JumpHostInfo,
    Job,
    JobKind,
    Targets,
    Schedule,
    OverlapPolicy,
    MissedPolicy,
    Run,
    RunStatus,
    RunCounts,
    Trigger,
    DeviceResult,
    DeviceStatus,
    ErrorKind,
    LogEntry,
    LogLevel,
    LogKind,
    SnapshotMeta,
    Snapshot,
    User,
    Role,
    ApiToken,
    netraven_core::import::ImportReport,
    netraven_core::import::CredentialReport,
    super::tags::TagInput,
    super::users::UserCreate,
    super::users::UserReplace,
    super::users::TokenCreate,
    super::credentials::CredentialCreate,
    super::credentials::CredentialReplace,
    super::jump_hosts::JumpHostCreate,
    super::jump_hosts::JumpHostReplace,
    super::jobs::JobInput,
    super::views::PreviewInput,
    super::configs::DiffResponse,
    super::auth::LoginForm,
    super::devices::DeviceView,
    super::devices::DeviceState,
    super::devices::BulkInput,
    super::devices::BulkReport,
    super::devices::BulkAction,
    super::configs::SearchHit,
    super::configs::LineMatch,
)))]
struct DerivedSchemas;

/// Schemas of the free-form answers (status pages, read models) and small envelopes.
fn handwritten_schemas() -> Value {
    let obj =
        |desc: &str| json!({ "type": "object", "description": desc, "additionalProperties": true });
    json!({
        "Error": { "type": "object", "required": ["error", "detail"], "properties": {
            "error": { "type": "string", "description": "stable snake_case code" },
            "detail": { "type": "string", "description": "what went wrong, naming the field" } } },
        "Health": { "type": "object", "properties": {
            "status": { "type": "string", "description": "ok, or failed when a role failed (503)" }, "version": { "type": "string" }, "commit": { "type": "string" },
            "roles": { "type": "array", "description": "each role of the process: {role, state (running/stopped/failed), error_kind, since}", "items": { "type": "object" } } } },
        "Ready": obj("status (ready/not_ready) with a store and a queue check, each {ok, error?}"),
        "OpenApiDocument": obj("an OpenAPI 3 document"),
        "SystemStatus": obj("status, version, api_version, uptime_seconds, store, queue {ready, leased, delayed, dead}, scheduler {running_here, holder, leader, last_tick, last_error, next_fires}, git {pending_snapshots, commit_step}, workers, maintenance"),
        "TokenResponse": { "type": "object", "required": ["access_token", "token_type", "expires_in"], "properties": {
            "access_token": { "type": "string" }, "token_type": { "type": "string", "enum": ["bearer"] },
            "expires_in": { "type": "integer", "description": "seconds" } } },
        "Me": { "type": "object", "properties": { "user": { "$ref": "#/components/schemas/User" },
            "auth": { "type": "string", "description": "jwt or api_token" } } },
        "Dashboard": obj("device health counts, failing devices, latest runs and runs per day with p50/p95 durations"),
        "RecentResults": obj("per device id: its last results, last success, last failure and the credential that worked"),
        "SchedulePreview": { "type": "object", "properties": { "valid": { "type": "boolean" },
            "detail": { "type": "string" }, "fires": { "type": "array", "items": { "type": "string", "format": "date-time" } } } },
        "MergePatch": obj("a JSON merge patch (RFC 7396) of the resource's writable fields: omitted fields stay, null resets a field to its default; create_missing_tags: true allows naming new tags"),
        "CreateMissingTags": { "type": "object", "properties": { "create_missing_tags": { "type": "boolean", "default": false,
            "description": "create the tags the body names that do not exist; when false, unknown tags are 422 listing them (default false for devices and jobs, true for credentials)" } } },
        "DeviceInput": { "allOf": [ { "$ref": "#/components/schemas/DeviceSpec" }, { "$ref": "#/components/schemas/CreateMissingTags" } ] },
        "TokenCreated": { "type": "object", "properties": { "id": { "type": "integer" }, "name": { "type": "string" },
            "user_id": { "type": "integer" }, "role": { "$ref": "#/components/schemas/Role" },
            "token": { "type": "string", "description": "shown only in this response" },
            "created_at": { "type": "string", "format": "date-time" }, "expires_at": { "type": "string", "format": "date-time", "nullable": true } } },
        "DeviceBackupAccepted": { "type": "object", "properties": { "run_id": { "type": "integer" },
            "job_id": { "type": "integer", "description": "the device's device-backup-<id> system job" },
            "created": { "type": "boolean", "description": "false when a run of the device's job was still queued" },
            "status": { "$ref": "#/components/schemas/RunStatus" } } },
        "RunAccepted": { "type": "object", "properties": { "run_id": { "type": "integer" },
            "created": { "type": "boolean", "description": "false when an Idempotency-Key returned an earlier run" },
            "status": { "$ref": "#/components/schemas/RunStatus" } } },
    })
}

fn schema_ref(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

/// A request body; bodies that name tags also take `create_missing_tags`.
fn request_body(r: &RouteSpec, b: ReqBody) -> Value {
    let with_flag = |name: &str| {
        let tagged = ["/api/jobs", "/api/credentials"]
            .iter()
            .any(|p| r.path.starts_with(p));
        if tagged && name != "MergePatch" {
            json!({ "allOf": [schema_ref(name), schema_ref("CreateMissingTags")] })
        } else {
            schema_ref(name)
        }
    };
    let content = match b {
        ReqBody::Json(name) => json!({ "application/json": { "schema": with_flag(name) } }),
        ReqBody::JsonOrForm(name) => json!({
            "application/json": { "schema": schema_ref(name) },
            "application/x-www-form-urlencoded": { "schema": schema_ref(name) },
        }),
        ReqBody::CsvOrJsonArray(name) => json!({
            "text/csv": { "schema": { "type": "string", "description": "a header line, then one device per line" } },
            "application/json": { "schema": { "type": "array", "items": schema_ref(name) } },
        }),
    };
    json!({ "required": true, "content": content })
}

fn response_body(b: RespBody) -> Value {
    match b {
        RespBody::Json(name) => json!({ "description": "success",
            "content": { "application/json": { "schema": schema_ref(name) } } }),
        RespBody::Page(name) => json!({ "description": "one page of the list",
            "content": { "application/json": { "schema": {
                "type": "object", "required": ["items", "total", "page", "size", "pages"],
                "properties": {
                    "items": { "type": "array", "items": schema_ref(name) },
                    "total": { "type": "integer" }, "page": { "type": "integer" },
                    "size": { "type": "integer" }, "pages": { "type": "integer" } } } } } }),
        RespBody::Empty => json!({ "description": "done, no content" }),
        RespBody::Text(media) => json!({ "description": "success",
            "content": { media: { "schema": { "type": "string" } } } }),
    }
}

/// The OpenAPI 3 document: paths from the route table, schemas derived from the types.
pub fn openapi_document() -> Value {
    let mut paths = serde_json::Map::new();
    for r in routes() {
        let mut params: Vec<Value> = r
            .path
            .split('/')
            .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .map(|name| {
                json!({ "name": name, "in": "path", "required": true,
                        "schema": { "type": "integer", "format": "int64" } })
            })
            .collect();
        if r.is_list() {
            for (name, desc) in [
                ("page", "1-based page (default 1)"),
                ("size", "items per page, 1 to 100 (default 50)"),
                ("sort", "a field, '-' in front for descending"),
            ] {
                let ty = if name == "sort" { "string" } else { "integer" };
                params.push(json!({ "name": name, "in": "query", "required": false,
                    "description": desc, "schema": { "type": ty } }));
            }
        }
        let mut responses = serde_json::Map::new();
        responses.insert(r.success.to_string(), response_body(r.response));
        responses.insert(
            "4XX".into(),
            json!({ "description": "error", "content": { "application/json": {
                "schema": schema_ref("Error") } } }),
        );
        let mut op = json!({
            "summary": r.summary,
            "operationId": format!("{} {}", r.method.to_ascii_lowercase(), r.path),
            "parameters": params,
            "responses": responses,
        });
        if let Some(b) = r.request {
            op["requestBody"] = request_body(&r, b);
        }
        match r.access {
            Access::Public => op["security"] = json!([]),
            Access::Role(role) => op["x-min-role"] = json!(role.as_str()),
        }
        let entry = paths.entry(r.path.to_string()).or_insert_with(|| json!({}));
        entry[r.method.to_ascii_lowercase()] = op;
    }
    let derived = serde_json::to_value(DerivedSchemas::openapi().components)
        .ok()
        .and_then(|c| c.get("schemas").cloned())
        .unwrap_or_else(|| json!({}));
    let mut schemas = handwritten_schemas();
    if let (Some(all), Value::Object(d)) = (schemas.as_object_mut(), derived) {
        all.extend(d);
    }
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "NetRaven API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Network device configuration backup. /api is version 1 of the API: breaking changes get /api/v2. Roles: viewer (read), operator (tags, devices, jobs, runs), admin (everything). x-min-role names the least role a route needs. PUT replaces a resource, PATCH merges (RFC 7396). Lists take page, size (≤ 100), sort and repeatable filters; unknown parameters are 422. See docs/api.md."
        },
        "servers": [{ "url": "/" }],
        "security": [{ "bearer": [] }],
        "components": {
            "securitySchemes": {
                "bearer": { "type": "http", "scheme": "bearer",
                            "description": "A JWT from POST /api/auth/token or an API token from POST /api/tokens" }
            },
            "schemas": schemas,
        },
        "paths": paths,
    })
}

/// `GET /api/openapi.json`.
pub async fn openapi() -> Json<Value> {
    Json(openapi_document())
}
