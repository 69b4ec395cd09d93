//! Handlers for users and their API tokens (admin only).

use super::ApiState;
use super::auth::{self, Principal};
use super::common::{
    any_of, conflict_on, contains_any, created, merge_patch, no_content, page_items, page_of,
    parse_sort, read_all, values, yes,
};
use super::error::{ApiError, ApiJson, ApiPath, ApiQuery, ApiResult, from_json};
use axum::Extension;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use chrono::Utc;
use netraven_core::prelude::*;
use serde::Deserialize;
use serde_json::{Value, json};

/// Body of `POST /api/users`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserCreate {
    /// Login name.
    pub username: String,
    /// Password (at least 8 characters).
    #[schema(value_type = String)]
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

/// Body of `PUT /api/users/{id}` (full replacement; the write-only password is kept when
/// omitted) and the fields `PATCH /api/users/{id}` merges into.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserReplace {
    /// Login name.
    pub username: String,
    /// New password (write-only; omitted: unchanged).
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub password: Option<Secret>,
    /// Role.
    pub role: Role,
    /// Active flag.
    pub active: bool,
}

/// Query of `GET /api/users`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserQuery {
    /// Username contains (case-insensitive; repeat for any of several).
    #[serde(default)]
    pub username: Vec<String>,
    /// Role (repeat for any of several).
    #[serde(default)]
    pub role: Vec<Role>,
    /// Active or not.
    pub active: Option<bool>,
    /// `username`, `id`, `role`, `created_at` (`-` in front: descending). Default: username.
    pub sort: Option<String>,
    /// Page.
    pub page: Option<u32>,
    /// Size (≤ 100).
    pub size: Option<u32>,
}

/// Fields `GET /api/users` sorts by.
pub const USER_SORT: &[&str] = &["username", "id", "role", "created_at"];

async fn hash(pw: &Secret) -> ApiResult<String> {
    auth::validate_password(pw.expose())?;
    let pw = pw.clone();
    Ok(auth::HashGate::global()
        .run(move || auth::hash_password(pw.expose()))
        .await??)
}

/// `GET /api/users`.
pub async fn list_users(
    State(st): State<ApiState>,
    ApiQuery(q): ApiQuery<UserQuery>,
) -> ApiResult<Json<Paged<User>>> {
    let page = page_of(q.page, q.size)?;
    let sort = parse_sort(q.sort.as_deref(), USER_SORT)?;
    let names = values(q.username);
    let all = read_all(|p| st.store.list_users(p)).await?;
    let items = all
        .into_iter()
        .filter(|u| contains_any(&u.username, &names))
        .filter(|u| any_of(&u.role, &q.role))
        .filter(|u| q.active.is_none_or(|a| u.active == a))
        .collect();
    Ok(Json(page_items(items, sort.as_ref(), page)))
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
            username: b.username.clone(),
            password_hash,
            role: b.role,
            active: b.active,
            created_at: Utc::now(),
        })
        .await
        .map_err(|e| conflict_on(e, "user", "username", &b.username))?;
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

/// Saves a user's replaced fields, keeping at least one active admin.
async fn replace_user(st: &ApiState, mut u: User, b: UserReplace) -> ApiResult<User> {
    validate_name("username", &b.username)?;
    let demotes = b.role != Role::Admin || !b.active;
    if u.role == Role::Admin && u.active && demotes && other_active_admins(st, u.id).await? == 0 {
        return Err(ApiError::conflict(
            "this is the last active admin; create another admin first",
        ));
    }
    if let Some(pw) = &b.password {
        u.password_hash = hash(pw).await?;
    }
    u.username = b.username;
    u.role = b.role;
    u.active = b.active;
    st.store
        .update_user(&u)
        .await
        .map_err(|e| conflict_on(e, "user", "username", &u.username))
}

/// `PUT /api/users/{id}`: replaces username, role and active flag (and the password if given).
pub async fn update_user(
    State(st): State<ApiState>,
    ApiPath(id): ApiPath<UserId>,
    ApiJson(b): ApiJson<Value>,
) -> ApiResult<Json<User>> {
    let u = st.store.get_user(id).await?;
    let b: UserReplace = from_json(b)?;
    Ok(Json(replace_user(&st, u, b).await?))
}

/// `PATCH /api/users/{id}`: JSON merge patch of username, password, role and active.
pub async fn patch_user(
    State(st): State<ApiState>,
    ApiPath(id): ApiPath<UserId>,
    ApiJson(p): ApiJson<Value>,
) -> ApiResult<Json<User>> {
    let u = st.store.get_user(id).await?;
    let mut v = json!({ "username": u.username, "role": u.role, "active": u.active });
    merge_patch(&mut v, p);
    let b: UserReplace = from_json(v)?;
    Ok(Json(replace_user(&st, u, b).await?))
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

/// Body of `POST /api/tokens`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
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
#[serde(deny_unknown_fields)]
pub struct TokenQuery {
    /// Whose tokens (default: the caller's).
    pub user_id: Option<UserId>,
    /// `id`, `name`, `created_at`, `last_used`, `expires_at` (`-` in front: descending).
    /// Default: id.
    pub sort: Option<String>,
    /// Page.
    pub page: Option<u32>,
    /// Size (≤ 100).
    pub size: Option<u32>,
}

/// Fields `GET /api/tokens` sorts by.
pub const TOKEN_SORT: &[&str] = &["id", "name", "created_at", "last_used", "expires_at"];

/// `GET /api/tokens`: a user's API tokens (never the tokens themselves, only their names).
pub async fn list_tokens(
    State(st): State<ApiState>,
    Extension(p): Extension<Principal>,
    ApiQuery(q): ApiQuery<TokenQuery>,
) -> ApiResult<Json<Paged<ApiToken>>> {
    let page = page_of(q.page, q.size)?;
    let sort = parse_sort(q.sort.as_deref(), TOKEN_SORT)?;
    let uid = q.user_id.unwrap_or(p.user.id);
    let items = st.store.list_tokens(uid).await?;
    Ok(Json(page_items(items, sort.as_ref(), page)))
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
