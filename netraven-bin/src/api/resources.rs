//! Handlers for login, users, API tokens, tags, credentials, devices (and import) and jobs.
//! Handlers only translate HTTP to store calls; validation lives in the core model.

use super::ApiState;
use super::auth::{self, Principal};
use super::error::{ApiError, ApiJson, ApiPath, ApiQuery, ApiResult};
use axum::Extension;
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

fn created<T: Serialize>(v: T) -> Response {
    (StatusCode::CREATED, Json(v)).into_response()
}

fn no_content() -> StatusCode {
    StatusCode::NO_CONTENT
}

// ---------------------------------------------------------------------------------------------
// Login

/// Login form (form-encoded or JSON). Extra OAuth2 fields (`grant_type`, `scope`, …) are ignored
/// so OAuth2 password-flow clients work.
#[derive(Debug, Deserialize)]
pub struct LoginForm {
    /// User name.
    pub username: String,
    /// Password.
    pub password: Secret,
}

/// `POST /api/auth/token`.
pub async fn login(State(st): State<ApiState>, req: Request) -> ApiResult<Response> {
    let is_form = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    let form: LoginForm = if is_form {
        axum::Form::<LoginForm>::from_request(req, &())
            .await
            .map_err(|r| ApiError::new(r.status(), "invalid_input", r.body_text()))
            .map(|f| f.0)?
    } else {
        ApiJson::<LoginForm>::from_request(req, &()).await?.0
    };
    let a = &st.auth;
    if !st
        .limiter
        .allowed(&form.username, a.max_failed_logins, a.login_window)
    {
        tracing::warn!("login refused: too many failed attempts for this user name");
        return Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_requests",
            "too many failed logins for this user; try again later",
        ));
    }
    let user = st.store.get_user_by_name(&form.username).await?;
    let known = matches!(&user, Some(u) if u.active);
    // Unknown and inactive users are checked against a dummy hash, so the response time does not
    // tell which user names exist.
    let hash = match &user {
        Some(u) if u.active => u.password_hash.clone(),
        _ => auth::dummy_hash().to_string(),
    };
    let pw = form.password.clone();
    let verified = tokio::task::spawn_blocking(move || auth::verify_password(pw.expose(), &hash))
        .await
        .unwrap_or(false);
    let ok = known && verified;
    let Some(user) = user.filter(|_| ok) else {
        st.limiter.failed(&form.username);
        tracing::warn!("failed login");
        return Err(ApiError::unauthorized("incorrect username or password"));
    };
    st.limiter.succeeded(&form.username);
    let token = auth::issue_jwt(a, &user)?;
    tracing::info!(user_id = user.id, "login");
    Ok(Json(json!({
        "access_token": token,
        "token_type": "bearer",
        "expires_in": a.token_ttl.as_secs(),
    }))
    .into_response())
}

/// `GET /api/auth/me`.
pub async fn me(Extension(p): Extension<Principal>) -> Json<serde_json::Value> {
    Json(json!({ "user": p.user, "auth": p.method }))
}

// ---------------------------------------------------------------------------------------------
// Users

/// Body of `POST /api/users`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserCreate {
    /// Login name.
    pub username: String,
    /// Password (at least 8 characters).
    pub password: Secret,
    /// Role (default viewer).
    #[serde(default = "viewer")]
    pub role: Role,
    /// Active (default true).
    #[serde(default = "yes")]
    pub active: bool,
}

fn viewer() -> Role {
    Role::Viewer
}
fn yes() -> bool {
    true
}

/// Body of `PUT /api/users/{id}`; omitted fields stay.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserUpdate {
    /// New password.
    pub password: Option<Secret>,
    /// New role.
    pub role: Option<Role>,
    /// Active flag.
    pub active: Option<bool>,
}

async fn hash(pw: &Secret) -> ApiResult<String> {
    auth::validate_password(pw.expose())?;
    let pw = pw.clone();
    Ok(
        tokio::task::spawn_blocking(move || auth::hash_password(pw.expose()))
            .await
            .map_err(|e| Error::internal(format!("hashing task failed: {e}")))??,
    )
}

