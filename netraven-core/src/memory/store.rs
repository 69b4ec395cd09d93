//! [`MemoryStore`]: every store trait over maps behind one mutex.

use crate::error::{Error, Result};
use crate::model::*;
use crate::store::*;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

#[derive(Debug, Default)]
struct Inner {
    next_ids: HashMap<&'static str, i64>,
    devices: BTreeMap<DeviceId, Device>,
    tags: BTreeMap<TagId, Tag>,
    credentials: BTreeMap<CredentialId, Credential>,
    jobs: BTreeMap<JobId, Job>,
    runs: BTreeMap<RunId, Run>,
    run_devices: HashMap<RunId, Vec<DeviceId>>,
    started_devices: std::collections::HashSet<(RunId, DeviceId)>,
    results: BTreeMap<i64, DeviceResult>,
    result_keys: HashMap<(RunId, DeviceId), i64>,
    logs: BTreeMap<i64, LogEntry>,
    snapshots: BTreeMap<SnapshotId, Snapshot>,
    // Each device's snapshot ids in insertion order: latest and history without a full scan.
    device_snapshots: HashMap<DeviceId, Vec<SnapshotId>>,
    host_keys: HashMap<(String, u16), HostKey>,
    jump_hosts: BTreeMap<JumpHostId, JumpHost>,
    leases: HashMap<String, (String, DateTime<Utc>)>,
    users: BTreeMap<UserId, User>,
    tokens: BTreeMap<i64, ApiToken>,
}

impl Inner {
    // Ids count per kind, like a database's sequences (run 1 is the first run).
    fn id(&mut self, kind: &'static str) -> i64 {
        let n = self.next_ids.entry(kind).or_insert(0);
        *n += 1;
        *n
    }

    fn ensure_tags(&mut self, names: &[String]) {
        for n in names {
            if !self.tags.values().any(|t| &t.name == n) {
                let id = self.id("tag");
                self.tags.insert(
                    id,
                    Tag {
                        id,
                        name: n.clone(),
                        description: None,
                        zone: None,
                    },
                );
            }
        }
    }
}

/// A complete in-memory [`Store`]. Cheap to create; used by tests, examples and the one-shot
/// `netraven backup` command.
#[derive(Debug, Default)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves consistent maps (no partial multi-step writes
        // span an await), so recovering from poisoning is safe.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn contains_ci(hay: &str, needle: &str) -> bool {
    hay.to_lowercase().contains(&needle.to_lowercase())
}

fn page_of<T: Clone>(items: Vec<T>, page: Page) -> Paged<T> {
    let total = items.len() as u64;
    let v = items
        .into_iter()
        .skip(page.offset() as usize)
        .take(page.size as usize)
        .collect();
    Paged::new(v, total, page)
}

#[async_trait]
impl DeviceStore for MemoryStore {
    async fn create_device(&self, device: &Device) -> Result<Device> {
        check::device(device)?;
        let mut g = self.lock();
        if g.devices.values().any(|d| d.hostname == device.hostname) {
            return Err(Error::conflict(format!(
                "a device named '{}' exists",
                device.hostname
            )));
        }
        g.ensure_tags(&device.tags);
        let mut d = device.clone();
        d.id = g.id("device");
        g.devices.insert(d.id, d.clone());
        Ok(d)
    }

    async fn get_device(&self, id: DeviceId) -> Result<Device> {
        self.lock()
            .devices
            .get(&id)
            .cloned()
            .ok_or_else(|| Error::not_found(format!("device {id}")))
    }

    async fn update_device(&self, device: &Device) -> Result<Device> {
        check::device(device)?;
        let mut g = self.lock();
        if !g.devices.contains_key(&device.id) {
            return Err(Error::not_found(format!("device {}", device.id)));
        }
        if g.devices
            .values()
            .any(|d| d.hostname == device.hostname && d.id != device.id)
        {
            return Err(Error::conflict(format!(
                "a device named '{}' exists",
                device.hostname
            )));
        }
        g.ensure_tags(&device.tags);
        g.devices.insert(device.id, device.clone());
        Ok(device.clone())
    }

    async fn delete_device(&self, id: DeviceId) -> Result<()> {
        self.lock()
            .devices
            .remove(&id)
            .map(|_| ())
            .ok_or_else(|| Error::not_found(format!("device {id}")))
    }

