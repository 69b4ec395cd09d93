//! The demo fleet (`netraven demo`, feature `sim`): a simulated fleet on 127.0.0.1 with a few
//! faulty devices, registered in a store with tags, credentials (one fallback each) and an
//! hourly backup job, and a text report of a run.

use netraven_core::prelude::*;
use netraven_core::store::failed_devices;
use netraven_drivers::sim::{Faults, SimConfig, SimFleet};
use std::collections::HashMap;

/// Demo settings.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Simulated devices.
    pub devices: usize,
    /// First simulator port (consecutive ports from there); `None` picks free ports.
    pub port_base: Option<u16>,
}

/// The name of the demo's backup job.
pub const DEMO_JOB: &str = "demo-backup";

fn faults_for(devices: usize) -> HashMap<usize, Faults> {
    let mut m = HashMap::new();
    // A few faulty devices, so the first run shows each kind of outcome.
    let picks = [
        (
            3,
            Faults {
                wrong_password: true,
                ..Faults::default()
            },
        ),
        (
            7,
            Faults {
                second_credential_only: true,
                ..Faults::default()
            },
        ),
        (
            11,
            Faults {
                hang_after: Some(200),
                ..Faults::default()
            },
        ),
        (
            13,
            Faults {
                drop_after: Some(300),
                ..Faults::default()
            },
        ),
        (
            17,
            Faults {
                change_every: Some(1),
                ..Faults::default()
            },
        ),
    ];
    for (i, f) in picks {
        if i < devices {
            m.insert(i, f);
        }
    }
    m
}

/// The simulator settings of `netraven sim`: `devices` devices of the comma-separated
/// `platforms`, on consecutive ports from `port_base`, optionally with configurations of
/// `config_size` bytes, legacy key exchange only, or a configuration that changes on every fetch.
pub fn sim_config(
    devices: usize,
    platforms: &str,
    port_base: Option<u16>,
    config_size: Option<usize>,
    legacy_kex_only: bool,
    changing: bool,
) -> SimConfig {
    let platforms: Vec<String> = platforms
        .split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect();
    SimConfig {
        devices,
        platform: platforms
            .first()
            .cloned()
            .unwrap_or_else(|| "cisco_ios".into()),
        platforms,
        port_base,
        config_size,
        legacy_kex_only,
        faults: Faults {
            change_every: changing.then_some(1),
            ..Faults::default()
        },
        ..SimConfig::default()
    }
}

/// Starts the demo's simulated fleet.
pub async fn start_fleet(opts: &DemoOptions) -> Result<SimFleet> {
    let platforms = ["cisco_ios", "arista_eos", "juniper_junos", "linux"];
    let fleet = SimFleet::start(SimConfig {
        devices: opts.devices,
        platforms: platforms.iter().map(|s| s.to_string()).collect(),
        port_base: opts.port_base,
        hostname_prefix: "demo-".into(),
        device_faults: faults_for(opts.devices),
        ..SimConfig::default()
    })
    .await?;
    Ok(fleet)
}

/// Registers the fleet in `store` (tags, credentials, devices; updated when they exist) and
/// returns the demo job (created once).
pub async fn register(store: &dyn Store, fleet: &SimFleet) -> Result<Job> {
    let platforms = ["cisco_ios", "arista_eos", "juniper_junos", "linux"];
    for t in ["sim", "fallback"].iter().chain(platforms.iter()) {
        if let Err(e) = store
            .create_tag(&Tag {
                id: 0,
                name: t.to_string(),
                description: Some("demo".into()),
                zone: None,
            })
            .await
            && e.kind() != ErrorKind::Conflict
        {
            return Err(e);
        }
    }
    for dev in fleet.devices() {
        let creds = dev.credentials();
        let mut first = creds[0].to_credential(&format!("{}-login", dev.hostname()));
        first.priority = 10;
        let first = store.upsert_credential(&first).await?;
        let mut d = dev.core_device();
        d.tags = vec!["sim".into(), dev.platform().name().to_string()];
        d.credential_id = Some(first.id);
        d.host_key_policy = HostKeyPolicy::Off;
        if let Some(second) = creds.get(1) {
            let mut c = second.to_credential(&format!("{}-fallback", dev.hostname()));
            c.priority = 20;
            c.tags = vec![format!("fallback-{}", dev.hostname())];
            store.upsert_credential(&c).await?;
            d.tags.push(format!("fallback-{}", dev.hostname()));
        }
        store.upsert_device(&d).await?;
    }
    let job = match store.job_by_name(DEMO_JOB).await? {
        Some(j) => j,
        None => {
            let mut j = Job::backup(
                DEMO_JOB,
                Targets {
                    device_ids: vec![],
                    tags: vec!["sim".into()],
                },
            );
            j.description = Some("Backs up the simulated demo fleet every hour".into());
            j.schedule = Schedule::Interval { seconds: 3600 };
            j.created_at = chrono::Utc::now();
            j.updated_at = j.created_at;
            store.create_job(&j).await?
        }
    };
    Ok(job)
}

/// The report of a finished run: counts, then each failed device with its error.
pub async fn report(store: &dyn Store, run: &Run) -> Result<String> {
    let mut out = String::new();
    let c = run.counts;
    out.push_str(&format!(
        "run {}: {} devices, {} ok ({} changed, {} unchanged), {} failed\n",
        run.status.as_str(),
        c.total,
        c.succeeded,
        c.changed,
        c.unchanged,
        c.failed
    ));
    for f in failed_devices(store, run.id, 100).await? {
        out.push_str(&format!(
            "  {}: {} ({})\n",
            f.hostname,
            f.kind.map(|k| k.as_str()).unwrap_or("?"),
            f.message
        ));
    }
    Ok(out)
}

