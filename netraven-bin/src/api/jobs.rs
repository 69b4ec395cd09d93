//! Handlers for jobs (running one is in [`super::runs`]).

use super::ApiState;
use super::common::{created, no_content, page_of, yes};
use super::error::{ApiError, ApiJson, ApiPath, ApiQuery, ApiResult};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use chrono::Utc;
use netraven_core::prelude::*;
use serde::Deserialize;

/// Body of `POST /api/jobs` and `PUT /api/jobs/{id}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobInput {
    /// Unique name.
    pub name: String,
    /// Free text.
    #[serde(default)]
    pub description: Option<String>,
    /// `{"type":"backup"}`, `{"type":"reachability"}` or `{"type":"command","commands":[…]}`.
    pub kind: JobKind,
    /// Device ids and tags.
    #[serde(default)]
    pub targets: Targets,
    /// `{"type":"manual"}`, `{"type":"interval","seconds":3600}`,
    /// `{"type":"cron","expression":"0 2 * * *","timezone":"Europe/Berlin"}`,
    /// `{"type":"once","at":"…"}`.
    pub schedule: Schedule,
    /// Enabled (default true).
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Overlap policy (default forbid).
    #[serde(default)]
    pub overlap: OverlapPolicy,
    /// Missed-fire policy (default run_once).
    #[serde(default)]
    pub missed: MissedPolicy,
}

impl JobInput {
    fn into_job(self) -> Job {
        let now = Utc::now();
        let mut j = Job::backup(self.name, self.targets);
        j.description = self.description;
        j.kind = self.kind;
        j.schedule = self.schedule;
        j.enabled = self.enabled;
        j.overlap = self.overlap;
        j.missed = self.missed;
        j.created_at = now;
        j.updated_at = now;
        j
    }
}

/// Query of `GET /api/jobs`.
#[derive(Debug, Deserialize)]
pub struct JobQuery {
    /// Name contains.
    pub name: Option<String>,
    /// Enabled or not.
    pub enabled: Option<bool>,
    /// Page.
    pub page: Option<u32>,
    /// Size.
    pub size: Option<u32>,
}

/// `GET /api/jobs`.
pub async fn list_jobs(
    State(st): State<ApiState>,
    ApiQuery(q): ApiQuery<JobQuery>,
) -> ApiResult<Json<Paged<Job>>> {
    let page = page_of(q.page, q.size)?;
    let f = JobFilter {
        name: q.name.filter(|s| !s.is_empty()),
        enabled: q.enabled,
    };
    Ok(Json(st.store.list_jobs(&f, page).await?))
}

/// `POST /api/jobs`.
pub async fn create_job(
    State(st): State<ApiState>,
    ApiJson(b): ApiJson<JobInput>,
) -> ApiResult<Response> {
    let j = b.into_job();
    j.validate()?;
    Ok(created(st.store.create_job(&j).await?))
}

/// `GET /api/jobs/{id}`.
pub async fn get_job(
    State(st): State<ApiState>,
    ApiPath(id): ApiPath<JobId>,
) -> ApiResult<Json<Job>> {
    Ok(Json(st.store.get_job(id).await?))
}

/// `PUT /api/jobs/{id}`.
pub async fn update_job(
    State(st): State<ApiState>,
    ApiPath(id): ApiPath<JobId>,
    ApiJson(b): ApiJson<JobInput>,
) -> ApiResult<Json<Job>> {
    let old = st.store.get_job(id).await?;
    let mut j = b.into_job();
    j.id = id;
    j.system = old.system;
    j.created_at = old.created_at;
    j.validate()?;
    Ok(Json(st.store.update_job(&j).await?))
}

/// `DELETE /api/jobs/{id}`: 409 for system jobs.
pub async fn delete_job(
    State(st): State<ApiState>,
    ApiPath(id): ApiPath<JobId>,
) -> ApiResult<StatusCode> {
    let j = st.store.get_job(id).await?;
    if j.system {
        return Err(ApiError::conflict(format!(
            "job '{}' is a system job and cannot be deleted (disable it instead)",
            j.name
        )));
    }
    st.store.delete_job(id).await?;
    Ok(no_content())
}
