//! `netraven backup`: a one-shot backup of a CSV inventory into a git repository, with the core
//! engine on the in-memory store and queue.
//!
//! The previous state comes from the repository itself: each device's file at HEAD is loaded as
//! its latest snapshot, so an unchanged device is reported unchanged and makes no commit.

use crate::inventory;
use indicatif::{ProgressBar, ProgressStyle};
use netraven_core::clock::{Clock, SystemClock};
use netraven_core::engine::{Engine, EngineConfig, EngineParts};
use netraven_core::memory::{MemoryQueue, MemoryStore};
use netraven_core::prelude::*;
use netraven_core::snapshot::StoreSnapshotSink;
use netraven_store::git::{GitWriter, GitWriterConfig};
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// File in the repository directory that keeps the pinned SSH host keys between runs.
pub const HOST_KEYS_FILE: &str = "netraven-host-keys.json";

fn load_host_keys(path: &std::path::Path) -> Result<Vec<HostKey>> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map_err(|e| Error::invalid(format!("{} is not a host key file: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(Error::unavailable(format!(
            "cannot read {}: {e}",
            path.display()
        ))),
    }
}

fn save_host_keys(path: &std::path::Path, keys: &[HostKey]) -> Result<()> {
    let text = serde_json::to_vec_pretty(keys).map_err(|e| Error::internal(e.to_string()))?;
    // Write then rename, so an interrupted run never leaves a half-written file.
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, text)
        .and_then(|_| std::fs::rename(&tmp, path))
        .map_err(|e| Error::unavailable(format!("cannot write {}: {e}", path.display())))
}

/// What to back up.
#[derive(Debug, Clone)]
pub struct BackupOptions {
    /// CSV inventory.
    pub inventory: PathBuf,
    /// Bare git repository (created if missing).
    pub repo: PathBuf,
    /// Devices at once.
    pub concurrency: usize,
    /// Deadline per device.
    pub device_timeout: Duration,
    /// Show a progress bar (on a terminal).
    pub progress: bool,
    /// Platform files overriding or adding to the built-ins.
    pub platforms_dir: Option<PathBuf>,
}

/// What a backup did.
#[derive(Debug, Clone, Default)]
pub struct BackupSummary {
    /// Devices in the inventory.
    pub devices: usize,
    /// Devices backed up.
    pub ok: u32,
    /// Failed devices by error kind.
    pub failed: BTreeMap<String, u32>,
    /// Backed-up devices whose configuration changed.
    pub changed: u32,
    /// Backed-up devices whose configuration did not change.
    pub unchanged: u32,
    /// The commit made, if anything changed.
    pub commit: Option<String>,
    /// Wall time.
    pub wall: Duration,
    /// Per-device failures: hostname, kind, message.
    pub failures: Vec<(String, String, String)>,
}

impl BackupSummary {
    /// Devices that failed.
    pub fn failed_total(&self) -> u32 {
        self.failed.values().sum()
    }

    /// The human summary printed by the command.
    pub fn render(&self) -> String {
        let mut s = format!(
            "backed up {}/{} devices in {:.2} s ({:.0} devices/s): {} changed, {} unchanged, {} failed\n",
            self.ok,
            self.devices,
            self.wall.as_secs_f64(),
            self.devices as f64 / self.wall.as_secs_f64().max(1e-9),
            self.changed,
            self.unchanged,
            self.failed_total()
        );
        for (kind, n) in &self.failed {
            s.push_str(&format!("  failed ({kind}): {n}\n"));
        }
        for (h, kind, msg) in self.failures.iter().take(20) {
            s.push_str(&format!("  {h}: {kind}: {msg}\n"));
        }
        match &self.commit {
            Some(c) => s.push_str(&format!("commit {c}\n")),
            None => s.push_str("no changes to commit\n"),
        }
        s
    }
}

