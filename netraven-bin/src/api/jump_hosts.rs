//! Handlers for jump hosts (SSH bastions devices are reached through). Admin only: a jump host
//! decides where connections, and every credential offered on them, go. The secret is
//! write-only: responses carry [`JumpHostInfo`].

use super::ApiState;
use super::common::{
    conflict_on, created, merge_patch, no_content, page_items, page_of, parse_sort,
};
use super::error::{ApiError, ApiJson, ApiPath, ApiQuery, ApiResult, from_json};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use chrono::Utc;
use netraven_core::prelude::*;
use netraven_core::store::StoreExt;
use serde::Deserialize;
use serde_json::{Value, json};

/// Body of `POST /api/jump-hosts`. The password is write-only.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JumpHostCreate {
    /// Unique name devices refer to (`jump_host`).
    pub name: String,
    /// IP address or DNS name of the bastion.
    pub address: String,
    /// SSH port (default 22).
    #[serde(default)]
    pub port: Option<u16>,
    /// Login user on the bastion.
    pub username: String,
    /// Password, or a private key (PEM/OpenSSH).
    #[schema(value_type = String)]
    pub password: Secret,
    /// Host key policy (default tofu).
    #[serde(default)]
    pub host_key_policy: HostKeyPolicy,
    /// A `SHA256:` fingerprint the bastion's key must have.
    #[serde(default)]
    pub host_key: Option<String>,
    /// The jump host in front of this one.
    #[serde(default)]
    pub via: Option<String>,
    /// Free text.
    #[serde(default)]
    pub description: Option<String>,
}

/// Body of `PUT /api/jump-hosts/{id}` (full replacement; the password is kept when omitted)
/// and the fields `PATCH` merges into.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JumpHostReplace {
    /// Name.
    pub name: String,
    /// Address.
    pub address: String,
    /// SSH port (default 22).
    #[serde(default)]
    pub port: Option<u16>,
    /// Login user.
    pub username: String,
    /// New password or key (write-only; omitted: unchanged).
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub password: Option<Secret>,
    /// Host key policy (default tofu).
    #[serde(default)]
    pub host_key_policy: HostKeyPolicy,
    /// Pinned fingerprint.
    #[serde(default)]
    pub host_key: Option<String>,
    /// The jump host in front of this one.
    #[serde(default)]
    pub via: Option<String>,
    /// Free text.
    #[serde(default)]
    pub description: Option<String>,
}

/// Query of `GET /api/jump-hosts`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JumpHostQuery {
    /// `name`, `address`, `id`, `created_at` (`-` in front: descending). Default: name.
    pub sort: Option<String>,
    /// Page.
    pub page: Option<u32>,
    /// Size (≤ 100).
    pub size: Option<u32>,
}

/// Sort keys of `GET /api/jump-hosts`.
pub const JUMP_HOST_SORT: &[&str] = &["name", "address", "id", "created_at"];

/// Checks a jump host the way a connection would use it: fields, address policy, an existing
/// `via` that does not lead back to it.
async fn check_jump_host(st: &ApiState, j: &JumpHost) -> ApiResult<()> {
    j.validate()?;
    if let Some(Err(e)) = st.engine.config().address_policy.check_literal(&j.address) {
        return Err(ApiError::invalid(format!("address: {}", e.message())));
    }
    let mut next = j.via.clone();
    let mut seen = vec![j.name.clone()];
    while let Some(name) = next {
        if seen.contains(&name) {
            return Err(ApiError::invalid(format!(
                "via: jump host '{name}' leads back to '{}'",
                j.name
            )));
        }
        if seen.len() > netraven_core::model::MAX_JUMP_CHAIN {
            return Err(ApiError::invalid(format!(
                "via: more than {} jump hosts in a chain",
                netraven_core::model::MAX_JUMP_CHAIN
            )));
        }
        let Some(v) = st.store.jump_host_by_name(&name).await? else {
            return Err(ApiError::invalid(format!(
                "via: jump host '{name}' does not exist"
            )));
        };
        seen.push(name);
        next = v.via;
    }
    Ok(())
}

/// `GET /api/jump-hosts`.
pub async fn list_jump_hosts(
    State(st): State<ApiState>,
    ApiQuery(q): ApiQuery<JumpHostQuery>,
) -> ApiResult<Json<Paged<JumpHostInfo>>> {
    let page = page_of(q.page, q.size)?;
    let sort = parse_sort(q.sort.as_deref(), JUMP_HOST_SORT)?;
    let items = st
        .store
        .list_jump_hosts()
        .await?
        .iter()
        .map(JumpHost::info)
        .collect();
    Ok(Json(page_items(items, sort.as_ref(), page)))
}

