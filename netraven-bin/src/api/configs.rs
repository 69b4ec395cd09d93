//! Handlers for configuration history, snapshots, diffs and search.

use super::ApiState;
use super::common::{page_of, parse_sort, read_all};
use super::error::{ApiError, ApiPath, ApiQuery, ApiResult};
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
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

/// An entity tag for a snapshot: its id and content hash (snapshots never change).
fn etag(meta: &SnapshotMeta) -> String {
    format!("\"{}-{}\"", meta.id, meta.hash)
}

/// Whether the client's `If-None-Match` already names this entity tag.
fn not_modified(headers: &HeaderMap, tag: &str) -> bool {
    headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == tag || t.trim() == "*"))
}

/// The snapshot as JSON, or as a `text/plain` download named after the device, with its ETag
/// (304 when the client has it).
fn snapshot_response(
    snap: Snapshot,
    format: Option<&str>,
    headers: &HeaderMap,
) -> ApiResult<Response> {
    let tag = etag(&snap.meta);
    let cache = [
        (header::ETAG, tag.clone()),
        (
            header::CACHE_CONTROL,
            "private, max-age=0, must-revalidate".to_string(),
        ),
    ];
    if not_modified(headers, &tag) {
        return Ok((StatusCode::NOT_MODIFIED, cache).into_response());
    }
    match format.unwrap_or("json") {
        "json" => Ok((cache, Json(snap)).into_response()),
        "text" | "raw" => {
            // The hostname passed validate_name (no quotes or separators), so it is a safe name.
            let name = format!(
                "attachment; filename=\"{}-{}.cfg\"",
                snap.meta.hostname, snap.meta.id
            );
            Ok((
                cache,
                [
                    (
                        header::CONTENT_TYPE,
                        "text/plain; charset=utf-8".to_string(),
                    ),
                    (header::CONTENT_DISPOSITION, name),
                ],
                snap.content,
            )
                .into_response())
        }
        other => Err(ApiError::invalid(format!(
            "format: '{other}' is not offered (json or text)"
        ))),
    }
}

/// Query of the snapshot routes.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnapshotQuery {
    /// `json` (default: the snapshot with its content) or `text` (the configuration as a
    /// `text/plain` download).
    pub format: Option<String>,
}

/// `GET /api/configs/snapshots/{id}`: the snapshot with its content (ETag, `If-None-Match`).
pub async fn snapshot(
    State(st): State<ApiState>,
    ApiPath(id): ApiPath<SnapshotId>,
    headers: HeaderMap,
    ApiQuery(q): ApiQuery<SnapshotQuery>,
) -> ApiResult<Response> {
    snapshot_response(st.sink.get(id).await?, q.format.as_deref(), &headers)
}

/// `GET /api/configs/{device_id}/latest`: the device's newest snapshot (404 for an unknown
/// device or one without a snapshot), as JSON or `format=text`, with its ETag.
pub async fn latest(
    State(st): State<ApiState>,
    ApiPath(device_id): ApiPath<DeviceId>,
    headers: HeaderMap,
    ApiQuery(q): ApiQuery<SnapshotQuery>,
) -> ApiResult<Response> {
    let meta = st
        .store
        .latest_snapshot(device_id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no snapshot of device {device_id}")))?;
    snapshot_response(st.sink.get(meta.id).await?, q.format.as_deref(), &headers)
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
    /// Text to find: literal and case-insensitive, or a regular expression with `regex=true`.
    pub q: String,
    /// Treat `q` as a regular expression (case-insensitive, `^`/`$` at line ends; default false).
    pub regex: Option<bool>,
    /// Lines of context around each matching line (0 to 10, default 2).
    pub context: Option<usize>,
    /// `hostname` only (the default order).
    pub sort: Option<String>,
    /// Page.
    pub page: Option<u32>,
    /// Size (≤ 100).
    pub size: Option<u32>,
}

/// One matching line of a configuration.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct LineMatch {
    /// 1-based line number.
    pub line: usize,
    /// The line.
    pub text: String,
    /// Up to `context` lines before it.
    pub before: Vec<String>,
    /// Up to `context` lines after it.
    pub after: Vec<String>,
}

