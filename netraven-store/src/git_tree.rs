//! [`GitTreeSink`]: a [`SnapshotSink`] for store-less, one-shot runs (`netraven backup`) that
//! streams each configuration into git as it arrives and makes one commit at the end.
//!
//! The server's git writer commits what the store holds pending; a one-shot run has no durable
//! store, and keeping every device's content in memory until the end grows with the fleet
//! (~60 KB per device: the previous and the new content). This sink keeps one small record per
//! device instead:
//!
//! - when opened, it reads the branch tip's tree once: path → blob id, no content;
//! - [`put`](SnapshotSink::put) hashes the content as a git blob; equal to the tip's blob means
//!   unchanged (nothing written); otherwise the content goes to a writer thread and is dropped
//!   after it is written;
//! - the writer thread deflates each changed blob into a pack being built in memory and writes
//!   it out with its index every [`PACK_EVERY`] blobs ([`crate::pack`]: one SHA-1 and one
//!   deflate per blob, bounded memory, no thousands of loose files);
//! - [`commit`](GitTreeSink::commit) flushes the last pack, builds the new tree from the tip's
//!   tree plus the changed files, and moves the branch (compare-and-swap against the tip read at
//!   open). No change, no commit.
//!
//! File names are the git writer's ([`crate::git::Layout::Flat`]): `<hostname>.cfg`.

use crate::git::{Layout, git_err, open_or_init};
use crate::pack::{PackBuilder, blob_id};
use async_trait::async_trait;
use git2::{ErrorCode, FileMode, ObjectType, Oid, Repository, Signature};
use netraven_core::error::{Error, Result};
use netraven_core::model::*;
use netraven_core::snapshot::SnapshotSink;
use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, Ordering};
use tokio::sync::mpsc;

/// Blobs collected in memory before they are written out as one pack file.
pub const PACK_EVERY: usize = 256;

/// zlib level of the packs: level 1 deflates a 30 KB configuration ~3.5× faster than the
/// default 6 for ~11% more bytes (benches/pipeline.rs); `git gc` recompresses when asked.
const PACK_LEVEL: u32 = 1;

/// Contents waiting for the writer thread (backpressure: a slow disk slows `put`, not memory).
const QUEUE_DEPTH: usize = 64;

/// A request to the writer thread, which owns the repository handle that sees unflushed blobs.
enum Msg {
    /// A blob and its id (hashed once, in `put`).
    Write(Oid, Vec<u8>),
    Read(Oid, tokio::sync::oneshot::Sender<Result<String>>),
}

/// What the sink remembers of one snapshot: where its file is and which blob holds it.
#[derive(Debug, Clone)]
struct Entry {
    snapshot_id: SnapshotId,
    hostname: String,
    path: String,
    oid: Oid,
    hash: String,
    size: u64,
    run_id: Option<RunId>,
    taken_at: chrono::DateTime<chrono::Utc>,
}

/// The commit a [`GitTreeSink`] made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeCommit {
    /// The new commit's id.
    pub commit_id: String,
    /// Files added or changed by it.
    pub files: usize,
}

/// A streaming, single-commit git sink for one-shot runs; see the [module docs](self).
pub struct GitTreeSink {
    path: PathBuf,
    branch: String,
    tip: Option<Oid>,
    /// Blob id of every file at the tip, by path.
    at_tip: HashMap<String, Oid>,
    /// Each device's snapshots of this session, oldest first (one in a normal run).
    devices: Mutex<HashMap<DeviceId, Vec<Entry>>>,
    next_id: AtomicI64,
    tx: Mutex<Option<mpsc::Sender<Msg>>>,
    writer: Mutex<Option<tokio::task::JoinHandle<Result<()>>>>,
}

impl fmt::Debug for GitTreeSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GitTreeSink")
            .field("path", &self.path)
            .field("branch", &self.branch)
            .field("tip", &self.tip)
            .finish_non_exhaustive()
    }
}

impl GitTreeSink {
    /// Opens (or creates) the bare repository at `path` and reads the tip of `branch`.
    pub async fn open(path: impl Into<PathBuf>, branch: impl Into<String>) -> Result<Self> {
        let path = path.into();
        let branch = branch.into();
        let (p, b) = (path.clone(), branch.clone());
        let (tip, at_tip) = tokio::task::spawn_blocking(move || read_tip(&p, &b))
            .await
            .map_err(join_err)??;
        let (tx, rx) = mpsc::channel(QUEUE_DEPTH);
        let p = path.clone();
        let writer = tokio::task::spawn_blocking(move || write_blobs(&p, rx));
        Ok(GitTreeSink {
            path,
            branch,
            tip,
            at_tip,
            devices: Mutex::new(HashMap::new()),
            next_id: AtomicI64::new(1),
            tx: Mutex::new(Some(tx)),
            writer: Mutex::new(Some(writer)),
        })
    }

