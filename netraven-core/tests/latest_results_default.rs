//! The default `ResultStore::latest_results` (built on `list_results`, for stores of an
//! embedder's own) answers what the memory store's native one answers.

use async_trait::async_trait;
use chrono::{Duration, TimeZone, Utc};
use netraven_core::memory::MemoryStore;
use netraven_core::prelude::*;

/// A result store that implements only the required methods, so `latest_results` is the
/// trait's default.
#[derive(Debug)]
struct OnlyRequired(MemoryStore);

#[async_trait]
impl ResultStore for OnlyRequired {
    async fn record_result(&self, result: &DeviceResult) -> Result<RecordOutcome> {
        self.0.record_result(result).await
    }
    async fn get_result(&self, run: RunId, device: DeviceId) -> Result<Option<DeviceResult>> {
        self.0.get_result(run, device).await
    }
    async fn list_results(&self, filter: &ResultFilter, page: Page) -> Result<Paged<DeviceResult>> {
        self.0.list_results(filter, page).await
    }
}

#[tokio::test]
async fn the_default_latest_results_matches_the_native_one() {
    let mem = MemoryStore::new();
    let job = mem
        .create_job(&Job::backup("nightly", Targets::default()))
        .await
        .expect("job");
    let t0 = Utc
        .with_ymd_and_hms(2026, 3, 1, 12, 0, 0)
        .single()
        .expect("valid time");
    // (device, success, finished minutes after t0), in recording order.
    let plan = [
        (1, true, 1),
        (2, true, 1),
        (2, false, 2),
        (3, false, 1),
        (4, true, 3),
        (4, false, 3),
        (5, true, 10),
        (5, false, 5),
    ];
    for (device, ok, minutes) in plan {
        let run = mem
            .create_run(&NewRun {
                job_id: job.id,
                trigger: Trigger::Manual,
                fire_time: None,
                idempotency_key: None,
                status: RunStatus::Queued,
                message: None,
                queued_at: t0,
            })
            .await
            .expect("run")
            .run;
        let at = t0 + Duration::minutes(minutes);
        let r = DeviceResult {
            id: 0,
            run_id: run.id,
            job_id: job.id,
            device_id: device,
            status: if ok {
                DeviceStatus::Success
            } else {
                DeviceStatus::Failed
            },
            error_kind: (!ok).then_some(ErrorKind::Timeout),
            message: None,
            duration_ms: 5,
            credential_id: None,
            snapshot_id: None,
            changed: None,
            output: None,
            attempt: 1,
            started_at: at,
            finished_at: at,
        };
        mem.record_result(&r).await.expect("record");
    }
    let asked = [0, 1, 2, 3, 4, 5, 6];
    let native = mem.latest_results(&asked).await.expect("native");
    let default = OnlyRequired(mem)
        .latest_results(&asked)
        .await
        .expect("default");
    assert_eq!(native.len(), 5, "devices 1 to 5 have results");
    assert_eq!(default, native);
    let success_of_2 = native[&2]
        .latest_success
        .as_ref()
        .expect("device 2 succeeded");
    assert_eq!(success_of_2.finished_at, t0 + Duration::minutes(1));
    assert_eq!(native[&2].latest.status, DeviceStatus::Failed);
}
