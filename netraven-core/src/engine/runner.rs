//! What one task does: start a run (resolve and fan out), or work on one device.

use super::Engine;
use crate::error::{Error, ErrorKind, Result};
use crate::model::*;
use crate::queue::{Lease, TaskKind};
use chrono::{DateTime, Utc};
use std::collections::BTreeSet;
use std::time::Instant;

/// One device being worked on, counted in a gauge until dropped.
struct ActiveDevice<'a>(&'a std::sync::atomic::AtomicI64);

impl<'a> ActiveDevice<'a> {
    fn enter(gauge: &'a std::sync::atomic::AtomicI64) -> Self {
        gauge.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        ActiveDevice(gauge)
    }
}

impl Drop for ActiveDevice<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// How often a run waiting for an older run of its job (overlap `queue`) looks again.
const OVERLAP_QUEUE_POLL: std::time::Duration = std::time::Duration::from_secs(2);

/// What the worker should do with a task after running it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskOutcome {
    /// Done: complete it.
    Done,
    /// A retryable failure: deliver it again at this time (counts a failure of the task).
    Retry(DateTime<Utc>, String),
    /// A backing service (store, queue, git) is unavailable: hand the task back untouched, to
    /// be delivered again at this time. Counts no device attempt and no failure.
    Defer(DateTime<Utc>, String),
}

/// Collects a device's log entries and writes them in one batch at the end.
struct DeviceLog<'a> {
    engine: &'a Engine,
    run: RunId,
    job: JobId,
    device: DeviceId,
    entries: Vec<LogEntry>,
}

impl DeviceLog<'_> {
    fn push(&mut self, level: LogLevel, kind: LogKind, msg: String, fields: serde_json::Value) {
        let mut e = LogEntry::new(
            self.engine.clock.now(),
            level,
            kind,
            self.engine.source(),
            msg,
        );
        e.run_id = Some(self.run);
        e.job_id = Some(self.job);
        e.device_id = Some(self.device);
        e.fields = fields;
        self.entries.push(e);
    }

    async fn flush(&mut self) {
        if self.entries.is_empty() {
            return;
        }
        let entries = std::mem::take(&mut self.entries);
        if let Err(e) = self.engine.write_logs(&entries).await {
            tracing::warn!(error = %e, run = self.run, device = self.device, "could not write device logs");
        }
    }
}

/// A device's successful outcome.
struct DeviceOk {
    credential_id: Option<CredentialId>,
    snapshot_id: Option<SnapshotId>,
    changed: Option<bool>,
    output: Option<String>,
    message: String,
}

impl Engine {
    /// Runs one claimed task to its outcome. Errors are infrastructure failures (store down);
    /// device failures are recorded as results and return `Done`. An error of kind
    /// `unavailable` (the store, the queue or the sink is down) never becomes a device's
    /// result: it comes back as an error (or [`TaskOutcome::Defer`]) so the task is handed back.
    pub async fn process(&self, lease: &Lease) -> Result<TaskOutcome> {
        match lease.task.kind {
            TaskKind::StartRun { run_id } => self.start_run(run_id).await,
            TaskKind::Device { run_id, device_id } => {
                self.run_device(run_id, device_id, &lease.task).await
            }
        }
    }

    /// When a task handed back during an outage comes again: 1 s after the first hand-back,
    /// doubling with each, at most `retry_backoff` (and at most a minute).
    pub(crate) fn outage_backoff(&self, released: u32) -> std::time::Duration {
        let cap = self.config.retry_backoff.clamp(
            std::time::Duration::from_secs(1),
            std::time::Duration::from_secs(60),
        );
        std::time::Duration::from_secs(1u64 << released.min(6)).min(cap)
    }

    /// Records the final outcome of a task that went to the dead set (it failed or panicked
    /// `max_attempts` times, or killed its workers `max_deliveries` times), so recovery does not
    /// queue it again and its run can finish: a device gets one FAILED result (`internal`), a
    /// run that could not start fails.
    pub async fn bury(&self, task: &crate::queue::Task, reason: &str) -> Result<()> {
        let now = self.clock.now();
        match task.kind {
            TaskKind::StartRun { run_id } => {
                let msg = format!(
                    "the run's start task failed {} times: {reason}",
                    task.failures
                );
                if self
                    .stores
                    .runs
                    .finish_run(run_id, RunStatus::FailedError, now, Some(&msg))
                    .await?
                {
                    self.metrics.run_finished(RunStatus::FailedError);
                    self.run_finished(run_id, RunStatus::FailedError);
                }
                tracing::error!(
                    run = run_id,
                    reason,
                    "run start task is poison; the run failed"
                );
                Ok(())
            }
            TaskKind::Device { run_id, device_id } => {
                tracing::error!(
                    run = run_id,
                    device = device_id,
                    reason,
                    "device task is poison; recorded as failed"
                );
                let msg = format!(
                    "the device's task failed {} time(s) and was given up (poison task): {reason}",
                    task.failures.max(1)
                );
                self.record_failure(
                    run_id,
                    device_id,
                    ErrorKind::Internal,
                    &msg,
                    task.failures.max(1),
                )
                .await?;
                Ok(())
            }
        }
    }

