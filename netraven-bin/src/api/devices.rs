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
use chrono::DateTime;
use chrono::Utc;
use netraven_core::import::ImportRow;
use netraven_core::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::HashMap;

/// A new device from its writable fields, stamped now.
fn new_device(spec: DeviceSpec) -> Device {
    let now = Utc::now();
    let mut d = Device::from_spec(spec);
    d.created_at = now;
    d.updated_at = now;
    d
}

/// Checks a device the way a run would use it: fields, address, platform, credential, tags.
async fn check_device(
    st: &ApiState,
    p: &Principal,
    old: Option<&Device>,
    d: &Device,
    create_tags: bool,
) -> ApiResult<()> {
    d.validate()?;
    check_reachable_fields(st, d).map_err(ApiError::invalid)?;
    check_trust_fields(p, old, d)?;
    if let Some(j) = &d.jump_host
        && st.store.jump_host_by_name(j).await?.is_none()
    {
        return Err(ApiError::invalid(format!(
            "jump_host: jump host '{j}' does not exist"
        )));
    }
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

/// The fields that decide where credentials are sent are an admin's (docs/security.md): an
/// operator may neither pin a credential nor change the host-key policy, the transport or the
/// jump host, nor move an existing
/// device to another address or port, since every credential sharing its tags would be offered
/// there.
fn check_trust_fields(p: &Principal, old: Option<&Device>, d: &Device) -> ApiResult<()> {
    if p.user.role == Role::Admin {
        return Ok(());
    }
    let (cred, policy, transport, jump) = match old {
        Some(o) => (
            o.credential_id,
            o.host_key_policy,
            o.transport,
            o.jump_host.clone(),
        ),
        None => (None, HostKeyPolicy::default(), Transport::default(), None),
    };
    let mut refused = Vec::new();
    if d.credential_id != cred {
        refused.push("credential_id");
    }
    if d.host_key_policy != policy {
        refused.push("host_key_policy");
    }
    // Telnet sends the password in clear text; a jump host decides where the connection (and
    // every credential offered on it) goes.
    if d.transport != transport {
        refused.push("transport");
    }
    if d.jump_host != jump {
        refused.push("jump_host");
    }
    // The zone decides which workers (sites) reach the device.
    if d.zone != old.and_then(|o| o.zone.clone()) {
        refused.push("zone");
    }
    if let Some(o) = old {
        if o.address != d.address {
            refused.push("address");
        }
        if o.port != d.port {
            refused.push("port");
        }
    }
    if refused.is_empty() {
        Ok(())
    } else {
        Err(ApiError::forbidden(format!(
            "only an admin may set {} of a device",
            refused.join(", ")
        )))
    }
}

/// The address must be an IP address or DNS name allowed by the address policy
/// (`security.allowed_networks`; names are checked by the worker when they are resolved) and
/// the platform one the server has a driver for (built in or a user platform file); the reason
/// if not.
fn check_reachable_fields(st: &ApiState, d: &DeviceSpec) -> Result<(), String> {
    validate_address(&d.address).map_err(|e| e.message().to_string())?;
    if let Some(Err(e)) = st.engine.config().address_policy.check_literal(&d.address) {
        return Err(format!("address: {}", e.message()));
    }
    if !st.engine.drivers().contains(&d.platform) {
        return Err(format!(
            "platform: unknown platform '{}' (known: {})",
            d.platform,
            st.engine.drivers().platforms().join(", ")
        ));
    }
    Ok(())
}

/// A device's current state, from its latest results and snapshots.
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct DeviceState {
    /// Status of its latest result.
    pub last_status: Option<DeviceStatus>,
    /// When its latest result was recorded.
    pub last_run_at: Option<DateTime<Utc>>,
    /// The run of its latest result.
    pub last_run_id: Option<RunId>,
    /// When it last succeeded.
    pub last_success: Option<DateTime<Utc>>,
    /// When its configuration last changed (its newest snapshot).
    pub last_change: Option<DateTime<Utc>>,
    /// Why its latest result failed (`<error kind>: <message>`), if it did.
    pub failure_reason: Option<String>,
    /// Name of the credential that logged in at its last success (never a secret).
    pub credential: Option<String>,
}

/// A device with its current state, as `GET /api/devices` and `GET /api/devices/{id}` answer.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DeviceView {
    /// The device.
    #[serde(flatten)]
    pub device: Device,
    /// Its current state.
    pub state: DeviceState,
}

