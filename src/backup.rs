//! The one-shot backup (`netraven backup`): every device of an inventory file (CSV or JSON, see
//! [`netraven_core::inventory`]) into a git repository, with the engine on the in-memory store
//! and queue.
//!
//! The previous state comes from the repository itself: the snapshot sink is a
//! [`GitTreeSink`], which compares each fetched configuration's blob id with the file at the
//! branch tip (an unchanged device is reported unchanged and makes no commit), streams changed
//! content into git as it arrives and commits once at the end. Nothing proportional to the fleet
//! stays in memory but one small record per device: no previous or new content is kept.

use crate::Netraven;
use netraven_core::engine::EngineConfig;
use netraven_core::inventory;
use netraven_core::prelude::*;
use netraven_core::store::failed_devices;
use netraven_store::git::GitWriterConfig;
use netraven_store::git_tree::GitTreeSink;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

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

/// Called while the backup runs with (devices done, devices in total, devices failed).
pub type Progress = std::sync::Arc<dyn Fn(u64, u64, u64) + Send + Sync>;

/// What to back up.
#[derive(Clone)]
pub struct BackupOptions {
    /// Inventory file (CSV, or JSON when it ends in `.json`), with a login per device.
    pub inventory: PathBuf,
    /// Bare git repository (created if missing).
    pub repo: PathBuf,
    /// Devices at once.
    pub concurrency: usize,
    /// Deadline per device.
    pub device_timeout: Duration,
    /// Progress reports (e.g. a progress bar), about every 50 ms.
    pub progress: Option<Progress>,
    /// Platform files overriding or adding to the built-ins.
    pub platforms_dir: Option<PathBuf>,
}

impl std::fmt::Debug for BackupOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BackupOptions")
            .field("inventory", &self.inventory)
            .field("repo", &self.repo)
            .field("concurrency", &self.concurrency)
            .field("device_timeout", &self.device_timeout)
            .field("platforms_dir", &self.platforms_dir)
            .finish_non_exhaustive()
    }
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
    let rows = inventory::read_file(&opts.inventory)?;
    let tree =
        Arc::new(GitTreeSink::open(&opts.repo, GitWriterConfig::new(&opts.repo).branch).await?);
    let nr = Netraven::builder()
        .in_memory()
        .sink(tree.clone())
        .platform_dir(opts.platforms_dir.clone())
        .role("backup")
        .engine_config(EngineConfig {
            concurrency: opts.concurrency.max(1),
            device_timeout: opts.device_timeout,
            connect_timeout: opts.device_timeout.min(Duration::from_secs(30)),
            command_timeout: opts.device_timeout,
            // A one-shot command reports failures instead of waiting to retry them.
            device_attempts: 1,
            claim_wait: Duration::from_millis(50),
            // The operator runs this on their own host from their own inventory file (no API,
            // no other user): loopback stays allowed (labs, `netraven sim`); link-local and
            // metadata addresses are still refused.
            address_policy: netraven_core::netpolicy::AddressPolicy::default().allow_loopback(true),
            ..EngineConfig::default()
        })
        .build()
        .await?;
    let store = nr.store().clone();

    // One credential per distinct login, pinned to its devices.
    let mut creds: HashMap<(String, String, String), CredentialId> = HashMap::new();
    let mut bastions: Vec<(String, u16)> = Vec::new();
    let mut ids = Vec::with_capacity(rows.len());
    let mut devices = Vec::with_capacity(rows.len());
    for (i, row) in rows.iter().enumerate() {
        let login = row.login.as_ref().ok_or_else(|| {
            Error::invalid(format!(
                "inventory {}: device '{}' (row {}) has no username and password",
                opts.inventory.display(),
                row.device.hostname,
                i + 1
            ))
        })?;
        let key = (
            login.username.clone(),
            login.password.expose().to_string(),
            login.enable_secret.expose().to_string(),
        );
        let cred_id = match creds.get(&key) {
            Some(id) => *id,
            None => {
                let c = login.credential(format!("inventory-{}", creds.len() + 1));
                let c = store.create_credential(&c).await?;
                creds.insert(key, c.id);
                c.id
            }
        };
        let mut d = row.device.clone();
        d.credential_id = Some(cred_id);
        // An ad-hoc jump host of the row (`jump_*` columns): one per distinct bastion login.
        if let Some(j) = &row.jump {
            let name = j.name();
            let existing = store.jump_host_by_name(&name).await?;
            match existing {
                Some(old) if old.password.expose() != j.password.expose() => {
                    return Err(Error::invalid(format!(
                        "inventory {}: jump host {name} has two different passwords (row {})",
                        opts.inventory.display(),
                        i + 1
                    )));
                }
                Some(_) => {}
                None => {
                    let mut jh = netraven_core::model::JumpHost::new(
                        &name,
                        &j.address,
                        &j.username,
                        j.password.clone(),
                    );
                    jh.port = j.port;
                    store.create_jump_host(&jh).await?;
                    bastions.push((j.address.clone(), j.port));
                }
            }
            d.jump_host = Some(name);
        }
        let d = store.create_device(&d).await?;
        ids.push(d.id);
        devices.push(d);
    }

    // Host keys pinned by earlier runs, so trust-on-first-use holds across runs.
    let keys_path = opts.repo.join(HOST_KEYS_FILE);
    for k in load_host_keys(&keys_path)? {
        store.pin_host_key(&k).await?;
    }
    let job = store
        .create_job(&Job::backup(
            "backup",
            Targets {
                device_ids: ids,
                tags: vec![],
            },
        ))
        .await?;
    let run = nr.run_now(job.id).await?;
    nr.start_worker();
    let total = rows.len() as u64;
    let run = loop {
        let r = store.get_run(run.id).await?;
        if let Some(p) = &opts.progress {
            p(r.counts.done() as u64, total, r.counts.failed as u64);
        }
        if r.status.is_final() {
            break r;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    nr.shutdown().await?;

    let commit = tree
        .commit(&format!("Backup run {}", run.id))
        .await?
        .map(|c| c.commit_id);
    let mut keys = Vec::new();
    let targets = devices
        .iter()
        .map(|d| (d.address.clone(), d.port))
        .chain(bastions.iter().cloned());
    for (address, port) in targets {
        if let Some(k) = store.get_host_key(&address, port).await?
            && !keys.contains(&k)
        {
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
    for f in failed_devices(store.as_ref(), run.id, usize::MAX).await? {
        let kind = f.kind.map(|k| k.as_str()).unwrap_or("unknown").to_string();
        *summary.failed.entry(kind.clone()).or_default() += 1;
        summary.failures.push((f.hostname, kind, f.message));
    }
    summary.failures.sort();
    summary.wall = started.elapsed();
    Ok(summary)
}
