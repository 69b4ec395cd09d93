//! Runs and their fixed device sets.

use crate::sql::SqlStore;
use crate::sql::dialect::{Dialect, SqlRow};
use crate::sql::query::{Sql, Where};
use chrono::{DateTime, Utc};
use netraven_core::error::{Error, Result};
use netraven_core::model::{
    DeviceId, JobId, NewRun, Page, Paged, Run, RunCounts, RunFilter, RunId, RunStatus, Trigger,
};
use netraven_core::store::{CreatedRun, RunStore, check};

const RUN_COLS: &str = "id, job_id, trigger_kind, fire_time, status, queued_at, started_at, \
    finished_at, total, succeeded, failed, changed, unchanged, idempotency_key, message";

/// Rows per multi-row INSERT of a run's device set.
const RUN_DEVICES_CHUNK: usize = 500;

/// A run's tallies (also read by `record_result`).
pub(super) fn counts_row(r: &impl SqlRow) -> Result<RunCounts> {
    Ok(RunCounts {
        total: r.int("total")?,
        succeeded: r.int("succeeded")?,
        failed: r.int("failed")?,
        changed: r.int("changed")?,
        unchanged: r.int("unchanged")?,
    })
}

fn run_row(r: &impl SqlRow) -> Result<Run> {
    let trigger = r.text("trigger_kind")?;
    let status = r.text("status")?;
    Ok(Run {
        id: r.i64("id")?,
        job_id: r.i64("job_id")?,
        trigger: Trigger::parse(&trigger)
            .ok_or_else(|| Error::internal(format!("unknown trigger {trigger:?}")))?,
        fire_time: r.opt_ts("fire_time")?,
        status: RunStatus::parse(&status)
            .ok_or_else(|| Error::internal(format!("unknown run status {status:?}")))?,
        queued_at: r.ts("queued_at")?,
        started_at: r.opt_ts("started_at")?,
        finished_at: r.opt_ts("finished_at")?,
        counts: counts_row(r)?,
        idempotency_key: r.opt_text("idempotency_key")?,
        message: r.opt_text("message")?,
    })
}

#[async_trait::async_trait]
impl<D: Dialect> RunStore for SqlStore<D> {
    async fn create_run(&self, run: &NewRun) -> Result<CreatedRun> {
        let finished = run.status.is_final().then_some(run.queued_at);
        let inserted = self
            .db
            .fetch_optional(
                Sql::new(format!(
                    "INSERT INTO runs (job_id, trigger_kind, fire_time, status, queued_at, \
                     finished_at, idempotency_key, message) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
                     ON CONFLICT DO NOTHING RETURNING {RUN_COLS}"
                ))
                .bind(run.job_id)
                .bind(run.trigger.as_str())
                .bind(run.fire_time)
                .bind(run.status.as_str())
                .bind(run.queued_at)
                .bind(finished)
                .bind(&run.idempotency_key)
                .bind(&run.message),
            )
            .await?;
        if let Some(row) = inserted {
            return Ok(CreatedRun {
                run: run_row(&row)?,
                created: true,
            });
        }
        let existing = self
            .db
            .fetch_optional(
                Sql::new(format!(
                    "SELECT {RUN_COLS} FROM runs WHERE job_id = $1 \
                     AND (fire_time = $2 OR idempotency_key = $3) ORDER BY id LIMIT 1"
                ))
                .bind(run.job_id)
                .bind(run.fire_time)
                .bind(&run.idempotency_key),
            )
            .await?
            .ok_or_else(|| Error::conflict("run conflicts with an existing run"))?;
        Ok(CreatedRun {
            run: run_row(&existing)?,
            created: false,
        })
    }

    async fn get_run(&self, id: RunId) -> Result<Run> {
        let row = self
            .db
            .fetch_one(
                Sql::new(format!("SELECT {RUN_COLS} FROM runs WHERE id = $1")).bind(id),
                format!("run {id}"),
            )
            .await?;
        run_row(&row)
    }

    async fn list_runs(&self, filter: &RunFilter, page: Page) -> Result<Paged<Run>> {
        let mut w = Where::default();
        if let Some(j) = filter.job_id {
            let p = w.arg(j);
            w.cond(format!("job_id = {p}"));
        }
        if !filter.statuses.is_empty() {
            let ps: Vec<String> = filter.statuses.iter().map(|s| w.arg(s.as_str())).collect();
            w.cond(format!("status IN ({})", ps.join(", ")));
        }
        if let Some(s) = filter.since {
            let p = w.arg(s);
            w.cond(format!("queued_at >= {p}"));
        }
        if let Some(u) = filter.until {
            let p = w.arg(u);
            w.cond(format!("queued_at < {p}"));
        }
        let total = self.db.count(w.count("runs")).await?;
        let rows = self
            .db
            .fetch_all(w.page(
                &format!("SELECT {RUN_COLS} FROM runs"),
                "queued_at DESC, id DESC",
                page,
            ))
            .await?;
        let items = rows.iter().map(run_row).collect::<Result<Vec<_>>>()?;
        Ok(Paged::new(items, total, page))
    }

