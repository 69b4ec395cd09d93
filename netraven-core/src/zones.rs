//! Zones (remote pollers): which workers reach which devices, and what happens when a zone has
//! no worker.
//!
//! A device or a tag may name a zone (a site a central server cannot reach directly). A
//! device's **effective zone** is its own `zone`, else the zone of its first tag (in the
//! device's tag order) that has one, else none: the default zone. A run's start fans out one
//! device task per device into its effective zone ([`crate::queue::TaskSpec::zone`]); a worker
//! started for a zone (`netraven worker --zone NAME`, [`crate::engine::EngineConfig::zone`])
//! claims only that zone's tasks ([`crate::queue::Queue::claim_in`]) and reports a heartbeat
//! ([`crate::queue::Queue::heartbeat`]). A run spanning zones completes like any other: when
//! every device has its one result.
//!
//! [`ZoneWatch`] (run by the maintenance leader) keeps a zone without workers from hanging its
//! runs: a named zone with queued tasks and no live worker for `zone_timeout` has its tasks
//! taken and each device recorded as failed with kind `no_worker`, through the same
//! result-recording path as every other outcome (one result per (run, device)).
//! [`zone_status`] is what `/api/system/status` shows per zone.

use crate::engine::Engine;
use crate::error::{ErrorKind, Result};
use crate::model::{DeviceSpec, Page};
use crate::queue::{Queue, TaskKind};
use crate::store::TagStore;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// A worker is live while its last heartbeat is younger than this (workers beat every
/// [`crate::engine::EngineConfig::heartbeat_every`], 5 s by default).
pub const DEFAULT_LIVE_WINDOW: Duration = Duration::from_secs(20);

/// How long a zone may have queued tasks and no live worker before they fail (`no_worker`).
pub const DEFAULT_ZONE_TIMEOUT: Duration = Duration::from_secs(300);

/// The zones tags give their devices: tag name → zone.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TagZones {
    zones: HashMap<String, String>,
}

impl TagZones {
    /// Reads every tag's zone from the store.
    pub async fn load(tags: &dyn TagStore) -> Result<Self> {
        let mut zones = HashMap::new();
        const CHUNK: u32 = 1000;
        for n in 1.. {
            let page = tags.list_tags(Page::new(n, CHUNK)).await?;
            let got = page.items.len();
            for t in page.items {
                if let Some(z) = t.zone {
                    zones.insert(t.name, z);
                }
            }
            if got < CHUNK as usize {
                break;
            }
        }
        Ok(TagZones { zones })
    }

    /// From (tag, zone) pairs.
    pub fn from_pairs<I, T, Z>(pairs: I) -> Self
    where
        I: IntoIterator<Item = (T, Z)>,
        T: Into<String>,
        Z: Into<String>,
    {
        TagZones {
            zones: pairs
                .into_iter()
                .map(|(t, z)| (t.into(), z.into()))
                .collect(),
        }
    }

    /// The zone of a tag, if it has one.
    pub fn of_tag(&self, tag: &str) -> Option<&str> {
        self.zones.get(tag).map(String::as_str)
    }

    /// The device's effective zone: its own, else its first tag's that has one, else `None`
    /// (the default zone).
    pub fn zone_of(&self, device: &DeviceSpec) -> Option<String> {
        effective_zone(device, |t| self.of_tag(t))
    }
}

/// A device's effective zone given how to look up a tag's zone: the device's own `zone`, else
/// the zone of its first tag that has one, else `None` (the default zone).
pub fn effective_zone<'a>(
    device: &DeviceSpec,
    tag_zone: impl Fn(&str) -> Option<&'a str>,
) -> Option<String> {
    device.zone.clone().or_else(|| {
        device
            .tags
            .iter()
            .find_map(|t| tag_zone(t))
            .map(str::to_string)
    })
}

/// Whether a zone has a worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ZoneState {
    /// At least one live worker.
    Ok,
    /// No live worker: its tasks wait, and fail with `no_worker` after the zone timeout.
    NoWorker,
}

/// One zone as `/api/system/status` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ZoneStatus {
    /// The zone (`None`: the default zone).
    pub zone: Option<String>,
    /// Workers whose last heartbeat is within the live window.
    pub live_workers: u64,
    /// Their ids.
    pub workers: Vec<String>,
    /// Tasks queued in the zone (ready, delayed or leased).
    pub queued: u64,
    /// Ok, or no live worker.
    pub state: ZoneState,
    /// The newest heartbeat of any of its workers seen in the live window.
    pub last_heartbeat: Option<DateTime<Utc>>,
}

/// Every zone that has tasks or live workers (the default zone first, always listed), with its
/// live workers (heartbeat within `live_window` before `now`), queued tasks and state.
pub async fn zone_status(
    queue: &dyn Queue,
    now: DateTime<Utc>,
    live_window: Duration,
) -> Result<Vec<ZoneStatus>> {
    let since = crate::clock::sub(now, live_window);
    let beats = queue.workers(since).await?;
    let mut out: Vec<ZoneStatus> = Vec::new();
    let entry = |out: &mut Vec<ZoneStatus>, zone: &Option<String>| -> usize {
        if let Some(i) = out.iter().position(|z| &z.zone == zone) {
            return i;
        }
        out.push(ZoneStatus {
            zone: zone.clone(),
            live_workers: 0,
            workers: Vec::new(),
            queued: 0,
            state: ZoneState::NoWorker,
            last_heartbeat: None,
        });
        out.len() - 1
    };
    entry(&mut out, &None);
    for z in queue.zone_stats().await? {
        let i = entry(&mut out, &z.zone);
        out[i].queued = z.stats.ready + z.stats.delayed + z.stats.leased;
    }
    for b in beats {
        let i = entry(&mut out, &b.zone);
        out[i].live_workers += 1;
        out[i].workers.push(b.worker_id);
        out[i].last_heartbeat = out[i].last_heartbeat.max(Some(b.at));
    }
    for z in &mut out {
        z.state = if z.live_workers > 0 {
            ZoneState::Ok
        } else {
            ZoneState::NoWorker
        };
    }
    out[1..].sort_by(|a, b| a.zone.cmp(&b.zone));
    Ok(out)
}

