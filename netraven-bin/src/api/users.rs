//! Handlers for users and their API tokens (admin only).

use super::ApiState;
use super::auth::{self, Principal};
use super::common::{PageQuery, created, no_content, page_of, yes};
use super::error::{ApiError, ApiJson, ApiPath, ApiQuery, ApiResult};
use axum::Extension;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use chrono::Utc;
use netraven_core::prelude::*;
use serde::Deserialize;
use serde_json::json;

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
    Ok(auth::HashGate::global()
        .run(move || auth::hash_password(pw.expose()))
        .await??)
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