/// Backs up every device of the inventory and commits the changed configurations.
pub async fn run(opts: &BackupOptions) -> Result<BackupSummary> {
    let started = Instant::now();
    let rows = inventory::read(&opts.inventory)?;
    let store = Arc::new(MemoryStore::new());
    let git = GitWriter::open(GitWriterConfig::new(&opts.repo), store.clone())?;
    let head = git.head_commit().await?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);

    // One credential per distinct login, pinned to its devices.
    let mut creds: HashMap<(String, String, String), CredentialId> = HashMap::new();
    let mut ids = Vec::with_capacity(rows.len());
    let mut devices = Vec::with_capacity(rows.len());
    for row in &rows {
        let key = (
            row.username.clone(),
            row.password.expose().to_string(),
            row.enable_secret.expose().to_string(),
        );
        let cred_id = match creds.get(&key) {
            Some(id) => *id,
            None => {
                let mut c = row.credential();
                c.name = format!("inventory-{}", creds.len() + 1);
                let c = store.create_credential(&c).await?;
                creds.insert(key, c.id);
                c.id
            }
        };
        let mut d = row.device();
        d.credential_id = Some(cred_id);
        let d = store.create_device(&d).await?;
        ids.push(d.id);
        devices.push(d);
    }

    // The repository's current files are the devices' latest snapshots (one read of HEAD).
    if let Some(commit) = &head {
        let metas: Vec<SnapshotMeta> = devices
            .iter()
            .map(|d| SnapshotMeta {
                id: 0,
                device_id: d.id,
                hostname: d.hostname.clone(),
                run_id: None,
                hash: String::new(),
                size: 0,
                created_at: clock.now(),
                commit_id: Some(commit.clone()),
            })
            .collect();
        let paths = metas.iter().map(|m| git.path_for(m)).collect();
        let contents = git.read_files(commit, paths).await?;
        for (mut meta, content) in metas.into_iter().zip(contents) {
            if let Some(content) = content {
                meta.hash = content_hash(&content);
                meta.size = content.len() as u64;
                store.insert_snapshot(&Snapshot { meta, content }).await?;
            }
        }
    }

    // Host keys pinned by earlier runs, so trust-on-first-use holds across runs.
    let keys_path = opts.repo.join(HOST_KEYS_FILE);
    for k in load_host_keys(&keys_path)? {
        store.pin_host_key(&k).await?;
    }
    let drivers = netraven_drivers::build_registry(store.clone(), opts.platforms_dir.as_deref())?;
    let queue = Arc::new(MemoryQueue::new(clock.clone()));
    let engine = Arc::new(Engine::new(
        EngineParts {
            store: store.clone(),
            queue: queue.clone(),
            drivers: Arc::new(drivers),
            sink: Arc::new(StoreSnapshotSink::new(store.clone())),
            clock: clock.clone(),
        },
        EngineConfig {
            worker_id: "backup".into(),
            concurrency: opts.concurrency.max(1),
            device_timeout: opts.device_timeout,
            connect_timeout: opts.device_timeout.min(Duration::from_secs(30)),
            command_timeout: opts.device_timeout,
            // A one-shot command reports failures instead of waiting to retry them.
            device_attempts: 1,
            claim_wait: Duration::from_millis(50),
            ..EngineConfig::default()
        },
    ));
    let job = store
        .create_job(&Job::backup(
            "backup",
            Targets {
                device_ids: ids,
                tags: vec![],
            },
        ))
        .await?;
    let run = engine.run_now(job.id, None).await?.run;
    let stop = CancellationToken::new();
    let worker = tokio::spawn(engine.clone().run_worker(stop.clone()));

    let bar = if opts.progress {
        let b = ProgressBar::new(rows.len() as u64);
        if let Ok(style) =
            ProgressStyle::with_template("{bar:40} {pos}/{len} devices {elapsed_precise} {msg}")
        {
            b.set_style(style);
        }
        Some(b)
    } else {
        None
    };
    let run = loop {
        let r = store.get_run(run.id).await?;
        if let Some(b) = &bar {
            b.set_position(r.counts.done() as u64);
            b.set_message(format!("{} failed", r.counts.failed));
        }
        if r.status.is_final() {
            break r;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    stop.cancel();
    worker
        .await
        .map_err(|e| Error::internal(format!("worker panicked: {e}")))??;

    let commit = git.commit_all_pending().await?.pop().map(|c| c.commit_id);
    let mut keys = Vec::new();
    for row in &rows {
        if let Some(k) = store.get_host_key(&row.address, row.port).await? {
            keys.push(k);
        }
    }
    save_host_keys(&keys_path, &keys)?;
    let mut summary = BackupSummary {
        devices: rows.len(),
        ok: run.counts.succeeded,
        changed: run.counts.changed,
        unchanged: run.counts.unchanged,
        commit,
        ..Default::default()
    };
    let mut page = 1;
    loop {
        let results = store
            .list_results(
                &ResultFilter {
                    run_id: Some(run.id),
                    status: Some(DeviceStatus::Failed),
                    ..Default::default()
                },
                Page::new(page, 1000),
            )
            .await?;
        for r in &results.items {
            let kind = r
                .error_kind
                .map(|k| k.as_str())
                .unwrap_or("unknown")
                .to_string();
            *summary.failed.entry(kind.clone()).or_default() += 1;
            let host = store
                .get_device(r.device_id)
                .await
                .map(|d| d.spec.hostname)
                .unwrap_or_default();
            summary
                .failures
                .push((host, kind, r.message.clone().unwrap_or_default()));
        }
        if page >= results.pages {
            break;
        }
        page += 1;
    }
    summary.failures.sort();
    summary.wall = started.elapsed();
    Ok(summary)
}
