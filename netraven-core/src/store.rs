//! The store traits: the source of truth for everything NetRaven knows.
//!
//! The store is split into focused traits of at most a dozen methods each; [`Store`] is the ones
//! the engine needs together, [`ServerStore`] adds the server's [`UserStore`], and [`StoreExt`]
//! adds lookups and upserts by name to every store. A backend implements each focused trait and
//! gets [`Store`] (and [`ServerStore`]) through the blanket impls. Every backend must pass the
//! store conformance suite, `testkit::store` (feature `testkit`).

use crate::error::Result;
use crate::model::*;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::fmt::Debug;
use std::time::Duration;

/// Devices.
///
/// ```
/// # use netraven_core::prelude::*;
/// # use netraven_core::memory::MemoryStore;
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<()> {
/// let store = MemoryStore::new();
/// let d = store.create_device(&Device::new("core-1", "10.0.0.1", "cisco_ios")).await?;
/// assert_eq!(store.get_device(d.id).await?.hostname, "core-1");
/// assert_eq!(store.list_devices(&DeviceFilter::default(), Page::first(10)).await?.total, 1);
/// # Ok(()) }
/// ```
#[async_trait]
pub trait DeviceStore: Send + Sync + Debug + 'static {
    /// Creates a device (its `id` is ignored); unknown tags are created. Conflict on a duplicate
    /// hostname.
    async fn create_device(&self, device: &Device) -> Result<Device>;
    /// One device; NotFound if missing.
    async fn get_device(&self, id: DeviceId) -> Result<Device>;
    /// Replaces a device's fields (by `id`); Conflict on a duplicate hostname.
    async fn update_device(&self, device: &Device) -> Result<Device>;
    /// Deletes a device; NotFound if missing. Its results, logs and snapshots stay.
    async fn delete_device(&self, id: DeviceId) -> Result<()>;
    /// A filtered page of devices, ordered by hostname.
    async fn list_devices(&self, filter: &DeviceFilter, page: Page) -> Result<Paged<Device>>;
    /// The devices with these ids (missing ids are left out), in id order.
    async fn devices_by_ids(&self, ids: &[DeviceId]) -> Result<Vec<Device>>;
    /// Ids of every device carrying at least one of these tags, in id order.
    async fn device_ids_with_tags(&self, tags: &[String]) -> Result<Vec<DeviceId>>;
}

/// Tags.
///
/// ```
/// # use netraven_core::prelude::*;
/// # use netraven_core::memory::MemoryStore;
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<()> {
/// let store = MemoryStore::new();
/// let t = store.create_tag(&Tag { id: 0, name: "core".into(), description: None, zone: None }).await?;
/// assert_eq!(store.get_tag(t.id).await?.name, "core");
/// # Ok(()) }
/// ```
#[async_trait]
pub trait TagStore: Send + Sync + Debug + 'static {
    /// Creates a tag; Conflict on a duplicate name.
    async fn create_tag(&self, tag: &Tag) -> Result<Tag>;
    /// One tag; NotFound if missing.
    async fn get_tag(&self, id: TagId) -> Result<Tag>;
    /// Renames or re-describes a tag; devices and credentials follow a rename.
    async fn update_tag(&self, tag: &Tag) -> Result<Tag>;
    /// Deletes a tag and removes it from devices and credentials.
    async fn delete_tag(&self, id: TagId) -> Result<()>;
    /// A page of tags ordered by name.
    async fn list_tags(&self, page: Page) -> Result<Paged<Tag>>;
}