/// Settings of [`ZoneWatch`].
#[derive(Debug, Clone)]
pub struct ZoneWatchConfig {
    /// How long a named zone may have queued tasks and no live worker before its devices fail
    /// with `no_worker` (`worker.zone_timeout_secs`). Default 300 s.
    pub zone_timeout: Duration,
    /// A worker is live while its last heartbeat is younger than this. Default 20 s.
    pub live_window: Duration,
    /// The lease the watch takes on a task it fails (it holds it only while recording).
    pub lease: Duration,
}

impl Default for ZoneWatchConfig {
    fn default() -> Self {
        ZoneWatchConfig {
            zone_timeout: DEFAULT_ZONE_TIMEOUT,
            live_window: DEFAULT_LIVE_WINDOW,
            lease: Duration::from_secs(60),
        }
    }
}

/// What one [`ZoneWatch::check`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ZoneWatchReport {
    /// Named zones seen with queued tasks and no live worker.
    pub without_worker: Vec<String>,
    /// Devices recorded as failed with `no_worker`.
    pub failed: u64,
}

/// Fails the queued tasks of named zones that have had no live worker for the zone timeout.
/// Run by whoever holds the maintenance lease ([`crate::maintenance::Maintenance`]). The
/// default zone is never watched: its tasks wait for a worker as they always did.
#[derive(Debug)]
pub struct ZoneWatch {
    engine: Arc<Engine>,
    config: ZoneWatchConfig,
    holder: String,
    /// Since when (this watch's clock) each zone has been seen with tasks and no live worker.
    since: HashMap<String, DateTime<Utc>>,
}

impl ZoneWatch {
    /// A watch over `engine`'s queue and stores; `holder` names it in leases and logs.
    pub fn new(engine: Arc<Engine>, config: ZoneWatchConfig, holder: impl Into<String>) -> Self {
        ZoneWatch {
            engine,
            config,
            holder: holder.into(),
            since: HashMap::new(),
        }
    }

    /// The settings.
    pub fn config(&self) -> &ZoneWatchConfig {
        &self.config
    }

    /// One pass: notes which named zones have queued tasks and no live worker, and fails the
    /// tasks of those that have been so for `zone_timeout` (measured from the later of the
    /// zone's last heartbeat and the moment this watch first saw it without a worker).
    pub async fn check(&mut self) -> Result<ZoneWatchReport> {
        let mut report = ZoneWatchReport::default();
        let now = self.engine.clock().now();
        let zones = zone_status(self.engine.queue().as_ref(), now, self.config.live_window).await?;
        let mut seen = Vec::new();
        for z in zones {
            let Some(name) = z.zone else { continue };
            if z.state == ZoneState::Ok || z.queued == 0 {
                continue;
            }
            seen.push(name.clone());
            report.without_worker.push(name.clone());
            let first = *self.since.entry(name.clone()).or_insert_with(|| {
                tracing::warn!(zone = %name, queued = z.queued, "zone has queued tasks and no live worker");
                now
            });
            let timeout = chrono::Duration::from_std(self.config.zone_timeout)
                .unwrap_or(chrono::Duration::MAX);
            if now.signed_duration_since(first) >= timeout {
                report.failed += self.fail_zone(&name).await?;
            }
        }
        self.since.retain(|z, _| seen.contains(z));
        Ok(report)
    }

    /// Takes every deliverable task of `zone` and records its device as failed (`no_worker`).
    async fn fail_zone(&self, zone: &str) -> Result<u64> {
        let queue = self.engine.queue().clone();
        let worker = format!("zone-watch:{}", self.holder);
        let timeout = self.config.zone_timeout.as_secs();
        let mut failed = 0;
        while let Some(lease) = queue
            .claim_in(&worker, Some(zone), self.config.lease, Duration::ZERO)
            .await?
        {
            match lease.task.kind {
                TaskKind::Device { run_id, device_id } => {
                    let msg = format!(
                        "zone '{zone}' had no live worker for {timeout} s; nobody could reach the \
                         device (start `netraven worker --zone {zone}` at its site)"
                    );
                    let attempt = lease.task.failures.saturating_add(1);
                    if self
                        .engine
                        .record_failure(run_id, device_id, ErrorKind::NoWorker, &msg, attempt)
                        .await?
                    {
                        failed += 1;
                    }
                }
                TaskKind::StartRun { .. } => {
                    // Never queued in a zone; hand it to the default zone's workers.
                    tracing::warn!(task = %lease.task.id, zone, "a run's start task in a zone; completed without action");
                }
            }
            queue.complete(&lease).await?;
        }
        if failed > 0 {
            tracing::warn!(
                zone,
                failed,
                "devices failed: their zone has no live worker"
            );
        }
        Ok(failed)
    }
}