    /// The tip of the branch when the sink was opened.
    pub fn tip(&self) -> Option<String> {
        self.tip.map(|o| o.to_string())
    }

    /// The file path of a device in the tree.
    pub fn path_for(hostname: &str) -> String {
        Layout::Flat.path_for(&SnapshotMeta {
            id: 0,
            device_id: 0,
            hostname: hostname.to_string(),
            run_id: None,
            hash: String::new(),
            size: 0,
            created_at: chrono::Utc::now(),
            commit_id: None,
            author: None,
        })
    }

    /// Writes the last blobs and commits every changed file in one commit with `message`.
    /// `None` when nothing changed. The sink accepts no more snapshots afterwards.
    pub async fn commit(&self, message: &str) -> Result<Option<TreeCommit>> {
        let tx = lock(&self.tx)?.take();
        drop(tx);
        let writer = lock(&self.writer)?.take();
        if let Some(w) = writer {
            w.await.map_err(join_err)??;
        }
        let changed: Vec<(String, Oid, String)> = lock(&self.devices)?
            .values()
            .filter_map(|h| h.last())
            .filter(|e| self.at_tip.get(&e.path) != Some(&e.oid))
            .map(|e| (e.path.clone(), e.oid, e.hostname.clone()))
            .collect();
        if changed.is_empty() {
            return Ok(None);
        }
        let (path, branch, tip, message) = (
            self.path.clone(),
            self.branch.clone(),
            self.tip,
            message.to_string(),
        );
        tokio::task::spawn_blocking(move || write_commit(&path, &branch, tip, &changed, &message))
            .await
            .map_err(join_err)?
    }

    fn entries(&self, device: DeviceId) -> Result<Vec<Entry>> {
        Ok(lock(&self.devices)?
            .get(&device)
            .cloned()
            .unwrap_or_default())
    }

    async fn read(&self, entry: Entry) -> Result<Snapshot> {
        let sender = lock(&self.tx)?.clone();
        let content = match sender {
            // Still writing: ask the writer, whose repository handle sees unflushed blobs.
            Some(tx) => {
                let (reply, answer) = tokio::sync::oneshot::channel();
                tx.send(Msg::Read(entry.oid, reply))
                    .await
                    .map_err(|_| Error::internal("the git blob writer stopped"))?;
                answer
                    .await
                    .map_err(|_| Error::internal("the git blob writer stopped"))??
            }
            None => {
                let path = self.path.clone();
                let oid = entry.oid;
                tokio::task::spawn_blocking(move || {
                    let repo = Repository::open_bare(&path)
                        .map_err(|e| git_err("opening the repository", e))?;
                    read_blob(&repo, oid)
                })
                .await
                .map_err(join_err)??
            }
        };
        Ok(Snapshot {
            meta: meta_of(0, &entry),
            content,
        })
    }
}

fn read_blob(repo: &Repository, oid: Oid) -> Result<String> {
    let blob = repo
        .find_blob(oid)
        .map_err(|e| git_err("reading a blob", e))?;
    String::from_utf8(blob.content().to_vec())
        .map_err(|_| Error::internal(format!("blob {oid} is not UTF-8")))
}

fn meta_of(device_id: DeviceId, e: &Entry) -> SnapshotMeta {
    SnapshotMeta {
        id: e.snapshot_id,
        device_id,
        hostname: e.hostname.clone(),
        run_id: e.run_id,
        hash: e.hash.clone(),
        size: e.size,
        created_at: e.taken_at,
        commit_id: None,
        author: None,
    }
}

