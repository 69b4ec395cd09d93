//! Handlers for devices and the device import.

use super::ApiState;
use super::auth::Principal;
use super::common::{created, no_content, page_of};
use super::error::{ApiError, ApiJson, ApiPath, ApiQuery, ApiResult};
use axum::body::Bytes;
use axum::extract::{FromRequest, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use chrono::Utc;
use netraven_core::import::ImportRow;
use netraven_core::prelude::*;
use serde::Deserialize;

/// A new device from its writable fields, stamped now.
fn new_device(spec: DeviceSpec) -> Device {
    let now = Utc::now();
    let mut d = Device::from_spec(spec);
    d.created_at = now;
    d.updated_at = now;
    d
}

async fn check_device(st: &ApiState, d: &Device) -> ApiResult<()> {
    d.validate()?;
    if let Some(cid) = d.credential_id {
        match st.store.get_credential(cid).await {
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => {
                return Err(ApiError::invalid(format!(
                    "credential {cid} does not exist"
                )));
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Query of `GET /api/devices`.
#[derive(Debug, Deserialize)]
pub struct DeviceQuery {
    /// Hostname contains.
    pub hostname: Option<String>,
    /// Address contains.
    pub address: Option<String>,
    /// Platform equals.
    pub platform: Option<String>,
    /// Carries tag.
    pub tag: Option<String>,
    /// Page.
    pub page: Option<u32>,
    /// Size.
    pub size: Option<u32>,
}

/// `GET /api/devices`.
pub async fn list_devices(
    State(st): State<ApiState>,
    ApiQuery(q): ApiQuery<DeviceQuery>,
) -> ApiResult<Json<Paged<Device>>> {
    let page = page_of(q.page, q.size)?;
    let f = DeviceFilter {
        hostname: q.hostname.filter(|s| !s.is_empty()),
        address: q.address.filter(|s| !s.is_empty()),
        platform: q.platform.filter(|s| !s.is_empty()),
        tag: q.tag.filter(|s| !s.is_empty()),
    };
    Ok(Json(st.store.list_devices(&f, page).await?))
}

/// `POST /api/devices`.
pub async fn create_device(
    State(st): State<ApiState>,
    ApiJson(b): ApiJson<DeviceSpec>,
) -> ApiResult<Response> {
    let d = new_device(b);
    check_device(&st, &d).await?;
    Ok(created(st.store.create_device(&d).await?))
}

/// `GET /api/devices/{id}`.
pub async fn get_device(
    State(st): State<ApiState>,
    ApiPath(id): ApiPath<DeviceId>,
) -> ApiResult<Json<Device>> {
    Ok(Json(st.store.get_device(id).await?))
}

/// `PUT /api/devices/{id}`.
pub async fn update_device(
    State(st): State<ApiState>,
    ApiPath(id): ApiPath<DeviceId>,
    ApiJson(b): ApiJson<DeviceSpec>,
) -> ApiResult<Json<Device>> {
    let old = st.store.get_device(id).await?;
    let mut d = new_device(b);
    d.id = id;
    d.created_at = old.created_at;
    check_device(&st, &d).await?;
    Ok(Json(st.store.update_device(&d).await?))
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
            let spec = serde_json::from_value::<DeviceSpec>(row).map_err(|e| e.to_string())?;
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