    /// Records a device of a run as failed without working on it (a poison task, a zone
    /// without workers), through the same path as every result: one result per (run, device),
    /// the result that completes the tallies finishes the run. Returns whether this call
    /// recorded it (false: the run is gone or the device already has its result).
    pub async fn record_failure(
        &self,
        run_id: RunId,
        device_id: DeviceId,
        kind: ErrorKind,
        message: &str,
        attempt: u32,
    ) -> Result<bool> {
        let now = self.clock.now();
        let run = match self.stores.runs.get_run(run_id).await {
            Ok(r) => r,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(e),
        };
        let r = DeviceResult {
            id: 0,
            run_id,
            job_id: run.job_id,
            device_id,
            status: DeviceStatus::Failed,
            error_kind: Some(kind),
            message: Some(message.to_string()),
            duration_ms: 0,
            credential_id: None,
            snapshot_id: None,
            changed: None,
            output: None,
            attempt,
            started_at: now,
            finished_at: now,
        };
        let outcome = self.stores.results.record_result(&r).await?;
        if !outcome.inserted {
            return Ok(false);
        }
        let mut log = DeviceLog {
            engine: self,
            run: run_id,
            job: run.job_id,
            device: device_id,
            entries: Vec::new(),
        };
        log.push(
            LogLevel::Error,
            LogKind::Job,
            format!("device failed ({kind}): {message}"),
            serde_json::json!({ "status": "FAILED", "error_kind": kind, "attempt": attempt }),
        );
        log.flush().await;
        self.events.publish(crate::events::Event::Result(r));
        self.metrics.device_done(false, 0);
        if outcome.counts.is_complete() {
            self.finish(run_id, run.job_id, outcome.counts).await?;
        }
        Ok(true)
    }

    async fn run_log(&self, run: &Run, level: LogLevel, msg: String, fields: serde_json::Value) {
        let mut e = LogEntry::new(self.clock.now(), level, LogKind::Job, self.source(), msg);
        e.run_id = Some(run.id);
        e.job_id = Some(run.job_id);
        e.fields = fields;
        if let Err(err) = self.write_logs(&[e]).await {
            tracing::warn!(error = %err, run = run.id, "could not write a run log entry");
        }
    }

    /// Resolves targets as ids ∪ tag members (enabled devices only, deduplicated).
    async fn resolve_targets(&self, job: &Job) -> Result<Vec<DeviceId>> {
        let mut ids: BTreeSet<DeviceId> = job.targets.device_ids.iter().copied().collect();
        if !job.targets.tags.is_empty() {
            ids.extend(
                self.stores
                    .devices
                    .device_ids_with_tags(&job.targets.tags)
                    .await?,
            );
        }
        let ids: Vec<DeviceId> = ids.into_iter().collect();
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(1000) {
            out.extend(
                self.stores
                    .devices
                    .devices_by_ids(chunk)
                    .await?
                    .into_iter()
                    .filter(|d| d.enabled)
                    .map(|d| d.id),
            );
        }
        Ok(out)
    }

