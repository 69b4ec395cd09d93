//! Handlers for devices and the device import.

use super::ApiState;
use super::auth::Principal;
use super::common::{
    MAX_SCAN, any_of, check_tags, conflict_on, contains_any, created, merge_patch, no_content,
    page_items, page_of, parse_sort, read_all, single, take_create_missing_tags, to_json, values,
};
use super::error::{ApiError, ApiJson, ApiPath, ApiQuery, ApiResult, from_json};
use axum::body::Bytes;
use axum::extract::{FromRequest, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use chrono::Utc;
use netraven_core::import::ImportRow;
use netraven_core::prelude::*;
use serde::Deserialize;
use serde_json::Value;

/// A new device from its writable fields, stamped now.
fn new_device(spec: DeviceSpec) -> Device {
    let now = Utc::now();
    let mut d = Device::from_spec(spec);
    d.created_at = now;
    d.updated_at = now;
    d
}

/// Checks a device the way a run would use it: fields, address, platform, credential, tags.
async fn check_device(st: &ApiState, d: &Device, create_tags: bool) -> ApiResult<()> {
    d.validate()?;
    check_reachable_fields(st, d).map_err(ApiError::invalid)?;
    if let Some(cid) = d.credential_id {
        match st.store.get_credential(cid).await {
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => {
                return Err(ApiError::invalid(format!(
                    "credential_id: credential {cid} does not exist"
                )));
            }
            Err(e) => return Err(e.into()),
        }
    }
    check_tags(st.store.as_ref(), &d.tags, create_tags).await
}

/// The address must be an IP address or DNS name and the platform one the server has a driver
/// for (built in or a user platform file); the reason if not.
fn check_reachable_fields(st: &ApiState, d: &DeviceSpec) -> Result<(), String> {
    validate_address(&d.address).map_err(|e| e.message().to_string())?;
    if !st.engine.drivers().contains(&d.platform) {
        return Err(format!(
            "platform: unknown platform '{}' (known: {})",
            d.platform,
            st.engine.drivers().platforms().join(", ")
        ));
    }
    Ok(())
}

/// Query of `GET /api/devices`. Every filter may repeat (any of its values).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceQuery {
    /// Hostname contains (case-insensitive).
    #[serde(default)]
    pub hostname: Vec<String>,
    /// Address contains (case-insensitive).
    #[serde(default)]
    pub address: Vec<String>,
    /// Platform equals.
    #[serde(default)]
    pub platform: Vec<String>,
    /// Carries the tag.
    #[serde(default)]
    pub tag: Vec<String>,
    /// Enabled or not.
    pub enabled: Option<bool>,
    /// `hostname`, `id`, `address`, `platform`, `created_at`, `updated_at` (`-` in front:
    /// descending). Default: hostname, then id.
    pub sort: Option<String>,
    /// Page.
    pub page: Option<u32>,
    /// Size (≤ 100).
    pub size: Option<u32>,
}

/// Fields `GET /api/devices` sorts by.
pub const DEVICE_SORT: &[&str] = &[
    "hostname",
    "id",
    "address",
    "platform",
    "created_at",
    "updated_at",
];

/// `GET /api/devices`.
pub async fn list_devices(
    State(st): State<ApiState>,
    ApiQuery(q): ApiQuery<DeviceQuery>,
) -> ApiResult<Json<Paged<Device>>> {
    let page = page_of(q.page, q.size)?;
    let sort = parse_sort(q.sort.as_deref(), DEVICE_SORT)?;
    let (hosts, addrs, platforms, tags) = (
        values(q.hostname),
        values(q.address),
        values(q.platform),
        values(q.tag),
    );
    // What the store can filter: one value per filter.
    let f = DeviceFilter {
        hostname: single(&hosts),
        address: single(&addrs),
        platform: single(&platforms),
        tag: single(&tags),
    };
    let in_store = [&hosts, &addrs, &platforms, &tags]
        .iter()
        .all(|v| v.len() <= 1);
    if in_store && sort.is_none() && q.enabled.is_none() {
        return Ok(Json(st.store.list_devices(&f, page).await?));
    }
    let candidates = if tags.len() > 1 {
        // Any of several tags: the store finds their devices by id.
        let ids = st.store.device_ids_with_tags(&tags).await?;
        if ids.len() as u64 > MAX_SCAN {
            return Err(ApiError::invalid(format!(
                "{} devices carry these tags; narrow the filters",
                ids.len()
            )));
        }
        let mut all = st.store.devices_by_ids(&ids).await?;
        all.sort_by(|a, b| a.hostname.cmp(&b.hostname).then(a.id.cmp(&b.id)));
        all
    } else {
        read_all(|p| st.store.list_devices(&f, p)).await?
    };
    let items = candidates
        .into_iter()
        .filter(|d| contains_any(&d.hostname, &hosts) && contains_any(&d.address, &addrs))
        .filter(|d| any_of(&d.platform, &platforms))
        .filter(|d| tags.is_empty() || d.tags.iter().any(|t| tags.contains(t)))
        .filter(|d| q.enabled.is_none_or(|e| d.enabled == e))
        .collect();
    Ok(Json(page_items(items, sort.as_ref(), page)))
}