/// `GET /api/users`.
pub async fn list_users(
    State(st): State<ApiState>,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> ApiResult<Json<Paged<User>>> {
    Ok(Json(st.store.list_users(page_of(q.page, q.size)?).await?))
}

/// `POST /api/users`.
pub async fn create_user(
    State(st): State<ApiState>,
    ApiJson(b): ApiJson<UserCreate>,
) -> ApiResult<Response> {
    validate_name("username", &b.username)?;
    let password_hash = hash(&b.password).await?;
    let u = st
        .store
        .create_user(&User {
            id: 0,
            username: b.username,
            password_hash,
            role: b.role,
            active: b.active,
            created_at: Utc::now(),
        })
        .await?;
    Ok(created(u))
}

/// `GET /api/users/{id}`.
pub async fn get_user(
    State(st): State<ApiState>,
    ApiPath(id): ApiPath<UserId>,
) -> ApiResult<Json<User>> {
    Ok(Json(st.store.get_user(id).await?))
}

async fn other_active_admins(st: &ApiState, except: UserId) -> ApiResult<usize> {
    let all = st.store.list_users(Page::new(1, 10_000)).await?;
    Ok(all
        .items
        .iter()
        .filter(|u| u.id != except && u.active && u.role == Role::Admin)
        .count())
}

/// `PUT /api/users/{id}`.
pub async fn update_user(
    State(st): State<ApiState>,
    ApiPath(id): ApiPath<UserId>,
    ApiJson(b): ApiJson<UserUpdate>,
) -> ApiResult<Json<User>> {
    let mut u = st.store.get_user(id).await?;
    let demotes = b.role.is_some_and(|r| r != Role::Admin) || b.active == Some(false);
    if u.role == Role::Admin && demotes && other_active_admins(&st, id).await? == 0 {
        return Err(ApiError::conflict(
            "this is the last active admin; create another admin first",
        ));
    }
    if let Some(pw) = &b.password {
        u.password_hash = hash(pw).await?;
    }
    if let Some(r) = b.role {
        u.role = r;
    }
    if let Some(a) = b.active {
        u.active = a;
    }
    Ok(Json(st.store.update_user(&u).await?))
}

/// `DELETE /api/users/{id}`.
pub async fn delete_user(
    State(st): State<ApiState>,
    ApiPath(id): ApiPath<UserId>,
) -> ApiResult<StatusCode> {
    let u = st.store.get_user(id).await?;
    if u.role == Role::Admin && other_active_admins(&st, id).await? == 0 {
        return Err(ApiError::conflict(
            "this is the last active admin; create another admin first",
        ));
    }
    st.store.delete_user(id).await?;
    Ok(no_content())
}

// ---------------------------------------------------------------------------------------------
// API tokens

/// Body of `POST /api/tokens`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenCreate {
    /// Label.
    pub name: String,
    /// The user the token acts as (default: the caller).
    pub user_id: Option<UserId>,
    /// Lifetime in days (default: no expiry).
    pub expires_in_days: Option<u32>,
}

/// Query of `GET /api/tokens`.
#[derive(Debug, Deserialize)]
pub struct TokenQuery {
    /// Whose tokens (default: the caller's).
    pub user_id: Option<UserId>,
}

/// `GET /api/tokens`.
pub async fn list_tokens(
    State(st): State<ApiState>,
    Extension(p): Extension<Principal>,
    ApiQuery(q): ApiQuery<TokenQuery>,
) -> ApiResult<Json<serde_json::Value>> {
    let uid = q.user_id.unwrap_or(p.user.id);
    let items = st.store.list_tokens(uid).await?;
    Ok(Json(json!({ "items": items, "total": items.len() })))
}

