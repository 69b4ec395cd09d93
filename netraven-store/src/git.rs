//! The git snapshot writer: one writer per repository, committing what workers left pending in
//! the store, in batches, from in-memory trees into a bare repository.
//!
//! # How a batch is committed
//!
//! Workers (on any machine) put snapshot content into the store through
//! [`netraven_core::snapshot::StoreSnapshotSink`]; the store lists what is not yet in git
//! ([`SnapshotStore::uncommitted_snapshots`]). [`GitWriter::commit_pending`] takes one batch and:
//!
//! 1. writes each snapshot's content as a blob into the object database;
//! 2. builds the new tree from the parent commit's tree with a `TreeBuilder` (one file per device,
//!    `<hostname>.cfg`, optionally in a directory per group; see [`Layout`]) — no index file and no
//!    working tree, so there is no `index.lock` to fight over and no half-written checkout;
//! 3. if the tree equals the parent's, makes no commit (the content is already there) and records
//!    the parent as the commit holding the batch;
//! 4. otherwise writes the commit (author `NetRaven <netraven@localhost>`, a message naming the
//!    run(s) and the devices changed) and moves `refs/heads/<branch>` — a compare-and-swap against
//!    the parent, done by libgit2 with a lock file and an atomic rename;
//! 5. only after the ref moved, records the commit id in the store
//!    ([`SnapshotStore::mark_committed`]).
//!
//! A crash before step 4 leaves unreferenced objects (valid; `git fsck` reports at most dangling
//! objects) and the snapshots still pending: the next start commits them. A crash between 4 and
//! 5 leaves them pending too; the next batch finds the tree unchanged and records the commit that
//! already holds them. A batch never holds two snapshots of the same device, so a snapshot's
//! commit id and path always give back exactly its content ([`GitWriter::read_blob`]).
//!
//! Pushing to a remote after each commit is optional ([`GitWriterConfig::push_remote`], off by
//! default). It runs the `git` command line, so every transport and credential helper the
//! operator already configured for git (SSH agent, HTTPS tokens) works; a failed push is logged
//! and caught up by the next one, and never fails the commit.
//!
//! # History and diff
//!
//! History comes from the store's index ([`SnapshotStore::list_snapshots`]), content from the
//! store or from one git blob, and [`unified_diff`] compares two snapshots. Nothing walks the
//! commit history.

use git2::{ErrorCode, FileMode, ObjectType, Oid, Repository, RepositoryInitOptions, Signature};
pub use netraven_core::diff::{unified_diff, unified_diff_with_context};
use netraven_core::error::{Error, ErrorKind, Result};
use netraven_core::model::{DeviceId, NewSnapshot, Page, Paged, SnapshotPut};
use netraven_core::model::{RunId, Snapshot, SnapshotId, SnapshotMeta};
use netraven_core::snapshot::{SnapshotSink, StoreSnapshotSink, device_file_name, path_component};
use netraven_core::store::SnapshotStore;
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// Chooses the group directory of a snapshot's file (see [`Layout::Grouped`]).
pub type GroupFn = Arc<dyn Fn(&SnapshotMeta) -> Option<String> + Send + Sync>;

/// Where a device's file goes in the tree.
#[derive(Clone, Default)]
pub enum Layout {
    /// `<hostname>.cfg` at the top of the tree.
    #[default]
    Flat,
    /// `<group>/<hostname>.cfg`, the group chosen per snapshot (e.g. the device's first tag);
    /// `None` puts the file at the top. The function must be stable for a device: a device whose
    /// group changes gets a new file and its old one stays in the tree.
    Grouped(GroupFn),
}

impl fmt::Debug for Layout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Layout::Flat => f.write_str("Flat"),
            Layout::Grouped(_) => f.write_str("Grouped(..)"),
        }
    }
}

impl Layout {
    /// The path of a snapshot's file in the tree: `[<group>/]<hostname>.cfg`, with characters
    /// that cannot appear in a file name replaced by `_`.
    pub fn path_for(&self, meta: &SnapshotMeta) -> String {
        let file = device_file_name(&meta.hostname);
        match self {
            Layout::Flat => file,
            Layout::Grouped(f) => match f(meta) {
                Some(g) if !g.trim().is_empty() => format!("{}/{file}", path_component(&g)),
                _ => file,
            },
        }
    }
}

