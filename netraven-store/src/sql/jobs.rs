//! Jobs.

use crate::sql::SqlStore;
use crate::sql::dialect::{Dialect, SqlRow};
use crate::sql::query::{
    Sql, Where, contains_pattern, enum_name, from_json, or_now, parse_enum, to_json,
};
use chrono::Utc;
use netraven_core::error::{Error, Result};
use netraven_core::model::{Job, JobFilter, JobId, Page, Paged, Schedule};
use netraven_core::store::{JobStore, check};

const JOB_COLS: &str = "id, name, description, kind, targets, schedule, enabled, overlap, missed, \
    system, created_at, updated_at";

fn schedule_type(s: &Schedule) -> &'static str {
    match s {
        Schedule::Manual => "manual",
        Schedule::Interval { .. } => "interval",
        Schedule::Cron { .. } => "cron",
        Schedule::Once { .. } => "once",
    }
}

fn job_row(r: &impl SqlRow) -> Result<Job> {
    Ok(Job {
        id: r.i64("id")?,
        name: r.text("name")?,
        description: r.opt_text("description")?,
        kind: from_json("job kind", &r.text("kind")?)?,
        targets: from_json("job targets", &r.text("targets")?)?,
        schedule: from_json("job schedule", &r.text("schedule")?)?,
        enabled: r.bool("enabled")?,
        overlap: parse_enum("overlap policy", &r.text("overlap")?)?,
        missed: parse_enum("missed policy", &r.text("missed")?)?,
        system: r.bool("system")?,
        created_at: r.ts("created_at")?,
        updated_at: r.ts("updated_at")?,
    })
}

/// The job's columns from `name` to `system`, in the order of the INSERT/UPDATE placeholders.
fn bind_fields(q: Sql, job: &Job) -> Result<Sql> {
    Ok(q.bind(&job.name)
        .bind(&job.description)
        .bind(to_json(&job.kind)?)
        .bind(to_json(&job.targets)?)
        .bind(to_json(&job.schedule)?)
        .bind(schedule_type(&job.schedule))
        .bind(job.enabled)
        .bind(enum_name(&job.overlap)?)
        .bind(enum_name(&job.missed)?)
        .bind(job.system))
}

#[async_trait::async_trait]
impl<D: Dialect> JobStore for SqlStore<D> {
    async fn create_job(&self, job: &Job) -> Result<Job> {
        check::job(job)?;
        let now = Utc::now();
        let created = or_now(job.created_at, now);
        let updated = or_now(job.updated_at, created);
        let insert = Sql::new(format!(
            "INSERT INTO jobs (name, description, kind, targets, schedule, schedule_type, \
             enabled, overlap, missed, system, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING {JOB_COLS}"
        ));
        let row = self
            .db
            .fetch_one(
                bind_fields(insert, job)?.bind(created).bind(updated),
                "inserted job".into(),
            )
            .await?;
        job_row(&row)
    }

    async fn get_job(&self, id: JobId) -> Result<Job> {
        let row = self
            .db
            .fetch_one(
                Sql::new(format!("SELECT {JOB_COLS} FROM jobs WHERE id = $1")).bind(id),
                format!("job {id}"),
            )
            .await?;
        job_row(&row)
    }

    async fn update_job(&self, job: &Job) -> Result<Job> {
        check::job(job)?;
        let updated = or_now(job.updated_at, Utc::now());
        let update = Sql::new(format!(
            "UPDATE jobs SET name = $2, description = $3, kind = $4, targets = $5, \
             schedule = $6, schedule_type = $7, enabled = $8, overlap = $9, missed = $10, \
             system = $11, updated_at = $12 WHERE id = $1 RETURNING {JOB_COLS}"
        ))
        .bind(job.id);
        let row = self
            .db
            .fetch_one(
                bind_fields(update, job)?.bind(updated),
                format!("job {}", job.id),
            )
            .await?;
        job_row(&row)
    }

    async fn delete_job(&self, id: JobId) -> Result<()> {
        let n = self
            .db
            .execute(Sql::new("DELETE FROM jobs WHERE id = $1").bind(id))
            .await?;
        if n == 0 {
            return Err(Error::not_found(format!("job {id}")));
        }
        Ok(())
    }

    async fn list_jobs(&self, filter: &JobFilter, page: Page) -> Result<Paged<Job>> {
        let mut w = Where::default();
        if let Some(n) = &filter.name {
            let p = w.arg(contains_pattern(n));
            w.cond(format!("name {} {p} ESCAPE '\\'", D::CI_LIKE));
        }
        if let Some(e) = filter.enabled {
            let p = w.arg(e);
            w.cond(format!("enabled = {p}"));
        }
        let total = self.db.count(w.count("jobs")).await?;
        let rows = self
            .db
            .fetch_all(w.page(&format!("SELECT {JOB_COLS} FROM jobs"), "name, id", page))
            .await?;
        let items = rows.iter().map(job_row).collect::<Result<Vec<_>>>()?;
        Ok(Paged::new(items, total, page))
    }

    async fn scheduled_jobs(&self) -> Result<Vec<Job>> {
        let rows = self
            .db
            .fetch_all(
                Sql::new(format!(
                    "SELECT {JOB_COLS} FROM jobs WHERE enabled = $1 \
                     AND schedule_type <> 'manual' ORDER BY id"
                ))
                .bind(true),
            )
            .await?;
        rows.iter().map(job_row).collect()
    }
}
