//! API users and their tokens.

use crate::sql::SqlStore;
use crate::sql::dialect::{Dialect, SqlRow};
use crate::sql::query::{Sql, Where, or_now};
use chrono::{DateTime, Utc};
use netraven_core::ErrorKind;
use netraven_core::error::{Error, Result};
use netraven_core::model::{ApiToken, Page, Paged, Role, User, UserId};
use netraven_core::store::{UserStore, check};

const USER_COLS: &str = "id, username, password_hash, role, active, created_at";
const TOKEN_COLS: &str = "id, user_id, name, token_hash, created_at, last_used, expires_at";

fn user_row(r: &impl SqlRow) -> Result<User> {
    let role = r.text("role")?;
    Ok(User {
        id: r.i64("id")?,
        username: r.text("username")?,
        password_hash: r.text("password_hash")?,
        role: Role::parse(&role)
            .ok_or_else(|| Error::internal(format!("unknown role {role:?}")))?,
        active: r.bool("active")?,
        created_at: r.ts("created_at")?,
    })
}

fn token_row(r: &impl SqlRow) -> Result<ApiToken> {
    Ok(ApiToken {
        id: r.i64("id")?,
        user_id: r.i64("user_id")?,
        name: r.text("name")?,
        token_hash: r.text("token_hash")?,
        created_at: r.ts("created_at")?,
        last_used: r.opt_ts("last_used")?,
        expires_at: r.opt_ts("expires_at")?,
    })
}

#[async_trait::async_trait]
impl<D: Dialect> UserStore for SqlStore<D> {
    async fn create_user(&self, user: &User) -> Result<User> {
        check::user(user)?;
        let row = self
            .db
            .fetch_one(
                Sql::new(format!(
                    "INSERT INTO users (username, password_hash, role, active, created_at) \
                     VALUES ($1, $2, $3, $4, $5) RETURNING {USER_COLS}"
                ))
                .bind(&user.username)
                .bind(&user.password_hash)
                .bind(user.role.as_str())
                .bind(user.active)
                .bind(or_now(user.created_at, Utc::now())),
                "inserted user".into(),
            )
            .await?;
        user_row(&row)
    }

    async fn get_user(&self, id: UserId) -> Result<User> {
        let row = self
            .db
            .fetch_one(
                Sql::new(format!("SELECT {USER_COLS} FROM users WHERE id = $1")).bind(id),
                format!("user {id}"),
            )
            .await?;
        user_row(&row)
    }

    async fn get_user_by_name(&self, username: &str) -> Result<Option<User>> {
        let row = self
            .db
            .fetch_optional(
                Sql::new(format!("SELECT {USER_COLS} FROM users WHERE username = $1"))
                    .bind(username),
            )
            .await?;
        row.as_ref().map(user_row).transpose()
    }

    async fn update_user(&self, user: &User) -> Result<User> {
        check::user(user)?;
        let row = self
            .db
            .fetch_one(
                Sql::new(format!(
                    "UPDATE users SET username = $2, password_hash = $3, role = $4, active = $5 \
                     WHERE id = $1 RETURNING {USER_COLS}"
                ))
                .bind(user.id)
                .bind(&user.username)
                .bind(&user.password_hash)
                .bind(user.role.as_str())
                .bind(user.active),
                format!("user {}", user.id),
            )
            .await?;
        user_row(&row)
    }

    async fn delete_user(&self, id: UserId) -> Result<()> {
        let mut tx = self.db.begin_write().await?;
        D::tx_execute(
            &mut tx,
            Sql::new("DELETE FROM api_tokens WHERE user_id = $1").bind(id),
        )
        .await?;
        let n = D::tx_execute(
            &mut tx,
            Sql::new("DELETE FROM users WHERE id = $1").bind(id),
        )
        .await?;
        if n == 0 {
            return Err(Error::not_found(format!("user {id}")));
        }
        D::commit(tx).await
    }

    async fn list_users(&self, page: Page) -> Result<Paged<User>> {
        let w = Where::default();
        let total = self.db.count(w.count("users")).await?;
        let rows = self
            .db
            .fetch_all(w.page(
                &format!("SELECT {USER_COLS} FROM users"),
                "username, id",
                page,
            ))
            .await?;
        let items = rows.iter().map(user_row).collect::<Result<Vec<_>>>()?;
        Ok(Paged::new(items, total, page))
    }

    async fn create_token(&self, token: &ApiToken) -> Result<ApiToken> {
        let row = self
            .db
            .fetch_one(
                Sql::new(format!(
                    "INSERT INTO api_tokens (user_id, name, token_hash, created_at, last_used, \
                     expires_at) VALUES ($1, $2, $3, $4, $5, $6) RETURNING {TOKEN_COLS}"
                ))
                .bind(token.user_id)
                .bind(&token.name)
                .bind(&token.token_hash)
                .bind(or_now(token.created_at, Utc::now()))
                .bind(token.last_used)
                .bind(token.expires_at),
                "inserted token".into(),
            )
            .await
            .map_err(|err| {
                // The only reference is the user: a foreign-key failure means it is missing.
                if err.kind() == ErrorKind::InvalidInput {
                    Error::not_found(format!("user {}", token.user_id))
                } else {
                    err
                }
            })?;
        token_row(&row)
    }

    async fn find_token(&self, token_hash: &str) -> Result<Option<ApiToken>> {
        let row = self
            .db
            .fetch_optional(
                Sql::new(format!(
                    "SELECT {TOKEN_COLS} FROM api_tokens WHERE token_hash = $1"
                ))
                .bind(token_hash),
            )
            .await?;
        row.as_ref().map(token_row).transpose()
    }

    async fn list_tokens(&self, user_id: UserId) -> Result<Vec<ApiToken>> {
        let rows = self
            .db
            .fetch_all(
                Sql::new(format!(
                    "SELECT {TOKEN_COLS} FROM api_tokens WHERE user_id = $1 ORDER BY id"
                ))
                .bind(user_id),
            )
            .await?;
        rows.iter().map(token_row).collect()
    }

    async fn touch_token(&self, id: i64, at: DateTime<Utc>) -> Result<()> {
        let n = self
            .db
            .execute(
                Sql::new("UPDATE api_tokens SET last_used = $2 WHERE id = $1")
                    .bind(id)
                    .bind(at),
            )
            .await?;
        if n == 0 {
            return Err(Error::not_found(format!("token {id}")));
        }
        Ok(())
    }

    async fn delete_token(&self, id: i64) -> Result<()> {
        let n = self
            .db
            .execute(Sql::new("DELETE FROM api_tokens WHERE id = $1").bind(id))
            .await?;
        if n == 0 {
            return Err(Error::not_found(format!("token {id}")));
        }
        Ok(())
    }
}
