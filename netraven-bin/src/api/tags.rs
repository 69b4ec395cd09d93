//! Handlers for tags.

use super::ApiState;
use super::auth::Principal;
use super::common::{
    conflict_on, contains_any, created, merge_patch, no_content, page_items, page_of, parse_sort,
    read_all, to_json, values,
};
use super::error::{ApiError, ApiJson, ApiPath, ApiQuery, ApiResult, from_json};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::{Extension, Json};
use netraven_core::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Body of `POST /api/tags` and `PUT /api/tags/{id}` (full replacement).
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TagInput {
    /// Unique name.
    pub name: String,
    /// Free text.
    #[serde(default)]
    pub description: Option<String>,
    /// The zone of the tag's devices that name none themselves (admin only; `a-z`, `0-9`, `_`,
    /// `-`). Omitted on `PUT`: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
}

/// Query of `GET /api/tags`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TagQuery {
    /// Name contains (case-insensitive; repeat for any of several).
    #[serde(default)]
    pub name: Vec<String>,
    /// `name`, `id` (`-` in front: descending). Default: name.
    pub sort: Option<String>,
    /// Page.
    pub page: Option<u32>,
    /// Size (≤ 100).
    pub size: Option<u32>,
}

/// Fields `GET /api/tags` sorts by.
pub const TAG_SORT: &[&str] = &["name", "id"];

/// `GET /api/tags`.
pub async fn list_tags(
    State(st): State<ApiState>,
    ApiQuery(q): ApiQuery<TagQuery>,
) -> ApiResult<Json<Paged<Tag>>> {
    let page = page_of(q.page, q.size)?;
    let sort = parse_sort(q.sort.as_deref(), TAG_SORT)?;
    let names = values(q.name);
    let all = read_all(|p| st.store.list_tags(p)).await?;
    let items = all
        .into_iter()
        .filter(|t| contains_any(&t.name, &names))
        .collect();
    Ok(Json(page_items(items, sort.as_ref(), page)))
}

async fn save(
    st: &ApiState,
    p: &Principal,
    old: Option<&Tag>,
    id: TagId,
    b: TagInput,
) -> ApiResult<Tag> {
    validate_name("name", &b.name)?;
    if let Some(z) = &b.zone {
        validate_zone(z)?;
    }
    // A zone decides which workers (sites) reach the tag's devices: an admin's choice, like
    // the fields that decide where credentials go.
    if p.user.role != Role::Admin && b.zone != old.and_then(|o| o.zone.clone()) {
        return Err(ApiError::forbidden(
            "only an admin may set the zone of a tag",
        ));
    }
    let t = Tag {
        id,
        name: b.name,
        description: b.description,
        zone: b.zone,
    };
    let saved = if id == 0 {
        st.store.create_tag(&t).await
    } else {
        st.store.update_tag(&t).await
    };
    saved.map_err(|e| conflict_on(e, "tag", "name", &t.name))
}

/// `POST /api/tags`.
pub async fn create_tag(
    State(st): State<ApiState>,
    Extension(p): Extension<Principal>,
    ApiJson(b): ApiJson<TagInput>,
) -> ApiResult<Response> {
    Ok(created(save(&st, &p, None, 0, b).await?))
}

/// `GET /api/tags/{id}`.
pub async fn get_tag(
    State(st): State<ApiState>,
    ApiPath(id): ApiPath<TagId>,
) -> ApiResult<Json<Tag>> {
    Ok(Json(st.store.get_tag(id).await?))
}

/// `PUT /api/tags/{id}`: replaces the tag (an omitted description is cleared).
pub async fn update_tag(
    State(st): State<ApiState>,
    Extension(p): Extension<Principal>,
    ApiPath(id): ApiPath<TagId>,
    ApiJson(b): ApiJson<Value>,
) -> ApiResult<Json<Tag>> {
    let old = st.store.get_tag(id).await?;
    Ok(Json(save(&st, &p, Some(&old), id, from_json(b)?).await?))
}

/// `PATCH /api/tags/{id}`: JSON merge patch of the tag's fields.
pub async fn patch_tag(
    State(st): State<ApiState>,
    Extension(who): Extension<Principal>,
    ApiPath(id): ApiPath<TagId>,
    ApiJson(p): ApiJson<Value>,
) -> ApiResult<Json<Tag>> {
    let old = st.store.get_tag(id).await?;
    let mut v = to_json(&TagInput {
        name: old.name.clone(),
        description: old.description.clone(),
        zone: old.zone.clone(),
    })?;
    merge_patch(&mut v, p);
    Ok(Json(save(&st, &who, Some(&old), id, from_json(v)?).await?))
}

/// `DELETE /api/tags/{id}`.
pub async fn delete_tag(
    State(st): State<ApiState>,
    ApiPath(id): ApiPath<TagId>,
) -> ApiResult<StatusCode> {
    st.store.delete_tag(id).await?;
    Ok(no_content())
}
