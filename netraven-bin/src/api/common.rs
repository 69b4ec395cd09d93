//! Helpers the resource handlers share: paging parameters and response shapes.

use super::error::{ApiError, ApiResult};
use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use netraven_core::prelude::*;
use serde::{Deserialize, Serialize};

/// Builds a page from optional `page`/`size` query values: page ≥ 1, 1 ≤ size ≤ 100.
pub fn page_of(page: Option<u32>, size: Option<u32>) -> ApiResult<Page> {
    let page = page.unwrap_or(1);
    let size = size.unwrap_or(50);
    if page == 0 {
        return Err(ApiError::invalid("page must be at least 1"));
    }
    if size == 0 || size > Page::MAX_SIZE {
        return Err(ApiError::invalid(format!(
            "size must be 1 to {}",
            Page::MAX_SIZE
        )));
    }
    Ok(Page { page, size })
}

/// `page` and `size` query parameters.
#[derive(Debug, Deserialize)]
pub struct PageQuery {
    /// 1-based page.
    pub page: Option<u32>,
    /// Page size (≤ 100).
    pub size: Option<u32>,
}

pub(crate) fn created<T: Serialize>(v: T) -> Response {
    (StatusCode::CREATED, Json(v)).into_response()
}

pub(crate) fn no_content() -> StatusCode {
    StatusCode::NO_CONTENT
}

pub(crate) fn yes() -> bool {
    true
}