    async fn start_run(&self, run_id: RunId) -> Result<TaskOutcome> {
        let run = match self.stores.runs.get_run(run_id).await {
            Ok(r) => r,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(TaskOutcome::Done),
            Err(e) => return Err(e),
        };
        if run.status.is_final() {
            return Ok(TaskOutcome::Done);
        }
        let job = match self.stores.jobs.get_job(run.job_id).await {
            Ok(j) => j,
            Err(e) if e.kind() == ErrorKind::NotFound => {
                let now = self.clock.now();
                self.stores
                    .runs
                    .finish_run(
                        run.id,
                        RunStatus::FailedError,
                        now,
                        Some("the job was deleted"),
                    )
                    .await?;
                self.run_finished(run.id, RunStatus::FailedError);
                self.run_log(
                    &run,
                    LogLevel::Error,
                    "run failed: its job was deleted".into(),
                    serde_json::Value::Null,
                )
                .await;
                return Ok(TaskOutcome::Done);
            }
            Err(e) => return Err(e),
        };
        if run.status == RunStatus::Queued && job.overlap == OverlapPolicy::Queue {
            // Overlap `queue`: wait until every older active run of the job has finished.
            let older = self
                .stores
                .runs
                .active_runs()
                .await?
                .into_iter()
                .filter(|r| r.job_id == job.id && r.id < run.id)
                .map(|r| r.id)
                .min();
            if let Some(active) = older {
                let at = crate::clock::add(self.clock.now(), OVERLAP_QUEUE_POLL);
                return Ok(TaskOutcome::Defer(
                    at,
                    format!("waiting for run {active} of the job (overlap queue)"),
                ));
            }
        }
        let run = if run.status == RunStatus::Queued {
            let ids = self.resolve_targets(&job).await?;
            let started = self
                .stores
                .runs
                .start_run(run.id, &ids, self.clock.now())
                .await?;
            self.run_log(
                &started,
                LogLevel::Info,
                format!(
                    "run started: job '{}' ({}), {} devices resolved from {} ids and tags {:?}",
                    job.name,
                    job.kind.name(),
                    started.counts.total,
                    job.targets.device_ids.len(),
                    job.targets.tags
                ),
                serde_json::json!({ "devices": started.counts.total }),
            )
            .await;
            started
        } else {
            run
        };
        let ids = self.stores.runs.run_device_ids(run.id).await?;
        if ids.is_empty() {
            let now = self.clock.now();
            if self
                .stores
                .runs
                .finish_run(
                    run.id,
                    RunStatus::CompletedNoDevices,
                    now,
                    Some("no devices matched the job's targets"),
                )
                .await?
            {
                self.metrics.run_finished(RunStatus::CompletedNoDevices);
                self.run_log(
                    &run,
                    LogLevel::Warning,
                    "run finished COMPLETED_NO_DEVICES: no devices matched".into(),
                    serde_json::Value::Null,
                )
                .await;
                self.run_finished(run.id, RunStatus::CompletedNoDevices);
            }
            return Ok(TaskOutcome::Done);
        }
        let pending = self.stores.runs.pending_device_ids(run.id).await?;
        if job.kind != JobKind::Reachability && !pending.is_empty() {
            let Some(ctx) = self.runs.for_run(run.id, &self.stores).await? else {
                return Ok(TaskOutcome::Done);
            };
            let creds = ctx.credentials.clone();
            let mut any = false;
            for chunk in ids.chunks(1000) {
                let devices = self.stores.devices.devices_by_ids(chunk).await?;
                if devices.iter().any(|d| creds.has_candidates(d)) {
                    any = true;
                    break;
                }
            }
            if !any {
                return self.fail_all_no_credentials(&run, &pending).await;
            }
        }
        // One batch: a backend queues them in few round trips (dedupe keys make a retry of a
        // half-queued batch harmless).
        let specs = self.device_task_specs(run.id, &pending).await?;
        self.queue.enqueue_many(specs).await?;
        Ok(TaskOutcome::Done)
    }

    async fn fail_all_no_credentials(
        &self,
        run: &Run,
        pending: &[DeviceId],
    ) -> Result<TaskOutcome> {
        let now = self.clock.now();
        // Final status first, so the result that completes the tallies does not overwrite it.
        if self
            .stores
            .runs
            .finish_run(
                run.id,
                RunStatus::CompletedNoCredentials,
                now,
                Some("no device of the run has any credential"),
            )
            .await?
        {
            self.metrics.run_finished(RunStatus::CompletedNoCredentials);
        }
        for &device_id in pending {
            let r = DeviceResult {
                id: 0,
                run_id: run.id,
                job_id: run.job_id,
                device_id,
                status: DeviceStatus::Failed,
                error_kind: Some(ErrorKind::NoCredentials),
                message: Some(
                    "no credential shares a tag with the device and none is pinned".into(),
                ),
                duration_ms: 0,
                credential_id: None,
                snapshot_id: None,
                changed: None,
                output: None,
                attempt: 0,
                started_at: now,
                finished_at: now,
            };
            if self.stores.results.record_result(&r).await?.inserted {
                self.events.publish(crate::events::Event::Result(r));
            }
        }
        self.run_log(
            run,
            LogLevel::Error,
            format!(
                "run finished COMPLETED_NO_CREDENTIALS: none of its {} devices has a credential",
                pending.len()
            ),
            serde_json::Value::Null,
        )
        .await;
        self.run_finished(run.id, RunStatus::CompletedNoCredentials);
        Ok(TaskOutcome::Done)
    }