/// The current state of each device (one batched result read and one snapshot read for the
/// page, one credential read per credential seen).
async fn states(st: &ApiState, devices: &[Device]) -> ApiResult<Vec<DeviceState>> {
    let ids: Vec<DeviceId> = devices.iter().map(|d| d.id).collect();
    let snaps = st.store.latest_snapshots(&ids).await?;
    let mut results = st.store.latest_results(&ids).await?;
    let mut names: HashMap<CredentialId, Option<String>> = HashMap::new();
    let mut out = Vec::with_capacity(devices.len());
    for d in devices {
        let (latest, success) = match results.remove(&d.id) {
            Some(l) => (Some(l.latest), l.latest_success),
            None => (None, None),
        };
        let credential = match success.as_ref().and_then(|r| r.credential_id) {
            None => None,
            Some(cid) => match names.get(&cid) {
                Some(n) => n.clone(),
                None => {
                    let n = match st.store.get_credential(cid).await {
                        Ok(c) => Some(c.name),
                        Err(e) if e.kind() == ErrorKind::NotFound => None,
                        Err(e) => return Err(e.into()),
                    };
                    names.insert(cid, n.clone());
                    n
                }
            },
        };
        let failure_reason = latest
            .as_ref()
            .filter(|r| r.status == DeviceStatus::Failed)
            .map(|r| {
                let kind = r.error_kind.map(|k| k.as_str()).unwrap_or("failed");
                match &r.message {
                    Some(m) => format!("{kind}: {m}"),
                    None => kind.to_string(),
                }
            });
        out.push(DeviceState {
            last_status: latest.as_ref().map(|r| r.status),
            last_run_at: latest.as_ref().map(|r| r.finished_at),
            last_run_id: latest.as_ref().map(|r| r.run_id),
            last_success: success.as_ref().map(|r| r.finished_at),
            last_change: snaps
                .iter()
                .find(|s| s.device_id == d.id)
                .map(|s| s.created_at),
            failure_reason,
            credential,
        });
    }
    Ok(out)
}

async fn views(st: &ApiState, p: Paged<Device>) -> ApiResult<Paged<DeviceView>> {
    let s = states(st, &p.items).await?;
    let mut s = s.into_iter();
    Ok(p.map(|device| DeviceView {
        device,
        state: s.next().unwrap_or_default(),
    }))
}

/// Query of `GET /api/devices`. Every filter may repeat (any of its values).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceQuery {
    /// Id equals (repeat for any of several, at most 100: how a page names the devices its
    /// logs and results mention in one request).
    #[serde(default)]
    pub id: Vec<DeviceId>,
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
    /// Status of the latest result: `SUCCESS`, `FAILED`, or `none` for never run (repeat for any).
    #[serde(default)]
    pub last_status: Vec<String>,
    /// Configuration changed (a new snapshot) at or after this time.
    pub changed_since: Option<DateTime<Utc>>,
    /// Stale: no successful result at or after this time.
    pub stale_since: Option<DateTime<Utc>>,
    /// `hostname`, `id`, `address`, `platform`, `created_at`, `updated_at` (`-` in front:
    /// descending). Default: hostname, then id.
    pub sort: Option<String>,
    /// Page.
    pub page: Option<u32>,
    /// Size (≤ 100).
    pub size: Option<u32>,
}

/// Most ids one `GET /api/devices?id=…` names.
pub const MAX_IDS: usize = 100;

/// Fields `GET /api/devices` sorts by.
pub const DEVICE_SORT: &[&str] = &[
    "hostname",
    "id",
    "address",
    "platform",
    "created_at",
    "updated_at",
];

