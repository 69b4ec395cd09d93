//! Jump hosts: named SSH bastions, their password sealed with the store's cipher (the row
//! identity as associated data), like a credential's.

use crate::sql::SqlStore;
use crate::sql::dialect::{Dialect, SqlRow};
use crate::sql::query::{Sql, or_now};
use chrono::Utc;
use netraven_core::error::{Error, ErrorKind, Result};
use netraven_core::model::{HostKeyPolicy, JumpHost, JumpHostId};
use netraven_core::secret::Secret;
use netraven_core::store::{JumpHostStore, check};

const JUMP_COLS: &str = "id, name, address, port, username, password_enc, host_key_policy, \
    host_key, via, description, created_at, updated_at";

/// The associated data of jump host `id`'s sealed password.
pub(crate) fn jump_password_aad(id: i64) -> String {
    format!("jump_host:{id}:password")
}

impl<D: Dialect> SqlStore<D> {
    fn jump_host_row(&self, r: &D::Row) -> Result<JumpHost> {
        let id = r.i64("id")?;
        let policy = r.text("host_key_policy")?;
        // A password the key cannot open leaves the bastion without one (the login then
        // fails with a clear error) instead of failing every listing.
        let password = match self
            .cipher
            .decrypt(&r.text("password_enc")?, jump_password_aad(id).as_bytes())
        {
            Ok(p) => p,
            Err(e) if e.kind() == ErrorKind::Crypto => {
                tracing::error!(jump_host = id, error = %e, "jump host password cannot be decrypted with the configured key");
                Secret::default()
            }
            Err(e) => return Err(e),
        };
        Ok(JumpHost {
            id,
            name: r.text("name")?,
            address: r.text("address")?,
            port: r.int("port")?,
            username: r.text("username")?,
            password,
            host_key_policy: HostKeyPolicy::parse(&policy)
                .ok_or_else(|| Error::internal(format!("unknown host key policy {policy:?}")))?,
            host_key: r.opt_text("host_key")?,
            via: r.opt_text("via")?,
            description: r.opt_text("description")?,
            created_at: r.ts("created_at")?,
            updated_at: r.ts("updated_at")?,
        })
    }
}

#[async_trait::async_trait]
impl<D: Dialect> JumpHostStore for SqlStore<D> {
    async fn create_jump_host(&self, jump: &JumpHost) -> Result<JumpHost> {
        check::jump_host(jump)?;
        let created = or_now(jump.created_at, Utc::now());
        let updated = or_now(jump.updated_at, created);
        let mut tx = self.db.begin_write().await?;
        // The row id is the ciphertext's associated data, so it is written once the row exists.
        let row = D::tx_fetch_one(
            &mut tx,
            Sql::new(
                "INSERT INTO jump_hosts (name, address, port, username, password_enc, \
                 host_key_policy, host_key, via, description, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, '', $5, $6, $7, $8, $9, $10) RETURNING id",
            )
            .bind(&jump.name)
            .bind(&jump.address)
            .bind(i64::from(jump.port))
            .bind(&jump.username)
            .bind(jump.host_key_policy.as_str())
            .bind(&jump.host_key)
            .bind(&jump.via)
            .bind(&jump.description)
            .bind(created)
            .bind(updated),
            "inserted jump host".into(),
        )
        .await?;
        let id = row.i64("id")?;
        let sealed = self
            .cipher
            .encrypt(&jump.password, jump_password_aad(id).as_bytes())?;
        D::tx_execute(
            &mut tx,
            Sql::new("UPDATE jump_hosts SET password_enc = $2 WHERE id = $1")
                .bind(id)
                .bind(sealed),
        )
        .await?;
        D::commit(tx).await?;
        self.get_jump_host(id).await
    }

    async fn get_jump_host(&self, id: JumpHostId) -> Result<JumpHost> {
        let row = self
            .db
            .fetch_one(
                Sql::new(format!("SELECT {JUMP_COLS} FROM jump_hosts WHERE id = $1")).bind(id),
                format!("jump host {id}"),
            )
            .await?;
        self.jump_host_row(&row)
    }

    async fn jump_host_by_name(&self, name: &str) -> Result<Option<JumpHost>> {
        let rows = self
            .db
            .fetch_all(
                Sql::new(format!(
                    "SELECT {JUMP_COLS} FROM jump_hosts WHERE name = $1"
                ))
                .bind(name),
            )
            .await?;
        rows.first().map(|r| self.jump_host_row(r)).transpose()
    }

    async fn update_jump_host(&self, jump: &JumpHost) -> Result<JumpHost> {
        check::jump_host(jump)?;
        let updated = or_now(jump.updated_at, Utc::now());
        let sealed = self
            .cipher
            .encrypt(&jump.password, jump_password_aad(jump.id).as_bytes())?;
        let n = self
            .db
            .execute(
                Sql::new(
                    "UPDATE jump_hosts SET name = $2, address = $3, port = $4, username = $5, \
                     password_enc = $6, host_key_policy = $7, host_key = $8, via = $9, \
                     description = $10, updated_at = $11 WHERE id = $1",
                )
                .bind(jump.id)
                .bind(&jump.name)
                .bind(&jump.address)
                .bind(i64::from(jump.port))
                .bind(&jump.username)
                .bind(sealed)
                .bind(jump.host_key_policy.as_str())
                .bind(&jump.host_key)
                .bind(&jump.via)
                .bind(&jump.description)
                .bind(updated),
            )
            .await?;
        if n == 0 {
            return Err(Error::not_found(format!("jump host {}", jump.id)));
        }
        self.get_jump_host(jump.id).await
    }

    async fn delete_jump_host(&self, id: JumpHostId) -> Result<()> {
        let n = self
            .db
            .execute(Sql::new("DELETE FROM jump_hosts WHERE id = $1").bind(id))
            .await?;
        if n == 0 {
            return Err(Error::not_found(format!("jump host {id}")));
        }
        Ok(())
    }

    async fn list_jump_hosts(&self) -> Result<Vec<JumpHost>> {
        let rows = self
            .db
            .fetch_all(Sql::new(format!(
                "SELECT {JUMP_COLS} FROM jump_hosts ORDER BY name"
            )))
            .await?;
        rows.iter().map(|r| self.jump_host_row(r)).collect()
    }
}