    async fn run_device(
        &self,
        run_id: RunId,
        device_id: DeviceId,
        task: &crate::queue::Task,
    ) -> Result<TaskOutcome> {
        // Device attempts, not deliveries: a task handed back (shutdown, outage) or redelivered
        // uses up no attempt.
        let attempt = task.failures.saturating_add(1);
        let lost = task.lost_deliveries();
        // Only a task delivered before can find its device finished (an earlier delivery
        // recorded the result and then failed to settle the task, or its worker died after the
        // result); a first delivery skips this read. Whatever the case, the store's unique
        // (run, device) key keeps the result to one (`record_result` reports `inserted`).
        if task.attempt > 1
            && self
                .stores
                .results
                .get_result(run_id, device_id)
                .await?
                .is_some()
        {
            // A second delivery of a finished device: the one result stands.
            return Ok(TaskOutcome::Done);
        }
        // The run's fixed facts, job kind and credentials: read at the run's first device on
        // this worker, shared by the rest. If the job or the credentials cannot be read, the
        // run is read on its own (for its job) and that error is the device's outcome.
        let (job_id, ctx) = match self.runs.for_run(run_id, &self.stores).await {
            Ok(Some(ctx)) => (ctx.job_id, Ok(ctx)),
            Ok(None) => return Ok(TaskOutcome::Done),
            Err(e) => match self.stores.runs.get_run(run_id).await {
                Ok(r) => (r.job_id, Err(e)),
                Err(e) if e.kind() == ErrorKind::NotFound => return Ok(TaskOutcome::Done),
                Err(e) => return Err(e),
            },
        };
        let mut log = DeviceLog {
            engine: self,
            run: run_id,
            job: job_id,
            device: device_id,
            entries: Vec::new(),
        };
        if lost > 0 {
            // Visible in the run's log: a device worked on again because a worker died with it.
            log.push(
                LogLevel::Warning,
                LogKind::Job,
                format!(
                    "delivered again: {lost} earlier deliveries ended without a result (a worker \
                     died or lost its lease)"
                ),
                serde_json::json!({ "lost_deliveries": lost }),
            );
        }
        let started_at = self.clock.now();
        let started = Instant::now();
        let outcome = if lost >= self.config.max_deliveries {
            Err(Error::internal(format!(
                "gave up: {lost} deliveries ended without a finished attempt (the worker died \
                 working on this device)"
            )))
        } else {
            match ctx {
                Err(e) => Err(e),
                Ok(ctx) => {
                    // Counted down on drop, so a panicking or aborted device does not stay
                    // "active".
                    let _active = ActiveDevice::enter(&self.metrics.active_devices);
                    // Read once: its timeout multiplier scales the deadline that covers the
                    // rest of the work, which uses the same row.
                    let device = self.stores.devices.get_device(device_id).await;
                    let mult = self.timeout_multiplier(device.as_ref().ok());
                    let device_timeout = self.config.device_timeout.mul_f64(mult);
                    tokio::time::timeout(
                        device_timeout,
                        self.work_device(run_id, &ctx, device, attempt, mult, &mut log),
                    )
                    .await
                    .unwrap_or_else(|_| {
                        Err(Error::timeout(format!(
                            "device did not finish within {} s",
                            device_timeout.as_secs()
                        )))
                    })
                }
            }
        };
        let ms = started.elapsed().as_millis() as u64;
        let finished_at = self.clock.now();
        if let Err(e) = &outcome
            && e.kind() == ErrorKind::Unavailable
        {
            // The store, the queue or the sink is down: not the device's fault. Hand the task
            // back with backoff; no result, no attempt used.
            let at = crate::clock::add(finished_at, self.outage_backoff(task.released));
            tracing::warn!(run = run_id, device = device_id, error = %e, %at, "a backing service is unavailable; the device task is handed back");
            log.push(
                LogLevel::Warning,
                LogKind::Job,
                format!("backing service unavailable ({}); retrying at {at} (not counted as a device attempt)", e.message()),
                serde_json::json!({ "error_kind": e.kind(), "attempt": attempt }),
            );
            log.flush().await;
            return Ok(TaskOutcome::Defer(at, e.to_string()));
        }
        let result = match outcome {
            Ok(ok) => DeviceResult {
                id: 0,
                run_id,
                job_id,
                device_id,
                status: DeviceStatus::Success,
                error_kind: None,
                message: Some(ok.message),
                duration_ms: ms,
                credential_id: ok.credential_id,
                snapshot_id: ok.snapshot_id,
                changed: ok.changed,
                output: ok.output,
                attempt,
                started_at,
                finished_at,
            },
            Err(e) if e.is_retryable() && attempt < self.config.device_attempts => {
                let at = crate::clock::add(finished_at, self.config.retry_backoff);
                log.push(
                    LogLevel::Warning,
                    LogKind::Connection,
                    format!(
                        "attempt {attempt} failed ({}): {}; retrying at {at}",
                        e.kind(),
                        e.message()
                    ),
                    serde_json::json!({ "error_kind": e.kind(), "attempt": attempt }),
                );
                log.flush().await;
                return Ok(TaskOutcome::Retry(at, e.to_string()));
            }
            Err(e) => DeviceResult {
                id: 0,
                run_id,
                job_id,
                device_id,
                status: DeviceStatus::Failed,
                error_kind: Some(e.kind()),
                message: Some(e.message().to_string()),
                duration_ms: ms,
                credential_id: None,
                snapshot_id: None,
                changed: None,
                output: None,
                attempt,
                started_at,
                finished_at,
            },
        };
        log.push(
            if result.status == DeviceStatus::Success {
                LogLevel::Info
            } else {
                LogLevel::Error
            },
            LogKind::Job,
            match result.status {
                DeviceStatus::Success => format!("device succeeded in {ms} ms"),
                DeviceStatus::Failed => format!(
                    "device failed ({}): {}",
                    result.error_kind.map(|k| k.as_str()).unwrap_or("unknown"),
                    result.message.as_deref().unwrap_or("")
                ),
            },
            serde_json::json!({
                "status": result.status.as_str(),
                "error_kind": result.error_kind,
                "duration_ms": ms,
                "attempt": attempt,
            }),
        );
        // Both writes at once: on SQLite they share a commit (the log, queued first, lands in
        // the same batch as the result or an earlier one); the result's event and the run's end
        // come after both.
        let ((), outcome) = tokio::join!(log.flush(), self.stores.results.record_result(&result));
        let outcome = outcome?;
        if outcome.inserted {
            self.events
                .publish(crate::events::Event::Result(result.clone()));
            self.metrics
                .device_done(result.status == DeviceStatus::Success, ms);
            if outcome.counts.is_complete() {
                self.finish(run_id, job_id, outcome.counts).await?;
            }
        }
        Ok(TaskOutcome::Done)
    }