/// A device's latest snapshot that matches, with its matching lines.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SearchHit {
    /// The snapshot.
    #[serde(flatten)]
    pub meta: SnapshotMeta,
    /// Its matching lines (at most [`MAX_LINE_MATCHES`]).
    pub matches: Vec<LineMatch>,
    /// Whether more lines match than are listed.
    pub more_matches: bool,
}

/// Matching lines listed per snapshot at most.
pub const MAX_LINE_MATCHES: usize = 20;

/// The lines of `content` that match, with their context.
fn line_matches(
    content: &str,
    is_match: &dyn Fn(&str) -> bool,
    context: usize,
) -> (Vec<LineMatch>, bool) {
    let lines: Vec<&str> = content.lines().collect();
    let mut out = Vec::new();
    let mut more = false;
    for (i, l) in lines.iter().enumerate() {
        if !is_match(l) {
            continue;
        }
        if out.len() == MAX_LINE_MATCHES {
            more = true;
            break;
        }
        let own = |s: &[&str]| s.iter().map(|x| x.to_string()).collect();
        out.push(LineMatch {
            line: i + 1,
            text: l.to_string(),
            before: own(&lines[i.saturating_sub(context)..i]),
            after: own(&lines[i + 1..(i + 1 + context).min(lines.len())]),
        });
    }
    (out, more)
}

/// `GET /api/configs/search?q=`: the latest snapshot of each device whose configuration
/// contains `q` (or matches it as a regular expression with `regex=true`), by hostname, each
/// with its matching lines, their line numbers and `context` lines around them.
pub async fn search(
    State(st): State<ApiState>,
    ApiQuery(q): ApiQuery<SearchQuery>,
) -> ApiResult<Json<Paged<SearchHit>>> {
    let page = page_of(q.page, q.size)?;
    parse_sort(q.sort.as_deref(), &["hostname"])?
        .filter(|s| s.desc)
        .map_or(Ok(()), |_| {
            Err(ApiError::invalid(
                "sort: the search is ordered by hostname, ascending only",
            ))
        })?;
    if q.q.trim().is_empty() || q.q.len() > 1000 {
        return Err(ApiError::invalid("q: 1 to 1000 characters"));
    }
    let context = q.context.unwrap_or(2);
    if context > 10 {
        return Err(ApiError::invalid("context: 0 to 10 lines"));
    }
    let (metas, re) = if q.regex.unwrap_or(false) {
        // Bounded compiled size: a pattern cannot make the server build a huge automaton.
        let re = regex::RegexBuilder::new(&q.q)
            .case_insensitive(true)
            .multi_line(true)
            .size_limit(1 << 20)
            .build()
            .map_err(|e| ApiError::invalid(format!("q: not a valid regular expression: {e}")))?;
        let all = DeviceFilter::default();
        let devices = read_all(|p| st.store.list_devices(&all, p)).await?;
        let ids: Vec<DeviceId> = devices.iter().map(|d| d.id).collect();
        let mut latest = Vec::new();
        for chunk in ids.chunks(500) {
            latest.extend(st.store.latest_snapshots(chunk).await?);
        }
        latest.sort_by(|a, b| {
            a.hostname
                .cmp(&b.hostname)
                .then(a.device_id.cmp(&b.device_id))
        });
        let mut hits = Vec::new();
        for m in latest {
            let snap = st.sink.get(m.id).await?;
            if re.is_match(&snap.content) {
                hits.push(snap);
            }
        }
        let total = hits.len() as u64;
        let items: Vec<Snapshot> = hits
            .into_iter()
            .skip(page.offset() as usize)
            .take(page.size as usize)
            .collect();
        (Paged::new(items, total, page), Some(re))
    } else {
        let p = st.store.search_latest(&q.q, page).await?;
        let mut items = Vec::with_capacity(p.items.len());
        for m in &p.items {
            items.push(st.sink.get(m.id).await?);
        }
        (Paged::new(items, p.total, page), None)
    };
    let needle = q.q.to_lowercase();
    let is_match = |l: &str| match &re {
        Some(re) => re.is_match(l),
        None => l.to_lowercase().contains(&needle),
    };
    Ok(Json(metas.map(|snap| {
        let (matches, more_matches) = line_matches(&snap.content, &is_match, context);
        SearchHit {
            meta: snap.meta,
            matches,
            more_matches,
        }
    })))
}