/// Saves a device (id 0: a new one), mapping a duplicate hostname to a 409 naming it.
async fn save(st: &ApiState, d: Device) -> ApiResult<Device> {
    let saved = if d.id == 0 {
        st.store.create_device(&d).await
    } else {
        st.store.update_device(&d).await
    };
    saved.map_err(|e| conflict_on(e, "device", "hostname", &d.hostname))
}

/// `POST /api/devices`: a [`DeviceSpec`] plus `create_missing_tags` (default false).
pub async fn create_device(
    State(st): State<ApiState>,
    ApiJson(mut v): ApiJson<Value>,
) -> ApiResult<Response> {
    let create_tags = take_create_missing_tags(&mut v, false)?;
    let d = new_device(from_json(v)?);
    check_device(&st, &d, create_tags).await?;
    Ok(created(save(&st, d).await?))
}

/// `GET /api/devices/{id}`.
pub async fn get_device(
    State(st): State<ApiState>,
    ApiPath(id): ApiPath<DeviceId>,
) -> ApiResult<Json<Device>> {
    Ok(Json(st.store.get_device(id).await?))
}

async fn replace(st: &ApiState, old: Device, spec: Value, create_tags: bool) -> ApiResult<Device> {
    let mut d = new_device(from_json(spec)?);
    d.id = old.id;
    d.created_at = old.created_at;
    check_device(st, &d, create_tags).await?;
    save(st, d).await
}

/// `PUT /api/devices/{id}`: replaces every writable field (omitted ones take their defaults).
pub async fn update_device(
    State(st): State<ApiState>,
    ApiPath(id): ApiPath<DeviceId>,
    ApiJson(mut v): ApiJson<Value>,
) -> ApiResult<Json<Device>> {
    let old = st.store.get_device(id).await?;
    let create_tags = take_create_missing_tags(&mut v, false)?;
    Ok(Json(replace(&st, old, v, create_tags).await?))
}

/// `PATCH /api/devices/{id}`: JSON merge patch of the writable fields.
pub async fn patch_device(
    State(st): State<ApiState>,
    ApiPath(id): ApiPath<DeviceId>,
    ApiJson(mut p): ApiJson<Value>,
) -> ApiResult<Json<Device>> {
    let old = st.store.get_device(id).await?;
    let create_tags = take_create_missing_tags(&mut p, false)?;
    let mut v = to_json(&old.spec)?;
    merge_patch(&mut v, p);
    Ok(Json(replace(&st, old, v, create_tags).await?))
}

/// `DELETE /api/devices/{id}`.
pub async fn delete_device(
    State(st): State<ApiState>,
    ApiPath(id): ApiPath<DeviceId>,
) -> ApiResult<StatusCode> {
    st.store.delete_device(id).await?;
    Ok(no_content())
}

pub use netraven_core::import::MAX_IMPORT_ROWS;

fn parse_json_rows(body: &[u8]) -> ApiResult<Vec<Result<ImportRow, String>>> {
    let v: Vec<serde_json::Value> = serde_json::from_slice(body).map_err(|e| {
        if e.is_syntax() || e.is_eof() {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "bad_request",
                format!("malformed JSON: {e}"),
            )
        } else {
            ApiError::invalid(format!("expected a JSON array of devices: {e}"))
        }
    })?;
    if v.len() > MAX_IMPORT_ROWS {
        return Err(ApiError::invalid(format!(
            "at most {MAX_IMPORT_ROWS} rows per import"
        )));
    }
    Ok(v.into_iter()
        .map(|row| {
            let spec = from_json::<DeviceSpec>(row).map_err(|e| e.detail)?;
            Ok(ImportRow {
                device: Device::from_spec(spec),
                login: None,
            })
        })
        .collect())
}

/// `POST /api/devices/import`: a CSV body (`text/csv`; the columns of
/// [`netraven_core::import::CSV_COLUMNS`], e.g. the inventory `netraven sim` writes, tags
/// separated by `;` or `|`) or a JSON array of devices. Valid rows are imported; the report
/// lists duplicates, per-row errors (rows are numbered from 1, not counting the CSV header) and
/// the credentials made or reused from login columns (an admin's right: operators get 403 for
/// a file with logins), never their secrets.
pub async fn import_devices(
    State(st): State<ApiState>,
    Extension(p): Extension<Principal>,
    req: Request,
) -> ApiResult<Response> {
    let ct = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let body = Bytes::from_request(req, &()).await?;
    let rows = if ct.contains("json") {
        parse_json_rows(&body)?
    } else if ct.starts_with("text/csv") || ct.starts_with("text/plain") || ct.is_empty() {
        netraven_core::import::parse_csv(&body)?
    } else {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send text/csv or application/json",
        ));
    };
    // Rows naming an unknown platform or a bad address are reported, not saved.
    let rows = rows
        .into_iter()
        .map(|r| r.and_then(|row| check_reachable_fields(&st, &row.device).map(|()| row)))
        .collect::<Vec<_>>();
    let logins = rows.iter().any(|r| matches!(r, Ok(r) if r.login.is_some()));
    if logins && p.user.role != Role::Admin {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "importing login columns creates credentials, which needs the admin role",
        ));
    }
    let report = netraven_core::import::import(st.store.as_ref(), rows).await?;
    tracing::info!(
        created = report.created,
        duplicates = report.duplicates.len(),
        errors = report.errors.len(),
        credentials_created = report.credentials.created,
        credentials_reused = report.credentials.reused,
        "device import"
    );
    Ok(Json(report).into_response())
}