/// Credentials. Backends that persist store the secrets encrypted with a
/// [`crate::cipher::SecretCipher`]; this trait always speaks plain [`crate::secret::Secret`]s.
///
/// ```
/// # use netraven_core::prelude::*;
/// # use netraven_core::memory::MemoryStore;
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<()> {
/// let store = MemoryStore::new();
/// let c = store.create_credential(&Credential::new("lab", "netops", Secret::new("pw"))).await?;
/// assert_eq!(store.get_credential(c.id).await?.password.expose(), "pw");
/// assert_eq!(store.all_credentials().await?.len(), 1);
/// # Ok(()) }
/// ```
#[async_trait]
pub trait CredentialStore: Send + Sync + Debug + 'static {
    /// Creates a credential; Conflict on a duplicate name.
    async fn create_credential(&self, cred: &Credential) -> Result<Credential>;
    /// One credential; NotFound if missing.
    async fn get_credential(&self, id: CredentialId) -> Result<Credential>;
    /// Replaces a credential's fields (not its statistics).
    async fn update_credential(&self, cred: &Credential) -> Result<Credential>;
    /// Deletes a credential.
    async fn delete_credential(&self, id: CredentialId) -> Result<()>;
    /// A page of credentials ordered by priority, then name.
    async fn list_credentials(&self, page: Page) -> Result<Paged<Credential>>;
    /// Every credential (the engine ranks them per device in memory; fleets have few).
    async fn all_credentials(&self) -> Result<Vec<Credential>>;
    /// Counts one login attempt with this credential.
    async fn record_credential_use(
        &self,
        id: CredentialId,
        success: bool,
        at: DateTime<Utc>,
    ) -> Result<()>;
}

/// Jobs.
///
/// ```
/// # use netraven_core::prelude::*;
/// # use netraven_core::memory::MemoryStore;
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<()> {
/// let store = MemoryStore::new();
/// let j = store.create_job(&Job::backup("nightly", Targets::default())).await?;
/// assert_eq!(store.get_job(j.id).await?.name, "nightly");
/// assert!(store.scheduled_jobs().await?.is_empty(), "manual jobs are not scheduled");
/// # Ok(()) }
/// ```
#[async_trait]
pub trait JobStore: Send + Sync + Debug + 'static {
    /// Creates a job; Conflict on a duplicate name.
    async fn create_job(&self, job: &Job) -> Result<Job>;
    /// One job; NotFound if missing.
    async fn get_job(&self, id: JobId) -> Result<Job>;
    /// Replaces a job's fields.
    async fn update_job(&self, job: &Job) -> Result<Job>;
    /// Deletes a job. Its runs stay.
    async fn delete_job(&self, id: JobId) -> Result<()>;
    /// A filtered page of jobs ordered by name.
    async fn list_jobs(&self, filter: &JobFilter, page: Page) -> Result<Paged<Job>>;
    /// Every enabled job whose schedule is not manual.
    async fn scheduled_jobs(&self) -> Result<Vec<Job>>;
}

/// Result of [`RunStore::create_run`].
#[derive(Debug, Clone, PartialEq)]
pub struct CreatedRun {
    /// The run (new or the one that already existed).
    pub run: Run,
    /// False when a run with the same (job, fire time) or idempotency key existed already.
    pub created: bool,
}

/// Runs and their device sets.
///
/// ```
/// # use netraven_core::prelude::*;
/// # use netraven_core::memory::MemoryStore;
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<()> {
/// let store = MemoryStore::new();
/// let job = store.create_job(&Job::backup("nightly", Targets::default())).await?;
/// let new = NewRun {
///     job_id: job.id, trigger: Trigger::Manual, fire_time: None, idempotency_key: None,
///     status: RunStatus::Queued, message: None, queued_at: chrono::Utc::now(),
/// };
/// let run = store.create_run(&new).await?.run;
/// assert!(store.job_has_active_run(job.id).await?);
/// store.finish_run(run.id, RunStatus::CompletedNoDevices, chrono::Utc::now(), None).await?;
/// assert!(!store.job_has_active_run(job.id).await?);
/// # Ok(()) }
/// ```
#[async_trait]
pub trait RunStore: Send + Sync + Debug + 'static {
    /// Creates a run unless one with the same (job, fire time) or (job, idempotency key)
    /// exists, in which case that one is returned with `created: false`.
    async fn create_run(&self, run: &NewRun) -> Result<CreatedRun>;
    /// One run; NotFound if missing.
    async fn get_run(&self, id: RunId) -> Result<Run>;
    /// A filtered page of runs, newest first.
    async fn list_runs(&self, filter: &RunFilter, page: Page) -> Result<Paged<Run>>;
    /// Moves a `QUEUED` run to `RUNNING`, fixing its device set and total. Returns the run as it
    /// is afterwards; a run that was not `QUEUED` is returned unchanged (its device set stays).
    async fn start_run(&self, id: RunId, devices: &[DeviceId], at: DateTime<Utc>) -> Result<Run>;
    /// The run's fixed device set (empty until started).
    async fn run_device_ids(&self, id: RunId) -> Result<Vec<DeviceId>>;
    /// Devices of the run's set that have no result yet.
    async fn pending_device_ids(&self, id: RunId) -> Result<Vec<DeviceId>>;
    /// Records that an attempt started acting on `device` in run `id` (before anything is sent
    /// to it). `true` only for the first call per (run, device): a redelivered task learns that
    /// an earlier attempt may already have run commands there. A device outside the run's set
    /// is NotFound.
    async fn mark_device_started(
        &self,
        id: RunId,
        device: DeviceId,
        at: DateTime<Utc>,
    ) -> Result<bool>;
    /// Sets a final status unless the run already has one. Returns whether it changed.
    async fn finish_run(
        &self,
        id: RunId,
        status: RunStatus,
        at: DateTime<Utc>,
        message: Option<&str>,
    ) -> Result<bool>;
    /// Every `QUEUED` or `RUNNING` run.
    async fn active_runs(&self) -> Result<Vec<Run>>;
    /// Whether the job has a `QUEUED` or `RUNNING` run.
    async fn job_has_active_run(&self, job_id: JobId) -> Result<bool>;
    /// The latest fire time recorded for the job (any status, including skips).
    async fn last_fire_time(&self, job_id: JobId) -> Result<Option<DateTime<Utc>>>;
}

