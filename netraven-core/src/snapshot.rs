//! [`SnapshotSink`]: where normalised, redacted configurations go.
//!
//! - [`StoreSnapshotSink`] writes a snapshot into the store's index (deduplicated against the
//!   device's latest content). It is the index layer the git sink (`netraven_store::git::GitWriter`,
//!   the default sink) is built on, and the sink of processes that hold no repository.
//! - [`Tee`] composes sinks: one primary that answers reads, any number of mirrors that receive
//!   every write (git + a plain directory mirror + an embedder's own).
//! - [`device_file_name`] is the file name git and the directory mirror give a device, so their
//!   trees match.

use crate::error::Result;
use crate::model::*;
use crate::store::SnapshotStore;
use async_trait::async_trait;
use std::fmt::Debug;
use std::sync::Arc;

/// A destination for configuration snapshots with history.
///
/// ```
/// # use netraven_core::prelude::*;
/// use netraven_core::memory::MemoryStore;
/// use netraven_core::snapshot::StoreSnapshotSink;
/// use std::sync::Arc;
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<()> {
/// let sink = StoreSnapshotSink::new(Arc::new(MemoryStore::new()));
/// let snap = |content: &str| NewSnapshot {
///     device_id: 1, hostname: "core-1".into(), run_id: None,
///     content: content.into(), taken_at: chrono::Utc::now(), author: None,
/// };
/// assert!(sink.put(snap("hostname core-1\n")).await?.changed);
/// assert!(!sink.put(snap("hostname core-1\n")).await?.changed, "same content, no new snapshot");
/// assert_eq!(sink.latest(1).await?.map(|s| s.content), Some("hostname core-1\n".into()));
/// # Ok(()) }
/// ```
#[async_trait]
pub trait SnapshotSink: Send + Sync + Debug + 'static {
    /// Stores a snapshot unless its content equals the device's latest one (then nothing is
    /// written and the latest snapshot's id comes back with `changed: false`).
    async fn put(&self, snapshot: NewSnapshot) -> Result<SnapshotPut>;
    /// The device's latest snapshot with content.
    async fn latest(&self, device: DeviceId) -> Result<Option<Snapshot>>;
    /// The device's snapshots, newest first.
    async fn history(&self, device: DeviceId, page: Page) -> Result<Paged<SnapshotMeta>>;
    /// One snapshot with content.
    async fn get(&self, id: SnapshotId) -> Result<Snapshot>;
    /// Makes everything `put` so far durable in the sink's history backend (git: commits the
    /// pending snapshots). Called by the single maintenance leader
    /// ([`crate::maintenance::Maintenance`]); sinks that write through need nothing (the default).
    async fn flush(&self) -> Result<()> {
        Ok(())
    }
    /// Like [`SnapshotSink::flush`], but stops starting new work at `deadline`: `Ok(true)` when
    /// everything was flushed, `Ok(false)` when work was left for the next flush (a shutdown
    /// must not wait for a large backlog; the next leader commits the rest). The default flushes
    /// everything.
    async fn flush_until(&self, deadline: tokio::time::Instant) -> Result<bool> {
        let _ = deadline;
        self.flush().await.map(|_| true)
    }
}

macro_rules! delegate_sink {
    ($ptr:ident) => {
        /// A shared or boxed sink is a sink, so layers can hold their inner sink in any form.
        #[async_trait]
        impl<T: SnapshotSink + ?Sized> SnapshotSink for $ptr<T> {
            async fn put(&self, snapshot: NewSnapshot) -> Result<SnapshotPut> {
                (**self).put(snapshot).await
            }
            async fn latest(&self, device: DeviceId) -> Result<Option<Snapshot>> {
                (**self).latest(device).await
            }
            async fn history(&self, device: DeviceId, page: Page) -> Result<Paged<SnapshotMeta>> {
                (**self).history(device, page).await
            }
            async fn get(&self, id: SnapshotId) -> Result<Snapshot> {
                (**self).get(id).await
            }
            async fn flush(&self) -> Result<()> {
                (**self).flush().await
            }
            async fn flush_until(&self, deadline: tokio::time::Instant) -> Result<bool> {
                (**self).flush_until(deadline).await
            }
        }
    };
}

delegate_sink!(Arc);
delegate_sink!(Box);

/// The file name of a device's configuration in a tree of snapshots (git, a directory mirror):
/// `<hostname>.cfg`, with characters that cannot appear in a file name replaced by `_`, no
/// leading dot, never empty.
pub fn device_file_name(hostname: &str) -> String {
    format!("{}.cfg", path_component(hostname))
}

