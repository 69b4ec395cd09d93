//! Device results, counted into their run's tallies in the same transaction.

use crate::sql::SqlStore;
use crate::sql::dialect::{Dialect, SqlRow};
use crate::sql::query::{Sql, Where, to_i};
use crate::sql::runs::counts_row;
use netraven_core::ErrorKind;
use netraven_core::error::{Error, Result};
use netraven_core::model::{
    DeviceId, DeviceResult, DeviceStatus, Page, Paged, RecordOutcome, ResultFilter, RunCounts,
    RunId,
};
use netraven_core::store::ResultStore;

pub(super) const RESULT_COLS: &str = "id, run_id, job_id, device_id, status, error_kind, message, \
    duration_ms, credential_id, snapshot_id, changed, output, attempt, started_at, finished_at";

pub(super) fn result_row(r: &impl SqlRow) -> Result<DeviceResult> {
    let status = r.text("status")?;
    let kind = r.opt_text("error_kind")?;
    Ok(DeviceResult {
        id: r.i64("id")?,
        run_id: r.i64("run_id")?,
        job_id: r.i64("job_id")?,
        device_id: r.i64("device_id")?,
        status: DeviceStatus::parse(&status)
            .ok_or_else(|| Error::internal(format!("unknown device status {status:?}")))?,
        error_kind: kind
            .map(|k| {
                ErrorKind::parse(&k)
                    .ok_or_else(|| Error::internal(format!("unknown error kind {k:?}")))
            })
            .transpose()?,
        message: r.opt_text("message")?,
        duration_ms: r.int("duration_ms")?,
        credential_id: r.opt_i64("credential_id")?,
        snapshot_id: r.opt_i64("snapshot_id")?,
        changed: r.opt_bool("changed")?,
        output: r.opt_text("output")?,
        attempt: r.int("attempt")?,
        started_at: r.ts("started_at")?,
        finished_at: r.ts("finished_at")?,
    })
}

/// Inserts a result (unless its device already has one in the run) and counts it into the run's
/// tallies, in the caller's transaction; a missing run is `NotFound` (the caller rolls back).
async fn record_in<D: Dialect>(tx: &mut D::Tx, result: &DeviceResult) -> Result<RecordOutcome> {
    let mut delta = RunCounts::default();
    delta.add(result);
    if D::MULTI_STATEMENT {
        return record_in_one_trip::<D>(tx, result, &delta).await;
    }
    let inserted = D::tx_fetch_optional(
        tx,
        bind_result(Sql::new(format!("{INSERT_RESULT} RETURNING id")), result)?,
    )
    .await?
    .is_some();
    let tallies = if inserted {
        Sql::new(
            "UPDATE runs SET succeeded = succeeded + $2, failed = failed + $3, \
             changed = changed + $4, unchanged = unchanged + $5 WHERE id = $1 \
             RETURNING total, succeeded, failed, changed, unchanged",
        )
        .bind(result.run_id)
        .bind(i64::from(delta.succeeded))
        .bind(i64::from(delta.failed))
        .bind(i64::from(delta.changed))
        .bind(i64::from(delta.unchanged))
    } else {
        Sql::new("SELECT total, succeeded, failed, changed, unchanged FROM runs WHERE id = $1")
            .bind(result.run_id)
    };
    // A missing run fails the write, which rolls the insert back.
    let row = D::tx_fetch_one(tx, tallies, format!("run {}", result.run_id)).await?;
    Ok(RecordOutcome {
        inserted,
        counts: counts_row(&row)?,
    })
}

/// The insert of a result, its values bound as `$1`..`$14` (`bind_result`).
const INSERT_RESULT: &str = "INSERT INTO device_results (run_id, job_id, device_id, status, \
     error_kind, message, duration_ms, credential_id, snapshot_id, changed, output, attempt, \
     started_at, finished_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) \
     ON CONFLICT (run_id, device_id) DO NOTHING";