    async fn list_devices(&self, f: &DeviceFilter, page: Page) -> Result<Paged<Device>> {
        let g = self.lock();
        let mut v: Vec<Device> = g
            .devices
            .values()
            .filter(|d| {
                f.hostname
                    .as_ref()
                    .is_none_or(|h| contains_ci(&d.hostname, h))
            })
            .filter(|d| {
                f.address
                    .as_ref()
                    .is_none_or(|a| contains_ci(&d.address, a))
            })
            .filter(|d| f.platform.as_ref().is_none_or(|p| &d.platform == p))
            .filter(|d| f.tag.as_ref().is_none_or(|t| d.tags.contains(t)))
            .cloned()
            .collect();
        v.sort_by(|a, b| a.hostname.cmp(&b.hostname));
        Ok(page_of(v, page))
    }

    async fn devices_by_ids(&self, ids: &[DeviceId]) -> Result<Vec<Device>> {
        let g = self.lock();
        let set: BTreeSet<_> = ids.iter().collect();
        Ok(set
            .into_iter()
            .filter_map(|i| g.devices.get(i).cloned())
            .collect())
    }

    async fn device_ids_with_tags(&self, tags: &[String]) -> Result<Vec<DeviceId>> {
        let g = self.lock();
        Ok(g.devices
            .values()
            .filter(|d| d.tags.iter().any(|t| tags.contains(t)))
            .map(|d| d.id)
            .collect())
    }
}

#[async_trait]
impl TagStore for MemoryStore {
    async fn create_tag(&self, tag: &Tag) -> Result<Tag> {
        check::tag(tag)?;
        let mut g = self.lock();
        if g.tags.values().any(|t| t.name == tag.name) {
            return Err(Error::conflict(format!(
                "a tag named '{}' exists",
                tag.name
            )));
        }
        let mut t = tag.clone();
        t.id = g.id("tag");
        g.tags.insert(t.id, t.clone());
        Ok(t)
    }

    async fn get_tag(&self, id: TagId) -> Result<Tag> {
        self.lock()
            .tags
            .get(&id)
            .cloned()
            .ok_or_else(|| Error::not_found(format!("tag {id}")))
    }

    async fn update_tag(&self, tag: &Tag) -> Result<Tag> {
        check::tag(tag)?;
        let mut g = self.lock();
        let old = g
            .tags
            .get(&tag.id)
            .cloned()
            .ok_or_else(|| Error::not_found(format!("tag {}", tag.id)))?;
        if g.tags
            .values()
            .any(|t| t.name == tag.name && t.id != tag.id)
        {
            return Err(Error::conflict(format!(
                "a tag named '{}' exists",
                tag.name
            )));
        }
        let rename = |tags: &mut Vec<String>| {
            for t in tags.iter_mut() {
                if *t == old.name {
                    *t = tag.name.clone();
                }
            }
        };
        g.devices.values_mut().for_each(|d| rename(&mut d.tags));
        g.credentials.values_mut().for_each(|c| rename(&mut c.tags));
        g.tags.insert(tag.id, tag.clone());
        Ok(tag.clone())
    }

    async fn delete_tag(&self, id: TagId) -> Result<()> {
        let mut g = self.lock();
        let old = g
            .tags
            .remove(&id)
            .ok_or_else(|| Error::not_found(format!("tag {id}")))?;
        g.devices
            .values_mut()
            .for_each(|d| d.tags.retain(|t| *t != old.name));
        g.credentials
            .values_mut()
            .for_each(|c| c.tags.retain(|t| *t != old.name));
        Ok(())
    }

    async fn list_tags(&self, page: Page) -> Result<Paged<Tag>> {
        let g = self.lock();
        let mut v: Vec<Tag> = g.tags.values().cloned().collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(page_of(v, page))
    }
}

#[async_trait]
impl CredentialStore for MemoryStore {
    async fn create_credential(&self, cred: &Credential) -> Result<Credential> {
        check::credential(cred)?;
        let mut g = self.lock();
        if g.credentials.values().any(|c| c.name == cred.name) {
            return Err(Error::conflict(format!(
                "a credential named '{}' exists",
                cred.name
            )));
        }
        g.ensure_tags(&cred.tags);
        let mut c = cred.clone();
        c.id = g.id("credential");
        g.credentials.insert(c.id, c.clone());
        Ok(c)
    }

