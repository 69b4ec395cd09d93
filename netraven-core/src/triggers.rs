//! Backups asked for by a device or by another tool instead of a schedule: `POST
//! /api/devices/{id}/backup` and configuration-change messages a device sends to the syslog
//! listener (the listener itself, with its sockets and parsing, lives in
//! `netraven-drivers::syslog`).
//!
//! A backup of one device is a run of that device's own job, `device-backup-<id>` (a system job,
//! created the first time, manual schedule, the device as its only target), so it goes through
//! the same queue, workers, result rules and history as every other run; the run records what
//! started it ([`Trigger::Api`] or [`Trigger::Syslog`]) and why (its message). A request while
//! a run of that job is still queued returns that run instead of queueing a second one; a
//! request while it runs queues another (the change may have come after the fetch started).
//!
//! [`Debouncer`] merges a burst of change messages from one device (one per command on some
//! platforms) into one backup at the end of a window.

use crate::engine::Engine;
use crate::error::{ErrorKind, Result};
use crate::model::{DeviceId, Job, JobFilter, NewRun, Page, RunStatus, Targets, Trigger};
use crate::store::CreatedRun;
use async_trait::async_trait;
use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The syslog listener's settings (`[syslog]` in the server's configuration). Off unless
/// `listen` is set.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SyslogSettings {
    /// Address to listen on, e.g. `0.0.0.0:514` or `[::]:5514`; absent (the default): no
    /// listener.
    pub listen: Option<String>,
    /// Listen on UDP at `listen` (default true).
    pub udp: bool,
    /// Listen on TCP at `listen` (default true).
    pub tcp: bool,
    /// Change messages from one device within this many seconds make one backup, queued at the
    /// end of the window (default 60; 0 queues at once).
    pub debounce_secs: u64,
}

impl Default for SyslogSettings {
    fn default() -> Self {
        SyslogSettings {
            listen: None,
            udp: true,
            tcp: true,
            debounce_secs: 60,
        }
    }
}

/// The name of the job that holds a device's triggered backups.
pub fn device_job_name(device: DeviceId) -> String {
    format!("device-backup-{device}")
}

/// Something that queues a backup of one device (the [`Engine`]; a fake in tests).
#[async_trait]
pub trait BackupRequester: Send + Sync + Debug {
    /// Queues a backup of `device`, recording `trigger` and `detail` (why) on the run.
    async fn backup_device(
        &self,
        device: DeviceId,
        trigger: Trigger,
        detail: Option<String>,
    ) -> Result<CreatedRun>;
}

impl Engine {
    /// Queues a backup of one device as a run of its `device-backup-<id>` job (created on first
    /// use), with `trigger` and `detail` recorded on the run. A run of that job still queued is
    /// returned instead of a new one (`created: false`). NotFound for an unknown device.
    pub async fn backup_device(
        &self,
        device: DeviceId,
        trigger: Trigger,
        detail: Option<String>,
    ) -> Result<CreatedRun> {
        let dev = self.stores().devices.get_device(device).await?;
        let job = self.device_job(device, &dev.hostname).await?;
        let queued = self
            .stores()
            .runs
            .active_runs()
            .await?
            .into_iter()
            .find(|r| r.job_id == job.id && r.status == RunStatus::Queued);
        if let Some(run) = queued {
            return Ok(CreatedRun {
                run,
                created: false,
            });
        }
        crate::engine::submit_run(
            self.stores().runs.as_ref(),
            self.queue().as_ref(),
            &NewRun {
                job_id: job.id,
                trigger,
                fire_time: None,
                idempotency_key: None,
                status: RunStatus::Queued,
                message: detail,
                queued_at: self.clock().now(),
            },
        )
        .await
    }

    async fn device_job(&self, device: DeviceId, hostname: &str) -> Result<Job> {
        let name = device_job_name(device);
        let find = || async {
            let filter = JobFilter {
                name: Some(name.clone()),
                enabled: None,
            };
            let page = self
                .stores()
                .jobs
                .list_jobs(&filter, Page::new(1, 100))
                .await?;
            Ok::<_, crate::error::Error>(page.items.into_iter().find(|j| j.name == name))
        };
        if let Some(j) = find().await? {
            return Ok(j);
        }
        let mut job = Job::backup(
            name.clone(),
            Targets {
                device_ids: vec![device],
                tags: Vec::new(),
            },
        );
        job.description = Some(format!(
            "Backups of '{hostname}' asked for by the device (syslog) or another tool \
             (POST /api/devices/{device}/backup)"
        ));
        job.system = true;
        match self.stores().jobs.create_job(&job).await {
            Ok(j) => Ok(j),
            // Created by a concurrent request in the meantime.
            Err(e) if e.kind() == ErrorKind::Conflict => find().await?.ok_or(e),
            Err(e) => Err(e),
        }
    }
}

#[async_trait]
impl BackupRequester for Engine {
    async fn backup_device(
        &self,
        device: DeviceId,
        trigger: Trigger,
        detail: Option<String>,
    ) -> Result<CreatedRun> {
        Engine::backup_device(self, device, trigger, detail).await
    }
}

/// One configuration-change message, attributed to a device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeNotice {
    /// The device that sent it.
    pub device: DeviceId,
    /// Its host name (for the run's message).
    pub hostname: String,
    /// Who made the change, when the message says.
    pub user: Option<String>,
    /// What recognised it (e.g. the message tag `%SYS-5-CONFIG_I`).
    pub what: String,
}

#[derive(Debug)]
struct Pending {
    notice: ChangeNotice,
    count: u32,
}