/// Settings of a [`GitWriter`].
#[derive(Clone)]
pub struct GitWriterConfig {
    /// The bare repository (created if missing).
    pub path: PathBuf,
    /// Branch the writer commits to.
    pub branch: String,
    /// Most snapshots per commit.
    pub batch_limit: u32,
    /// After a wake-up, how long [`GitWriter::run`] waits for more snapshots before committing.
    pub debounce: Duration,
    /// How often [`GitWriter::run`] looks for pending snapshots without being woken.
    pub interval: Duration,
    /// File layout.
    pub layout: Layout,
    /// Commit author and committer name.
    pub author_name: String,
    /// Commit author and committer e-mail.
    pub author_email: String,
    /// Remote (URL or configured name) the branch is pushed to after each commit; `None` (the
    /// default) pushes nothing.
    pub push_remote: Option<String>,
    /// Deadline of one push.
    pub push_timeout: Duration,
}

impl GitWriterConfig {
    /// Defaults for a repository at `path`: branch `main`, batches of up to 10,000 snapshots,
    /// 200 ms debounce, 2 s interval, flat layout, author `NetRaven <netraven@localhost>`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        GitWriterConfig {
            path: path.into(),
            branch: "main".to_string(),
            batch_limit: 10_000,
            debounce: Duration::from_millis(200),
            interval: Duration::from_secs(2),
            layout: Layout::Flat,
            author_name: "NetRaven".to_string(),
            author_email: "netraven@localhost".to_string(),
            push_remote: None,
            push_timeout: Duration::from_secs(60),
        }
    }
}

/// One commit made by [`GitWriter::commit_pending`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitInfo {
    /// The commit id (hex).
    pub commit_id: String,
    /// The snapshots it holds (now marked committed in the store).
    pub snapshot_ids: Vec<SnapshotId>,
    /// Hostnames of the devices whose files changed.
    pub devices: Vec<String>,
    /// The runs the snapshots came from.
    pub runs: Vec<RunId>,
}

/// What one batch did.
#[derive(Debug)]
enum Outcome {
    /// Nothing was pending.
    Empty,
    /// Pending snapshots matched the tree already; they were recorded against `head`.
    Unchanged,
    /// A commit was made.
    Committed(CommitInfo),
}

/// The single git writer of a repository. Cheap to clone; clones share one lock, so batches from
/// one process never interleave. Run one per repository across the deployment (the reference
/// server runs it beside the scheduler leader, under the maintenance lease): a stale ref lock
/// left by a writer killed mid-commit is removed by the next commit, which is only safe because
/// no other writer runs. Before every batch it checks that its repository holds the last commit
/// the store recorded ([`GitWriter::check_repository`]). Objects and refs are fsynced.
#[derive(Clone)]
pub struct GitWriter {
    inner: Arc<Inner>,
}

struct Inner {
    config: GitWriterConfig,
    store: Arc<dyn SnapshotStore>,
    /// The index layer every `put` goes through first.
    index: StoreSnapshotSink,
    /// Woken by a changed `put`, so [`GitWriter::run`] commits soon after.
    notify: Notify,
    lock: tokio::sync::Mutex<()>,
}

impl fmt::Debug for GitWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GitWriter")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

pub(crate) fn git_err(ctx: &str, e: git2::Error) -> Error {
    let kind = match e.code() {
        ErrorCode::NotFound => ErrorKind::NotFound,
        ErrorCode::Locked | ErrorCode::Modified | ErrorCode::NotFastForward => {
            ErrorKind::Unavailable
        }
        _ => ErrorKind::Internal,
    };
    Error::new(kind, format!("git: {ctx}: {}", e.message())).with_source(e)
}

fn join_err(e: tokio::task::JoinError) -> Error {
    Error::internal(format!("git writer task failed: {e}"))
}