    async fn get_credential(&self, id: CredentialId) -> Result<Credential> {
        self.lock()
            .credentials
            .get(&id)
            .cloned()
            .ok_or_else(|| Error::not_found(format!("credential {id}")))
    }

    async fn update_credential(&self, cred: &Credential) -> Result<Credential> {
        check::credential(cred)?;
        let mut g = self.lock();
        let old = g
            .credentials
            .get(&cred.id)
            .cloned()
            .ok_or_else(|| Error::not_found(format!("credential {}", cred.id)))?;
        if g.credentials
            .values()
            .any(|c| c.name == cred.name && c.id != cred.id)
        {
            return Err(Error::conflict(format!(
                "a credential named '{}' exists",
                cred.name
            )));
        }
        g.ensure_tags(&cred.tags);
        let mut c = cred.clone();
        c.success_count = old.success_count;
        c.failure_count = old.failure_count;
        c.last_used = old.last_used;
        c.created_at = old.created_at;
        if cred.unreadable {
            // Placeholders of an unreadable credential never replace stored secrets.
            c.password = old.password.clone();
            c.enable_secret = old.enable_secret.clone();
            c.unreadable = old.unreadable;
        }
        g.credentials.insert(c.id, c.clone());
        Ok(c)
    }

    async fn delete_credential(&self, id: CredentialId) -> Result<()> {
        let mut g = self.lock();
        g.credentials
            .remove(&id)
            .ok_or_else(|| Error::not_found(format!("credential {id}")))?;
        for d in g.devices.values_mut() {
            if d.credential_id == Some(id) {
                d.credential_id = None;
            }
        }
        Ok(())
    }

    async fn list_credentials(&self, page: Page) -> Result<Paged<Credential>> {
        let g = self.lock();
        let mut v: Vec<Credential> = g.credentials.values().cloned().collect();
        v.sort_by(|a, b| a.priority.cmp(&b.priority).then(a.name.cmp(&b.name)));
        Ok(page_of(v, page))
    }

    async fn all_credentials(&self) -> Result<Vec<Credential>> {
        Ok(self.lock().credentials.values().cloned().collect())
    }

    async fn record_credential_use(
        &self,
        id: CredentialId,
        success: bool,
        at: DateTime<Utc>,
    ) -> Result<()> {
        let mut g = self.lock();
        let c = g
            .credentials
            .get_mut(&id)
            .ok_or_else(|| Error::not_found(format!("credential {id}")))?;
        if success {
            c.success_count += 1;
        } else {
            c.failure_count += 1;
        }
        c.last_used = Some(at);
        Ok(())
    }
}

#[async_trait]
impl JobStore for MemoryStore {
    async fn create_job(&self, job: &Job) -> Result<Job> {
        check::job(job)?;
        let mut g = self.lock();
        if g.jobs.values().any(|j| j.name == job.name) {
            return Err(Error::conflict(format!(
                "a job named '{}' exists",
                job.name
            )));
        }
        let mut j = job.clone();
        j.id = g.id("job");
        g.jobs.insert(j.id, j.clone());
        Ok(j)
    }

    async fn get_job(&self, id: JobId) -> Result<Job> {
        self.lock()
            .jobs
            .get(&id)
            .cloned()
            .ok_or_else(|| Error::not_found(format!("job {id}")))
    }

    async fn update_job(&self, job: &Job) -> Result<Job> {
        check::job(job)?;
        let mut g = self.lock();
        if !g.jobs.contains_key(&job.id) {
            return Err(Error::not_found(format!("job {}", job.id)));
        }
        if g.jobs
            .values()
            .any(|j| j.name == job.name && j.id != job.id)
        {
            return Err(Error::conflict(format!(
                "a job named '{}' exists",
                job.name
            )));
        }
        g.jobs.insert(job.id, job.clone());
        Ok(job.clone())
    }

    async fn delete_job(&self, id: JobId) -> Result<()> {
        self.lock()
            .jobs
            .remove(&id)
            .map(|_| ())
            .ok_or_else(|| Error::not_found(format!("job {id}")))
    }

    async fn list_jobs(&self, f: &JobFilter, page: Page) -> Result<Paged<Job>> {
        let g = self.lock();
        let mut v: Vec<Job> = g
            .jobs
            .values()
            .filter(|j| f.name.as_ref().is_none_or(|n| contains_ci(&j.name, n)))
            .filter(|j| f.enabled.is_none_or(|e| j.enabled == e))
            .cloned()
            .collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(page_of(v, page))
    }

