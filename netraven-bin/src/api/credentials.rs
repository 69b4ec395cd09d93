//! Handlers for credentials. Secrets are write-only: responses carry [`CredentialInfo`].

use super::ApiState;
use super::common::{
    check_tags, conflict_on, contains_any, created, merge_patch, no_content, page_items, page_of,
    parse_sort, read_all, take_create_missing_tags, values,
};
use super::error::{ApiError, ApiJson, ApiPath, ApiQuery, ApiResult, from_json};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use chrono::Utc;
use netraven_core::prelude::*;
use serde::Deserialize;
use serde_json::{Value, json};

/// Body of `POST /api/credentials`. The secrets are write-only.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CredentialCreate {
    /// Unique name.
    pub name: String,
    /// Login user name.
    pub username: String,
    /// Login password.
    #[schema(value_type = String)]
    pub password: Secret,
    /// Enable secret.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub enable_secret: Option<Secret>,
    /// Lower is tried first (default 100).
    #[serde(default)]
    pub priority: Option<i32>,
    /// Tags (missing ones are created unless `create_missing_tags` is false).
    #[serde(default)]
    pub tags: Vec<String>,
    /// Free text.
    #[serde(default)]
    pub description: Option<String>,
}

/// Body of `PUT /api/credentials/{id}` (full replacement: omitted fields take their defaults,
/// except the write-only secrets, which are kept when omitted) and the fields
/// `PATCH /api/credentials/{id}` merges into.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CredentialReplace {
    /// Name.
    pub name: String,
    /// Login user name.
    pub username: String,
    /// New password (write-only; omitted: unchanged).
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub password: Option<Secret>,
    /// New enable secret (write-only; omitted: unchanged).
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub enable_secret: Option<Secret>,
    /// Remove the enable secret.
    #[serde(default)]
    pub clear_enable_secret: bool,
    /// Priority (default 100).
    #[serde(default)]
    pub priority: Option<i32>,
    /// Tags (missing ones are created unless `create_missing_tags` is false).
    #[serde(default)]
    pub tags: Vec<String>,
    /// Free text.
    #[serde(default)]
    pub description: Option<String>,
}

/// Query of `GET /api/credentials`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CredentialQuery {
    /// Name contains (case-insensitive; repeat for any of several).
    #[serde(default)]
    pub name: Vec<String>,
    /// Login user name contains (case-insensitive; repeat for any of several).
    #[serde(default)]
    pub username: Vec<String>,
    /// Carries the tag (repeat for any of several).
    #[serde(default)]
    pub tag: Vec<String>,
    /// `priority`, `name`, `id`, `last_used`, `success_rate`, `created_at` (`-` in front:
    /// descending). Default: priority, then name.
    pub sort: Option<String>,
    /// Page.
    pub page: Option<u32>,
    /// Size (≤ 100).
    pub size: Option<u32>,
}

/// Whether a credential body without `create_missing_tags` creates the tags it names. A
/// credential's tags select the devices it serves and are usually set up before those devices
/// (scripts create the credential, then devices with its tag), so credentials keep creating them
/// unless the body says `"create_missing_tags": false`; devices and jobs refuse unknown tags.
pub const CREATE_TAGS_BY_DEFAULT: bool = true;

/// Fields `GET /api/credentials` sorts by.
pub const CREDENTIAL_SORT: &[&str] = &[
    "priority",
    "name",
    "id",
    "last_used",
    "success_rate",
    "created_at",
];

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
    ApiQuery(q): ApiQuery<CredentialQuery>,
) -> ApiResult<Json<Paged<CredentialInfo>>> {
    let page = page_of(q.page, q.size)?;
    let sort = parse_sort(q.sort.as_deref(), CREDENTIAL_SORT)?;
    let (names, users, tags) = (values(q.name), values(q.username), values(q.tag));
    let all = read_all(|p| st.store.list_credentials(p)).await?;
    let items = all
        .into_iter()
        .map(|c| c.info())
        .filter(|c| contains_any(&c.name, &names) && contains_any(&c.username, &users))
        .filter(|c| tags.is_empty() || c.tags.iter().any(|t| tags.contains(t)))
        .collect();
    Ok(Json(page_items(items, sort.as_ref(), page)))
}