/// Makes libgit2 fsync what it writes — loose objects, packs and refs — with its process-wide
/// option (`GIT_OPT_ENABLE_FSYNC_GITDIR`, libgit2's equivalent of `core.fsyncObjectFiles`,
/// which git itself now deprecates in favour of `core.fsync`). Set once per process.
fn durable(_repo: &Repository) -> Result<()> {
    static GLOBAL: std::sync::Once = std::sync::Once::new();
    GLOBAL.call_once(|| {
        // SAFETY: sets one integer option of libgit2, as git2's own `opts` functions do; libgit2
        // was initialised by the `Repository` call that gave us a repository.
        let rc = unsafe {
            libgit2_sys::git_libgit2_opts(
                libgit2_sys::GIT_OPT_ENABLE_FSYNC_GITDIR as libc_int,
                1 as libc_int,
            )
        };
        if rc != 0 {
            tracing::warn!(rc, "libgit2 refused to enable fsync");
        }
    });
    Ok(())
}

#[allow(non_camel_case_types)]
type libc_int = std::ffi::c_int;

/// Opens the bare repository at `path`, creating it (with `branch` as its initial head) if it
/// does not exist; objects and refs written through it are fsynced.
pub(crate) fn open_or_init(path: &Path, branch: &str) -> Result<Repository> {
    let repo = open_or_create(path, branch)?;
    durable(&repo)?;
    Ok(repo)
}

fn open_or_create(path: &Path, branch: &str) -> Result<Repository> {
    match Repository::open_bare(path) {
        Ok(r) => Ok(r),
        Err(e) if e.code() == ErrorCode::NotFound => {
            let mut opts = RepositoryInitOptions::new();
            opts.bare(true)
                .mkpath(true)
                .initial_head(&format!("refs/heads/{branch}"));
            let r = Repository::init_opts(path, &opts)
                .map_err(|e| git_err("creating the repository", e))?;
            tracing::info!(path = %path.display(), "created bare git repository");
            Ok(r)
        }
        Err(e) => Err(git_err("opening the repository", e)),
    }
}

/// The input of one blocking commit.
struct Batch {
    files: Vec<BatchFile>,
    /// Who changed the configurations of this batch, as the devices reported (every file of a
    /// batch has the same): the commit's author, NetRaven staying the committer.
    author: Option<String>,
}

struct BatchFile {
    path: String,
    content: String,
    hostname: String,
    run_id: Option<RunId>,
}

enum WriteResult {
    Unchanged(Option<Oid>),
    Committed {
        oid: Oid,
        devices: Vec<String>,
        runs: Vec<RunId>,
    },
}

/// Batches with at least this many files are written as one pack rather than loose objects.
const PACK_THRESHOLD: usize = 64;

