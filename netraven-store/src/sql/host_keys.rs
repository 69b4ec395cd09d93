//! Pinned SSH host keys (trust on first use).

use crate::sql::SqlStore;
use crate::sql::dialect::{Dialect, SqlRow};
use crate::sql::query::{Sql, or_now};
use chrono::Utc;
use netraven_core::error::{Error, Result};
use netraven_core::model::HostKey;
use netraven_core::store::HostKeyStore;

fn host_key_row(r: &impl SqlRow) -> Result<HostKey> {
    Ok(HostKey {
        host: r.text("host")?,
        port: r.int("port")?,
        key_type: r.text("key_type")?,
        fingerprint: r.text("fingerprint")?,
        first_seen: r.ts("first_seen")?,
    })
}

#[async_trait::async_trait]
impl<D: Dialect> HostKeyStore for SqlStore<D> {
    async fn get_host_key(&self, host: &str, port: u16) -> Result<Option<HostKey>> {
        let row = self
            .db
            .fetch_optional(
                Sql::new(
                    "SELECT host, port, key_type, fingerprint, first_seen FROM host_keys \
                     WHERE host = $1 AND port = $2",
                )
                .bind(host)
                .bind(i64::from(port)),
            )
            .await?;
        row.as_ref().map(host_key_row).transpose()
    }

    async fn pin_host_key(&self, key: &HostKey) -> Result<HostKey> {
        self.db
            .execute(
                Sql::new(
                    "INSERT INTO host_keys (host, port, key_type, fingerprint, first_seen) \
                     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (host, port) DO NOTHING",
                )
                .bind(&key.host)
                .bind(i64::from(key.port))
                .bind(&key.key_type)
                .bind(&key.fingerprint)
                .bind(or_now(key.first_seen, Utc::now())),
            )
            .await?;
        self.get_host_key(&key.host, key.port)
            .await?
            .ok_or_else(|| Error::internal("pinned host key vanished"))
    }

    async fn delete_host_key(&self, host: &str, port: u16) -> Result<()> {
        self.db
            .execute(
                Sql::new("DELETE FROM host_keys WHERE host = $1 AND port = $2")
                    .bind(host)
                    .bind(i64::from(port)),
            )
            .await?;
        Ok(())
    }
}