/// `POST /api/tokens`.
pub async fn create_token(
    State(st): State<ApiState>,
    Extension(p): Extension<Principal>,
    ApiJson(b): ApiJson<TokenCreate>,
) -> ApiResult<Response> {
    validate_name("name", &b.name)?;
    let uid = b.user_id.unwrap_or(p.user.id);
    let user = match st.store.get_user(uid).await {
        Ok(u) => u,
        Err(e) if e.kind() == ErrorKind::NotFound => {
            return Err(ApiError::invalid(format!("user {uid} does not exist")));
        }
        Err(e) => return Err(e.into()),
    };
    let days = b.expires_in_days.map(|d| d.clamp(1, 3650));
    let now = Utc::now();
    let secret = auth::new_api_token();
    let t = st
        .store
        .create_token(&ApiToken {
            id: 0,
            user_id: user.id,
            name: b.name,
            token_hash: auth::token_hash(&secret),
            created_at: now,
            last_used: None,
            expires_at: days.map(|d| now + chrono::Duration::days(d as i64)),
        })
        .await?;
    tracing::info!(token_id = t.id, user_id = user.id, "API token created");
    Ok(created(json!({
        "id": t.id,
        "name": t.name,
        "user_id": t.user_id,
        "role": user.role,
        "token": secret,
        "created_at": t.created_at,
        "expires_at": t.expires_at,
    })))
}

/// `DELETE /api/tokens/{id}`.
pub async fn delete_token(
    State(st): State<ApiState>,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<StatusCode> {
    st.store.delete_token(id).await?;
    Ok(no_content())
}

// ---------------------------------------------------------------------------------------------
// Tags

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

// ---------------------------------------------------------------------------------------------
// Credentials

/// Body of `POST /api/credentials`. The secrets are write-only.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CredentialCreate {
    /// Unique name.
    pub name: String,
    /// Login user name.
    pub username: String,
    /// Login password.
    pub password: Secret,
    /// Enable secret.
    #[serde(default)]
    pub enable_secret: Option<Secret>,
    /// Lower is tried first (default 100).
    #[serde(default)]
    pub priority: Option<i32>,
    /// Tags.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Free text.
    #[serde(default)]
    pub description: Option<String>,
}

/// Body of `PUT /api/credentials/{id}`; omitted fields (and secrets) are kept.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CredentialUpdate {
    /// Name.
    pub name: Option<String>,
    /// Login user name.
    pub username: Option<String>,
    /// New password.
    pub password: Option<Secret>,
    /// New enable secret.
    pub enable_secret: Option<Secret>,
    /// Remove the enable secret.
    #[serde(default)]
    pub clear_enable_secret: bool,
    /// Priority.
    pub priority: Option<i32>,
    /// Tags (replaces).
    pub tags: Option<Vec<String>>,
    /// Free text.
    pub description: Option<String>,
}

fn check_credential(c: &Credential) -> ApiResult<()> {
    validate_name("name", &c.name)?;
    if c.username.trim().is_empty() || c.username.len() > 255 {
        return Err(ApiError::invalid("username must be 1 to 255 characters"));
    }
    if c.password.is_empty() || c.password.expose().len() > 1024 {
        return Err(ApiError::invalid("password must be 1 to 1024 characters"));
    }
    for t in &c.tags {
        validate_name("tag", t)?;
    }
    Ok(())
}

