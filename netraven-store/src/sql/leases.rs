//! Named leases (scheduler leadership, the git writer).

use crate::sql::SqlStore;
use crate::sql::dialect::Dialect;
use crate::sql::query::Sql;
use chrono::{DateTime, Utc};
use netraven_core::error::{Error, Result};
use netraven_core::store::LeaseStore;

#[async_trait::async_trait]
impl<D: Dialect> LeaseStore for SqlStore<D> {
    async fn try_acquire_lease(
        &self,
        name: &str,
        holder: &str,
        ttl: std::time::Duration,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        if let Some(clock) = self.db.lease_clock() {
            // One clock for every process: the database's.
            let ms = i64::try_from(ttl.as_millis())
                .map_err(|_| Error::invalid("lease ttl is too long"))?;
            let row = self
                .db
                .fetch_optional(
                    Sql::new(format!(
                        "INSERT INTO leases (name, holder, expires_at) \
                         VALUES ($1, $2, {clock} + make_interval(secs => $3::double precision / 1000.0)) \
                         ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, \
                         expires_at = excluded.expires_at \
                         WHERE leases.expires_at <= {clock} OR leases.holder = excluded.holder \
                         RETURNING holder"
                    ))
                    .bind(name)
                    .bind(holder)
                    .bind(ms),
                )
                .await?;
            let _ = now;
            return Ok(row.is_some());
        }
        let ttl =
            chrono::Duration::from_std(ttl).map_err(|_| Error::invalid("lease ttl is too long"))?;
        let until = now
            .checked_add_signed(ttl)
            .ok_or_else(|| Error::invalid("lease ttl is too long"))?;
        // Atomic: the upsert only takes over a row that expired or that the holder owns.
        let row = self
            .db
            .fetch_optional(
                Sql::new(
                    "INSERT INTO leases (name, holder, expires_at) VALUES ($1, $2, $3) \
                     ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, \
                     expires_at = excluded.expires_at \
                     WHERE leases.expires_at <= $4 OR leases.holder = excluded.holder \
                     RETURNING holder",
                )
                .bind(name)
                .bind(holder)
                .bind(until)
                .bind(now),
            )
            .await?;
        Ok(row.is_some())
    }

    async fn release_lease(&self, name: &str, holder: &str) -> Result<()> {
        self.db
            .execute(
                Sql::new("DELETE FROM leases WHERE name = $1 AND holder = $2")
                    .bind(name)
                    .bind(holder),
            )
            .await?;
        Ok(())
    }
}