    async fn start_run(&self, id: RunId, devices: &[DeviceId], at: DateTime<Utc>) -> Result<Run> {
        let mut ids = devices.to_vec();
        ids.sort_unstable();
        ids.dedup();
        let mut tx = self.db.begin_write().await?;
        let n = D::tx_execute(
            &mut tx,
            Sql::new(
                "UPDATE runs SET status = 'RUNNING', started_at = $2, total = $3 \
                 WHERE id = $1 AND status = 'QUEUED'",
            )
            .bind(id)
            .bind(at)
            .bind(ids.len() as i64),
        )
        .await?;
        if n == 1 {
            for chunk in ids.chunks(RUN_DEVICES_CHUNK) {
                let mut q =
                    Sql::new("INSERT INTO run_devices (run_id, device_id) VALUES ").bind(id);
                for (i, d) in chunk.iter().enumerate() {
                    if i > 0 {
                        q.text.push_str(", ");
                    }
                    q = q.bind(*d);
                    q.text.push_str(&format!("($1, ${})", q.args.len()));
                }
                q.text.push_str(" ON CONFLICT DO NOTHING");
                D::tx_execute(&mut tx, q).await?;
            }
        }
        let row = D::tx_fetch_one(
            &mut tx,
            Sql::new(format!("SELECT {RUN_COLS} FROM runs WHERE id = $1")).bind(id),
            format!("run {id}"),
        )
        .await?;
        let run = run_row(&row)?;
        D::commit(tx).await?;
        Ok(run)
    }

    async fn run_device_ids(&self, id: RunId) -> Result<Vec<DeviceId>> {
        let rows = self
            .db
            .fetch_all(
                Sql::new("SELECT device_id FROM run_devices WHERE run_id = $1 ORDER BY device_id")
                    .bind(id),
            )
            .await?;
        rows.iter().map(|r| r.i64("device_id")).collect()
    }

    async fn mark_device_started(
        &self,
        id: RunId,
        device: DeviceId,
        at: DateTime<Utc>,
    ) -> Result<bool> {
        // One conditional update: of two concurrent deliveries exactly one sees a row change.
        let q = Sql::new(
            "UPDATE run_devices SET started_at = $3 \
             WHERE run_id = $1 AND device_id = $2 AND started_at IS NULL",
        )
        .bind(id)
        .bind(device)
        .bind(at);
        let n = self
            .db
            .write(move |tx| Box::pin(D::tx_execute(tx, q.clone())))
            .await?;
        if n == 1 {
            return Ok(true);
        }
        let exists = self
            .db
            .fetch_all(
                Sql::new("SELECT device_id FROM run_devices WHERE run_id = $1 AND device_id = $2")
                    .bind(id)
                    .bind(device),
            )
            .await?;
        if exists.is_empty() {
            return Err(Error::not_found(format!("device {device} in run {id}")));
        }
        Ok(false)
    }

    async fn pending_device_ids(&self, id: RunId) -> Result<Vec<DeviceId>> {
        let rows = self
            .db
            .fetch_all(
                Sql::new(
                    "SELECT rd.device_id AS device_id FROM run_devices rd WHERE rd.run_id = $1 \
                     AND NOT EXISTS (SELECT 1 FROM device_results r \
                                     WHERE r.run_id = rd.run_id AND r.device_id = rd.device_id) \
                     ORDER BY rd.device_id",
                )
                .bind(id),
            )
            .await?;
        rows.iter().map(|r| r.i64("device_id")).collect()
    }

    async fn finish_run(
        &self,
        id: RunId,
        status: RunStatus,
        at: DateTime<Utc>,
        message: Option<&str>,
    ) -> Result<bool> {
        check::final_status(status)?;
        let n = self
            .db
            .execute(
                Sql::new(
                    "UPDATE runs SET status = $2, finished_at = $3, \
                     message = COALESCE($4, message) \
                     WHERE id = $1 AND status IN ('QUEUED', 'RUNNING')",
                )
                .bind(id)
                .bind(status.as_str())
                .bind(at)
                .bind(message),
            )
            .await?;
        if n > 0 {
            return Ok(true);
        }
        self.get_run(id).await.map(|_| false)
    }

    async fn active_runs(&self) -> Result<Vec<Run>> {
        let rows = self
            .db
            .fetch_all(Sql::new(format!(
                "SELECT {RUN_COLS} FROM runs WHERE status IN ('QUEUED', 'RUNNING') ORDER BY id"
            )))
            .await?;
        rows.iter().map(run_row).collect()
    }

    async fn job_has_active_run(&self, job_id: JobId) -> Result<bool> {
        let row = self
            .db
            .fetch_optional(
                Sql::new(
                    "SELECT id FROM runs WHERE job_id = $1 \
                     AND status IN ('QUEUED', 'RUNNING') LIMIT 1",
                )
                .bind(job_id),
            )
            .await?;
        Ok(row.is_some())
    }

    async fn last_fire_time(&self, job_id: JobId) -> Result<Option<DateTime<Utc>>> {
        let row = self
            .db
            .fetch_optional(
                Sql::new(
                    "SELECT fire_time FROM runs WHERE job_id = $1 AND fire_time IS NOT NULL \
                     ORDER BY fire_time DESC LIMIT 1",
                )
                .bind(job_id),
            )
            .await?;
        match row {
            Some(r) => r.opt_ts("fire_time"),
            None => Ok(None),
        }
    }
}