/// Device results.
///
/// ```
/// # use netraven_core::prelude::*;
/// # use netraven_core::memory::MemoryStore;
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<()> {
/// let store = MemoryStore::new();
/// let page = store.list_results(&ResultFilter::default(), Page::first(10)).await?;
/// assert_eq!(page.total, 0);
/// assert!(store.get_result(1, 1).await?.is_none());
/// # Ok(()) }
/// ```
#[async_trait]
pub trait ResultStore: Send + Sync + Debug + 'static {
    /// Records the result of a (run, device) pair and adds it to the run's tallies, atomically.
    /// A second result for the same pair is ignored (`inserted: false`): the unique key, not the
    /// caller, guarantees one result per pair.
    async fn record_result(&self, result: &DeviceResult) -> Result<RecordOutcome>;
    /// The result for a pair, if recorded.
    async fn get_result(&self, run: RunId, device: DeviceId) -> Result<Option<DeviceResult>>;
    /// A filtered page of results, newest first.
    async fn list_results(&self, filter: &ResultFilter, page: Page) -> Result<Paged<DeviceResult>>;
    /// The newest result and newest success of each of these devices, in the order of
    /// [`ResultStore::list_results`]; a device without any result (or unknown) has no entry.
    /// The default reads page 1 of `list_results` per device (twice for a device whose newest
    /// result failed); the bundled stores answer a page of devices in one query.
    async fn latest_results(
        &self,
        devices: &[DeviceId],
    ) -> Result<std::collections::HashMap<DeviceId, LatestResults>> {
        let mut out = std::collections::HashMap::with_capacity(devices.len());
        for &d in devices {
            let f = ResultFilter {
                device_id: Some(d),
                ..ResultFilter::default()
            };
            let Some(latest) = self.list_results(&f, Page::new(1, 1)).await?.items.pop() else {
                continue;
            };
            let latest_success = if latest.status == DeviceStatus::Success {
                Some(latest.clone())
            } else {
                let f = ResultFilter {
                    status: Some(DeviceStatus::Success),
                    ..f
                };
                self.list_results(&f, Page::new(1, 1)).await?.items.pop()
            };
            out.insert(
                d,
                LatestResults {
                    latest,
                    latest_success,
                },
            );
        }
        Ok(out)
    }
}

/// Logs.
///
/// ```
/// # use netraven_core::prelude::*;
/// # use netraven_core::memory::MemoryStore;
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<()> {
/// let store = MemoryStore::new();
/// let now = chrono::Utc::now();
/// store.append_logs(&[LogEntry::new(now, LogLevel::Info, LogKind::Job, "me", "hello")]).await?;
/// assert_eq!(store.list_logs(&LogFilter::default(), Page::first(10)).await?.items[0].message, "hello");
/// # Ok(()) }
/// ```
#[async_trait]
pub trait LogStore: Send + Sync + Debug + 'static {
    /// Appends entries (their ids are assigned in order).
    async fn append_logs(&self, entries: &[LogEntry]) -> Result<()>;
    /// A filtered, ordered page of entries.
    async fn list_logs(&self, filter: &LogFilter, page: Page) -> Result<Paged<LogEntry>>;
    /// Deletes entries older than `before`, at most `batch` rows per statement, until none are
    /// left. Returns the number deleted.
    async fn prune_logs(&self, before: DateTime<Utc>, batch: u32) -> Result<u64>;
}