/// Merges the change messages of one device within `window` into one backup, queued at the
/// end of the window (at once for a zero window).
#[derive(Debug)]
pub struct Debouncer {
    requester: Arc<dyn BackupRequester>,
    window: Duration,
    pending: Mutex<HashMap<DeviceId, Pending>>,
}

impl Debouncer {
    /// A debouncer queueing through `requester`.
    pub fn new(requester: Arc<dyn BackupRequester>, window: Duration) -> Arc<Self> {
        Arc::new(Debouncer {
            requester,
            window,
            pending: Mutex::new(HashMap::new()),
        })
    }

    /// Devices with a backup waiting for the end of their window.
    pub fn pending(&self) -> usize {
        self.pending.lock().map(|p| p.len()).unwrap_or(0)
    }

    /// Takes a notice. Returns true when it opened a window (a backup follows at its end),
    /// false when it joined an open one. Must be called within a tokio runtime.
    pub fn notice(self: &Arc<Self>, notice: ChangeNotice) -> bool {
        let device = notice.device;
        {
            let Ok(mut pending) = self.pending.lock() else {
                return false;
            };
            if let Some(p) = pending.get_mut(&device) {
                p.count += 1;
                // The latest message that names a user wins.
                if notice.user.is_some() {
                    p.notice.user = notice.user;
                }
                return false;
            }
            pending.insert(device, Pending { notice, count: 1 });
        }
        let me = self.clone();
        tokio::spawn(async move {
            if !me.window.is_zero() {
                tokio::time::sleep(me.window).await;
            }
            let Some(p) = me.pending.lock().ok().and_then(|mut m| m.remove(&device)) else {
                return;
            };
            let detail = change_detail(&p.notice, p.count);
            match me
                .requester
                .backup_device(device, Trigger::Syslog, Some(detail))
                .await
            {
                Ok(c) => tracing::info!(
                    device,
                    run_id = c.run.id,
                    created = c.created,
                    messages = p.count,
                    "configuration change reported by the device; backup queued"
                ),
                Err(e) => {
                    tracing::warn!(device, error = %e, "could not queue a device-triggered backup")
                }
            }
        });
        true
    }
}

/// The run message of a syslog-triggered backup: `syslog: %SYS-5-CONFIG_I from r1 by user
/// 'admin' (3 messages)`. The user name is the one the device reported
/// ([`change_user_of`] reads it back).
pub fn change_detail(n: &ChangeNotice, count: u32) -> String {
    let mut s = format!("syslog: {} from {}", n.what, n.hostname);
    if let Some(u) = &n.user {
        s.push_str(&format!(" by user '{u}'"));
    }
    if count > 1 {
        s.push_str(&format!(" ({count} messages)"));
    }
    s
}

/// The user a syslog-triggered run's message names ([`change_detail`]), if any.
pub fn change_user_of(message: &str) -> Option<&str> {
    let rest = message.strip_prefix("syslog: ")?;
    let i = rest.find(" by user '")?;
    let after = &rest[i + " by user '".len()..];
    let end = after.find('\'')?;
    Some(&after[..end]).filter(|u| !u.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Run, RunCounts};

    #[derive(Debug, Default)]
    struct Recorder(Mutex<Vec<(DeviceId, Trigger, Option<String>)>>);

    #[async_trait]
    impl BackupRequester for Recorder {
        async fn backup_device(
            &self,
            device: DeviceId,
            trigger: Trigger,
            detail: Option<String>,
        ) -> Result<CreatedRun> {
            self.0.lock().unwrap().push((device, trigger, detail));
            Ok(CreatedRun {
                run: Run {
                    id: 1,
                    job_id: 1,
                    trigger,
                    fire_time: None,
                    status: RunStatus::Queued,
                    queued_at: chrono::DateTime::<chrono::Utc>::UNIX_EPOCH,
                    started_at: None,
                    finished_at: None,
                    counts: RunCounts::default(),
                    idempotency_key: None,
                    message: None,
                },
                created: true,
            })
        }
    }

    fn notice(device: DeviceId, user: Option<&str>) -> ChangeNotice {
        ChangeNotice {
            device,
            hostname: format!("r{device}"),
            user: user.map(str::to_string),
            what: "%SYS-5-CONFIG_I".into(),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_from_one_device_makes_one_backup_at_the_end_of_the_window() {
        let rec = Arc::new(Recorder::default());
        let d = Debouncer::new(rec.clone(), Duration::from_secs(60));
        assert!(d.notice(notice(7, None)));
        assert!(!d.notice(notice(7, Some("alice"))));
        assert!(!d.notice(notice(7, None)));
        assert!(d.notice(notice(8, None)));
        assert_eq!(d.pending(), 2);
        tokio::time::sleep(Duration::from_secs(59)).await;
        assert!(rec.0.lock().unwrap().is_empty());
        tokio::time::sleep(Duration::from_secs(2)).await;
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        let mut got = rec.0.lock().unwrap().clone();
        got.sort_by_key(|g| g.0);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].0, 7);
        assert_eq!(got[0].1, Trigger::Syslog);
        let detail = got[0].2.clone().unwrap();
        assert_eq!(
            detail,
            "syslog: %SYS-5-CONFIG_I from r7 by user 'alice' (3 messages)"
        );
        assert_eq!(change_user_of(&detail), Some("alice"));
        assert_eq!(change_user_of(got[1].2.as_deref().unwrap()), None);
        assert_eq!(d.pending(), 0);
        // A new message after the window opens a new one.
        assert!(d.notice(notice(7, None)));
    }
}
