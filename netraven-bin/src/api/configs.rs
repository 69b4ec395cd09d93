//! Handlers for configuration history, snapshots, diffs and search.

use super::ApiState;
use super::common::page_of;
use super::error::{ApiError, ApiPath, ApiQuery, ApiResult};
use axum::Json;
use axum::extract::State;
use netraven_core::prelude::*;
use serde::{Deserialize, Serialize};

/// Query of `GET /api/configs/{device_id}/history`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HistoryQuery {
    /// `-created_at` only (newest first, the default; the history is kept in that order).
    pub sort: Option<String>,
    /// Page.
    pub page: Option<u32>,
    /// Size (≤ 100).
    pub size: Option<u32>,
}

/// `GET /api/configs/{device_id}/history`: 404 for an id that is neither a device nor has
/// snapshots (a deleted device's history stays readable).
pub async fn history(
    State(st): State<ApiState>,
    ApiPath(device_id): ApiPath<DeviceId>,
    ApiQuery(q): ApiQuery<HistoryQuery>,
) -> ApiResult<Json<Paged<SnapshotMeta>>> {
    let page = page_of(q.page, q.size)?;
    if let Some(s) = q.sort.as_deref().filter(|s| *s != "-created_at") {
        return Err(ApiError::invalid(format!(
            "sort: '{s}' is not offered; the history is newest first (-created_at)"
        )));
    }
    let known = match st.store.get_device(device_id).await {
        Ok(_) => true,
        Err(e) if e.kind() == ErrorKind::NotFound => false,
        Err(e) => return Err(e.into()),
    };
    let h = st.sink.history(device_id, page).await?;
    // A deleted device keeps its history; an id that never had a device or a snapshot is 404.
    if !known && h.total == 0 {
        return Err(ApiError::not_found(format!("device {device_id}")));
    }
    Ok(Json(h))
}

/// `GET /api/configs/snapshots/{id}`: the snapshot with its content.
pub async fn snapshot(
    State(st): State<ApiState>,
    ApiPath(id): ApiPath<SnapshotId>,
) -> ApiResult<Json<Snapshot>> {
    Ok(Json(st.sink.get(id).await?))
}

/// Query of `GET /api/configs/diff`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiffQuery {
    /// Older snapshot id.
    pub from: SnapshotId,
    /// Newer snapshot id.
    pub to: SnapshotId,
    /// Context lines (default 3, at most 100).
    pub context: Option<usize>,
}

/// Response of `GET /api/configs/diff`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DiffResponse {
    /// The older snapshot.
    pub from: SnapshotMeta,
    /// The newer snapshot.
    pub to: SnapshotMeta,
    /// Whether the contents differ.
    pub changed: bool,
    /// Unified diff (empty when unchanged).
    pub diff: String,
}

/// `GET /api/configs/diff?from=&to=`.
pub async fn diff(
    State(st): State<ApiState>,
    ApiQuery(q): ApiQuery<DiffQuery>,
) -> ApiResult<Json<DiffResponse>> {
    let context = q.context.unwrap_or(3).min(100);
    let a = st.sink.get(q.from).await?;
    let b = st.sink.get(q.to).await?;
    let changed = a.meta.hash != b.meta.hash || a.content != b.content;
    let diff = if changed {
        netraven_core::diff::unified_diff_with_context(&a, &b, context)
    } else {
        String::new()
    };
    Ok(Json(DiffResponse {
        from: a.meta,
        to: b.meta,
        changed,
        diff,
    }))
}

/// Query of `GET /api/configs/search`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchQuery {
    /// Text to find (literal, case-insensitive).
    pub q: String,
    /// Page.
    pub page: Option<u32>,
    /// Size.
    pub size: Option<u32>,
}

/// `GET /api/configs/search?q=`: latest snapshots (one per device) containing `q`.
pub async fn search(
    State(st): State<ApiState>,
    ApiQuery(q): ApiQuery<SearchQuery>,
) -> ApiResult<Json<Paged<SnapshotMeta>>> {
    let page = page_of(q.page, q.size)?;
    if q.q.trim().is_empty() || q.q.len() > 1000 {
        return Err(ApiError::invalid("q must be 1 to 1000 characters"));
    }
    Ok(Json(st.store.search_latest(&q.q, page).await?))
}