/// The snapshot index (and pending content) behind the snapshot sinks.
///
/// ```
/// # use netraven_core::prelude::*;
/// # use netraven_core::memory::MemoryStore;
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<()> {
/// let store = MemoryStore::new();
/// let d = store.create_device(&Device::new("core-1", "10.0.0.1", "cisco_ios")).await?;
/// assert!(store.latest_snapshot(d.id).await?.is_none());
/// assert!(store.uncommitted_snapshots(10).await?.is_empty());
/// # Ok(()) }
/// ```
#[async_trait]
pub trait SnapshotStore: Send + Sync + Debug + 'static {
    /// Inserts a snapshot with its content; the id is assigned.
    async fn insert_snapshot(&self, snapshot: &Snapshot) -> Result<SnapshotMeta>;
    /// The device's latest snapshot index entry.
    async fn latest_snapshot(&self, device: DeviceId) -> Result<Option<SnapshotMeta>>;
    /// Inserts `snapshot` unless the device's latest snapshot has the same content hash; then
    /// nothing is written and that snapshot's id comes back with `changed: false`. An empty
    /// `meta.hash` is computed from the content. The default reads the latest entry, then
    /// inserts; a store may do both in one write (the SQL stores do, in one transaction).
    async fn put_snapshot(&self, snapshot: Snapshot) -> Result<SnapshotPut> {
        let mut snapshot = snapshot;
        if snapshot.meta.hash.is_empty() {
            snapshot.meta.hash = content_hash(&snapshot.content);
        }
        if let Some(latest) = self.latest_snapshot(snapshot.meta.device_id).await?
            && latest.hash == snapshot.meta.hash
        {
            return Ok(SnapshotPut {
                snapshot_id: latest.id,
                changed: false,
                hash: snapshot.meta.hash,
            });
        }
        let stored = self.insert_snapshot(&snapshot).await?;
        Ok(SnapshotPut {
            snapshot_id: stored.id,
            changed: true,
            hash: snapshot.meta.hash,
        })
    }
    /// A snapshot with its content; NotFound if missing.
    async fn get_snapshot(&self, id: SnapshotId) -> Result<Snapshot>;
    /// A device's snapshots, newest first.
    async fn list_snapshots(&self, device: DeviceId, page: Page) -> Result<Paged<SnapshotMeta>>;
    /// Latest snapshot entry of each of these devices.
    async fn latest_snapshots(&self, devices: &[DeviceId]) -> Result<Vec<SnapshotMeta>>;
    /// Snapshots not yet committed to git, oldest first.
    async fn uncommitted_snapshots(&self, limit: u32) -> Result<Vec<Snapshot>>;
    /// Records the commit that holds these snapshots (after the git ref moved).
    async fn mark_committed(&self, ids: &[SnapshotId], commit_id: &str) -> Result<()>;
    /// The commit id recorded last ([`SnapshotStore::mark_committed`] of the newest committed
    /// snapshot): a git writer that takes over checks its repository holds it. The default
    /// knows none.
    async fn last_commit_id(&self) -> Result<Option<String>> {
        Ok(None)
    }
    /// Latest snapshots (one per device) whose content contains `needle` (literal,
    /// case-insensitive).
    async fn search_latest(&self, needle: &str, page: Page) -> Result<Paged<SnapshotMeta>>;
}

