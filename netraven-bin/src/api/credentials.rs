//! Handlers for credentials. Secrets are write-only: responses carry [`CredentialInfo`].

use super::ApiState;
use super::common::{PageQuery, created, no_content, page_of};
use super::error::{ApiError, ApiJson, ApiPath, ApiQuery, ApiResult};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use chrono::Utc;
use netraven_core::prelude::*;
use serde::Deserialize;

/// Body of `POST /api/credentials`. The secrets are write-only.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CredentialCreate {
    /// Unique name.
    pub name: String,
    /// Login user name.
    pub username: String,
    /// Login password.
    pub password: Secret,
    /// Enable secret.
    #[serde(default)]
    pub enable_secret: Option<Secret>,
    /// Lower is tried first (default 100).
    #[serde(default)]
    pub priority: Option<i32>,
    /// Tags.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Free text.
    #[serde(default)]
    pub description: Option<String>,
}

/// Body of `PUT /api/credentials/{id}`; omitted fields (and secrets) are kept.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CredentialUpdate {
    /// Name.
    pub name: Option<String>,
    /// Login user name.
    pub username: Option<String>,
    /// New password.
    pub password: Option<Secret>,
    /// New enable secret.
    pub enable_secret: Option<Secret>,
    /// Remove the enable secret.
    #[serde(default)]
    pub clear_enable_secret: bool,
    /// Priority.
    pub priority: Option<i32>,
    /// Tags (replaces).
    pub tags: Option<Vec<String>>,
    /// Free text.
    pub description: Option<String>,
}

fn check_credential(c: &Credential) -> ApiResult<()> {
    validate_name("name", &c.name)?;
    if c.username.trim().is_empty() || c.username.len() > 255 {
        return Err(ApiError::invalid("username must be 1 to 255 characters"));
    }
    if c.password.is_empty() || c.password.expose().len() > 1024 {
        return Err(ApiError::invalid("password must be 1 to 1024 characters"));
    }
    for t in &c.tags {
        validate_name("tag", t)?;
    }
    Ok(())
}

/// `GET /api/credentials`.
pub async fn list_credentials(
    State(st): State<ApiState>,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> ApiResult<Json<Paged<CredentialInfo>>> {
    let p = st.store.list_credentials(page_of(q.page, q.size)?).await?;
    Ok(Json(p.map(|c| c.info())))
}

/// `POST /api/credentials`.
pub async fn create_credential(
    State(st): State<ApiState>,
    ApiJson(b): ApiJson<CredentialCreate>,
) -> ApiResult<Response> {
    let mut c = Credential::new(b.name, b.username, b.password);
    c.enable_secret = b.enable_secret.filter(|s| !s.is_empty());
    if let Some(p) = b.priority {
        c.priority = p;
    }
    c.tags = b.tags;
    c.description = b.description;
    c.created_at = Utc::now();
    check_credential(&c)?;
    let c = st.store.create_credential(&c).await?;
    Ok(created(c.info()))
}

/// `GET /api/credentials/{id}`.
pub async fn get_credential(
    State(st): State<ApiState>,
    ApiPath(id): ApiPath<CredentialId>,
) -> ApiResult<Json<CredentialInfo>> {
    Ok(Json(st.store.get_credential(id).await?.info()))
}

/// `PUT /api/credentials/{id}`.
pub async fn update_credential(
    State(st): State<ApiState>,
    ApiPath(id): ApiPath<CredentialId>,
    ApiJson(b): ApiJson<CredentialUpdate>,
) -> ApiResult<Json<CredentialInfo>> {
    let mut c = st.store.get_credential(id).await?;
    if let Some(v) = b.name {
        c.name = v;
    }
    if let Some(v) = b.username {
        c.username = v;
    }
    if let Some(v) = b.password {
        c.password = v;
    }
    if b.clear_enable_secret {
        c.enable_secret = None;
    }
    if let Some(v) = b.enable_secret.filter(|s| !s.is_empty()) {
        c.enable_secret = Some(v);
    }
    if let Some(v) = b.priority {
        c.priority = v;
    }
    if let Some(v) = b.tags {
        c.tags = v;
    }
    if let Some(v) = b.description {
        c.description = Some(v);
    }
    check_credential(&c)?;
    Ok(Json(st.store.update_credential(&c).await?.info()))
}

/// `DELETE /api/credentials/{id}`.
pub async fn delete_credential(
    State(st): State<ApiState>,
    ApiPath(id): ApiPath<CredentialId>,
) -> ApiResult<StatusCode> {
    st.store.delete_credential(id).await?;
    Ok(no_content())
}