#[async_trait]
impl SnapshotSink for GitTreeSink {
    async fn put(&self, snapshot: NewSnapshot) -> Result<SnapshotPut> {
        let path = Self::path_for(&snapshot.hostname);
        let oid = blob_id(snapshot.content.as_bytes());
        let hash = content_hash(&snapshot.content);
        let (put, write) = {
            let mut devices = lock(&self.devices)?;
            let history = devices.entry(snapshot.device_id).or_default();
            let previous = history
                .last()
                .map(|e| e.oid)
                .or_else(|| self.at_tip.get(&path).copied());
            let unchanged = previous == Some(oid);
            if unchanged && let Some(e) = history.last() {
                let put = SnapshotPut {
                    snapshot_id: e.snapshot_id,
                    changed: false,
                    hash,
                };
                (put, false)
            } else {
                // New content, or the tip's content seen for the first time (recorded, not
                // written: git has it).
                let id = self.next_id.fetch_add(1, Ordering::Relaxed);
                history.push(Entry {
                    snapshot_id: id,
                    hostname: snapshot.hostname.clone(),
                    path,
                    oid,
                    hash: hash.clone(),
                    size: snapshot.content.len() as u64,
                    run_id: snapshot.run_id,
                    taken_at: snapshot.taken_at,
                });
                let put = SnapshotPut {
                    snapshot_id: id,
                    changed: !unchanged,
                    hash,
                };
                (put, !unchanged)
            }
        };
        if write {
            let tx = lock(&self.tx)?.clone().ok_or_else(|| {
                Error::invalid("the snapshot sink was already committed; it takes no more")
            })?;
            // The content moves to the writer and is dropped once written.
            tx.send(Msg::Write(oid, snapshot.content.into_bytes()))
                .await
                .map_err(|_| Error::internal("the git blob writer stopped"))?;
        }
        Ok(put)
    }

    async fn latest(&self, device: DeviceId) -> Result<Option<Snapshot>> {
        match self.entries(device)?.pop() {
            Some(e) => {
                let mut s = self.read(e).await?;
                s.meta.device_id = device;
                Ok(Some(s))
            }
            None => Ok(None),
        }
    }

    async fn history(&self, device: DeviceId, page: Page) -> Result<Paged<SnapshotMeta>> {
        // Only this session's snapshots: older history is git's, which this sink does not walk.
        let all: Vec<SnapshotMeta> = self
            .entries(device)?
            .iter()
            .rev()
            .map(|e| meta_of(device, e))
            .collect();
        let total = all.len() as u64;
        let size = page.size.max(1) as usize;
        let skip = (page.page.max(1) as usize - 1) * size;
        let items = all.into_iter().skip(skip).take(size).collect();
        Ok(Paged::new(items, total, page))
    }