/// `GET /api/credentials`.
pub async fn list_credentials(
    State(st): State<ApiState>,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> ApiResult<Json<Paged<CredentialInfo>>> {
    let p = st.store.list_credentials(page_of(q.page, q.size)?).await?;
    Ok(Json(p.map(|c| c.info())))
}

/// `POST /api/credentials`.
pub async fn create_credential(
    State(st): State<ApiState>,
    ApiJson(b): ApiJson<CredentialCreate>,
) -> ApiResult<Response> {
    let mut c = Credential::new(b.name, b.username, b.password);
    c.enable_secret = b.enable_secret.filter(|s| !s.is_empty());
    if let Some(p) = b.priority {
        c.priority = p;
    }
    c.tags = b.tags;
    c.description = b.description;
    c.created_at = Utc::now();
    check_credential(&c)?;
    let c = st.store.create_credential(&c).await?;
    Ok(created(c.info()))
}

/// `GET /api/credentials/{id}`.
pub async fn get_credential(
    State(st): State<ApiState>,
    ApiPath(id): ApiPath<CredentialId>,
) -> ApiResult<Json<CredentialInfo>> {
    Ok(Json(st.store.get_credential(id).await?.info()))
}

/// `PUT /api/credentials/{id}`.
pub async fn update_credential(
    State(st): State<ApiState>,
    ApiPath(id): ApiPath<CredentialId>,
    ApiJson(b): ApiJson<CredentialUpdate>,
) -> ApiResult<Json<CredentialInfo>> {
    let mut c = st.store.get_credential(id).await?;
    if let Some(v) = b.name {
        c.name = v;
    }
    if let Some(v) = b.username {
        c.username = v;
    }
    if let Some(v) = b.password {
        c.password = v;
    }
    if b.clear_enable_secret {
        c.enable_secret = None;
    }
    if let Some(v) = b.enable_secret.filter(|s| !s.is_empty()) {
        c.enable_secret = Some(v);
    }
    if let Some(v) = b.priority {
        c.priority = v;
    }
    if let Some(v) = b.tags {
        c.tags = v;
    }
    if let Some(v) = b.description {
        c.description = Some(v);
    }
    check_credential(&c)?;
    Ok(Json(st.store.update_credential(&c).await?.info()))
}

/// `DELETE /api/credentials/{id}`.
pub async fn delete_credential(
    State(st): State<ApiState>,
    ApiPath(id): ApiPath<CredentialId>,
) -> ApiResult<StatusCode> {
    st.store.delete_credential(id).await?;
    Ok(no_content())
}

// ---------------------------------------------------------------------------------------------
// Devices

/// Body of `POST /api/devices` and `PUT /api/devices/{id}`, and one row of an import.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceInput {
    /// Unique name.
    pub hostname: String,
    /// IP address or DNS name.
    pub address: String,
    /// SSH port (default 22).
    #[serde(default)]
    pub port: Option<u16>,
    /// netmiko `device_type`.
    pub platform: String,
    /// Tags.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Free text.
    #[serde(default)]
    pub description: Option<String>,
    /// Serial number.
    #[serde(default)]
    pub serial: Option<String>,
    /// Hardware model.
    #[serde(default)]
    pub model: Option<String>,
    /// Credential tried first.
    #[serde(default)]
    pub credential_id: Option<CredentialId>,
    /// Host key policy (default tofu).
    #[serde(default)]
    pub host_key_policy: HostKeyPolicy,
    /// Allow legacy SSH algorithms.
    #[serde(default)]
    pub legacy_ssh: bool,
    /// Enabled (default true).
    #[serde(default = "yes")]
    pub enabled: bool,
}

