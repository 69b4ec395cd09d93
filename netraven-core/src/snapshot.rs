//! [`SnapshotSink`]: where normalised, redacted configurations go, and [`StoreSnapshotSink`], the
//! sink every deployment uses: it writes the snapshot into the store's index (deduplicated against
//! the device's latest content) and leaves committing to git to the single git writer.

use crate::error::Result;
use crate::model::*;
use crate::store::SnapshotStore;
use async_trait::async_trait;
use std::fmt::Debug;
use std::sync::Arc;

/// A destination for configuration snapshots with history.
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
        let hash = content_hash(&snapshot.content);
        if let Some(latest) = self.store.latest_snapshot(snapshot.device_id).await?
            && latest.hash == hash
        {
            return Ok(SnapshotPut {
                snapshot_id: latest.id,
                changed: false,
                hash,
            });
        }
        let meta = SnapshotMeta {
            id: 0,
            device_id: snapshot.device_id,
            hostname: snapshot.hostname,
            run_id: snapshot.run_id,
            hash: hash.clone(),
            size: snapshot.content.len() as u64,
            created_at: snapshot.taken_at,
            commit_id: None,
        };
        let stored = self
            .store
            .insert_snapshot(&Snapshot {
                meta,
                content: snapshot.content,
            })
            .await?;
        Ok(SnapshotPut {
            snapshot_id: stored.id,
            changed: true,
            hash,
        })
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