fn write_commit(config: &GitWriterConfig, batch: &Batch) -> Result<WriteResult> {
    let repo = open_or_init(&config.path, &config.branch)?;
    let refname = format!("refs/heads/{}", config.branch);
    let parent = match repo.refname_to_id(&refname) {
        Ok(oid) => Some(
            repo.find_commit(oid)
                .map_err(|e| git_err("reading the branch tip", e))?,
        ),
        Err(e) if e.code() == ErrorCode::NotFound => None,
        Err(e) => return Err(git_err("resolving the branch", e)),
    };
    let base = match &parent {
        Some(c) => Some(c.tree().map_err(|e| git_err("reading the tip's tree", e))?),
        None => None,
    };
    // A large batch (a whole fleet's first backup) goes into one pack instead of thousands of
    // loose object files: objects are written to an in-memory backend and flushed as a pack
    // before the ref moves.
    let odb = repo
        .odb()
        .map_err(|e| git_err("opening the object database", e))?;
    let mempack = if batch.files.len() >= PACK_THRESHOLD {
        Some(
            odb.add_new_mempack_backend(1000)
                .map_err(|e| git_err("adding an in-memory object backend", e))?,
        )
    } else {
        None
    };
    // Group the files by directory (one level: `[group/]file`).
    let mut dirs: BTreeMap<Option<&str>, Vec<(&str, Oid)>> = BTreeMap::new();
    let mut changed: Vec<&BatchFile> = Vec::new();
    for f in &batch.files {
        let path = &f.path;
        let oid = repo
            .blob(f.content.as_bytes())
            .map_err(|e| git_err("writing a blob", e))?;
        let before = base
            .as_ref()
            .and_then(|t| t.get_path(Path::new(path)).ok())
            .map(|e| e.id());
        if before == Some(oid) {
            continue;
        }
        changed.push(f);
        let (dir, name) = match path.split_once('/') {
            Some((d, n)) => (Some(d), n),
            None => (None, path.as_str()),
        };
        dirs.entry(dir).or_default().push((name, oid));
    }
    let mut root = repo
        .treebuilder(base.as_ref())
        .map_err(|e| git_err("starting the tree", e))?;
    let blob_mode: i32 = FileMode::Blob.into();
    let tree_mode: i32 = FileMode::Tree.into();
    for (dir, files) in dirs {
        match dir {
            None => {
                for (name, oid) in files {
                    root.insert(name, oid, blob_mode)
                        .map_err(|e| git_err("adding a file", e))?;
                }
            }
            Some(dir) => {
                let existing = match base.as_ref().and_then(|t| t.get_name(dir)) {
                    Some(entry) if entry.kind() == Some(ObjectType::Tree) => Some(
                        repo.find_tree(entry.id())
                            .map_err(|e| git_err("reading a directory", e))?,
                    ),
                    _ => None,
                };
                let mut sub = repo
                    .treebuilder(existing.as_ref())
                    .map_err(|e| git_err("starting a directory", e))?;
                for (name, oid) in files {
                    sub.insert(name, oid, blob_mode)
                        .map_err(|e| git_err("adding a file", e))?;
                }
                let sub_oid = sub.write().map_err(|e| git_err("writing a directory", e))?;
                root.insert(dir, sub_oid, tree_mode)
                    .map_err(|e| git_err("adding a directory", e))?;
            }
        }
    }
    let tree_oid = root.write().map_err(|e| git_err("writing the tree", e))?;
    if changed.is_empty() || base.as_ref().is_some_and(|b| b.id() == tree_oid) {
        return Ok(WriteResult::Unchanged(parent.map(|p| p.id())));
    }
    let tree = repo
        .find_tree(tree_oid)
        .map_err(|e| git_err("reading the new tree", e))?;
    let sig = Signature::now(&config.author_name, &config.author_email)
        .map_err(|e| git_err("author", e))?;
    let author = match &batch.author {
        Some(user) => Signature::now(user, &change_author_email(user, &config.author_email))
            .map_err(|e| git_err("change author", e))?,
        None => sig.clone(),
    };
    let parents: Vec<&git2::Commit<'_>> = parent.iter().collect();
    let (message, runs, devices) = commit_message(&changed);
    // Writes the commit object without moving the ref yet.
    let oid = repo
        .commit(None, &author, &sig, &message, &tree, &parents)
        .map_err(|e| git_err("committing", e))?;
    if let Some(mempack) = &mempack {
        let mut buf = git2::Buf::new();
        mempack
            .dump(&repo, &mut buf)
            .map_err(|e| git_err("packing the batch", e))?;
        let mut writer = odb
            .packwriter()
            .map_err(|e| git_err("starting a pack", e))?;
        std::io::Write::write_all(&mut writer, &buf)
            .map_err(|e| Error::unavailable(format!("writing a pack: {e}")))?;
        writer.commit().map_err(|e| git_err("writing a pack", e))?;
        mempack
            .reset()
            .map_err(|e| git_err("clearing the in-memory backend", e))?;
    }
    // Every object is on disk; now move the ref (lock file + rename), only if the tip is still
    // `parent`.
    let move_ref = || match &parent {
        Some(p) => repo
            .reference_matching(&refname, oid, true, p.id(), "netraven: commit")
            .map(|_| ()),
        None => repo
            .reference(&refname, oid, false, "netraven: first commit")
            .map(|_| ()),
    };
    match move_ref() {
        Ok(()) => {}
        Err(e) if e.code() == ErrorCode::Locked => {
            // A writer killed while moving the ref left its lock file. This writer is the only
            // one (it holds the writer's lease and the process lock), so the lock is stale.
            remove_stale_ref_lock(&config.path, &refname)?;
            move_ref().map_err(|e| git_err("moving the branch", e))?;
        }
        Err(e) => return Err(git_err("moving the branch", e)),
    }
    Ok(WriteResult::Committed { oid, devices, runs })
}