/// `GET /api/devices`: devices with their current state.
pub async fn list_devices(
    State(st): State<ApiState>,
    ApiQuery(q): ApiQuery<DeviceQuery>,
) -> ApiResult<Json<Paged<DeviceView>>> {
    let page = page_of(q.page, q.size)?;
    let sort = parse_sort(q.sort.as_deref(), DEVICE_SORT)?;
    let (hosts, addrs, platforms, tags) = (
        values(q.hostname),
        values(q.address),
        values(q.platform),
        values(q.tag),
    );
    // `None` stands for "never run".
    let last_status = values(q.last_status)
        .iter()
        .map(|s| match s.to_ascii_uppercase().as_str() {
            "NONE" => Ok(None),
            u => DeviceStatus::parse(u).map(Some).ok_or_else(|| {
                ApiError::invalid(format!(
                    "last_status: unknown status '{s}' (SUCCESS, FAILED or none)"
                ))
            }),
        })
        .collect::<ApiResult<Vec<_>>>()?;
    // What the store can filter: one value per filter.
    let f = DeviceFilter {
        hostname: single(&hosts),
        address: single(&addrs),
        platform: single(&platforms),
        tag: single(&tags),
    };
    if q.id.len() > MAX_IDS {
        return Err(ApiError::invalid(format!(
            "id: at most {MAX_IDS} ids per request ({} given)",
            q.id.len()
        )));
    }
    let in_store = q.id.is_empty()
        && [&hosts, &addrs, &platforms, &tags]
            .iter()
            .all(|v| v.len() <= 1);
    let by_state = !last_status.is_empty() || q.changed_since.is_some() || q.stale_since.is_some();
    if in_store && sort.is_none() && q.enabled.is_none() && !by_state {
        let p = st.store.list_devices(&f, page).await?;
        return Ok(Json(views(&st, p).await?));
    }
    let candidates = if !q.id.is_empty() {
        let mut all = st.store.devices_by_ids(&q.id).await?;
        all.sort_by(|a, b| a.hostname.cmp(&b.hostname).then(a.id.cmp(&b.id)));
        // A repeated id names its device once; the other filters apply below.
        all.dedup_by_key(|d| d.id);
        all
    } else if tags.len() > 1 {
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
    let matching: Vec<Device> = candidates
        .into_iter()
        .filter(|d| contains_any(&d.hostname, &hosts) && contains_any(&d.address, &addrs))
        .filter(|d| any_of(&d.platform, &platforms))
        .filter(|d| tags.is_empty() || d.tags.iter().any(|t| tags.contains(t)))
        .filter(|d| q.enabled.is_none_or(|e| d.enabled == e))
        .collect();
    if !by_state {
        let p = page_items(matching, sort.as_ref(), page);
        return Ok(Json(views(&st, p).await?));
    }
    let s = states(&st, &matching).await?;
    let items: Vec<DeviceView> = matching
        .into_iter()
        .zip(s)
        .filter(|(_, s)| any_of(&s.last_status, &last_status))
        .filter(|(_, s)| {
            q.changed_since
                .is_none_or(|t| s.last_change.is_some_and(|c| c >= t))
        })
        .filter(|(_, s)| {
            q.stale_since
                .is_none_or(|t| s.last_success.is_none_or(|c| c < t))
        })
        .map(|(device, state)| DeviceView { device, state })
        .collect();
    Ok(Json(page_items(items, sort.as_ref(), page)))
}

/// Saves a device (id 0: a new one), mapping a duplicate hostname to a 409 naming it; answers
/// the saved device with its state.
async fn save(st: &ApiState, d: Device) -> ApiResult<DeviceView> {
    let saved = if d.id == 0 {
        st.store.create_device(&d).await
    } else {
        st.store.update_device(&d).await
    };
    let device = saved.map_err(|e| conflict_on(e, "device", "hostname", &d.hostname))?;
    let state = states(st, std::slice::from_ref(&device))
        .await?
        .pop()
        .unwrap_or_default();
    Ok(DeviceView { device, state })
}

/// `POST /api/devices`: a [`DeviceSpec`] plus `create_missing_tags` (default false).
pub async fn create_device(
    State(st): State<ApiState>,
    Extension(p): Extension<Principal>,
    ApiJson(mut v): ApiJson<Value>,
) -> ApiResult<Response> {
    let create_tags = take_create_missing_tags(&mut v, false)?;
    let d = new_device(from_json(v)?);
    check_device(&st, &p, None, &d, create_tags).await?;
    Ok(created(save(&st, d).await?))
}

/// `GET /api/devices/{id}`: the device with its current state.
pub async fn get_device(
    State(st): State<ApiState>,
    ApiPath(id): ApiPath<DeviceId>,
) -> ApiResult<Json<DeviceView>> {
    let device = st.store.get_device(id).await?;
    let state = states(&st, std::slice::from_ref(&device))
        .await?
        .pop()
        .unwrap_or_default();
    Ok(Json(DeviceView { device, state }))
}

async fn replace(
    st: &ApiState,
    p: &Principal,
    old: Device,
    spec: Value,
    create_tags: bool,
) -> ApiResult<DeviceView> {
    let mut d = new_device(from_json(spec)?);
    d.id = old.id;
    d.created_at = old.created_at;
    check_device(st, p, Some(&old), &d, create_tags).await?;
    save(st, d).await
}

/// `PUT /api/devices/{id}`: replaces every writable field (omitted ones take their defaults).
pub async fn update_device(
    State(st): State<ApiState>,
    Extension(p): Extension<Principal>,
    ApiPath(id): ApiPath<DeviceId>,
    ApiJson(mut v): ApiJson<Value>,
) -> ApiResult<Json<DeviceView>> {
    let old = st.store.get_device(id).await?;
    let create_tags = take_create_missing_tags(&mut v, false)?;
    Ok(Json(replace(&st, &p, old, v, create_tags).await?))
}

/// `PATCH /api/devices/{id}`: JSON merge patch of the writable fields.
pub async fn patch_device(
    State(st): State<ApiState>,
    Extension(who): Extension<Principal>,
    ApiPath(id): ApiPath<DeviceId>,
    ApiJson(mut p): ApiJson<Value>,
) -> ApiResult<Json<DeviceView>> {
    let old = st.store.get_device(id).await?;
    let create_tags = take_create_missing_tags(&mut p, false)?;
    let mut v = to_json(&old.spec)?;
    merge_patch(&mut v, p);
    Ok(Json(replace(&st, &who, old, v, create_tags).await?))
}

/// What `POST /api/devices/bulk` does to every listed device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum BulkAction {
    /// Delete the devices.
    Delete,
    /// Add `tags` to each device.
    AddTags,
    /// Remove `tags` from each device.
    RemoveTags,
}

