//! Helpers the resource handlers share: paging, sorting and filtering of lists, response shapes.
//!
//! Every list answers `{items, total, page, size, pages}`. A list whose filters the store can
//! apply (one value each, default order) is paged by the store; a repeated filter (any of its
//! values) or a `sort` other than the default reads every matching row (at most [`MAX_SCAN`])
//! and filters, sorts and pages here.

use super::error::{ApiError, ApiResult};
use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use netraven_core::prelude::*;
use serde::Serialize;
use serde_json::Value;
use std::cmp::Ordering;
use std::future::Future;

/// Most rows a list reads to filter by several values of one parameter or to sort in memory.
pub const MAX_SCAN: u64 = 20_000;

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

/// A `sort` parameter: a field of the list's items, `-` in front for descending.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SortSpec {
    /// The item field.
    pub field: &'static str,
    /// Descending.
    pub desc: bool,
}

/// Parses `sort=field` / `sort=-field` against the fields a list can be sorted by.
pub fn parse_sort(s: Option<&str>, allowed: &[&'static str]) -> ApiResult<Option<SortSpec>> {
    let Some(s) = s.map(str::trim).filter(|s| !s.is_empty()) else {
        return Ok(None);
    };
    let (name, desc) = match s.strip_prefix('-') {
        Some(n) => (n, true),
        None => (s.strip_prefix('+').unwrap_or(s), false),
    };
    match allowed.iter().find(|f| **f == name) {
        Some(field) => Ok(Some(SortSpec { field, desc })),
        None => Err(ApiError::invalid(format!(
            "sort: unknown field '{name}' (one of {}, '-' in front for descending)",
            allowed.join(", ")
        ))),
    }
}

/// Reads every row of a store list, in its order, failing with 422 past [`MAX_SCAN`] rows.
pub async fn read_all<T, F, Fut>(mut fetch: F) -> ApiResult<Vec<T>>
where
    F: FnMut(Page) -> Fut,
    Fut: Future<Output = netraven_core::Result<Paged<T>>>,
{
    const CHUNK: u32 = 1000;
    let mut out = Vec::new();
    for n in 1.. {
        let p = fetch(Page::new(n, CHUNK)).await?;
        if p.total > MAX_SCAN {
            return Err(ApiError::invalid(format!(
                "{} rows match; narrow the filters (at most {MAX_SCAN} can be sorted or matched against repeated filters)",
                p.total
            )));
        }
        let got = p.items.len();
        out.extend(p.items);
        if got < CHUNK as usize || out.len() as u64 >= p.total {
            break;
        }
    }
    Ok(out)
}

fn rank(v: &Value) -> u8 {
    match v {
        Value::Null => 0,
        Value::Bool(_) => 1,
        Value::Number(_) => 2,
        Value::String(_) => 3,
        _ => 4,
    }
}

/// Orders two JSON values: null first, then booleans, numbers, strings (case-insensitive).
fn cmp_values(a: &Value, b: &Value) -> Ordering {
    match (a, b) {
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        (Value::Number(x), Value::Number(y)) => {
            let (x, y) = (x.as_f64().unwrap_or(0.0), y.as_f64().unwrap_or(0.0));
            x.partial_cmp(&y).unwrap_or(Ordering::Equal)
        }
        (Value::String(x), Value::String(y)) => x
            .to_lowercase()
            .cmp(&y.to_lowercase())
            .then_with(|| x.cmp(y)),
        _ => rank(a).cmp(&rank(b)),
    }
}

/// Sorts items (stably, so equal keys keep the store's order) by a field of their JSON form.
pub fn sort_items<T: Serialize>(items: Vec<T>, sort: Option<&SortSpec>) -> Vec<T> {
    let Some(s) = sort else { return items };
    let mut keyed: Vec<(Value, T)> = items
        .into_iter()
        .map(|t| {
            let k = serde_json::to_value(&t)
                .ok()
                .and_then(|v| v.get(s.field).cloned())
                .unwrap_or(Value::Null);
            (k, t)
        })
        .collect();
    keyed.sort_by(|(a, _), (b, _)| {
        let o = cmp_values(a, b);
        if s.desc { o.reverse() } else { o }
    });
    keyed.into_iter().map(|(_, t)| t).collect()
}

/// Sorts and cuts one page out of every matching item.
pub fn page_items<T: Serialize>(items: Vec<T>, sort: Option<&SortSpec>, page: Page) -> Paged<T> {
    let total = items.len() as u64;
    let items = sort_items(items, sort)
        .into_iter()
        .skip(page.offset() as usize)
        .take(page.size as usize)
        .collect();
    Paged::new(items, total, page)
}

/// The non-empty values of a repeatable parameter.
pub fn values(v: Vec<String>) -> Vec<String> {
    v.into_iter()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

/// Whether `hay` contains any of `needles` (case-insensitive, literal); true when there are none.
pub fn contains_any(hay: &str, needles: &[String]) -> bool {
    if needles.is_empty() {
        return true;
    }
    let hay = hay.to_lowercase();
    needles.iter().any(|n| hay.contains(&n.to_lowercase()))
}

/// Whether `v` equals any of `wanted`; true when there are none.
pub fn any_of<T: PartialEq>(v: &T, wanted: &[T]) -> bool {
    wanted.is_empty() || wanted.contains(v)
}

/// The single value of a filter the store can apply, `None` when absent or repeated.
pub fn single<T: Clone>(v: &[T]) -> Option<T> {
    match v {
        [one] => Some(one.clone()),
        _ => None,
    }
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

/// Applies a JSON merge patch (RFC 7396) to `target`: objects merge key by key, `null` removes a
/// key (the field falls back to its default), anything else replaces.
pub fn merge_patch(target: &mut Value, patch: Value) {
    match patch {
        Value::Object(p) => {
            if !target.is_object() {
                *target = Value::Object(Default::default());
            }
            if let Value::Object(t) = target {
                for (k, v) in p {
                    if v.is_null() {
                        t.remove(&k);
                    } else {
                        merge_patch(t.entry(k).or_insert(Value::Null), v);
                    }
                }
            }
        }
        other => *target = other,
    }
}

/// Checks that every tag named in a body exists; with `create_missing` (the body's
/// `create_missing_tags`) the missing ones are created instead.
pub async fn check_tags(
    store: &dyn ServerStore,
    tags: &[String],
    create_missing: bool,
) -> ApiResult<()> {
    if tags.is_empty() {
        return Ok(());
    }
    let known = read_all(|p| store.list_tags(p)).await?;
    let missing: Vec<&str> = tags
        .iter()
        .filter(|t| !known.iter().any(|k| &k.name == *t))
        .map(String::as_str)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    if create_missing {
        for name in missing {
            validate_name("tag", name)?;
            let tag = Tag {
                id: 0,
                name: name.to_string(),
                description: None,
                zone: None,
            };
            match store.create_tag(&tag).await {
                // Created meanwhile by another request: it exists, which is all we need.
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::Conflict => {}
                Err(e) => return Err(e.into()),
            }
        }
        return Ok(());
    }
    Err(ApiError::invalid(format!(
        "tags: unknown tag(s) {}; create them first or send \"create_missing_tags\": true",
        missing.join(", ")
    )))
}

/// Takes the `create_missing_tags` flag out of a body (`default` when absent), so the rest can
/// be read as the resource's own fields.
pub fn take_create_missing_tags(body: &mut Value, default: bool) -> ApiResult<bool> {
    match body
        .as_object_mut()
        .and_then(|o| o.remove("create_missing_tags"))
    {
        None | Some(Value::Null) => Ok(default),
        Some(Value::Bool(b)) => Ok(b),
        Some(_) => Err(ApiError::invalid("create_missing_tags: expected a boolean")),
    }
}

/// A conflict in the API's words: which field of which resource already has this value.
pub fn conflict_on(e: Error, resource: &str, field: &str, value: &str) -> ApiError {
    if e.kind() == ErrorKind::Conflict {
        ApiError::conflict(format!(
            "{field}: a {resource} with {field} '{value}' already exists"
        ))
    } else {
        e.into()
    }
}

/// The JSON form of a value (a failure is a bug: 500).
pub fn to_json<T: Serialize>(v: &T) -> ApiResult<Value> {
    serde_json::to_value(v).map_err(|e| {
        tracing::error!(error = %e, "API value not serialisable");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error; see the server log",
        )
    })
}