/// Pinned SSH host keys (trust on first use).
///
/// ```
/// # use netraven_core::prelude::*;
/// # use netraven_core::memory::MemoryStore;
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<()> {
/// let store = MemoryStore::new();
/// let key = HostKey {
///     host: "10.0.0.1".into(), port: 22, key_type: "ssh-ed25519".into(),
///     fingerprint: "SHA256:abc".into(), first_seen: chrono::Utc::now(),
/// };
/// store.pin_host_key(&key).await?;
/// assert_eq!(store.get_host_key("10.0.0.1", 22).await?.map(|k| k.fingerprint), Some("SHA256:abc".into()));
/// # Ok(()) }
/// ```
#[async_trait]
pub trait HostKeyStore: Send + Sync + Debug + 'static {
    /// The pinned key for a host and port.
    async fn get_host_key(&self, host: &str, port: u16) -> Result<Option<HostKey>>;
    /// Pins a key unless one is already pinned; returns the key that is pinned afterwards.
    async fn pin_host_key(&self, key: &HostKey) -> Result<HostKey>;
    /// Forgets a pinned key (an operator accepted a new one).
    async fn delete_host_key(&self, host: &str, port: u16) -> Result<()>;
}

/// Named leases (scheduler leadership, the git writer).
///
/// ```
/// # use netraven_core::prelude::*;
/// # use netraven_core::memory::MemoryStore;
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<()> {
/// let store = MemoryStore::new();
/// let ttl = std::time::Duration::from_secs(30);
/// let now = chrono::Utc::now();
/// assert!(store.try_acquire_lease("scheduler", "a", ttl, now).await?);
/// assert!(!store.try_acquire_lease("scheduler", "b", ttl, now).await?, "a holds it");
/// # Ok(()) }
/// ```
#[async_trait]
pub trait LeaseStore: Send + Sync + Debug + 'static {
    /// Takes or renews the lease `name` for `holder` until `now + ttl`. True if `holder` holds it
    /// afterwards; false if another holder's lease has not expired.
    async fn try_acquire_lease(
        &self,
        name: &str,
        holder: &str,
        ttl: Duration,
        now: DateTime<Utc>,
    ) -> Result<bool>;
    /// Gives the lease up if `holder` holds it.
    async fn release_lease(&self, name: &str, holder: &str) -> Result<()>;
}

/// API users and tokens.
///
/// ```
/// # use netraven_core::prelude::*;
/// # use netraven_core::memory::MemoryStore;
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<()> {
/// let store = MemoryStore::new();
/// let u = User {
///     id: 0, username: "alice".into(), password_hash: "$argon2id$...".into(),
///     role: Role::Viewer, active: true, created_at: chrono::Utc::now(),
/// };
/// let u = store.create_user(&u).await?;
/// assert_eq!(store.get_user_by_name("alice").await?.map(|x| x.id), Some(u.id));
/// # Ok(()) }
/// ```
#[async_trait]
pub trait UserStore: Send + Sync + Debug + 'static {
    /// Creates a user; Conflict on a duplicate name.
    async fn create_user(&self, user: &User) -> Result<User>;
    /// One user by id.
    async fn get_user(&self, id: UserId) -> Result<User>;
    /// One user by name.
    async fn get_user_by_name(&self, username: &str) -> Result<Option<User>>;
    /// Replaces a user's fields (including the password hash).
    async fn update_user(&self, user: &User) -> Result<User>;
    /// Deletes a user and its tokens.
    async fn delete_user(&self, id: UserId) -> Result<()>;
    /// A page of users by name.
    async fn list_users(&self, page: Page) -> Result<Paged<User>>;
    /// Stores a token (by hash).
    async fn create_token(&self, token: &ApiToken) -> Result<ApiToken>;
    /// The token with this hash.
    async fn find_token(&self, token_hash: &str) -> Result<Option<ApiToken>>;
    /// A user's tokens.
    async fn list_tokens(&self, user_id: UserId) -> Result<Vec<ApiToken>>;
    /// Records that a token was used at `at`.
    async fn touch_token(&self, id: i64, at: DateTime<Utc>) -> Result<()>;
    /// Deletes a token.
    async fn delete_token(&self, id: i64) -> Result<()>;
}

/// Which migrations of the database schema are applied.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SchemaStatus {
    /// Highest migration version applied; `None` before the first migration.
    pub applied: Option<i64>,
    /// Highest migration version this build knows.
    pub latest: i64,
    /// Versions this build knows that the database has not applied, in order.
    pub pending: Vec<i64>,
}

impl SchemaStatus {
    /// Whether every migration this build knows is applied.
    pub fn is_current(&self) -> bool {
        self.pending.is_empty()
    }
}

