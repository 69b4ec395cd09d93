//! Health, status, Prometheus metrics and the OpenAPI document.

use super::auth::Access;
use super::error::ApiResult;
use super::{ApiState, routes};
use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use netraven_core::prelude::*;
use serde_json::{Value, json};
use std::fmt::Write;
use std::sync::atomic::Ordering;

/// `GET /api/health` (no auth, liveness): the process answers. Touches no backend.
pub async fn health() -> Json<Value> {
    Json(json!({
        "status": "ok",
        "version": env!("CARGO_PKG_VERSION"),
        "commit": crate::GIT_COMMIT,
    }))
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

/// `GET /api/system/status`: store reachability, queue counts and this process's worker counters.
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
        Ok(s) => json!({ "ok": true, "stats": s }),
        Err(e) => {
            tracing::warn!(error = %e, "status: queue unreachable");
            json!({ "ok": false, "error": e.kind().as_str() })
        }
    };
    let m = st.engine.metrics();
    let healthy = store["ok"] == json!(true) && queue["ok"] == json!(true);
    Ok(Json(json!({
        "status": if healthy { "ok" } else { "degraded" },
        "version": env!("CARGO_PKG_VERSION"),
        "commit": crate::GIT_COMMIT,
        "schema": schema.ok(),
        "uptime_seconds": st.started.elapsed().as_secs(),
        "store": store,
        "queue": queue,
        "workers": {
            "worker_id": st.engine.config().worker_id,
            "concurrency": st.engine.config().concurrency,
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

/// The OpenAPI 3 document, generated from the route table.
pub fn openapi_document() -> Value {
    let mut paths = serde_json::Map::new();
    for r in routes() {
        let params: Vec<Value> = r
            .path
            .split('/')
            .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .map(|name| {
                json!({ "name": name, "in": "path", "required": true,
                        "schema": { "type": "integer", "format": "int64" } })
            })
            .collect();
        let mut responses = serde_json::Map::new();
        responses.insert(r.success.to_string(), json!({ "description": "success" }));
        responses.insert(
            "4XX".into(),
            json!({ "description": "error", "content": { "application/json": {
                "schema": { "$ref": "#/components/schemas/Error" } } } }),
        );
        let mut op = json!({
            "summary": r.summary,
            "operationId": format!("{} {}", r.method.to_ascii_lowercase(), r.path),
            "parameters": params,
            "responses": responses,
        });
        match r.access {
            Access::Public => op["security"] = json!([]),
            Access::Role(role) => op["x-min-role"] = json!(role.as_str()),
        }
        let entry = paths.entry(r.path.to_string()).or_insert_with(|| json!({}));
        entry[r.method.to_ascii_lowercase()] = op;
    }
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "NetRaven API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Network device configuration backup. Roles: viewer (read), operator (tags, devices, jobs, runs), admin (everything). x-min-role names the least role a route needs."
        },
        "servers": [{ "url": "/" }],
        "security": [{ "bearer": [] }],
        "components": {
            "securitySchemes": {
                "bearer": { "type": "http", "scheme": "bearer",
                            "description": "A JWT from POST /api/auth/token or an API token from POST /api/tokens" }
            },
            "schemas": {
                "Error": { "type": "object", "required": ["error", "detail"], "properties": {
                    "error": { "type": "string" }, "detail": { "type": "string" } } }
            }
        },
        "paths": paths,
    })
}

/// `GET /api/openapi.json`.
pub async fn openapi() -> Json<Value> {
    Json(openapi_document())
}