    async fn scheduled_jobs(&self) -> Result<Vec<Job>> {
        Ok(self
            .lock()
            .jobs
            .values()
            .filter(|j| j.enabled && j.schedule != Schedule::Manual)
            .cloned()
            .collect())
    }
}

#[async_trait]
impl RunStore for MemoryStore {
    async fn create_run(&self, new: &NewRun) -> Result<CreatedRun> {
        let mut g = self.lock();
        let existing = g.runs.values().find(|r| {
            r.job_id == new.job_id
                && ((new.fire_time.is_some() && r.fire_time == new.fire_time)
                    || (new.idempotency_key.is_some() && r.idempotency_key == new.idempotency_key))
        });
        if let Some(r) = existing {
            return Ok(CreatedRun {
                run: r.clone(),
                created: false,
            });
        }
        let id = g.id("run");
        let finished = new.status.is_final().then_some(new.queued_at);
        let run = Run {
            id,
            job_id: new.job_id,
            trigger: new.trigger,
            fire_time: new.fire_time,
            status: new.status,
            queued_at: new.queued_at,
            started_at: None,
            finished_at: finished,
            counts: RunCounts::default(),
            idempotency_key: new.idempotency_key.clone(),
            message: new.message.clone(),
        };
        g.runs.insert(id, run.clone());
        Ok(CreatedRun { run, created: true })
    }

    async fn get_run(&self, id: RunId) -> Result<Run> {
        self.lock()
            .runs
            .get(&id)
            .cloned()
            .ok_or_else(|| Error::not_found(format!("run {id}")))
    }

    async fn list_runs(&self, f: &RunFilter, page: Page) -> Result<Paged<Run>> {
        let g = self.lock();
        let v: Vec<Run> = g
            .runs
            .values()
            .rev()
            .filter(|r| f.job_id.is_none_or(|j| r.job_id == j))
            .filter(|r| f.statuses.is_empty() || f.statuses.contains(&r.status))
            .filter(|r| f.since.is_none_or(|s| r.queued_at >= s))
            .filter(|r| f.until.is_none_or(|u| r.queued_at < u))
            .cloned()
            .collect();
        Ok(page_of(v, page))
    }

    async fn start_run(&self, id: RunId, devices: &[DeviceId], at: DateTime<Utc>) -> Result<Run> {
        let mut g = self.lock();
        let run = g
            .runs
            .get(&id)
            .cloned()
            .ok_or_else(|| Error::not_found(format!("run {id}")))?;
        if run.status != RunStatus::Queued {
            return Ok(run);
        }
        let set: BTreeSet<DeviceId> = devices.iter().copied().collect();
        let ids: Vec<DeviceId> = set.into_iter().collect();
        let r = g
            .runs
            .get_mut(&id)
            .ok_or_else(|| Error::not_found(format!("run {id}")))?;
        r.status = RunStatus::Running;
        r.started_at = Some(at);
        r.counts.total = ids.len() as u32;
        let out = r.clone();
        g.run_devices.insert(id, ids);
        Ok(out)
    }

    async fn run_device_ids(&self, id: RunId) -> Result<Vec<DeviceId>> {
        Ok(self
            .lock()
            .run_devices
            .get(&id)
            .cloned()
            .unwrap_or_default())
    }

    async fn mark_device_started(
        &self,
        id: RunId,
        device: DeviceId,
        _at: DateTime<Utc>,
    ) -> Result<bool> {
        let mut g = self.lock();
        if !g
            .run_devices
            .get(&id)
            .is_some_and(|ids| ids.contains(&device))
        {
            return Err(Error::not_found(format!("device {device} in run {id}")));
        }
        Ok(g.started_devices.insert((id, device)))
    }

    async fn pending_device_ids(&self, id: RunId) -> Result<Vec<DeviceId>> {
        let g = self.lock();
        Ok(g.run_devices
            .get(&id)
            .map(|ids| {
                ids.iter()
                    .copied()
                    .filter(|d| !g.result_keys.contains_key(&(id, *d)))
                    .collect()
            })
            .unwrap_or_default())
    }