/// The schema version (readiness probes, `netraven migrate --check`).
///
/// ```
/// # use netraven_core::prelude::*;
/// # use netraven_core::memory::MemoryStore;
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<()> {
/// let store = MemoryStore::new();
/// assert!(store.schema_status().await?.is_current());
/// # Ok(()) }
/// ```
#[async_trait]
pub trait SchemaStore: Send + Sync + Debug + 'static {
    /// Which migrations are applied. Reads the database, so it also shows it is reachable.
    async fn schema_status(&self) -> Result<SchemaStatus>;
}

/// Named jump hosts (SSH bastions). Their secrets are stored encrypted like credentials'.
///
/// ```
/// # use netraven_core::prelude::*;
/// # use netraven_core::memory::MemoryStore;
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<()> {
/// let store = MemoryStore::new();
/// let j = store.create_jump_host(&JumpHost::new("dc1-bastion", "192.0.2.10", "jump", Secret::new("pw"))).await?;
/// assert_eq!(store.jump_host_by_name("dc1-bastion").await?.map(|x| x.id), Some(j.id));
/// # Ok(()) }
/// ```
#[async_trait]
pub trait JumpHostStore: Send + Sync + Debug + 'static {
    /// Inserts a jump host (its name must be unique: Conflict otherwise).
    async fn create_jump_host(&self, jump: &JumpHost) -> Result<JumpHost>;
    /// A jump host by id.
    async fn get_jump_host(&self, id: JumpHostId) -> Result<JumpHost>;
    /// A jump host by name.
    async fn jump_host_by_name(&self, name: &str) -> Result<Option<JumpHost>>;
    /// Replaces a jump host's fields (its creation time is kept).
    async fn update_jump_host(&self, jump: &JumpHost) -> Result<JumpHost>;
    /// Deletes a jump host.
    async fn delete_jump_host(&self, id: JumpHostId) -> Result<()>;
    /// Every jump host, by name.
    async fn list_jump_hosts(&self) -> Result<Vec<JumpHost>>;
}

/// Everything the engine, scheduler and maintenance need from a store: the device, tag,
/// credential, job, run, result, log, snapshot, host-key, jump-host, lease and schema traits. Users and API
/// tokens are not part of it (they are the server's concern: see [`ServerStore`]). A backend
/// implements each focused trait and gets [`Store`] through the blanket impl.
///
/// The engine's parts hold only the focused traits they use (see
/// [`crate::engine::WorkerStores`], [`crate::scheduler::SchedulerStores`]); `Arc<dyn Store>` converts into them.
///
/// ```
/// use netraven_core::memory::MemoryStore;
/// use netraven_core::store::{Store, StoreExt};
/// use netraven_core::model::Device;
/// use std::sync::Arc;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> netraven_core::Result<()> {
/// let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
/// let d = store.upsert_device(&Device::new("core-1", "10.0.0.1", "cisco_ios")).await?;
/// assert_eq!(store.device_by_hostname("core-1").await?.map(|x| x.id), Some(d.id));
/// # Ok(()) }
/// ```
pub trait Store:
    DeviceStore
    + TagStore
    + CredentialStore
    + JobStore
    + RunStore
    + ResultStore
    + LogStore
    + SnapshotStore
    + HostKeyStore
    + JumpHostStore
    + LeaseStore
    + SchemaStore
{
}

impl<T> Store for T where
    T: DeviceStore
        + TagStore
        + CredentialStore
        + JobStore
        + RunStore
        + ResultStore
        + LogStore
        + SnapshotStore
        + HostKeyStore
        + JumpHostStore
        + LeaseStore
        + SchemaStore
{
}

