//! The job lifecycle engine.
use crate::error::Result;
use crate::model::NewRun;
use crate::queue::{Queue, TaskKind, TaskSpec};
use crate::store::{CreatedRun, Store};

/// Creates a run (deduplicated by (job, fire time) or idempotency key) and queues its start.
pub async fn submit_run(store: &dyn Store, queue: &dyn Queue, new: &NewRun) -> Result<CreatedRun> {
    let created = store.create_run(new).await?;
    if created.created || !created.run.status.is_final() {
        queue
            .enqueue(TaskSpec::new(TaskKind::StartRun {
                run_id: created.run.id,
            }))
            .await?;
    }
    Ok(created)
}