/// Removes the lock file a killed writer left on `refname`. Only the writer holding the lease
/// may call it (see [`GitWriter`]).
fn remove_stale_ref_lock(repo: &Path, refname: &str) -> Result<()> {
    let lock = repo.join(format!("{refname}.lock"));
    match std::fs::remove_file(&lock) {
        Ok(()) => {
            tracing::warn!(lock = %lock.display(), "removed a stale git lock file (a writer was killed mid-commit)");
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::unavailable(format!(
            "cannot remove the stale lock {}: {e}",
            lock.display()
        ))),
    }
}

/// The e-mail address of a change author: the name itself when it is an address, else the name
/// at the domain of the writer's own address (`alice` → `alice@localhost`).
fn change_author_email(user: &str, own: &str) -> String {
    if user.contains('@') {
        return user.to_string();
    }
    let domain = own.rsplit_once('@').map_or("localhost", |(_, d)| d);
    let local: String = user
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || "._+-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{local}@{domain}")
}

fn commit_message(files: &[&BatchFile]) -> (String, Vec<RunId>, Vec<String>) {
    let runs: BTreeSet<RunId> = files.iter().filter_map(|f| f.run_id).collect();
    let runs: Vec<RunId> = runs.into_iter().collect();
    let devices: Vec<String> = files.iter().map(|f| f.hostname.clone()).collect();
    let subject_runs = match runs.as_slice() {
        [] => "Snapshots".to_string(),
        [r] => format!("Backup run {r}"),
        many => format!(
            "Backup runs {}",
            many.iter()
                .map(|r| r.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let n = devices.len();
    let mut msg = format!(
        "{subject_runs}: {n} device{} changed\n\n",
        if n == 1 { "" } else { "s" }
    );
    const LISTED: usize = 200;
    for d in devices.iter().take(LISTED) {
        msg.push_str(d);
        msg.push('\n');
    }
    if n > LISTED {
        msg.push_str(&format!("… and {} more\n", n - LISTED));
    }
    (msg, runs, devices)
}

impl GitWriter {
    /// A writer over the bare repository in `config.path` (created if missing) for the pending
    /// snapshots of `store`. Blocking (file system); call at startup.
    pub fn open(config: GitWriterConfig, store: Arc<dyn SnapshotStore>) -> Result<Self> {
        open_or_init(&config.path, &config.branch)?;
        Ok(GitWriter {
            inner: Arc::new(Inner {
                config,
                index: StoreSnapshotSink::new(store.clone()),
                store,
                notify: Notify::new(),
                lock: tokio::sync::Mutex::new(()),
            }),
        })
    }

    /// The writer's settings.
    pub fn config(&self) -> &GitWriterConfig {
        &self.inner.config
    }

    /// The path of a snapshot's file in the tree.
    pub fn path_for(&self, meta: &SnapshotMeta) -> String {
        self.inner.config.layout.path_for(meta)
    }

    /// Commits one batch of pending snapshots (up to `batch_limit`, stopping before a second
    /// snapshot of the same device). `None` when nothing was pending or the content was already
    /// in the tree (then the snapshots are recorded against the current tip, and no commit is
    /// made).
    pub async fn commit_pending(&self) -> Result<Option<CommitInfo>> {
        match self.commit_batch().await? {
            Outcome::Committed(info) => Ok(Some(info)),
            Outcome::Empty | Outcome::Unchanged => Ok(None),
        }
    }

    /// Commits batches until nothing is pending; returns the commits made.
    pub async fn commit_all_pending(&self) -> Result<Vec<CommitInfo>> {
        let mut out = Vec::new();
        loop {
            match self.commit_batch().await? {
                Outcome::Empty => return Ok(out),
                Outcome::Unchanged => {}
                Outcome::Committed(info) => out.push(info),
            }
        }
    }

    /// Checks that this writer's repository holds the commit the store recorded last. A writer
    /// taking over from another (a new leader, another host) whose repository is not the
    /// deployment's — an empty or stale copy — would split the history and leave stored commit
    /// ids that do not resolve; it refuses instead, with an error naming both. (It does not
    /// rebuild the repository from the store: restore the repository, or point `git.repo` at
    /// the shared one.)
    pub async fn check_repository(&self) -> Result<()> {
        let Some(last) = self.inner.store.last_commit_id().await? else {
            return Ok(());
        };
        let path = self.inner.config.path.clone();
        let branch = self.inner.config.branch.clone();
        let want = last.clone();
        let held = tokio::task::spawn_blocking(move || -> Result<bool> {
            let repo = open_or_init(&path, &branch)?;
            let Ok(oid) = Oid::from_str(&want) else {
                return Ok(false);
            };
            Ok(repo.find_commit(oid).is_ok())
        })
        .await
        .map_err(join_err)??;
        if held {
            return Ok(());
        }
        Err(Error::invalid(format!(
            "git repository {} does not hold commit {last}, the last one the store recorded: it \
             is not this deployment's repository (a copy on another host, or an empty one). \
             Refusing to commit, which would split the history; restore the repository or set \
             git.repo to the shared one",
            self.inner.config.path.display()
        )))
    }

    async fn commit_batch(&self) -> Result<Outcome> {
        let inner = &self.inner;
        let _guard = inner.lock.lock().await;
        let pending = inner
            .store
            .uncommitted_snapshots(inner.config.batch_limit.max(1))
            .await?;
        if pending.is_empty() {
            return Ok(Outcome::Empty);
        }
        // Every batch: the lease may have moved here from another host since the last one.
        self.check_repository().await?;
        // One snapshot per path per commit, so (commit, path) names exactly one snapshot.
        // One author per commit too: a batch stops before a snapshot whose change author
        // differs from the first one's.
        let mut seen = HashSet::new();
        let mut ids: Vec<SnapshotId> = Vec::new();
        let mut files = Vec::new();
        let author = pending.first().and_then(|s| s.meta.author.clone());
        for s in pending {
            let path = inner.config.layout.path_for(&s.meta);
            if s.meta.author != author || !seen.insert(path.clone()) {
                break;
            }
            ids.push(s.meta.id);
            files.push(BatchFile {
                path,
                content: s.content,
                hostname: s.meta.hostname,
                run_id: s.meta.run_id,
            });
        }
        let config = inner.config.clone();
        let started = std::time::Instant::now();
        let written =
            tokio::task::spawn_blocking(move || write_commit(&config, &Batch { files, author }))
                .await
                .map_err(join_err)??;
        match written {
            WriteResult::Committed { oid, devices, runs } => {
                let commit_id = oid.to_string();
                // Only now that the ref moved does the store learn where the snapshots live.
                inner.store.mark_committed(&ids, &commit_id).await?;
                tracing::info!(
                    commit = %commit_id,
                    snapshots = ids.len(),
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "committed snapshots to git"
                );
                if inner.config.push_remote.is_some()
                    && let Err(e) = self.push().await
                {
                    tracing::warn!(error = %e, "git push failed; the next commit pushes again");
                }
                Ok(Outcome::Committed(CommitInfo {
                    commit_id,
                    snapshot_ids: ids,
                    devices,
                    runs,
                }))
            }
            WriteResult::Unchanged(Some(head)) => {
                inner.store.mark_committed(&ids, &head.to_string()).await?;
                tracing::debug!(commit = %head, snapshots = ids.len(), "pending snapshots already in the tree");
                Ok(Outcome::Unchanged)
            }
            WriteResult::Unchanged(None) => Err(Error::internal(
                "git writer: an empty repository matched a non-empty batch",
            )),
        }
    }

    /// Runs the writer until `shutdown`: commits whatever is pending when a changed snapshot is
    /// `put` through this writer (after `debounce`, so snapshots arriving together share a
    /// commit) or every `interval`, and once more on shutdown. Errors are logged and retried on
    /// the next round. (The reference server does not call this: its
    /// [`netraven_core::maintenance::Maintenance`] leader calls [`SnapshotSink::flush`].)
    pub async fn run(self, shutdown: CancellationToken) {
        let cfg = self.inner.config.clone();
        tracing::info!(path = %cfg.path.display(), branch = %cfg.branch, "git writer started");
        loop {
            if let Err(e) = self.commit_all_pending().await {
                tracing::warn!(error = %e, "git writer: commit failed; will retry");
            }
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = self.inner.notify.notified() => {
                    tokio::select! {
                        _ = shutdown.cancelled() => {}
                        _ = tokio::time::sleep(cfg.debounce) => {}
                    }
                }
                _ = tokio::time::sleep(cfg.interval) => {}
            }
        }
        if let Err(e) = self.commit_all_pending().await {
            tracing::warn!(error = %e, "git writer: final commit failed; snapshots stay pending");
        }
        tracing::info!("git writer stopped");
    }

    /// The content of the file at `path` in commit `commit_id`; NotFound if either is missing.
    pub async fn read_blob(&self, commit_id: &str, path: &str) -> Result<String> {
        self.read_files(commit_id, vec![path.to_string()])
            .await?
            .pop()
            .flatten()
            .ok_or_else(|| Error::not_found(format!("{path} in {commit_id}")))
    }

    /// The contents of several files in commit `commit_id`, in the order of `paths` (`None` for
    /// a path the commit does not hold), reading the repository once. NotFound if the commit is
    /// missing.
    pub async fn read_files(
        &self,
        commit_id: &str,
        paths: Vec<String>,
    ) -> Result<Vec<Option<String>>> {
        let repo_path = self.inner.config.path.clone();
        let commit_id = commit_id.to_string();
        tokio::task::spawn_blocking(move || read_files_sync(&repo_path, &commit_id, &paths))
            .await
            .map_err(join_err)?
    }

    /// A snapshot with its content: from the store, or — when the store kept only the index
    /// entry (empty content for a non-empty snapshot) — from its git blob.
    pub async fn snapshot(&self, id: SnapshotId) -> Result<Snapshot> {
        let mut s = self.inner.store.get_snapshot(id).await?;
        if s.content.is_empty()
            && s.meta.size > 0
            && let Some(commit) = s.meta.commit_id.clone()
        {
            s.content = self.read_blob(&commit, &self.path_for(&s.meta)).await?;
        }
        Ok(s)
    }

    /// The unified diff between two snapshots (by id), from the index and git objects.
    pub async fn diff(&self, from: SnapshotId, to: SnapshotId) -> Result<String> {
        let a = self.snapshot(from).await?;
        let b = self.snapshot(to).await?;
        Ok(unified_diff(&a, &b))
    }
}

fn read_files_sync(
    repo_path: &Path,
    commit_id: &str,
    paths: &[String],
) -> Result<Vec<Option<String>>> {
    let repo =
        Repository::open_bare(repo_path).map_err(|e| git_err("opening the repository", e))?;
    let oid = Oid::from_str(commit_id)
        .map_err(|e| Error::invalid(format!("bad commit id {commit_id:?}: {}", e.message())))?;
    let commit = repo
        .find_commit(oid)
        .map_err(|e| git_err(&format!("commit {commit_id}"), e))?;
    let tree = commit
        .tree()
        .map_err(|e| git_err("reading the commit's tree", e))?;
    paths
        .iter()
        .map(|path| {
            let entry = match tree.get_path(Path::new(path)) {
                Ok(e) => e,
                Err(e) if e.code() == ErrorCode::NotFound => return Ok(None),
                Err(e) => return Err(git_err(&format!("{path} in {commit_id}"), e)),
            };
            let blob = repo
                .find_blob(entry.id())
                .map_err(|e| git_err(&format!("{path} in {commit_id}"), e))?;
            String::from_utf8(blob.content().to_vec())
                .map(Some)
                .map_err(|_| Error::internal(format!("{path} in {commit_id} is not UTF-8")))
        })
        .collect()
}

impl GitWriter {
    /// The commit the writer's branch points at; `None` in a repository without commits.
    pub async fn head_commit(&self) -> Result<Option<String>> {
        let repo_path = self.inner.config.path.clone();
        let branch = format!("refs/heads/{}", self.inner.config.branch);
        tokio::task::spawn_blocking(move || {
            let repo = Repository::open_bare(&repo_path)
                .map_err(|e| git_err("opening the repository", e))?;
            match repo.refname_to_id(&branch) {
                Ok(oid) => Ok(Some(oid.to_string())),
                Err(e) if e.code() == git2::ErrorCode::NotFound => Ok(None),
                Err(e) => Err(git_err(&format!("resolving {branch}"), e)),
            }
        })
        .await
        .map_err(join_err)?
    }
}

// Hand-written: a push remote may be a URL with a token in it.
impl std::fmt::Debug for GitWriterConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GitWriterConfig")
            .field("path", &self.path)
            .field("branch", &self.branch)
            .field("batch_limit", &self.batch_limit)
            .field("debounce", &self.debounce)
            .field("interval", &self.interval)
            .field("layout", &self.layout)
            .field("author_name", &self.author_name)
            .field("author_email", &self.author_email)
            .field(
                "push_remote",
                &self
                    .push_remote
                    .as_deref()
                    .map(netraven_core::secret::mask_url),
            )
            .field("push_timeout", &self.push_timeout)
            .finish()
    }
}