    async fn finish_run(
        &self,
        id: RunId,
        status: RunStatus,
        at: DateTime<Utc>,
        message: Option<&str>,
    ) -> Result<bool> {
        check::final_status(status)?;
        let mut g = self.lock();
        let r = g
            .runs
            .get_mut(&id)
            .ok_or_else(|| Error::not_found(format!("run {id}")))?;
        if r.status.is_final() {
            return Ok(false);
        }
        r.status = status;
        r.finished_at = Some(at);
        if let Some(m) = message {
            r.message = Some(m.to_string());
        }
        Ok(true)
    }

    async fn active_runs(&self) -> Result<Vec<Run>> {
        Ok(self
            .lock()
            .runs
            .values()
            .filter(|r| !r.status.is_final())
            .cloned()
            .collect())
    }

    async fn job_has_active_run(&self, job_id: JobId) -> Result<bool> {
        Ok(self
            .lock()
            .runs
            .values()
            .any(|r| r.job_id == job_id && !r.status.is_final()))
    }

    async fn last_fire_time(&self, job_id: JobId) -> Result<Option<DateTime<Utc>>> {
        Ok(self
            .lock()
            .runs
            .values()
            .filter(|r| r.job_id == job_id)
            .filter_map(|r| r.fire_time)
            .max())
    }
}

#[async_trait]
impl ResultStore for MemoryStore {
    async fn record_result(&self, result: &DeviceResult) -> Result<RecordOutcome> {
        let mut g = self.lock();
        let key = (result.run_id, result.device_id);
        if g.result_keys.contains_key(&key) {
            let counts = g
                .runs
                .get(&result.run_id)
                .map(|r| r.counts)
                .unwrap_or_default();
            return Ok(RecordOutcome {
                inserted: false,
                counts,
            });
        }
        if !g.runs.contains_key(&result.run_id) {
            return Err(Error::not_found(format!("run {}", result.run_id)));
        }
        let id = g.id("result");
        let mut r = result.clone();
        r.id = id;
        g.results.insert(id, r);
        g.result_keys.insert(key, id);
        let run = g
            .runs
            .get_mut(&result.run_id)
            .ok_or_else(|| Error::not_found(format!("run {}", result.run_id)))?;
        run.counts.add(result);
        Ok(RecordOutcome {
            inserted: true,
            counts: run.counts,
        })
    }

    async fn get_result(&self, run: RunId, device: DeviceId) -> Result<Option<DeviceResult>> {
        let g = self.lock();
        Ok(g.result_keys
            .get(&(run, device))
            .and_then(|id| g.results.get(id))
            .cloned())
    }

    async fn list_results(&self, f: &ResultFilter, page: Page) -> Result<Paged<DeviceResult>> {
        let g = self.lock();
        let mut v: Vec<DeviceResult> = g
            .results
            .values()
            .rev()
            .filter(|r| f.run_id.is_none_or(|x| r.run_id == x))
            .filter(|r| f.job_id.is_none_or(|x| r.job_id == x))
            .filter(|r| f.device_id.is_none_or(|x| r.device_id == x))
            .filter(|r| f.status.is_none_or(|x| r.status == x))
            .filter(|r| f.since.is_none_or(|s| r.finished_at >= s))
            .filter(|r| f.until.is_none_or(|u| r.finished_at < u))
            .cloned()
            .collect();
        // Newest first as the SQL stores order: by finished_at, ties by id (the stable sort
        // keeps the id-descending order of equal times).
        v.sort_by_key(|r| std::cmp::Reverse(r.finished_at));
        Ok(page_of(v, page))
    }

    async fn latest_results(
        &self,
        devices: &[DeviceId],
    ) -> Result<HashMap<DeviceId, LatestResults>> {
        let wanted: BTreeSet<DeviceId> = devices.iter().copied().collect();
        let newer = |r: &DeviceResult, than: &Option<&DeviceResult>| {
            than.is_none_or(|o| (r.finished_at, r.id) > (o.finished_at, o.id))
        };
        let g = self.lock();
        let mut best: HashMap<DeviceId, (Option<&DeviceResult>, Option<&DeviceResult>)> =
            HashMap::new();
        for r in g.results.values().filter(|r| wanted.contains(&r.device_id)) {
            let (latest, success) = best.entry(r.device_id).or_default();
            if newer(r, latest) {
                *latest = Some(r);
            }
            if r.status == DeviceStatus::Success && newer(r, success) {
                *success = Some(r);
            }
        }
        Ok(best
            .into_iter()
            .filter_map(|(d, (latest, success))| {
                Some((
                    d,
                    LatestResults {
                        latest: latest?.clone(),
                        latest_success: success.cloned(),
                    },
                ))
            })
            .collect())
    }
}