    /// The factor every deadline of a device is multiplied by: the device's own
    /// `timeout_multiplier`, else its platform's (the driver's), else 1; clamped to 0.1..=100.
    /// A device or driver that cannot be read gets 1 (the attempt then fails on its own).
    fn timeout_multiplier(&self, device: Option<&Device>) -> f64 {
        let Some(device) = device else {
            return 1.0;
        };
        let m = device.timeout_multiplier.unwrap_or_else(|| {
            self.drivers
                .get(&device.platform)
                .map(|d| d.timeout_multiplier())
                .unwrap_or(1.0)
        });
        if m.is_finite() {
            m.clamp(0.1, 100.0)
        } else {
            1.0
        }
    }

    async fn work_device(
        &self,
        run_id: RunId,
        ctx: &super::RunContext,
        device: Result<Device>,
        attempt: u32,
        mult: f64,
        log: &mut DeviceLog<'_>,
    ) -> Result<DeviceOk> {
        let connect_timeout = self.config.connect_timeout.mul_f64(mult);
        let device = device?;
        let driver = self.drivers.get(&device.platform)?;
        // Before anything is sent to the device: a refused address gets no probe and no
        // credential.
        self.config
            .address_policy
            .check_host(&device.address, device.port)
            .await?;
        if ctx.kind == JobKind::Reachability {
            let took = driver.probe(&device, connect_timeout).await?;
            let msg = format!(
                "{} answered on {}:{} in {} ms",
                device.hostname,
                device.address,
                device.port,
                took.as_millis()
            );
            log.push(
                LogLevel::Info,
                LogKind::Connection,
                msg.clone(),
                serde_json::Value::Null,
            );
            return Ok(DeviceOk {
                credential_id: None,
                snapshot_id: None,
                changed: None,
                output: None,
                message: msg,
            });
        }
        let candidates = ctx.credentials.candidates(&device);
        if candidates.is_empty() {
            return Err(Error::new(
                ErrorKind::NoCredentials,
                "no credential shares a tag with the device and none is pinned",
            ));
        }
        let mut session = None;
        let mut rejected = 0;
        let mut untrusted_rejections = 0u32;
        for cred in &candidates {
            log.push(
                LogLevel::Info,
                LogKind::Connection,
                format!(
                    "connecting to {} ({}:{}, {}{}{}) as '{}' with credential '{}'",
                    device.hostname,
                    device.address,
                    device.port,
                    device.platform,
                    if device.transport == crate::model::Transport::Telnet {
                        ", telnet"
                    } else {
                        ""
                    },
                    device
                        .jump_host
                        .as_deref()
                        .map(|j| format!(", through jump host '{j}'"))
                        .unwrap_or_default(),
                    cred.username,
                    cred.name
                ),
                serde_json::json!({ "credential_id": cred.id }),
            );
            match driver
                .connect(&device, cred.as_ref(), connect_timeout)
                .await
            {
                Ok(mut s) => {
                    log.push(
                        LogLevel::Info,
                        LogKind::Connection,
                        format!("logged in with credential '{}'", cred.name),
                        serde_json::json!({ "credential_id": cred.id }),
                    );
                    for note in s.take_notes() {
                        log.push(
                            LogLevel::Info,
                            LogKind::Session,
                            note,
                            serde_json::Value::Null,
                        );
                    }
                    session = Some((s, cred.id));
                    break;
                }
                Err(e)
                    if e.kind() == ErrorKind::Auth
                        && e.is_on_untrusted_host()
                        && untrusted_rejections + 1 < attempt.max(1) =>
                {
                    // Attempt N of a device never logged into may offer N candidates (the
                    // ones earlier attempts offered, then one more).
                    untrusted_rejections += 1;
                    log.push(
                        LogLevel::Warning,
                        LogKind::Connection,
                        format!(
                            "credential '{}' rejected by a device not trusted yet; attempt \
                             {attempt} may offer {attempt} credential(s)",
                            cred.name
                        ),
                        serde_json::json!({ "credential_id": cred.id }),
                    );
                }
                Err(e) if e.kind() == ErrorKind::Auth && e.is_on_untrusted_host() => {
                    // A device never logged into before (new host key) may be a server
                    // collecting passwords: attempt N offers at most N candidates, and the
                    // failure does not change the ranking (the next attempt offers the same
                    // ones, then one more). At most `worker.attempts` credentials per run.
                    log.push(
                        LogLevel::Warning,
                        LogKind::Connection,
                        format!(
                            "credential '{}' rejected by a device whose host key is not trusted \
                             yet; no further credential is tried on it",
                            cred.name
                        ),
                        serde_json::json!({ "credential_id": cred.id }),
                    );
                    return Err(Error::new(
                        ErrorKind::Auth,
                        format!(
                            "credential '{}' rejected by a device not trusted yet (first login); \
                             attempt {attempt} offers at most {attempt} credential(s)",
                            cred.name
                        ),
                    )
                    .on_untrusted_host());
                }
                Err(e) if e.kind() == ErrorKind::Auth => {
                    rejected += 1;
                    self.stores
                        .credentials
                        .record_credential_use(cred.id, false, self.clock.now())
                        .await?;
                    log.push(
                        LogLevel::Warning,
                        LogKind::Connection,
                        format!("credential '{}' rejected; trying the next", cred.name),
                        serde_json::json!({ "credential_id": cred.id }),
                    );
                }
                Err(e) => {
                    log.push(
                        LogLevel::Error,
                        LogKind::Connection,
                        format!("connection failed ({}): {}", e.kind(), e.message()),
                        serde_json::json!({ "error_kind": e.kind() }),
                    );
                    return Err(e);
                }
            }
        }
        let Some((session, credential_id)) = session else {
            return Err(Error::new(
                ErrorKind::NoCredentials,
                format!("all {rejected} candidate credentials were rejected"),
            ));
        };
        let used =
            self.stores
                .credentials
                .record_credential_use(credential_id, true, self.clock.now());
        // `work_session` closes the session as soon as it has what it needs from it.
        let worked = self.work_session(
            &ctx.kind,
            &device,
            run_id,
            ctx,
            session,
            driver.as_ref(),
            self.config.command_timeout.mul_f64(mult),
            log,
        );
        let mut ok = if ctx.kind == JobKind::Backup {
            // A backup only reads the device: the login's statistics are written while the
            // session works, one wait for the store less per device. An error writing them
            // still fails the task (`unavailable` hands it back), after the session.
            let (used, worked) = tokio::join!(used, worked);
            used?;
            worked?
        } else {
            // Commands may change the device: none is sent unless the store took the login.
            used.await?;
            worked.await?
        };
        ok.credential_id = Some(credential_id);
        Ok(ok)
    }

