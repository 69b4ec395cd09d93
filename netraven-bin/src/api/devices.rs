//! Handlers for devices and the device import.

use super::ApiState;
use super::common::{created, no_content, page_of};
use super::error::{ApiError, ApiJson, ApiPath, ApiQuery, ApiResult};
use axum::Json;
use axum::body::Bytes;
use axum::extract::{FromRequest, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use netraven_core::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::HashSet;

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

/// Largest number of rows one import accepts.
pub const MAX_IMPORT_ROWS: usize = 10_000;

/// Outcome of an import.
#[derive(Debug, Default, Serialize)]
pub struct ImportReport {
    /// Devices created.
    pub created: usize,
    /// `{row, id, hostname}` of each created device.
    pub items: Vec<serde_json::Value>,
    /// Rows whose hostname exists already or appears earlier in the file.
    pub duplicates: Vec<serde_json::Value>,
    /// Rows that could not be read or failed validation.
    pub errors: Vec<serde_json::Value>,
}

const CSV_COLUMNS: [&str; 9] = [
    "hostname",
    "address",
    "port",
    "platform",
    "tags",
    "description",
    "serial",
    "model",
    "enabled",
];

fn split_tags(s: &str) -> Vec<String> {
    s.split([';', '|'])
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(String::from)
        .collect()
}

fn parse_csv(body: &[u8]) -> ApiResult<Vec<Result<DeviceSpec, String>>> {
    let mut rdr = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .flexible(true)
        .from_reader(body);
    let headers: Vec<String> = rdr
        .headers()
        .map_err(|e| ApiError::invalid(format!("cannot read the CSV header: {e}")))?
        .iter()
        .map(|h| h.to_ascii_lowercase())
        .collect();
    for h in &headers {
        if !CSV_COLUMNS.contains(&h.as_str()) {
            return Err(ApiError::invalid(format!(
                "unknown CSV column '{h}'; known columns: {}",
                CSV_COLUMNS.join(",")
            )));
        }
    }
    for req in ["hostname", "address", "platform"] {
        if !headers.iter().any(|h| h == req) {
            return Err(ApiError::invalid(format!(
                "the CSV header needs a '{req}' column"
            )));
        }
    }
    let mut rows = Vec::new();
    for rec in rdr.records() {
        if rows.len() >= MAX_IMPORT_ROWS {
            return Err(ApiError::invalid(format!(
                "at most {MAX_IMPORT_ROWS} rows per import"
            )));
        }
        let rec = match rec {
            Ok(r) => r,
            Err(e) => {
                rows.push(Err(format!("unreadable row: {e}")));
                continue;
            }
        };
        if rec.len() != headers.len() {
            rows.push(Err(format!(
                "expected {} fields, found {}",
                headers.len(),
                rec.len()
            )));
            continue;
        }
        let get = |name: &str| -> Option<String> {
            headers
                .iter()
                .position(|h| h == name)
                .and_then(|i| rec.get(i))
                .filter(|v| !v.is_empty())
                .map(String::from)
        };
        let port = match get("port").map(|p| p.parse::<u16>()) {
            None => None,
            Some(Ok(p)) => Some(p),
            Some(Err(_)) => {
                rows.push(Err("port must be a number from 1 to 65535".to_string()));
                continue;
            }
        };
        let enabled = match get("enabled").map(|e| e.to_ascii_lowercase()) {
            None => true,
            Some(e) if matches!(e.as_str(), "true" | "yes" | "1") => true,
            Some(e) if matches!(e.as_str(), "false" | "no" | "0") => false,
            Some(_) => {
                rows.push(Err("enabled must be true or false".to_string()));
                continue;
            }
        };
        rows.push(Ok(DeviceSpec {
            hostname: get("hostname").unwrap_or_default(),
            address: get("address").unwrap_or_default(),
            port: port.unwrap_or(22),
            platform: get("platform").unwrap_or_default(),
            tags: get("tags").map(|t| split_tags(&t)).unwrap_or_default(),
            description: get("description"),
            serial: get("serial"),
            model: get("model"),
            credential_id: None,
            host_key_policy: HostKeyPolicy::default(),
            legacy_ssh: false,
            enabled,
        }));
    }
    Ok(rows)
}

fn parse_json_rows(body: &[u8]) -> ApiResult<Vec<Result<DeviceSpec, String>>> {
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
        .map(|row| serde_json::from_value::<DeviceSpec>(row).map_err(|e| e.to_string()))
        .collect())
}

/// `POST /api/devices/import`: a CSV body (`text/csv`, header
/// `hostname,address,port,platform,tags`, tags separated by `;` or `|`) or a JSON array of
/// devices. Valid rows are imported; the report lists duplicates and per-row errors (rows are
/// numbered from 1, not counting the CSV header).
pub async fn import_devices(State(st): State<ApiState>, req: Request) -> ApiResult<Response> {
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
        parse_csv(&body)?
    } else {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send text/csv or application/json",
        ));
    };
    let mut report = ImportReport::default();
    let mut seen = HashSet::new();
    for (i, row) in rows.into_iter().enumerate() {
        let n = i + 1;
        let input = match row {
            Ok(r) => r,
            Err(detail) => {
                report.errors.push(json!({ "row": n, "detail": detail }));
                continue;
            }
        };
        let d = new_device(input);
        if let Err(e) = check_device(&st, &d).await {
            report
                .errors
                .push(json!({ "row": n, "hostname": d.hostname, "detail": e.detail }));
            continue;
        }
        if !seen.insert(d.hostname.clone()) {
            report.duplicates.push(
                json!({ "row": n, "hostname": d.hostname, "detail": "repeated in this import" }),
            );
            continue;
        }
        match st.store.create_device(&d).await {
            Ok(c) => {
                report.created += 1;
                report
                    .items
                    .push(json!({ "row": n, "id": c.id, "hostname": c.hostname }));
            }
            Err(e) if e.kind() == ErrorKind::Conflict => report
                .duplicates
                .push(json!({ "row": n, "hostname": d.hostname, "detail": e.message() })),
            Err(e) if e.kind() == ErrorKind::InvalidInput => report
                .errors
                .push(json!({ "row": n, "hostname": d.hostname, "detail": e.message() })),
            Err(e) => return Err(e.into()),
        }
    }
    tracing::info!(
        created = report.created,
        duplicates = report.duplicates.len(),
        errors = report.errors.len(),
        "device import"
    );
    Ok(Json(report).into_response())
}