#[async_trait]
impl LogStore for MemoryStore {
    async fn append_logs(&self, entries: &[LogEntry]) -> Result<()> {
        let mut g = self.lock();
        for e in entries {
            let id = g.id("log");
            let mut e = e.clone();
            e.id = id;
            g.logs.insert(id, e);
        }
        Ok(())
    }

    async fn list_logs(&self, f: &LogFilter, page: Page) -> Result<Paged<LogEntry>> {
        let g = self.lock();
        let mut v: Vec<LogEntry> = g
            .logs
            .values()
            .filter(|e| f.run_id.is_none_or(|x| e.run_id == Some(x)))
            .filter(|e| f.job_id.is_none_or(|x| e.job_id == Some(x)))
            .filter(|e| f.device_id.is_none_or(|x| e.device_id == Some(x)))
            .filter(|e| f.min_level.is_none_or(|x| e.level >= x))
            .filter(|e| f.kind.is_none_or(|x| e.kind == x))
            .filter(|e| f.source.as_ref().is_none_or(|x| &e.source == x))
            .filter(|e| f.since.is_none_or(|s| e.time >= s))
            .filter(|e| f.until.is_none_or(|u| e.time < u))
            .filter(|e| f.search.as_ref().is_none_or(|s| contains_ci(&e.message, s)))
            .filter(|e| f.after_id.is_none_or(|a| e.id > a))
            .cloned()
            .collect();
        v.sort_by(|a, b| a.time.cmp(&b.time).then(a.id.cmp(&b.id)));
        if f.order == Order::Desc {
            v.reverse();
        }
        Ok(page_of(v, page))
    }

    async fn prune_logs(&self, before: DateTime<Utc>, _batch: u32) -> Result<u64> {
        let mut g = self.lock();
        let n = g.logs.len();
        g.logs.retain(|_, e| e.time >= before);
        Ok((n - g.logs.len()) as u64)
    }
}

#[async_trait]
impl SnapshotStore for MemoryStore {
    async fn insert_snapshot(&self, snapshot: &Snapshot) -> Result<SnapshotMeta> {
        let mut g = self.lock();
        let id = g.id("snapshot");
        let mut s = snapshot.clone();
        s.meta.id = id;
        g.snapshots.insert(id, s.clone());
        g.device_snapshots
            .entry(s.meta.device_id)
            .or_default()
            .push(id);
        Ok(s.meta)
    }

    async fn latest_snapshot(&self, device: DeviceId) -> Result<Option<SnapshotMeta>> {
        let g = self.lock();
        Ok(g.device_snapshots
            .get(&device)
            .and_then(|ids| ids.last())
            .and_then(|id| g.snapshots.get(id))
            .map(|s| s.meta.clone()))
    }

    async fn get_snapshot(&self, id: SnapshotId) -> Result<Snapshot> {
        self.lock()
            .snapshots
            .get(&id)
            .cloned()
            .ok_or_else(|| Error::not_found(format!("snapshot {id}")))
    }

    async fn list_snapshots(&self, device: DeviceId, page: Page) -> Result<Paged<SnapshotMeta>> {
        let g = self.lock();
        let v: Vec<SnapshotMeta> = g
            .device_snapshots
            .get(&device)
            .map(|ids| {
                ids.iter()
                    .rev()
                    .filter_map(|id| g.snapshots.get(id))
                    .map(|s| s.meta.clone())
                    .collect()
            })
            .unwrap_or_default();
        Ok(page_of(v, page))
    }

    async fn latest_snapshots(&self, devices: &[DeviceId]) -> Result<Vec<SnapshotMeta>> {
        let g = self.lock();
        let wanted: BTreeSet<_> = devices.iter().copied().collect();
        Ok(wanted
            .into_iter()
            .filter_map(|d| g.device_snapshots.get(&d).and_then(|ids| ids.last()))
            .filter_map(|id| g.snapshots.get(id))
            .map(|s| s.meta.clone())
            .collect())
    }

    async fn uncommitted_snapshots(&self, limit: u32) -> Result<Vec<Snapshot>> {
        Ok(self
            .lock()
            .snapshots
            .values()
            .filter(|s| s.meta.commit_id.is_none())
            .take(limit as usize)
            .cloned()
            .collect())
    }