    // One private caller passes the session's context by reference; a struct would only rename it.
    #[allow(clippy::too_many_arguments)]
    async fn work_session(
        &self,
        kind: &JobKind,
        device: &Device,
        run_id: RunId,
        ctx: &super::RunContext,
        mut session: Box<dyn crate::driver::Session>,
        driver: &dyn crate::driver::Driver,
        command_timeout: std::time::Duration,
        log: &mut DeviceLog<'_>,
    ) -> Result<DeviceOk> {
        match kind {
            JobKind::Backup => {
                log.push(
                    LogLevel::Info,
                    LogKind::Session,
                    "fetching the configuration".into(),
                    serde_json::Value::Null,
                );
                let fetched = session.fetch_config(command_timeout).await;
                // Closed before the configuration is processed: a device waiting for the
                // normaliser or the sink holds no connection and no SSH buffers.
                close_session(session, device.id).await;
                let raw = fetched?;
                // Who changed it: read from the raw text (the line is volatile and dropped by
                // normalising), else the user the triggering syslog message named.
                let author = driver.change_author(&raw).or_else(|| {
                    (ctx.trigger == crate::model::Trigger::Syslog)
                        .then_some(ctx.message.as_deref())
                        .flatten()
                        .and_then(crate::triggers::change_user_of)
                        .map(str::to_string)
                });
                let content = driver.rules().normalise(&raw)?;
                let raw_len = raw.len();
                drop(raw);
                let put = self
                    .sink
                    .put(NewSnapshot {
                        device_id: device.id,
                        hostname: device.hostname.clone(),
                        run_id: Some(run_id),
                        content,
                        taken_at: self.clock.now(),
                        author: author.clone(),
                    })
                    .await?;
                let msg = if put.changed {
                    format!(
                        "configuration changed; snapshot {} stored ({} bytes raw)",
                        put.snapshot_id, raw_len
                    )
                } else {
                    format!("configuration unchanged (snapshot {})", put.snapshot_id)
                };
                log.push(LogLevel::Info, LogKind::Snapshot, msg.clone(), serde_json::json!({ "snapshot_id": put.snapshot_id, "changed": put.changed, "hash": put.hash }));
                Ok(DeviceOk {
                    credential_id: None,
                    snapshot_id: Some(put.snapshot_id),
                    changed: Some(put.changed),
                    output: None,
                    message: msg,
                })
            }
            JobKind::Command { commands } => {
                let ran: Result<DeviceOk> = async {
                // Commands may change the device: they run at most once per run. The mark is
                // set before the first one is sent, so a redelivered task (a worker died, a
                // retry after a timeout mid-command) records `interrupted` instead.
                if !self
                    .stores
                    .runs
                    .mark_device_started(run_id, device.id, self.clock.now())
                    .await?
                {
                    log.push(
                        LogLevel::Warning,
                        LogKind::Session,
                        "an earlier attempt already started the commands; not running them again"
                            .into(),
                        serde_json::Value::Null,
                    );
                    return Err(Error::new(
                        ErrorKind::Interrupted,
                        "an earlier attempt started running the commands on this device and did \
                         not finish; they are not run a second time",
                    ));
                }
                let mut out = String::new();
                for c in commands {
                    log.push(
                        LogLevel::Info,
                        LogKind::Session,
                        format!("running '{c}'"),
                        serde_json::Value::Null,
                    );
                    let o = session.run_command(c, command_timeout).await?;
                    out.push_str(&format!("### {c}\n{}\n", driver.rules().redact(&o)));
                }
                Ok(DeviceOk {
                    credential_id: None,
                    snapshot_id: None,
                    changed: None,
                    output: Some(out),
                    message: format!("{} commands run", commands.len()),
                })
                }
                .await;
                close_session(session, device.id).await;
                ran
            }
            JobKind::Reachability => {
                close_session(session, device.id).await;
                Err(Error::internal("reachability needs no session"))
            }
        }
    }
}