/// Body of `POST /api/devices/bulk`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BulkInput {
    /// The devices (1 to 1000 ids; every one must exist).
    pub ids: Vec<DeviceId>,
    /// What to do.
    pub action: BulkAction,
    /// The tags to add or remove.
    #[serde(default)]
    pub tags: Vec<String>,
    /// With `add_tags`: create the tags that do not exist (default: 422 listing them).
    #[serde(default)]
    pub create_missing_tags: bool,
}

/// Answer of `POST /api/devices/bulk`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct BulkReport {
    /// What was done.
    pub action: BulkAction,
    /// The devices it was done to.
    pub ids: Vec<DeviceId>,
    /// The devices that changed (a tag already present or absent changes nothing).
    pub changed: usize,
}

/// Most devices one bulk request changes.
pub const MAX_BULK: usize = 1000;

/// `POST /api/devices/bulk`: delete or retag many devices. Every id must exist (422 naming the
/// unknown ones, nothing is changed).
pub async fn bulk(
    State(st): State<ApiState>,
    ApiJson(b): ApiJson<BulkInput>,
) -> ApiResult<Json<BulkReport>> {
    let mut ids = b.ids.clone();
    ids.sort_unstable();
    ids.dedup();
    if ids.is_empty() || ids.len() > MAX_BULK {
        return Err(ApiError::invalid(format!(
            "ids: 1 to {MAX_BULK} device ids"
        )));
    }
    let devices = st.store.devices_by_ids(&ids).await?;
    let missing: Vec<String> = ids
        .iter()
        .filter(|id| !devices.iter().any(|d| d.id == **id))
        .map(|id| id.to_string())
        .collect();
    if !missing.is_empty() {
        return Err(ApiError::invalid(format!(
            "ids: unknown device id(s) {}",
            missing.join(", ")
        )));
    }
    if b.action != BulkAction::Delete {
        if b.tags.is_empty() {
            return Err(ApiError::invalid("tags: name at least one tag"));
        }
        for t in &b.tags {
            validate_name("tags", t)?;
        }
    }
    if b.action == BulkAction::AddTags {
        check_tags(st.store.as_ref(), &b.tags, b.create_missing_tags).await?;
    }
    let mut changed = 0;
    for mut d in devices {
        match b.action {
            BulkAction::Delete => match st.store.delete_device(d.id).await {
                Ok(()) => changed += 1,
                // Deleted meanwhile by another request: the outcome is the same.
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => return Err(e.into()),
            },
            BulkAction::AddTags | BulkAction::RemoveTags => {
                let before = d.tags.clone();
                if b.action == BulkAction::AddTags {
                    for t in &b.tags {
                        if !d.tags.contains(t) {
                            d.tags.push(t.clone());
                        }
                    }
                } else {
                    d.tags.retain(|t| !b.tags.contains(t));
                }
                if d.tags != before {
                    d.updated_at = Utc::now();
                    st.store.update_device(&d).await?;
                    changed += 1;
                }
            }
        }
    }
    tracing::info!(action = ?b.action, devices = ids.len(), changed, "bulk device change");
    Ok(Json(BulkReport {
        action: b.action,
        ids,
        changed,
    }))
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
    let trust = rows.iter().any(|r| {
        matches!(r, Ok(r) if r.device.credential_id.is_some()
            || r.device.host_key_policy != HostKeyPolicy::default()
            || r.device.zone.is_some())
    });
    if trust && p.user.role != Role::Admin {
        return Err(ApiError::forbidden(
            "only an admin may set credential_id, host_key_policy or zone of a device",
        ));
    }
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