impl GitWriter {
    /// Pushes the branch to [`GitWriterConfig::push_remote`] (a no-op when unset), with the
    /// `git` command line and within `push_timeout`.
    pub async fn push(&self) -> Result<()> {
        let cfg = &self.inner.config;
        let Some(remote) = cfg.push_remote.as_deref() else {
            return Ok(());
        };
        let refspec = format!("refs/heads/{0}:refs/heads/{0}", cfg.branch);
        // Logs and errors name the remote with its password masked.
        let shown = netraven_core::secret::mask_url(remote);
        let mut cmd = tokio::process::Command::new("git");
        cmd.arg("--git-dir")
            .arg(&cfg.path)
            .args(["push", "--quiet", "--porcelain", remote, &refspec])
            // Never wait for a password prompt on a server without a terminal.
            .env("GIT_TERMINAL_PROMPT", "0")
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true);
        let out = tokio::time::timeout(cfg.push_timeout, cmd.output())
            .await
            .map_err(|_| {
                Error::timeout(format!(
                    "git push to {shown} took longer than {:?}",
                    cfg.push_timeout
                ))
            })?
            .map_err(|e| Error::unavailable(format!("cannot run git push: {e}")))?;
        if out.status.success() {
            tracing::debug!(remote = %shown, "pushed");
            Ok(())
        } else {
            // git may echo the URL (credentials included) in its error output.
            let stderr = String::from_utf8_lossy(&out.stderr).replace(remote, &shown);
            Err(Error::unavailable(format!(
                "git push to {shown} failed: {}",
                netraven_core::secret::mask_urls_in(stderr.trim())
            )))
        }
    }
}

