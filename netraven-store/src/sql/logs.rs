//! Logs: appended in multi-row batches, pruned in bounded batches.

use crate::sql::dialect::{Dialect, SqlRow};
use crate::sql::query::{
    Arg, Sql, Where, contains_pattern, from_json, level_from_num, level_num, to_json,
};
use crate::sql::{DEFAULT_PRUNE_BATCH, SqlStore};
use chrono::{DateTime, Utc};
use netraven_core::error::{Error, Result};
use netraven_core::model::{LogEntry, LogFilter, LogKind, Order, Page, Paged};
use netraven_core::store::LogStore;

const LOG_COLS: &str = "id, time, level, kind, run_id, job_id, device_id, source, message, fields";

/// Rows per multi-row INSERT when appending logs.
const LOG_INSERT_CHUNK: usize = 500;

fn log_row(r: &impl SqlRow) -> Result<LogEntry> {
    let kind = r.text("kind")?;
    Ok(LogEntry {
        id: r.i64("id")?,
        time: r.ts("time")?,
        level: level_from_num(r.i64("level")?)?,
        kind: LogKind::parse(&kind)
            .ok_or_else(|| Error::internal(format!("unknown log kind {kind:?}")))?,
        run_id: r.opt_i64("run_id")?,
        job_id: r.opt_i64("job_id")?,
        device_id: r.opt_i64("device_id")?,
        source: r.text("source")?,
        message: r.text("message")?,
        fields: match r.opt_text("fields")? {
            Some(f) => from_json("log fields", &f)?,
            None => serde_json::Value::Null,
        },
    })
}

/// One multi-row INSERT for a chunk of entries.
fn insert_chunk(chunk: &[LogEntry]) -> Result<Sql> {
    let mut q = Sql::with_args(
        "INSERT INTO logs (time, level, kind, run_id, job_id, device_id, source, message, \
         fields) VALUES ",
        Vec::with_capacity(chunk.len() * 9),
    );
    for (i, e) in chunk.iter().enumerate() {
        if i > 0 {
            q.text.push_str(", ");
        }
        let base = q.args.len();
        q.text.push('(');
        for k in 1..=9 {
            if k > 1 {
                q.text.push_str(", ");
            }
            q.text.push_str(&format!("${}", base + k));
        }
        q.text.push(')');
        let fields = if e.fields.is_null() {
            None
        } else {
            Some(to_json(&e.fields)?)
        };
        q.args.extend([
            Arg::Ts(e.time),
            Arg::I64(level_num(e.level)),
            Arg::Text(e.kind.as_str().to_string()),
            Arg::OptI64(e.run_id),
            Arg::OptI64(e.job_id),
            Arg::OptI64(e.device_id),
            Arg::Text(e.source.clone()),
            Arg::Text(e.message.clone()),
            Arg::OptText(fields),
        ]);
    }
    Ok(q)
}

#[async_trait::async_trait]
impl<D: Dialect> LogStore for SqlStore<D> {
    async fn append_logs(&self, entries: &[LogEntry]) -> Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        // Built before queueing: the write owns its statements.
        let inserts = std::sync::Arc::new(
            entries
                .chunks(LOG_INSERT_CHUNK)
                .map(insert_chunk)
                .collect::<Result<Vec<_>>>()?,
        );
        self.db
            .write(move |tx| {
                let inserts = inserts.clone();
                Box::pin(async move {
                    for q in inserts.iter() {
                        D::tx_execute(tx, q.clone()).await?;
                    }
                    Ok(())
                })
            })
            .await
    }

    async fn list_logs(&self, filter: &LogFilter, page: Page) -> Result<Paged<LogEntry>> {
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
        if let Some(v) = filter.min_level {
            let p = w.arg(level_num(v));
            w.cond(format!("level >= {p}"));
        }
        if let Some(v) = filter.kind {
            let p = w.arg(v.as_str());
            w.cond(format!("kind = {p}"));
        }
        if let Some(v) = &filter.source {
            let p = w.arg(v);
            w.cond(format!("source = {p}"));
        }
        if let Some(v) = filter.since {
            let p = w.arg(v);
            w.cond(format!("time >= {p}"));
        }
        if let Some(v) = filter.until {
            let p = w.arg(v);
            w.cond(format!("time < {p}"));
        }
        if let Some(v) = &filter.search {
            let p = w.arg(contains_pattern(v));
            w.cond(format!("message {} {p} ESCAPE '\\'", D::CI_LIKE));
        }
        if let Some(v) = filter.after_id {
            let p = w.arg(v);
            w.cond(format!("id > {p}"));
        }
        let total = self.db.count(w.count("logs")).await?;
        let order = match filter.order {
            Order::Asc => "time ASC, id ASC",
            Order::Desc => "time DESC, id DESC",
        };
        let rows = self
            .db
            .fetch_all(w.page(&format!("SELECT {LOG_COLS} FROM logs"), order, page))
            .await?;
        let items = rows.iter().map(log_row).collect::<Result<Vec<_>>>()?;
        Ok(Paged::new(items, total, page))
    }

    async fn prune_logs(&self, before: DateTime<Utc>, batch: u32) -> Result<u64> {
        let batch = if batch == 0 {
            DEFAULT_PRUNE_BATCH
        } else {
            batch
        };
        let mut deleted = 0u64;
        loop {
            let n = self
                .db
                .execute(
                    Sql::new(
                        "DELETE FROM logs WHERE id IN \
                         (SELECT id FROM logs WHERE time < $1 ORDER BY time, id LIMIT $2)",
                    )
                    .bind(before)
                    .bind(i64::from(batch)),
                )
                .await?;
            deleted += n;
            if n < u64::from(batch) {
                break;
            }
        }
        if deleted > 0 {
            tracing::info!(deleted, before = %before, "pruned old log entries");
        }
        Ok(deleted)
    }
}