/// Logs out of a session; a failure to say goodbye is not the device's result.
async fn close_session(session: Box<dyn crate::driver::Session>, device: DeviceId) {
    if let Err(e) = session.close().await {
        tracing::debug!(error = %e, device, "closing the session failed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::SystemClock;
    use crate::driver::DriverRegistry;
    use crate::engine::{EngineConfig, EngineParts};
    use crate::memory::{FakeBehavior, FakeDriver, MemoryQueue, MemoryStore};
    use crate::normalise::Rules;
    use crate::queue::Task;
    use crate::snapshot::StoreSnapshotSink;
    use crate::store::{
        CredentialStore, DeviceStore, JobStore, LogStore, ResultStore, RunStore, SnapshotStore,
    };
    use std::sync::Arc;

    struct Rig {
        store: Arc<MemoryStore>,
        driver: Arc<FakeDriver>,
        engine: Engine,
        run: RunId,
        device: DeviceId,
    }

    /// One backup run of one device, started (its device set fixed), no task queued.
    async fn rig() -> Rig {
        let store = Arc::new(MemoryStore::new());
        let driver = Arc::new(FakeDriver::new(
            "fake_ios",
            Rules::new::<&str, &str, &str>(&[], &[]).unwrap(),
            FakeBehavior {
                config: "hostname r1\n".into(),
                ..FakeBehavior::default()
            },
        ));
        let mut reg = DriverRegistry::new();
        reg.register(driver.clone());
        let mut c = Credential::new("c", "ops", crate::Secret::new("pw"));
        c.tags = vec!["lab".into()];
        store.create_credential(&c).await.unwrap();
        let d = store
            .create_device(&Device::new("r1", "127.0.0.1", "fake_ios").with_tags(["lab"]))
            .await
            .unwrap();
        let job = store
            .create_job(&Job::backup(
                "j",
                Targets {
                    device_ids: vec![d.id],
                    tags: vec![],
                },
            ))
            .await
            .unwrap();
        let engine = Engine::new(
            EngineParts {
                store: store.clone(),
                queue: Arc::new(MemoryQueue::new(Arc::new(SystemClock))),
                drivers: Arc::new(reg),
                sink: Arc::new(StoreSnapshotSink::new(store.clone())),
                clock: Arc::new(SystemClock),
            },
            EngineConfig {
                device_attempts: 1,
                ..EngineConfig::default()
            },
        );
        let run = engine.run_now(job.id, None).await.unwrap().run;
        store
            .start_run(run.id, &[d.id], chrono::Utc::now())
            .await
            .unwrap();
        Rig {
            store,
            driver,
            engine,
            run: run.id,
            device: d.id,
        }
    }

    /// The device task of `r`'s device as claimed for the `attempt`-th time, `failures` of the
    /// earlier deliveries having failed.
    fn delivery(r: &Rig, attempt: u32, failures: u32) -> Lease {
        Lease {
            task: Task {
                id: "t".into(),
                kind: TaskKind::Device {
                    run_id: r.run,
                    device_id: r.device,
                },
                dedupe_key: None,
                attempt,
                max_attempts: 5,
                failures,
                released: 0,
                zone: None,
            },
            worker_id: "w".into(),
            expires_at: chrono::Utc::now(),
        }
    }

    async fn results(r: &Rig) -> u64 {
        r.store
            .list_results(
                &ResultFilter {
                    run_id: Some(r.run),
                    ..Default::default()
                },
                Page::first(10),
            )
            .await
            .unwrap()
            .total
    }

    /// A task delivered again (its worker died after the result, or settling it failed) finds
    /// the device finished and does not work on it again: no login, one result, tallies counted
    /// once — whether the earlier delivery was lost or failed.
    #[tokio::test]
    async fn a_redelivered_task_of_a_finished_device_does_not_run_it_again() {
        let r = rig().await;
        assert_eq!(
            r.engine.process(&delivery(&r, 1, 0)).await.unwrap(),
            TaskOutcome::Done
        );
        assert_eq!(r.driver.attempts().len(), 1);
        for (attempt, failures) in [(2, 0), (3, 1)] {
            assert_eq!(
                r.engine
                    .process(&delivery(&r, attempt, failures))
                    .await
                    .unwrap(),
                TaskOutcome::Done
            );
        }
        assert_eq!(
            r.driver.attempts().len(),
            1,
            "the device was not logged into again"
        );
        assert_eq!(results(&r).await, 1);
        let run = r.store.get_run(r.run).await.unwrap();
        assert_eq!(run.status, RunStatus::CompletedSuccess);
        assert_eq!((run.counts.succeeded, run.counts.failed), (1, 0));
    }

    /// A first delivery does not read the device's result before working (that read is only
    /// made for a task delivered before). Should a device nonetheless get a second task (a
    /// recovery that raced the first task's end), the store's unique (run, device) key keeps
    /// its one result: the second finish records nothing and counts nothing.
    #[tokio::test]
    async fn a_first_delivery_skips_the_result_read_and_the_unique_key_keeps_one_result() {
        let r = rig().await;
        r.engine.process(&delivery(&r, 1, 0)).await.unwrap();
        let first = r
            .store
            .get_result(r.run, r.device)
            .await
            .unwrap()
            .expect("recorded");
        r.engine.process(&delivery(&r, 1, 0)).await.unwrap();
        assert_eq!(
            r.driver.attempts().len(),
            2,
            "a first delivery works on the device without reading its result first"
        );
        assert_eq!(results(&r).await, 1);
        assert_eq!(
            r.store.get_result(r.run, r.device).await.unwrap(),
            Some(first)
        );
        let run = r.store.get_run(r.run).await.unwrap();
        assert_eq!((run.counts.succeeded, run.counts.done()), (1, 1));
        // The same content twice: one snapshot.
        assert_eq!(
            r.store
                .list_snapshots(r.device, Page::first(10))
                .await
                .unwrap()
                .total,
            1
        );
    }

    /// The device is read once per attempt and its tags still rank the credentials; the run's
    /// facts come from the per-run context (a syslog run's message names the change's author).
    #[tokio::test]
    async fn the_run_context_supplies_the_runs_facts() {
        let r = rig().await;
        let job = r.store.get_run(r.run).await.unwrap().job_id;
        let syslog = r
            .store
            .create_run(&NewRun {
                job_id: job,
                trigger: Trigger::Syslog,
                fire_time: None,
                idempotency_key: Some("s".into()),
                status: RunStatus::Queued,
                message: Some("syslog: configuration changed by user 'alice'".into()),
                queued_at: chrono::Utc::now(),
            })
            .await
            .unwrap()
            .run;
        r.store
            .start_run(syslog.id, &[r.device], chrono::Utc::now())
            .await
            .unwrap();
        let mut lease = delivery(&r, 1, 0);
        lease.task.kind = TaskKind::Device {
            run_id: syslog.id,
            device_id: r.device,
        };
        assert_eq!(r.engine.process(&lease).await.unwrap(), TaskOutcome::Done);
        let res = r
            .store
            .get_result(syslog.id, r.device)
            .await
            .unwrap()
            .expect("recorded");
        assert_eq!(res.status, DeviceStatus::Success, "{res:?}");
        assert_eq!(res.job_id, job);
        let snap = r
            .store
            .latest_snapshot(r.device)
            .await
            .unwrap()
            .expect("snapshot");
        assert_eq!(snap.author.as_deref(), Some("alice"));
        assert_eq!(snap.run_id, Some(syslog.id));
        let logs = r
            .store
            .list_logs(
                &LogFilter {
                    run_id: Some(syslog.id),
                    ..Default::default()
                },
                Page::first(50),
            )
            .await
            .unwrap();
        let device_logs: Vec<_> = logs
            .items
            .iter()
            .filter(|l| l.device_id == Some(r.device))
            .collect();
        assert!(!device_logs.is_empty(), "{logs:?}");
        assert!(
            device_logs.iter().all(|l| l.job_id == Some(job)),
            "{logs:?}"
        );
    }
}