/// `POST /api/jump-hosts`.
pub async fn create_jump_host(
    State(st): State<ApiState>,
    ApiJson(v): ApiJson<Value>,
) -> ApiResult<Response> {
    let b: JumpHostCreate = from_json(v)?;
    let mut j = JumpHost::new(b.name, b.address, b.username, b.password);
    j.port = b.port.unwrap_or(22);
    j.host_key_policy = b.host_key_policy;
    j.host_key = b.host_key;
    j.via = b.via;
    j.description = b.description;
    j.created_at = Utc::now();
    j.updated_at = j.created_at;
    check_jump_host(&st, &j).await?;
    let j = st
        .store
        .create_jump_host(&j)
        .await
        .map_err(|e| conflict_on(e, "jump host", "name", &j.name))?;
    Ok(created(j.info()))
}

/// `GET /api/jump-hosts/{id}`.
pub async fn get_jump_host(
    State(st): State<ApiState>,
    ApiPath(id): ApiPath<JumpHostId>,
) -> ApiResult<Json<JumpHostInfo>> {
    Ok(Json(st.store.get_jump_host(id).await?.info()))
}

async fn replace_jump_host(
    st: &ApiState,
    mut j: JumpHost,
    b: JumpHostReplace,
) -> ApiResult<JumpHostInfo> {
    let old_name = j.name.clone();
    j.name = b.name;
    j.address = b.address;
    j.port = b.port.unwrap_or(22);
    j.username = b.username;
    if let Some(p) = b.password {
        j.password = p;
    }
    j.host_key_policy = b.host_key_policy;
    j.host_key = b.host_key;
    j.via = b.via;
    j.description = b.description;
    j.updated_at = Utc::now();
    if j.name != old_name && in_use(st, &old_name).await? {
        return Err(ApiError::conflict(format!(
            "jump host '{old_name}' is in use (devices or other jump hosts name it): it cannot be renamed"
        )));
    }
    check_jump_host(st, &j).await?;
    let j = st
        .store
        .update_jump_host(&j)
        .await
        .map_err(|e| conflict_on(e, "jump host", "name", &j.name))?;
    Ok(j.info())
}

/// `PUT /api/jump-hosts/{id}`.
pub async fn update_jump_host(
    State(st): State<ApiState>,
    ApiPath(id): ApiPath<JumpHostId>,
    ApiJson(v): ApiJson<Value>,
) -> ApiResult<Json<JumpHostInfo>> {
    let j = st.store.get_jump_host(id).await?;
    let b = from_json(v)?;
    Ok(Json(replace_jump_host(&st, j, b).await?))
}

/// `PATCH /api/jump-hosts/{id}`: JSON merge patch of the jump host's fields.
pub async fn patch_jump_host(
    State(st): State<ApiState>,
    ApiPath(id): ApiPath<JumpHostId>,
    ApiJson(p): ApiJson<Value>,
) -> ApiResult<Json<JumpHostInfo>> {
    let j = st.store.get_jump_host(id).await?;
    let mut v = json!({
        "name": j.name, "address": j.address, "port": j.port, "username": j.username,
        "host_key_policy": j.host_key_policy, "host_key": j.host_key, "via": j.via,
        "description": j.description,
    });
    merge_patch(&mut v, p);
    let b = from_json(v)?;
    Ok(Json(replace_jump_host(&st, j, b).await?))
}

/// Whether a device or another jump host names this jump host.
async fn in_use(st: &ApiState, name: &str) -> ApiResult<bool> {
    if st
        .store
        .list_jump_hosts()
        .await?
        .iter()
        .any(|j| j.via.as_deref() == Some(name))
    {
        return Ok(true);
    }
    let devices = st.store.all_devices(&DeviceFilter::default()).await?;
    Ok(devices.iter().any(|d| d.jump_host.as_deref() == Some(name)))
}

/// `DELETE /api/jump-hosts/{id}`: refused (409) while a device or jump host names it.
pub async fn delete_jump_host(
    State(st): State<ApiState>,
    ApiPath(id): ApiPath<JumpHostId>,
) -> ApiResult<StatusCode> {
    let j = st.store.get_jump_host(id).await?;
    if in_use(&st, &j.name).await? {
        return Err(ApiError::conflict(format!(
            "jump host '{}' is in use (devices or other jump hosts name it)",
            j.name
        )));
    }
    st.store.delete_jump_host(id).await?;
    Ok(no_content())
}
