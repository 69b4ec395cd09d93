//! `POST /api/devices/{id}/backup`: a backup of one device, for other tools (a change
//! management system after a change, a NetBox webhook) and for operators.

use super::ApiState;
use super::error::{ApiError, ApiPath, ApiResult};
use super::runs::{RUN_WINDOW, RUNS_PER_MINUTE};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use netraven_core::prelude::*;
use serde_json::json;

/// `POST /api/devices/{id}/backup` → 202 `{run_id, job_id, created, status}`: queues a backup
/// of the device as a run of its `device-backup-<id>` job with trigger `api`; a run of it still
/// queued is returned (`created: false`). Shares the manual-run limit per user (429 with
/// `Retry-After`); 404 for an unknown device.
pub async fn backup_device(
    State(st): State<ApiState>,
    Extension(who): Extension<super::auth::Principal>,
    ApiPath(id): ApiPath<DeviceId>,
) -> ApiResult<Response> {
    // 404 before the limiter counts anything.
    let device = st.store.get_device(id).await?;
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
    let c = st
        .engine
        .backup_device(
            id,
            Trigger::Api,
            Some(format!("api: requested by user '{}'", who.user.username)),
        )
        .await?;
    tracing::info!(
        device_id = id,
        device = %device.hostname,
        run_id = c.run.id,
        created = c.created,
        "device backup requested"
    );
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({
            "run_id": c.run.id,
            "job_id": c.run.job_id,
            "created": c.created,
            "status": c.run.status,
        })),
    )
        .into_response())
}