    async fn mark_committed(&self, ids: &[SnapshotId], commit_id: &str) -> Result<()> {
        let mut g = self.lock();
        for id in ids {
            if let Some(s) = g.snapshots.get_mut(id) {
                s.meta.commit_id = Some(commit_id.to_string());
            }
        }
        Ok(())
    }

    async fn last_commit_id(&self) -> Result<Option<String>> {
        let g = self.lock();
        Ok(g.snapshots
            .values()
            .rev()
            .find_map(|s| s.meta.commit_id.clone()))
    }

    async fn search_latest(&self, needle: &str, page: Page) -> Result<Paged<SnapshotMeta>> {
        let g = self.lock();
        let mut latest: BTreeMap<DeviceId, &Snapshot> = BTreeMap::new();
        for s in g.snapshots.values() {
            latest.insert(s.meta.device_id, s);
        }
        let v: Vec<SnapshotMeta> = latest
            .into_values()
            .filter(|s| contains_ci(&s.content, needle))
            .map(|s| s.meta.clone())
            .collect();
        Ok(page_of(v, page))
    }
}

#[async_trait]
impl HostKeyStore for MemoryStore {
    async fn get_host_key(&self, host: &str, port: u16) -> Result<Option<HostKey>> {
        Ok(self
            .lock()
            .host_keys
            .get(&(host.to_string(), port))
            .cloned())
    }

    async fn pin_host_key(&self, key: &HostKey) -> Result<HostKey> {
        Ok(self
            .lock()
            .host_keys
            .entry((key.host.clone(), key.port))
            .or_insert_with(|| key.clone())
            .clone())
    }

    async fn delete_host_key(&self, host: &str, port: u16) -> Result<()> {
        self.lock().host_keys.remove(&(host.to_string(), port));
        Ok(())
    }
}

#[async_trait]
impl JumpHostStore for MemoryStore {
    async fn create_jump_host(&self, jump: &JumpHost) -> Result<JumpHost> {
        check::jump_host(jump)?;
        let mut g = self.lock();
        if g.jump_hosts.values().any(|j| j.name == jump.name) {
            return Err(Error::conflict(format!(
                "a jump host named '{}' exists",
                jump.name
            )));
        }
        let mut j = jump.clone();
        j.id = g.id("jump_host");
        let now = chrono::Utc::now();
        if j.created_at == DateTime::<Utc>::UNIX_EPOCH {
            j.created_at = now;
        }
        if j.updated_at == DateTime::<Utc>::UNIX_EPOCH {
            j.updated_at = j.created_at;
        }
        g.jump_hosts.insert(j.id, j.clone());
        Ok(j)
    }

    async fn get_jump_host(&self, id: JumpHostId) -> Result<JumpHost> {
        self.lock()
            .jump_hosts
            .get(&id)
            .cloned()
            .ok_or_else(|| Error::not_found(format!("jump host {id}")))
    }

    async fn jump_host_by_name(&self, name: &str) -> Result<Option<JumpHost>> {
        Ok(self
            .lock()
            .jump_hosts
            .values()
            .find(|j| j.name == name)
            .cloned())
    }

    async fn update_jump_host(&self, jump: &JumpHost) -> Result<JumpHost> {
        check::jump_host(jump)?;
        let mut g = self.lock();
        let old = g
            .jump_hosts
            .get(&jump.id)
            .cloned()
            .ok_or_else(|| Error::not_found(format!("jump host {}", jump.id)))?;
        if g.jump_hosts
            .values()
            .any(|j| j.name == jump.name && j.id != jump.id)
        {
            return Err(Error::conflict(format!(
                "a jump host named '{}' exists",
                jump.name
            )));
        }
        let mut j = jump.clone();
        j.created_at = old.created_at;
        if j.updated_at == DateTime::<Utc>::UNIX_EPOCH {
            j.updated_at = chrono::Utc::now();
        }
        g.jump_hosts.insert(j.id, j.clone());
        Ok(j)
    }

    async fn delete_jump_host(&self, id: JumpHostId) -> Result<()> {
        self.lock()
            .jump_hosts
            .remove(&id)
            .map(|_| ())
            .ok_or_else(|| Error::not_found(format!("jump host {id}")))
    }

    async fn list_jump_hosts(&self) -> Result<Vec<JumpHost>> {
        let mut v: Vec<JumpHost> = self.lock().jump_hosts.values().cloned().collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(v)
    }
}