/// Git as a [`SnapshotSink`] — the default sink. A `put` writes the snapshot into the store's
/// index (deduplicated against the device's latest content, like [`StoreSnapshotSink`]) and,
/// when the content changed, wakes the committer; commits happen in batches, by one writer:
/// [`GitWriter::run`] or [`SnapshotSink::flush`] (which the maintenance leader calls), both
/// serialised by the writer's lock. Reads come from the index, content from the store or, when
/// the store kept only the index entry, from the snapshot's git blob.
#[async_trait::async_trait]
impl SnapshotSink for GitWriter {
    async fn put(&self, snapshot: NewSnapshot) -> Result<SnapshotPut> {
        let put = self.inner.index.put(snapshot).await?;
        if put.changed {
            self.inner.notify.notify_one();
        }
        Ok(put)
    }

    async fn latest(&self, device: DeviceId) -> Result<Option<Snapshot>> {
        match self.inner.store.latest_snapshot(device).await? {
            Some(m) => Ok(Some(self.snapshot(m.id).await?)),
            None => Ok(None),
        }
    }

    async fn history(&self, device: DeviceId, page: Page) -> Result<Paged<SnapshotMeta>> {
        self.inner.index.history(device, page).await
    }

    async fn get(&self, id: SnapshotId) -> Result<Snapshot> {
        self.snapshot(id).await
    }

    /// Commits everything pending, in batches.
    async fn flush(&self) -> Result<()> {
        self.commit_all_pending().await.map(|_| ())
    }

    /// Commits pending batches until none is left or `deadline` passed (a batch holds at most
    /// one snapshot per device, so the overrun is one batch).
    async fn flush_until(&self, deadline: tokio::time::Instant) -> Result<bool> {
        loop {
            if tokio::time::Instant::now() >= deadline {
                return Ok(false);
            }
            if let Outcome::Empty = self.commit_batch().await? {
                return Ok(true);
            }
        }
    }
}
