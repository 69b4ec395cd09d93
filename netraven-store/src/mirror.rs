//! [`DirectoryMirror`]: a sink layer that keeps every device's latest configuration as a plain
//! file in a directory, named like git names it ([`device_file_name`]), so the directory and the
//! repository's tree match file for file.

use async_trait::async_trait;
use netraven_core::error::{Error, Result};
use netraven_core::model::*;
use netraven_core::snapshot::{SnapshotSink, device_file_name};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A layer over an inner sink: `put` goes to the inner sink, then the content is written to
/// `<dir>/<hostname>.cfg` (write to a temporary file, then rename, so a reader never sees half a
/// file). Reads and `flush` go to the inner sink. Every `put` rewrites the file when its content
/// differs, so a failed write is repaired by the device's next backup.
#[derive(Debug, Clone)]
pub struct DirectoryMirror {
    dir: PathBuf,
    inner: Arc<dyn SnapshotSink>,
}

impl DirectoryMirror {
    /// A mirror into `dir` (created if missing) over `inner`.
    pub fn new(dir: impl Into<PathBuf>, inner: Arc<dyn SnapshotSink>) -> Result<Self> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir).map_err(|e| {
            Error::unavailable(format!("cannot create {}: {e}", dir.display())).with_source(e)
        })?;
        Ok(DirectoryMirror { dir, inner })
    }

    /// The mirror's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file a device's configuration is mirrored to.
    pub fn path_for(&self, hostname: &str) -> PathBuf {
        self.dir.join(device_file_name(hostname))
    }
}

fn write_atomic(path: &Path, content: &str) -> Result<()> {
    if std::fs::read(path).is_ok_and(|old| old == content.as_bytes()) {
        return Ok(());
    }
    let tmp = path.with_extension("cfg.tmp");
    std::fs::write(&tmp, content)
        .and_then(|_| std::fs::rename(&tmp, path))
        .map_err(|e| {
            Error::unavailable(format!("cannot write {}: {e}", path.display())).with_source(e)
        })
}

#[async_trait]
impl SnapshotSink for DirectoryMirror {
    async fn put(&self, snapshot: NewSnapshot) -> Result<SnapshotPut> {
        let path = self.path_for(&snapshot.hostname);
        let content = snapshot.content.clone();
        let put = self.inner.put(snapshot).await?;
        tokio::task::spawn_blocking(move || write_atomic(&path, &content))
            .await
            .map_err(|e| Error::internal(format!("mirror write task failed: {e}")))??;
        Ok(put)
    }

    async fn latest(&self, device: DeviceId) -> Result<Option<Snapshot>> {
        self.inner.latest(device).await
    }

    async fn history(&self, device: DeviceId, page: Page) -> Result<Paged<SnapshotMeta>> {
        self.inner.history(device, page).await
    }

    async fn get(&self, id: SnapshotId) -> Result<Snapshot> {
        self.inner.get(id).await
    }

    async fn flush(&self) -> Result<()> {
        self.inner.flush().await
    }
}