/// `POST /api/credentials`.
pub async fn create_credential(
    State(st): State<ApiState>,
    ApiJson(mut v): ApiJson<Value>,
) -> ApiResult<Response> {
    let create_tags = take_create_missing_tags(&mut v, CREATE_TAGS_BY_DEFAULT)?;
    let b: CredentialCreate = from_json(v)?;
    let mut c = Credential::new(b.name, b.username, b.password);
    c.enable_secret = b.enable_secret.filter(|s| !s.is_empty());
    if let Some(p) = b.priority {
        c.priority = p;
    }
    c.tags = b.tags;
    c.description = b.description;
    c.created_at = Utc::now();
    check_credential(&c)?;
    check_tags(st.store.as_ref(), &c.tags, create_tags).await?;
    let c = st
        .store
        .create_credential(&c)
        .await
        .map_err(|e| conflict_on(e, "credential", "name", &c.name))?;
    Ok(created(c.info()))
}

/// `GET /api/credentials/{id}`.
pub async fn get_credential(
    State(st): State<ApiState>,
    ApiPath(id): ApiPath<CredentialId>,
) -> ApiResult<Json<CredentialInfo>> {
    Ok(Json(st.store.get_credential(id).await?.info()))
}

async fn replace_credential(
    st: &ApiState,
    mut c: Credential,
    b: CredentialReplace,
    create_tags: bool,
) -> ApiResult<CredentialInfo> {
    c.name = b.name;
    c.username = b.username;
    if let Some(v) = b.password {
        c.password = v;
    }
    if b.clear_enable_secret {
        c.enable_secret = None;
    }
    if let Some(v) = b.enable_secret.filter(|s| !s.is_empty()) {
        c.enable_secret = Some(v);
    }
    c.priority = b.priority.unwrap_or(100);
    c.tags = b.tags;
    c.description = b.description;
    check_credential(&c)?;
    check_tags(st.store.as_ref(), &c.tags, create_tags).await?;
    Ok(st
        .store
        .update_credential(&c)
        .await
        .map_err(|e| conflict_on(e, "credential", "name", &c.name))?
        .info())
}

/// `PUT /api/credentials/{id}`: replaces the credential (secrets kept when omitted).
pub async fn update_credential(
    State(st): State<ApiState>,
    ApiPath(id): ApiPath<CredentialId>,
    ApiJson(mut v): ApiJson<Value>,
) -> ApiResult<Json<CredentialInfo>> {
    let c = st.store.get_credential(id).await?;
    let create_tags = take_create_missing_tags(&mut v, CREATE_TAGS_BY_DEFAULT)?;
    let b = from_json(v)?;
    Ok(Json(replace_credential(&st, c, b, create_tags).await?))
}

/// `PATCH /api/credentials/{id}`: JSON merge patch of the credential's fields.
pub async fn patch_credential(
    State(st): State<ApiState>,
    ApiPath(id): ApiPath<CredentialId>,
    ApiJson(mut p): ApiJson<Value>,
) -> ApiResult<Json<CredentialInfo>> {
    let c = st.store.get_credential(id).await?;
    let create_tags = take_create_missing_tags(&mut p, CREATE_TAGS_BY_DEFAULT)?;
    let mut v = json!({
        "name": c.name, "username": c.username, "priority": c.priority,
        "tags": c.tags, "description": c.description,
    });
    merge_patch(&mut v, p);
    let b = from_json(v)?;
    Ok(Json(replace_credential(&st, c, b, create_tags).await?))
}

/// `DELETE /api/credentials/{id}`.
pub async fn delete_credential(
    State(st): State<ApiState>,
    ApiPath(id): ApiPath<CredentialId>,
) -> ApiResult<StatusCode> {
    st.store.delete_credential(id).await?;
    Ok(no_content())
}