/// A [`Store`] that also keeps API users and tokens: what the reference server and its API
/// need. The memory and SQL stores are one; an embedder's store need not be.
///
/// ```
/// # use netraven_core::prelude::*;
/// # use netraven_core::memory::MemoryStore;
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<()> {
/// let store = MemoryStore::new();
/// let server: std::sync::Arc<dyn ServerStore> = std::sync::Arc::new(store);
/// // The engine's view of the same store (trait upcasting).
/// let engine_view: std::sync::Arc<dyn Store> = server.clone();
/// assert!(engine_view.schema_status().await?.is_current());
/// assert_eq!(server.list_users(Page::first(1)).await?.total, 0);
/// # Ok(()) }
/// ```
pub trait ServerStore: Store + UserStore {}

impl<T> ServerStore for T where T: Store + UserStore {}

/// Convenience helpers over the store traits, for every type that has them (blanket impl):
/// lookups and upserts by name, and paging through every device.
///
/// Names are matched exactly (hostnames, credential and job names are unique in every store).
///
/// ```
/// use netraven_core::memory::MemoryStore;
/// use netraven_core::model::{Credential, Job, Targets};
/// use netraven_core::store::StoreExt;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> netraven_core::Result<()> {
/// let store = MemoryStore::new();
/// let job = store.upsert_job(&Job::backup("nightly", Targets::default())).await?;
/// let again = store.upsert_job(&Job::backup("nightly", Targets::default())).await?;
/// assert_eq!(job.id, again.id);
/// assert!(store.credential_by_name("lab").await?.is_none());
/// # Ok(()) }
/// ```
#[async_trait]
pub trait StoreExt: DeviceStore + CredentialStore + JobStore {
    /// The device with exactly this hostname.
    async fn device_by_hostname(&self, hostname: &str) -> Result<Option<Device>>;
    /// Creates the device, or replaces the fields of the one with the same hostname (its id and
    /// creation time are kept).
    async fn upsert_device(&self, device: &Device) -> Result<Device>;
    /// Every device matching `filter`, read page by page, ordered by hostname.
    async fn all_devices(&self, filter: &DeviceFilter) -> Result<Vec<Device>>;
    /// The credential with exactly this name.
    async fn credential_by_name(&self, name: &str) -> Result<Option<Credential>>;
    /// Creates the credential, or replaces the fields of the one with the same name.
    async fn upsert_credential(&self, cred: &Credential) -> Result<Credential>;
    /// The job with exactly this name.
    async fn job_by_name(&self, name: &str) -> Result<Option<Job>>;
    /// Creates the job, or replaces the fields of the one with the same name.
    async fn upsert_job(&self, job: &Job) -> Result<Job>;
}

/// Page size the [`StoreExt`] helpers read with.
const EXT_PAGE: u32 = 500;

#[async_trait]
impl<T> StoreExt for T
where
    T: DeviceStore + CredentialStore + JobStore + ?Sized,
{
    async fn device_by_hostname(&self, hostname: &str) -> Result<Option<Device>> {
        let filter = DeviceFilter {
            hostname: Some(hostname.to_string()),
            ..DeviceFilter::default()
        };
        // The filter matches substrings: page until the exact name shows up.
        let mut page = 1;
        loop {
            let p = self
                .list_devices(&filter, Page::new(page, EXT_PAGE))
                .await?;
            if let Some(d) = p.items.iter().find(|d| d.hostname == hostname) {
                return Ok(Some(d.clone()));
            }
            if p.items.is_empty() || page >= p.pages {
                return Ok(None);
            }
            page += 1;
        }
    }

    async fn upsert_device(&self, device: &Device) -> Result<Device> {
        match self.device_by_hostname(&device.hostname).await? {
            Some(existing) => {
                let mut d = device.clone();
                d.id = existing.id;
                d.created_at = existing.created_at;
                self.update_device(&d).await
            }
            None => self.create_device(device).await,
        }
    }

    async fn all_devices(&self, filter: &DeviceFilter) -> Result<Vec<Device>> {
        let mut out = Vec::new();
        let mut page = 1;
        loop {
            let p = self.list_devices(filter, Page::new(page, EXT_PAGE)).await?;
            let last = p.items.is_empty() || page >= p.pages;
            out.extend(p.items);
            if last {
                return Ok(out);
            }
            page += 1;
        }
    }

    async fn credential_by_name(&self, name: &str) -> Result<Option<Credential>> {
        let mut page = 1;
        loop {
            let p = self.list_credentials(Page::new(page, EXT_PAGE)).await?;
            if let Some(c) = p.items.iter().find(|c| c.name == name) {
                return Ok(Some(c.clone()));
            }
            if p.items.is_empty() || page >= p.pages {
                return Ok(None);
            }
            page += 1;
        }
    }

    async fn upsert_credential(&self, cred: &Credential) -> Result<Credential> {
        match self.credential_by_name(&cred.name).await? {
            Some(existing) => {
                let mut c = cred.clone();
                c.id = existing.id;
                c.created_at = existing.created_at;
                self.update_credential(&c).await
            }
            None => self.create_credential(cred).await,
        }
    }

    async fn job_by_name(&self, name: &str) -> Result<Option<Job>> {
        let filter = JobFilter {
            name: Some(name.to_string()),
            ..JobFilter::default()
        };
        let mut page = 1;
        loop {
            let p = self.list_jobs(&filter, Page::new(page, EXT_PAGE)).await?;
            if let Some(j) = p.items.iter().find(|j| j.name == name) {
                return Ok(Some(j.clone()));
            }
            if p.items.is_empty() || page >= p.pages {
                return Ok(None);
            }
            page += 1;
        }
    }

    async fn upsert_job(&self, job: &Job) -> Result<Job> {
        match self.job_by_name(&job.name).await? {
            Some(existing) => {
                let mut j = job.clone();
                j.id = existing.id;
                j.created_at = existing.created_at;
                self.update_job(&j).await
            }
            None => self.create_job(job).await,
        }
    }
}

/// The store traits' input rules, written once: every backend calls these before it writes, so
/// no backend accepts what another refuses (the conformance suite checks that they do).
pub mod check {
    use crate::error::{Error, Result};
    use crate::model::{Credential, Device, Job, RunStatus, Tag, User, validate_name};

    /// A device to create or update.
    pub fn device(device: &Device) -> Result<()> {
        device.validate()
    }

    /// A tag to create or rename.
    pub fn tag(tag: &Tag) -> Result<()> {
        validate_name("tag", &tag.name)?;
        if let Some(z) = &tag.zone {
            crate::model::validate_zone(z)?;
        }
        Ok(())
    }

    /// A jump host to create or update.
    pub fn jump_host(jump: &crate::model::JumpHost) -> Result<()> {
        jump.validate()
    }

    /// A credential to create or update.
    pub fn credential(cred: &Credential) -> Result<()> {
        validate_name("name", &cred.name)?;
        for t in &cred.tags {
            validate_name("tag", t)?;
        }
        Ok(())
    }

    /// A job to create or update.
    pub fn job(job: &Job) -> Result<()> {
        job.validate()
    }

    /// A user to create or update (the same rule both times).
    pub fn user(user: &User) -> Result<()> {
        validate_name("username", &user.username)
    }

    /// The status `finish_run` sets must be a final one.
    pub fn final_status(status: RunStatus) -> Result<()> {
        if status.is_final() {
            Ok(())
        } else {
            Err(Error::invalid(format!(
                "{} is not a final run status",
                status.as_str()
            )))
        }
    }
}

/// One failed device of a run, as the command-line summaries print it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedDevice {
    /// The device's hostname (empty if the device was deleted since).
    pub hostname: String,
    /// Why it failed, when the result says.
    pub kind: Option<crate::error::ErrorKind>,
    /// The result's message.
    pub message: String,
}