#[async_trait]
impl LeaseStore for MemoryStore {
    async fn try_acquire_lease(
        &self,
        name: &str,
        holder: &str,
        ttl: Duration,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let mut g = self.lock();
        let until = crate::clock::add(now, ttl);
        match g.leases.get(name) {
            Some((h, exp)) if h != holder && *exp > now => Ok(false),
            _ => {
                g.leases
                    .insert(name.to_string(), (holder.to_string(), until));
                Ok(true)
            }
        }
    }

    async fn release_lease(&self, name: &str, holder: &str) -> Result<()> {
        let mut g = self.lock();
        if g.leases.get(name).is_some_and(|(h, _)| h == holder) {
            g.leases.remove(name);
        }
        Ok(())
    }
}

/// Memory has no schema: always current.
#[async_trait]
impl SchemaStore for MemoryStore {
    async fn schema_status(&self) -> Result<SchemaStatus> {
        Ok(SchemaStatus {
            applied: Some(0),
            latest: 0,
            pending: Vec::new(),
        })
    }
}

#[async_trait]
impl UserStore for MemoryStore {
    async fn create_user(&self, user: &User) -> Result<User> {
        check::user(user)?;
        let mut g = self.lock();
        if g.users.values().any(|u| u.username == user.username) {
            return Err(Error::conflict(format!(
                "a user named '{}' exists",
                user.username
            )));
        }
        let mut u = user.clone();
        u.id = g.id("user");
        g.users.insert(u.id, u.clone());
        Ok(u)
    }

    async fn get_user(&self, id: UserId) -> Result<User> {
        self.lock()
            .users
            .get(&id)
            .cloned()
            .ok_or_else(|| Error::not_found(format!("user {id}")))
    }

    async fn get_user_by_name(&self, username: &str) -> Result<Option<User>> {
        Ok(self
            .lock()
            .users
            .values()
            .find(|u| u.username == username)
            .cloned())
    }

    async fn update_user(&self, user: &User) -> Result<User> {
        check::user(user)?;
        let mut g = self.lock();
        if !g.users.contains_key(&user.id) {
            return Err(Error::not_found(format!("user {}", user.id)));
        }
        if g.users
            .values()
            .any(|u| u.username == user.username && u.id != user.id)
        {
            return Err(Error::conflict(format!(
                "a user named '{}' exists",
                user.username
            )));
        }
        g.users.insert(user.id, user.clone());
        Ok(user.clone())
    }

    async fn delete_user(&self, id: UserId) -> Result<()> {
        let mut g = self.lock();
        g.users
            .remove(&id)
            .ok_or_else(|| Error::not_found(format!("user {id}")))?;
        g.tokens.retain(|_, t| t.user_id != id);
        Ok(())
    }

    async fn list_users(&self, page: Page) -> Result<Paged<User>> {
        let g = self.lock();
        let mut v: Vec<User> = g.users.values().cloned().collect();
        v.sort_by(|a, b| a.username.cmp(&b.username));
        Ok(page_of(v, page))
    }

    async fn create_token(&self, token: &ApiToken) -> Result<ApiToken> {
        let mut g = self.lock();
        if !g.users.contains_key(&token.user_id) {
            return Err(Error::not_found(format!("user {}", token.user_id)));
        }
        let mut t = token.clone();
        t.id = g.id("token");
        g.tokens.insert(t.id, t.clone());
        Ok(t)
    }

    async fn find_token(&self, token_hash: &str) -> Result<Option<ApiToken>> {
        Ok(self
            .lock()
            .tokens
            .values()
            .find(|t| t.token_hash == token_hash)
            .cloned())
    }

    async fn list_tokens(&self, user_id: UserId) -> Result<Vec<ApiToken>> {
        Ok(self
            .lock()
            .tokens
            .values()
            .filter(|t| t.user_id == user_id)
            .cloned()
            .collect())
    }

    async fn touch_token(&self, id: i64, at: DateTime<Utc>) -> Result<()> {
        let mut g = self.lock();
        let t = g
            .tokens
            .get_mut(&id)
            .ok_or_else(|| Error::not_found(format!("token {id}")))?;
        t.last_used = Some(at);
        Ok(())
    }

    async fn delete_token(&self, id: i64) -> Result<()> {
        self.lock()
            .tokens
            .remove(&id)
            .map(|_| ())
            .ok_or_else(|| Error::not_found(format!("token {id}")))
    }
}