/// Where a run stands, for a live display (`netraven demo` draws it while the first run goes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunProgress {
    /// Devices in the run (0 until the run has resolved its targets).
    pub total: u64,
    /// Devices with a result.
    pub done: u64,
    /// Devices that succeeded.
    pub ok: u64,
    /// Devices that failed.
    pub failed: u64,
    /// Names of the run's devices without a result yet, sorted.
    pub running: Vec<String>,
    /// Time since the run started (zero while it is queued).
    pub elapsed: std::time::Duration,
}

impl RunProgress {
    /// The progress of `run` over `devices` (id, name), of which those in `finished` have a
    /// result, at `now`.
    pub fn of(
        run: &Run,
        devices: &[(DeviceId, String)],
        finished: &std::collections::HashSet<DeviceId>,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Self {
        let mut running: Vec<String> = devices
            .iter()
            .filter(|(id, _)| !finished.contains(id))
            .map(|(_, name)| name.clone())
            .collect();
        running.sort();
        if run.status.is_final() {
            running.clear();
        }
        let elapsed = run
            .started_at
            .map(|s| {
                (run.finished_at.unwrap_or(now) - s)
                    .to_std()
                    .unwrap_or_default()
            })
            .unwrap_or_default();
        RunProgress {
            total: u64::from(run.counts.total),
            done: u64::from(run.counts.done()),
            ok: u64::from(run.counts.succeeded),
            failed: u64::from(run.counts.failed),
            running,
            elapsed,
        }
    }

    /// One line: the tallies and, while devices are left, the slowest ones still running (every
    /// device of the demo starts when the run does, so they have been at it the whole time).
    pub fn message(&self) -> String {
        let mut s = format!("{} ok, {} failed", self.ok, self.failed);
        if self.total > 0 && !self.running.is_empty() {
            const SHOWN: usize = 3;
            let names = self.running.iter().take(SHOWN).cloned().collect::<Vec<_>>();
            s.push_str(&format!(
                "; slowest, running {:.1} s: {}",
                self.elapsed.as_secs_f64(),
                names.join(", ")
            ));
            if self.running.len() > SHOWN {
                s.push_str(&format!(" (+{} more)", self.running.len() - SHOWN));
            }
        }
        s
    }
}

/// The devices `job` targets, as (id, hostname).
pub async fn job_devices(store: &dyn Store, job: &Job) -> Result<Vec<(DeviceId, String)>> {
    let mut ids = job.targets.device_ids.clone();
    ids.extend(store.device_ids_with_tags(&job.targets.tags).await?);
    ids.sort_unstable();
    ids.dedup();
    let mut out = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(1000) {
        for d in store.devices_by_ids(chunk).await? {
            out.push((d.id, d.spec.hostname));
        }
    }
    Ok(out)
}

/// Reads the progress of run `run_id` over `devices` (see [`job_devices`]) from `store`.
pub async fn progress(
    store: &dyn Store,
    run_id: RunId,
    devices: &[(DeviceId, String)],
) -> Result<RunProgress> {
    let run = store.get_run(run_id).await?;
    let mut finished = std::collections::HashSet::new();
    let filter = ResultFilter {
        run_id: Some(run_id),
        ..Default::default()
    };
    for page in 1.. {
        let p = store.list_results(&filter, Page::new(page, 1000)).await?;
        finished.extend(p.items.iter().map(|r| r.device_id));
        if p.items.is_empty() || page >= p.pages {
            break;
        }
    }
    Ok(RunProgress::of(
        &run,
        devices,
        &finished,
        chrono::Utc::now(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    fn run(status: RunStatus, total: u32, ok: u32, failed: u32) -> Run {
        let t0 = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        Run {
            id: 1,
            job_id: 1,
            trigger: Trigger::Manual,
            fire_time: None,
            status,
            queued_at: t0,
            started_at: Some(t0),
            finished_at: None,
            counts: RunCounts {
                total,
                succeeded: ok,
                failed,
                changed: ok,
                unchanged: 0,
            },
            idempotency_key: None,
            message: None,
        }
    }

    #[test]
    fn progress_names_the_devices_still_running() {
        let devices: Vec<(DeviceId, String)> =
            (1..=6).map(|i| (i, format!("demo-{i:03}"))).collect();
        let finished = [1, 2].into_iter().collect();
        let r = run(RunStatus::Running, 6, 1, 1);
        let now = r.started_at.unwrap() + chrono::Duration::milliseconds(4200);
        let p = RunProgress::of(&r, &devices, &finished, now);
        assert_eq!((p.total, p.done, p.ok, p.failed), (6, 2, 1, 1));
        assert_eq!(p.running.len(), 4);
        assert_eq!(
            p.message(),
            "1 ok, 1 failed; slowest, running 4.2 s: demo-003, demo-004, demo-005 (+1 more)"
        );
        let done = run(RunStatus::CompletedPartialFailure, 6, 5, 1);
        let p = RunProgress::of(&done, &devices, &finished, now);
        assert!(p.running.is_empty(), "a finished run has nothing running");
        assert_eq!(p.message(), "5 ok, 1 failed");
    }
}