impl DeviceInput {
    fn into_device(self) -> Device {
        let now = Utc::now();
        let mut d = Device::new(self.hostname, self.address, self.platform).with_tags(self.tags);
        d.port = self.port.unwrap_or(22);
        d.description = self.description;
        d.serial = self.serial;
        d.model = self.model;
        d.credential_id = self.credential_id;
        d.host_key_policy = self.host_key_policy;
        d.legacy_ssh = self.legacy_ssh;
        d.enabled = self.enabled;
        d.created_at = now;
        d.updated_at = now;
        d
    }
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
    ApiJson(b): ApiJson<DeviceInput>,
) -> ApiResult<Response> {
    let d = b.into_device();
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
    ApiJson(b): ApiJson<DeviceInput>,
) -> ApiResult<Json<Device>> {
    let old = st.store.get_device(id).await?;
    let mut d = b.into_device();
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

fn parse_csv(body: &[u8]) -> ApiResult<Vec<Result<DeviceInput, String>>> {
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
        rows.push(Ok(DeviceInput {
            hostname: get("hostname").unwrap_or_default(),
            address: get("address").unwrap_or_default(),
            port,
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

fn parse_json_rows(body: &[u8]) -> ApiResult<Vec<Result<DeviceInput, String>>> {
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
        .map(|row| serde_json::from_value::<DeviceInput>(row).map_err(|e| e.to_string()))
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
        let d = input.into_device();
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

// ---------------------------------------------------------------------------------------------
// Jobs

/// Body of `POST /api/jobs` and `PUT /api/jobs/{id}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobInput {
    /// Unique name.
    pub name: String,
    /// Free text.
    #[serde(default)]
    pub description: Option<String>,
    /// `{"type":"backup"}`, `{"type":"reachability"}` or `{"type":"command","commands":[…]}`.
    pub kind: JobKind,
    /// Device ids and tags.
    #[serde(default)]
    pub targets: Targets,
    /// `{"type":"manual"}`, `{"type":"interval","seconds":3600}`,
    /// `{"type":"cron","expression":"0 2 * * *","timezone":"Europe/Berlin"}`,
    /// `{"type":"once","at":"…"}`.
    pub schedule: Schedule,
    /// Enabled (default true).
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Overlap policy (default forbid).
    #[serde(default)]
    pub overlap: OverlapPolicy,
    /// Missed-fire policy (default run_once).
    #[serde(default)]
    pub missed: MissedPolicy,
}

impl JobInput {
    fn into_job(self) -> Job {
        let now = Utc::now();
        let mut j = Job::backup(self.name, self.targets);
        j.description = self.description;
        j.kind = self.kind;
        j.schedule = self.schedule;
        j.enabled = self.enabled;
        j.overlap = self.overlap;
        j.missed = self.missed;
        j.created_at = now;
        j.updated_at = now;
        j
    }
}

/// Query of `GET /api/jobs`.
#[derive(Debug, Deserialize)]
pub struct JobQuery {
    /// Name contains.
    pub name: Option<String>,
    /// Enabled or not.
    pub enabled: Option<bool>,
    /// Page.
    pub page: Option<u32>,
    /// Size.
    pub size: Option<u32>,
}

/// `GET /api/jobs`.
pub async fn list_jobs(
    State(st): State<ApiState>,
    ApiQuery(q): ApiQuery<JobQuery>,
) -> ApiResult<Json<Paged<Job>>> {
    let page = page_of(q.page, q.size)?;
    let f = JobFilter {
        name: q.name.filter(|s| !s.is_empty()),
        enabled: q.enabled,
    };
    Ok(Json(st.store.list_jobs(&f, page).await?))
}

/// `POST /api/jobs`.
pub async fn create_job(
    State(st): State<ApiState>,
    ApiJson(b): ApiJson<JobInput>,
) -> ApiResult<Response> {
    let j = b.into_job();
    j.validate()?;
    Ok(created(st.store.create_job(&j).await?))
}

/// `GET /api/jobs/{id}`.
pub async fn get_job(
    State(st): State<ApiState>,
    ApiPath(id): ApiPath<JobId>,
) -> ApiResult<Json<Job>> {
    Ok(Json(st.store.get_job(id).await?))
}

/// `PUT /api/jobs/{id}`.
pub async fn update_job(
    State(st): State<ApiState>,
    ApiPath(id): ApiPath<JobId>,
    ApiJson(b): ApiJson<JobInput>,
) -> ApiResult<Json<Job>> {
    let old = st.store.get_job(id).await?;
    let mut j = b.into_job();
    j.id = id;
    j.system = old.system;
    j.created_at = old.created_at;
    j.validate()?;
    Ok(Json(st.store.update_job(&j).await?))
}

/// `DELETE /api/jobs/{id}`: 409 for system jobs.
pub async fn delete_job(
    State(st): State<ApiState>,
    ApiPath(id): ApiPath<JobId>,
) -> ApiResult<StatusCode> {
    let j = st.store.get_job(id).await?;
    if j.system {
        return Err(ApiError::conflict(format!(
            "job '{}' is a system job and cannot be deleted (disable it instead)",
            j.name
        )));
    }
    st.store.delete_job(id).await?;
    Ok(no_content())
}