/// Makes one path component: no separators, no control characters, no leading dot, not empty.
pub fn path_component(s: &str) -> String {
    let mut out: String = s
        .chars()
        .map(|c| {
            if c == '/' || c == '\\' || c.is_control() {
                '_'
            } else {
                c
            }
        })
        .collect();
    if out.starts_with('.') {
        out.replace_range(0..1, "_");
    }
    if out.is_empty() {
        out.push('_');
    }
    out
}

/// A sink that writes to a primary sink and then to mirrors; reads come from the primary.
///
/// Every `put` reaches every mirror (not only changed content), so a mirror that failed once
/// catches up on the next backup of the device; a mirror's error is returned after all mirrors
/// were tried, so the device's result shows it. `flush` flushes the primary and every mirror.
#[derive(Debug, Clone)]
pub struct Tee {
    primary: Arc<dyn SnapshotSink>,
    mirrors: Vec<Arc<dyn SnapshotSink>>,
}

impl Tee {
    /// A tee with `primary` only.
    pub fn new(primary: Arc<dyn SnapshotSink>) -> Self {
        Tee {
            primary,
            mirrors: Vec::new(),
        }
    }

    /// Adds a mirror.
    pub fn with(mut self, mirror: Arc<dyn SnapshotSink>) -> Self {
        self.mirrors.push(mirror);
        self
    }
}

#[async_trait]
impl SnapshotSink for Tee {
    async fn put(&self, snapshot: NewSnapshot) -> Result<SnapshotPut> {
        let out = self.primary.put(snapshot.clone()).await?;
        let mut first_err = None;
        for m in &self.mirrors {
            if let Err(e) = m.put(snapshot.clone()).await {
                tracing::warn!(error = %e, device = snapshot.device_id, "snapshot mirror failed");
                first_err.get_or_insert(e);
            }
        }
        first_err.map_or(Ok(out), Err)
    }

    async fn latest(&self, device: DeviceId) -> Result<Option<Snapshot>> {
        self.primary.latest(device).await
    }

    async fn history(&self, device: DeviceId, page: Page) -> Result<Paged<SnapshotMeta>> {
        self.primary.history(device, page).await
    }

    async fn get(&self, id: SnapshotId) -> Result<Snapshot> {
        self.primary.get(id).await
    }

    async fn flush(&self) -> Result<()> {
        self.primary.flush().await?;
        for m in &self.mirrors {
            m.flush().await?;
        }
        Ok(())
    }

    async fn flush_until(&self, deadline: tokio::time::Instant) -> Result<bool> {
        let mut all = self.primary.flush_until(deadline).await?;
        for m in &self.mirrors {
            all &= m.flush_until(deadline).await?;
        }
        Ok(all)
    }
}

/// A [`SnapshotSink`] over any [`SnapshotStore`].
#[derive(Debug, Clone)]
pub struct StoreSnapshotSink {
    store: Arc<dyn SnapshotStore>,
}

impl StoreSnapshotSink {
    /// A sink writing into `store`.
    pub fn new(store: Arc<dyn SnapshotStore>) -> Self {
        StoreSnapshotSink { store }
    }
}

#[async_trait]
impl SnapshotSink for StoreSnapshotSink {
    async fn put(&self, snapshot: NewSnapshot) -> Result<SnapshotPut> {
        // The comparison with the device's latest hash and the insert are one store call (one
        // write transaction on the SQL stores, no read round trip before it).
        let hash = content_hash(&snapshot.content);
        let meta = SnapshotMeta {
            id: 0,
            device_id: snapshot.device_id,
            hostname: snapshot.hostname,
            run_id: snapshot.run_id,
            hash,
            size: snapshot.content.len() as u64,
            created_at: snapshot.taken_at,
            commit_id: None,
            author: snapshot.author,
        };
        self.store
            .put_snapshot(Snapshot {
                meta,
                content: snapshot.content,
            })
            .await
    }

    async fn latest(&self, device: DeviceId) -> Result<Option<Snapshot>> {
        match self.store.latest_snapshot(device).await? {
            Some(m) => Ok(Some(self.store.get_snapshot(m.id).await?)),
            None => Ok(None),
        }
    }

    async fn history(&self, device: DeviceId, page: Page) -> Result<Paged<SnapshotMeta>> {
        self.store.list_snapshots(device, page).await
    }

    async fn get(&self, id: SnapshotId) -> Result<Snapshot> {
        self.store.get_snapshot(id).await
    }
}