/// The first `limit` failed devices of `run`, in the store's result order, with their hostnames
/// (read once per page of results, not once per device).
pub async fn failed_devices<S>(store: &S, run: RunId, limit: usize) -> Result<Vec<FailedDevice>>
where
    S: ResultStore + DeviceStore + ?Sized,
{
    let filter = ResultFilter {
        run_id: Some(run),
        status: Some(DeviceStatus::Failed),
        ..ResultFilter::default()
    };
    let mut out = Vec::new();
    let mut page = 1;
    while out.len() < limit {
        let results = store.list_results(&filter, Page::new(page, 1000)).await?;
        let ids: Vec<DeviceId> = results.items.iter().map(|r| r.device_id).collect();
        let hosts: std::collections::HashMap<DeviceId, String> = store
            .devices_by_ids(&ids)
            .await?
            .into_iter()
            .map(|d| (d.id, d.spec.hostname))
            .collect();
        let room = limit - out.len();
        out.extend(results.items.into_iter().take(room).map(|r| FailedDevice {
            hostname: hosts.get(&r.device_id).cloned().unwrap_or_default(),
            kind: r.error_kind,
            message: r.message.unwrap_or_default(),
        }));
        if page >= results.pages {
            break;
        }
        page += 1;
    }
    Ok(out)
}
