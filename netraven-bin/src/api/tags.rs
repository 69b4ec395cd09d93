//! Handlers for tags.

use super::ApiState;
use super::common::{PageQuery, created, no_content, page_of};
use super::error::{ApiJson, ApiPath, ApiQuery, ApiResult};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use netraven_core::prelude::*;
use serde::Deserialize;

/// Body of `POST/PUT /api/tags`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TagInput {
    /// Unique name.
    pub name: String,
    /// Free text.
    #[serde(default)]
    pub description: Option<String>,
}

/// `GET /api/tags`.
pub async fn list_tags(
    State(st): State<ApiState>,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> ApiResult<Json<Paged<Tag>>> {
    Ok(Json(st.store.list_tags(page_of(q.page, q.size)?).await?))
}

/// `POST /api/tags`.
pub async fn create_tag(
    State(st): State<ApiState>,
    ApiJson(b): ApiJson<TagInput>,
) -> ApiResult<Response> {
    validate_name("name", &b.name)?;
    let t = st
        .store
        .create_tag(&Tag {
            id: 0,
            name: b.name,
            description: b.description,
        })
        .await?;
    Ok(created(t))
}

/// `GET /api/tags/{id}`.
pub async fn get_tag(
    State(st): State<ApiState>,
    ApiPath(id): ApiPath<TagId>,
) -> ApiResult<Json<Tag>> {
    Ok(Json(st.store.get_tag(id).await?))
}

/// `PUT /api/tags/{id}`.
pub async fn update_tag(
    State(st): State<ApiState>,
    ApiPath(id): ApiPath<TagId>,
    ApiJson(b): ApiJson<TagInput>,
) -> ApiResult<Json<Tag>> {
    validate_name("name", &b.name)?;
    st.store.get_tag(id).await?;
    Ok(Json(
        st.store
            .update_tag(&Tag {
                id,
                name: b.name,
                description: b.description,
            })
            .await?,
    ))
}

/// `DELETE /api/tags/{id}`.
pub async fn delete_tag(
    State(st): State<ApiState>,
    ApiPath(id): ApiPath<TagId>,
) -> ApiResult<StatusCode> {
    st.store.delete_tag(id).await?;
    Ok(no_content())
}
