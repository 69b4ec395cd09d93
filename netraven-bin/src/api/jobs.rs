//! Handlers for jobs (running one is in [`super::runs`]).

use super::ApiState;
use super::auth::Principal;
use super::common::{
    any_of, check_tags, conflict_on, contains_any, created, merge_patch, no_content, page_items,
    page_of, parse_sort, read_all, single, take_create_missing_tags, values, yes,
};
use super::error::{ApiError, ApiJson, ApiPath, ApiQuery, ApiResult, from_json};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::{Extension, Json};
use chrono::Utc;
use netraven_core::prelude::*;
use serde::Deserialize;
use serde_json::{Value, json};

/// Body of `POST /api/jobs` and `PUT /api/jobs/{id}` (full replacement).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
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
#[serde(deny_unknown_fields)]
pub struct JobQuery {
    /// Name contains (case-insensitive; repeat for any of several).
    #[serde(default)]
    pub name: Vec<String>,
    /// Enabled or not.
    pub enabled: Option<bool>,
    /// Kind: backup, reachability, command (repeat for any of several).
    #[serde(default)]
    pub kind: Vec<String>,
    /// Targets the tag (repeat for any of several).
    #[serde(default)]
    pub tag: Vec<String>,
    /// `name`, `id`, `created_at`, `updated_at`, `enabled` (`-` in front: descending). Default:
    /// name.
    pub sort: Option<String>,
    /// Page.
    pub page: Option<u32>,
    /// Size (≤ 100).
    pub size: Option<u32>,
}

/// Fields `GET /api/jobs` sorts by.
pub const JOB_SORT: &[&str] = &["name", "id", "created_at", "updated_at", "enabled"];

/// `GET /api/jobs`.
pub async fn list_jobs(
    State(st): State<ApiState>,
    ApiQuery(q): ApiQuery<JobQuery>,
) -> ApiResult<Json<Paged<Job>>> {
    let page = page_of(q.page, q.size)?;
    let sort = parse_sort(q.sort.as_deref(), JOB_SORT)?;
    let (names, kinds, tags) = (values(q.name), values(q.kind), values(q.tag));
    let f = JobFilter {
        name: single(&names),
        enabled: q.enabled,
    };
    if names.len() <= 1 && kinds.is_empty() && tags.is_empty() && sort.is_none() {
        return Ok(Json(st.store.list_jobs(&f, page).await?));
    }
    let all = read_all(|p| st.store.list_jobs(&f, p)).await?;
    let items = all
        .into_iter()
        .filter(|j| contains_any(&j.name, &names))
        .filter(|j| any_of(&j.kind.name().to_string(), &kinds))
        .filter(|j| tags.is_empty() || j.targets.tags.iter().any(|t| tags.contains(t)))
        .collect();
    Ok(Json(page_items(items, sort.as_ref(), page)))
}

/// Checks a job's references: at least one target, every device id exists, every tag exists
/// unless the body allows creating them.
async fn check_job(st: &ApiState, j: &Job, create_tags: bool) -> ApiResult<()> {
    j.validate()?;
    if j.targets.device_ids.is_empty() && j.targets.tags.is_empty() {
        return Err(ApiError::invalid(
            "targets: a job needs at least one device id or tag",
        ));
    }
    let found = st.store.devices_by_ids(&j.targets.device_ids).await?;
    let missing: Vec<String> = j
        .targets
        .device_ids
        .iter()
        .filter(|id| !found.iter().any(|d| d.id == **id))
        .map(|id| id.to_string())
        .collect();
    if !missing.is_empty() {
        return Err(ApiError::invalid(format!(
            "targets.device_ids: unknown device id(s) {}",
            missing.join(", ")
        )));
    }
    check_tags(st.store.as_ref(), &j.targets.tags, create_tags).await
}

/// Command jobs send arbitrary CLI to devices: a non-admin may only use commands matching
/// `security.allowed_commands` (read-only `show`/`display`/`get` by default), and never one
/// that enters configuration mode.
fn check_commands(st: &ApiState, who: &Principal, j: &Job) -> ApiResult<()> {
    let JobKind::Command { commands } = &j.kind else {
        return Ok(());
    };
    if who.user.role == Role::Admin {
        return Ok(());
    }
    let refused: Vec<&str> = commands
        .iter()
        .map(|c| c.trim())
        .filter(|c| {
            let lower = c.to_ascii_lowercase();
            lower.starts_with("conf") || !st.allowed_commands.is_match(c)
        })
        .collect();
    if refused.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid(format!(
            "kind.commands: not allowed for your role (only read-only commands matching \
             security.allowed_commands): {}",
            refused.join("; ")
        )))
    }
}

async fn save(st: &ApiState, who: &Principal, j: Job, create_tags: bool) -> ApiResult<Job> {
    check_commands(st, who, &j)?;
    check_job(st, &j, create_tags).await?;
    let saved = if j.id == 0 {
        st.store.create_job(&j).await
    } else {
        st.store.update_job(&j).await
    };
    saved.map_err(|e| conflict_on(e, "job", "name", &j.name))
}

/// `POST /api/jobs`: a [`JobInput`] plus `create_missing_tags` (default false).
pub async fn create_job(
    State(st): State<ApiState>,
    Extension(who): Extension<Principal>,
    ApiJson(mut v): ApiJson<Value>,
) -> ApiResult<Response> {
    let create_tags = take_create_missing_tags(&mut v, false)?;
    let j = from_json::<JobInput>(v)?.into_job();
    Ok(created(save(&st, &who, j, create_tags).await?))
}

/// `GET /api/jobs/{id}`.
pub async fn get_job(
    State(st): State<ApiState>,
    ApiPath(id): ApiPath<JobId>,
) -> ApiResult<Json<Job>> {
    Ok(Json(st.store.get_job(id).await?))
}

async fn replace(
    st: &ApiState,
    who: &Principal,
    old: Job,
    v: Value,
    create_tags: bool,
) -> ApiResult<Job> {
    let mut j = from_json::<JobInput>(v)?.into_job();
    j.id = old.id;
    j.system = old.system;
    j.created_at = old.created_at;
    save(st, who, j, create_tags).await
}

/// `PUT /api/jobs/{id}`: replaces every writable field (omitted ones take their defaults).
pub async fn update_job(
    State(st): State<ApiState>,
    Extension(who): Extension<Principal>,
    ApiPath(id): ApiPath<JobId>,
    ApiJson(mut v): ApiJson<Value>,
) -> ApiResult<Json<Job>> {
    let old = st.store.get_job(id).await?;
    let create_tags = take_create_missing_tags(&mut v, false)?;
    Ok(Json(replace(&st, &who, old, v, create_tags).await?))
}

/// `PATCH /api/jobs/{id}`: JSON merge patch of the writable fields.
pub async fn patch_job(
    State(st): State<ApiState>,
    Extension(who): Extension<Principal>,
    ApiPath(id): ApiPath<JobId>,
    ApiJson(mut p): ApiJson<Value>,
) -> ApiResult<Json<Job>> {
    let old = st.store.get_job(id).await?;
    let create_tags = take_create_missing_tags(&mut p, false)?;
    let mut v = json!({
        "name": old.name, "description": old.description, "kind": old.kind,
        "targets": old.targets, "schedule": old.schedule, "enabled": old.enabled,
        "overlap": old.overlap, "missed": old.missed,
    });
    merge_patch(&mut v, p);
    Ok(Json(replace(&st, &who, old, v, create_tags).await?))
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
