//! Role supervision (issue #11): a role that fails or panics is logged, stops the others and
//! makes `stop_on` return its error (the server exits non-zero); the roles' states are kept.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use netraven::Netraven;
use netraven::core::events::RoleState;
use netraven::core::prelude::*;
use netraven::core::queue::{Enqueued, Lease, QueueStats, RetryOutcome, TaskSpec};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// A queue whose claims panic (a bug in a backend): the worker role dies of it.
#[derive(Debug)]
struct PanickingQueue;

#[async_trait]
impl Queue for PanickingQueue {
    async fn enqueue(&self, _spec: TaskSpec) -> Result<Enqueued> {
        Ok(Enqueued::New("t".into()))
    }
    async fn claim_in(
        &self,
        _w: &str,
        _zone: Option<&str>,
        _l: Duration,
        _wait: Duration,
    ) -> Result<Option<Lease>> {
        panic!("the queue backend panicked")
    }
    async fn extend(&self, _l: &Lease, _f: Duration) -> Result<DateTime<Utc>> {
        Ok(Utc::now())
    }
    async fn complete(&self, _l: &Lease) -> Result<()> {
        Ok(())
    }
    async fn retry(&self, _l: &Lease, _at: DateTime<Utc>, _r: &str) -> Result<RetryOutcome> {
        Ok(RetryOutcome::Scheduled)
    }
    async fn release(&self, _l: &Lease) -> Result<()> {
        Ok(())
    }
    async fn reap_expired(&self) -> Result<u64> {
        Ok(0)
    }
    async fn stats(&self) -> Result<QueueStats> {
        Ok(QueueStats::default())
    }
}

/// Waits for `stop_on` with a token nobody cancels: only a failed role can end it. A generous
/// bound turns a hang (the defect) into a failure instead of a stuck test.
async fn stopped_by_a_role(nr: &Netraven) -> Result<()> {
    tokio::time::timeout(
        Duration::from_secs(120),
        nr.stop_on(CancellationToken::new()),
    )
    .await
    .expect("a failed role did not stop the process")
}

#[tokio::test]
async fn a_panicking_worker_stops_the_process_with_an_error() {
    let nr = Netraven::builder()
        .in_memory()
        .without_git()
        .queue(std::sync::Arc::new(PanickingQueue))
        .build()
        .await
        .unwrap();
    nr.start();
    let err = stopped_by_a_role(&nr)
        .await
        .expect_err("stop_on returned Ok");
    assert_eq!(err.kind(), ErrorKind::Internal);
    assert!(err.message().contains("worker"), "{err}");
    let roles = nr.engine().roles().all();
    let worker = roles
        .iter()
        .find(|r| r.role == "worker")
        .expect("worker role");
    assert_eq!(worker.state, RoleState::Failed);
    assert_eq!(worker.error_kind, Some(ErrorKind::Internal));
    // The others were stopped gracefully, not left running.
    for r in roles.iter().filter(|r| r.role != "worker") {
        assert_eq!(r.state, RoleState::Stopped, "{r:?}");
    }
}

#[tokio::test]
async fn a_role_ending_with_an_error_stops_the_others() {
    let nr = Netraven::builder()
        .in_memory()
        .without_git()
        .build()
        .await
        .unwrap();
    nr.start_scheduler();
    nr.spawn_role("git", async {
        Err(Error::unavailable("cannot open /proc/nope/configs.git"))
    });
    let err = stopped_by_a_role(&nr)
        .await
        .expect_err("stop_on returned Ok");
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    let roles = nr.engine().roles().all();
    let state = |name: &str| roles.iter().find(|r| r.role == name).map(|r| r.state);
    assert_eq!(state("git"), Some(RoleState::Failed));
    assert_eq!(state("scheduler"), Some(RoleState::Stopped));
    // What /api/health shows: the kind, never the message (it may name a path or a host).
    let json = serde_json::to_string(&roles).unwrap();
    assert!(
        json.contains("unavailable") && !json.contains("/proc/nope"),
        "{json}"
    );
}