    async fn get(&self, id: SnapshotId) -> Result<Snapshot> {
        let found = lock(&self.devices)?.iter().find_map(|(d, h)| {
            h.iter()
                .find(|e| e.snapshot_id == id)
                .map(|e| (*d, e.clone()))
        });
        match found {
            Some((device, e)) => {
                let mut s = self.read(e).await?;
                s.meta.device_id = device;
                Ok(s)
            }
            None => Err(Error::not_found(format!("snapshot {id}"))),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> Result<std::sync::MutexGuard<'_, T>> {
    m.lock()
        .map_err(|_| Error::internal("git tree sink state poisoned by a panic"))
}

fn join_err(e: tokio::task::JoinError) -> Error {
    Error::internal(format!("git tree sink task failed: {e}"))
}

/// The branch tip and its files' blob ids (top level and one directory deep, like the layouts).
fn read_tip(path: &Path, branch: &str) -> Result<(Option<Oid>, HashMap<String, Oid>)> {
    let repo = open_or_init(path, branch)?;
    let tip = match repo.refname_to_id(&format!("refs/heads/{branch}")) {
        Ok(oid) => oid,
        Err(e) if e.code() == ErrorCode::NotFound => return Ok((None, HashMap::new())),
        Err(e) => return Err(git_err("resolving the branch", e)),
    };
    let tree = repo
        .find_commit(tip)
        .and_then(|c| c.tree())
        .map_err(|e| git_err("reading the tip's tree", e))?;
    let mut files = HashMap::new();
    tree.walk(git2::TreeWalkMode::PreOrder, |dir, entry| {
        if entry.kind() == Some(ObjectType::Blob)
            && let Some(name) = entry.name()
        {
            files.insert(format!("{dir}{name}"), entry.id());
        }
        git2::TreeWalkResult::Ok
    })
    .map_err(|e| git_err("listing the tip's files", e))?;
    Ok((Some(tip), files))
}

/// The writer thread: blobs into a pack built in memory, written out every [`PACK_EVERY`].
fn write_blobs(path: &Path, mut rx: mpsc::Receiver<Msg>) -> Result<()> {
    let repo = Repository::open_bare(path).map_err(|e| git_err("opening the repository", e))?;
    let odb = repo
        .odb()
        .map_err(|e| git_err("opening the object database", e))?;
    let pack_dir = path.join("objects").join("pack");
    std::fs::create_dir_all(&pack_dir)
        .map_err(|e| Error::unavailable(format!("creating {}: {e}", pack_dir.display())))?;
    let flush = |pack: PackBuilder| -> Result<()> {
        pack.finish(&pack_dir).map_err(|e| {
            Error::unavailable(format!("writing a pack into {}: {e}", pack_dir.display()))
        })?;
        // libgit2 looks for new packs only when asked to.
        odb.refresh()
            .map_err(|e| git_err("reading the new pack's index", e))
    };
    let mut pack = PackBuilder::with_level(PACK_LEVEL);
    while let Some(msg) = rx.blocking_recv() {
        match msg {
            Msg::Write(oid, content) => {
                // A blob git already has (e.g. a configuration changed back) is not packed again.
                if pack.contains(oid) || odb.exists_ext(oid, git2::OdbLookupFlags::NO_REFRESH) {
                    continue;
                }
                pack.add_blob(oid, &content)
                    .map_err(|e| Error::internal(format!("compressing a blob: {e}")))?;
                drop(content);
                if pack.len() >= PACK_EVERY {
                    flush(std::mem::replace(
                        &mut pack,
                        PackBuilder::with_level(PACK_LEVEL),
                    ))?;
                }
            }
            // The asker may have gone away; nothing to do then.
            Msg::Read(oid, reply) => {
                let content = match pack.read(oid) {
                    Some(bytes) => String::from_utf8(bytes)
                        .map_err(|_| Error::internal(format!("blob {oid} is not UTF-8"))),
                    None => read_blob(&repo, oid),
                };
                let _ = reply.send(content);
            }
        }
    }
    flush(pack)
}

fn write_commit(
    path: &Path,
    branch: &str,
    tip: Option<Oid>,
    changed: &[(String, Oid, String)],
    message: &str,
) -> Result<Option<TreeCommit>> {
    let repo = Repository::open_bare(path).map_err(|e| git_err("opening the repository", e))?;
    let parent = match tip {
        Some(oid) => Some(
            repo.find_commit(oid)
                .map_err(|e| git_err("reading the branch tip", e))?,
        ),
        None => None,
    };
    let tree_oid = match &parent {
        Some(c) => {
            let base = c.tree().map_err(|e| git_err("reading the tip's tree", e))?;
            let mut update = git2::build::TreeUpdateBuilder::new();
            for (file, oid, _) in changed {
                update.upsert(file.as_str(), *oid, FileMode::Blob);
            }
            let oid = update
                .create_updated(&repo, &base)
                .map_err(|e| git_err("building the tree", e))?;
            if oid == base.id() {
                return Ok(None);
            }
            oid
        }
        // First commit: the files are all at the top (flat layout), so one tree builder.
        None => {
            let mut root = repo
                .treebuilder(None)
                .map_err(|e| git_err("starting the tree", e))?;
            for (file, oid, _) in changed {
                root.insert(file.as_str(), *oid, FileMode::Blob.into())
                    .map_err(|e| git_err("adding a file", e))?;
            }
            root.write().map_err(|e| git_err("writing the tree", e))?
        }
    };
    let tree = repo
        .find_tree(tree_oid)
        .map_err(|e| git_err("reading the new tree", e))?;
    let sig = Signature::now("NetRaven", "netraven@localhost").map_err(|e| git_err("author", e))?;
    let mut hosts: Vec<&str> = changed.iter().map(|(_, _, h)| h.as_str()).collect();
    hosts.sort_unstable();
    let shown = hosts
        .iter()
        .take(50)
        .copied()
        .collect::<Vec<_>>()
        .join(", ");
    let more = hosts.len().saturating_sub(50);
    let body = if more > 0 {
        format!("{message}\n\nChanged: {shown} and {more} more\n")
    } else {
        format!("{message}\n\nChanged: {shown}\n")
    };
    let parents: Vec<&git2::Commit<'_>> = parent.iter().collect();
    let oid = repo
        .commit(None, &sig, &sig, &body, &tree, &parents)
        .map_err(|e| git_err("committing", e))?;
    let refname = format!("refs/heads/{branch}");
    match tip {
        Some(t) => repo
            .reference_matching(&refname, oid, true, t, "netraven: backup")
            .map_err(|e| git_err("moving the branch", e))?,
        None => repo
            .reference(&refname, oid, false, "netraven: first backup")
            .map_err(|e| git_err("creating the branch", e))?,
    };
    Ok(Some(TreeCommit {
        commit_id: oid.to_string(),
        files: changed.len(),
    }))
}