/// [`record_in`] as one multi-statement round trip ([`Dialect::MULTI_STATEMENT`]): the tallies
/// grow by the delta times `changes()` — the rows the insert just before added (1, or 0 when
/// the device already had its result) — and come back in the same trip.
async fn record_in_one_trip<D: Dialect>(
    tx: &mut D::Tx,
    result: &DeviceResult,
    delta: &RunCounts,
) -> Result<RecordOutcome> {
    let q = Sql::new(format!(
        "{INSERT_RESULT} RETURNING 'inserted' AS row_kind; \
         UPDATE runs SET succeeded = succeeded + $15 * changes(), \
         failed = failed + $16 * changes(), changed = changed + $17 * changes(), \
         unchanged = unchanged + $18 * changes() WHERE id = $1 \
         RETURNING 'counts' AS row_kind, total, succeeded, failed, changed, unchanged"
    ));
    let q = bind_result(q, result)?
        .bind(i64::from(delta.succeeded))
        .bind(i64::from(delta.failed))
        .bind(i64::from(delta.changed))
        .bind(i64::from(delta.unchanged));
    let mut inserted = false;
    let mut counts = None;
    for row in D::tx_fetch_all(tx, q).await? {
        match row.text("row_kind")?.as_str() {
            "inserted" => inserted = true,
            _ => counts = Some(counts_row(&row)?),
        }
    }
    // A missing run fails the write, which rolls the insert back.
    let counts = counts.ok_or_else(|| Error::not_found(format!("run {}", result.run_id)))?;
    Ok(RecordOutcome { inserted, counts })
}

/// Binds a result's values as `$1`..`$14` of [`INSERT_RESULT`].
fn bind_result(q: Sql, result: &DeviceResult) -> Result<Sql> {
    Ok(q.bind(result.run_id)
        .bind(result.job_id)
        .bind(result.device_id)
        .bind(result.status.as_str())
        .bind(result.error_kind.map(|k| k.as_str()))
        .bind(&result.message)
        .bind(to_i("duration_ms", result.duration_ms)?)
        .bind(result.credential_id)
        .bind(result.snapshot_id)
        .bind(result.changed)
        .bind(&result.output)
        .bind(i64::from(result.attempt))
        .bind(result.started_at)
        .bind(result.finished_at))
}

#[async_trait::async_trait]
impl<D: Dialect> ResultStore for SqlStore<D> {
    async fn record_result(&self, result: &DeviceResult) -> Result<RecordOutcome> {
        let result = std::sync::Arc::new(result.clone());
        self.db
            .write(move |tx| {
                let result = result.clone();
                Box::pin(async move { record_in::<D>(tx, &result).await })
            })
            .await
    }

    async fn get_result(&self, run: RunId, device: DeviceId) -> Result<Option<DeviceResult>> {
        let row = self
            .db
            .fetch_optional(
                Sql::new(format!(
                    "SELECT {RESULT_COLS} FROM device_results \
                     WHERE run_id = $1 AND device_id = $2"
                ))
                .bind(run)
                .bind(device),
            )
            .await?;
        row.as_ref().map(result_row).transpose()
    }

    async fn list_results(&self, filter: &ResultFilter, page: Page) -> Result<Paged<DeviceResult>> {
        let mut w = Where::default();
        if let Some(v) = filter.run_id {
            let p = w.arg(v);
            w.cond(format!("run_id = {p}"));
        }
        if let Some(v) = filter.job_id {
            let p = w.arg(v);
            w.cond(format!("job_id = {p}"));
        }
        if let Some(v) = filter.device_id {
            let p = w.arg(v);
            w.cond(format!("device_id = {p}"));
        }
        if let Some(v) = filter.status {
            let p = w.arg(v.as_str());
            w.cond(format!("status = {p}"));
        }
        if let Some(v) = filter.since {
            let p = w.arg(v);
            w.cond(format!("finished_at >= {p}"));
        }
        if let Some(v) = filter.until {
            let p = w.arg(v);
            w.cond(format!("finished_at < {p}"));
        }
        let total = self.db.count(w.count("device_results")).await?;
        let rows = self
            .db
            .fetch_all(w.page(
                &format!("SELECT {RESULT_COLS} FROM device_results"),
                "finished_at DESC, id DESC",
                page,
            ))
            .await?;
        let items = rows.iter().map(result_row).collect::<Result<Vec<_>>>()?;
        Ok(Paged::new(items, total, page))
    }

    async fn latest_results(
        &self,
        devices: &[DeviceId],
    ) -> Result<std::collections::HashMap<DeviceId, netraven_core::model::LatestResults>> {
        crate::sql::latest::latest_results(self, devices).await
    }
}
