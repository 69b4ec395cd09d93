//! GitWriter: batched commits from in-memory trees, crash safety (`git fsck`), unchanged content,
//! layouts, the run loop, and diffs.

use async_trait::async_trait;
use chrono::Utc;
use netraven_core::error::{Error, Result};
use netraven_core::memory::MemoryStore;
use netraven_core::model::*;
use netraven_core::snapshot::{SnapshotSink, StoreSnapshotSink};
use netraven_core::store::SnapshotStore;
use netraven_core::testkit;
use netraven_store::git::{GitWriter, GitWriterConfig, Layout, unified_diff};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

fn new_snap(device: DeviceId, run: Option<RunId>, content: &str) -> NewSnapshot {
    NewSnapshot {
        device_id: device,
        hostname: format!("router{device}"),
        run_id: run,
        content: content.to_string(),
        taken_at: Utc::now(),
        author: None,
    }
}

fn fsck(repo: &Path) {
    let out = std::process::Command::new("git")
        .arg("--git-dir")
        .arg(repo)
        .args(["fsck", "--full", "--strict"])
        .output()
        .expect("run git fsck");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "git fsck failed: {stdout}\n{stderr}");
    for bad in ["error", "missing", "broken", "corrupt", "bad "] {
        assert!(
            !stderr.contains(bad) && !stdout.contains(bad),
            "git fsck reported {bad}: {stdout}\n{stderr}"
        );
    }
}

fn commit_count(repo: &Path) -> usize {
    let out = std::process::Command::new("git")
        .arg("--git-dir")
        .arg(repo)
        .args(["rev-list", "--count", "refs/heads/main"])
        .output()
        .expect("git rev-list");
    if !out.status.success() {
        return 0;
    }
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("count")
}

fn head(repo: &Path) -> Option<String> {
    let r = git2::Repository::open_bare(repo).expect("open");
    r.refname_to_id("refs/heads/main")
        .ok()
        .map(|o| o.to_string())
}

async fn assert_all_findable(store: &MemoryStore, writer: &GitWriter, devices: &[DeviceId]) {
    for d in devices {
        let h = store
            .list_snapshots(*d, Page::first(100))
            .await
            .expect("history");
        assert!(h.total > 0, "device {d} has no snapshot");
        for meta in h.items {
            let commit = meta
                .commit_id
                .clone()
                .unwrap_or_else(|| panic!("snapshot {} not committed", meta.id));
            let full = store.get_snapshot(meta.id).await.expect("snapshot");
            let blob = writer
                .read_blob(&commit, &writer.path_for(&meta))
                .await
                .expect("blob at commit and path");
            assert_eq!(blob, full.content, "snapshot {} differs in git", meta.id);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_puts_end_as_valid_commits() {
    let dir = tempfile::tempdir().expect("tempdir");
    let repo = dir.path().join("configs.git");
    let store = Arc::new(MemoryStore::new());
    let sink = Arc::new(StoreSnapshotSink::new(store.clone()));
    let writer = GitWriter::open(GitWriterConfig::new(&repo), store.clone()).expect("open");
    let mut handles = Vec::new();
    for d in 1..=50 {
        let sink = sink.clone();
        let writer = writer.clone();
        handles.push(tokio::spawn(async move {
            let put = sink
                .put(new_snap(
                    d,
                    Some(7),
                    &format!("hostname router{d}\ninterface Gi0/{d}\n"),
                ))
                .await
                .expect("put");
            assert!(put.changed);
            // Writers race with the puts: batches interleave with arrivals.
            if d % 10 == 0 {
                writer.commit_pending().await.expect("commit");
            }
        }));
    }
    for h in handles {
        h.await.expect("put task");
    }
    writer.commit_all_pending().await.expect("commit the rest");
    assert!(
        store
            .uncommitted_snapshots(100)
            .await
            .expect("pending")
            .is_empty(),
        "snapshots left pending"
    );
    let devices: Vec<DeviceId> = (1..=50).collect();
    assert_all_findable(&store, &writer, &devices).await;
    let commits = commit_count(&repo);
    assert!((1..=6).contains(&commits), "{commits} commits for 50 puts");
    fsck(&repo);
    // The tip holds all 50 files.
    let tip = head(&repo).expect("tip");
    for d in 1..=50 {
        let c = writer
            .read_blob(&tip, &format!("router{d}.cfg"))
            .await
            .expect("file at tip");
        assert!(c.starts_with(&format!("hostname router{d}\n")));
    }
}

#[tokio::test]
async fn unchanged_content_makes_no_commit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let repo = dir.path().join("r.git");
    let store = Arc::new(MemoryStore::new());
    let sink = StoreSnapshotSink::new(store.clone());
    let writer = GitWriter::open(GitWriterConfig::new(&repo), store.clone()).expect("open");
    assert!(writer.commit_pending().await.expect("empty").is_none());
    sink.put(new_snap(1, Some(1), "a\n")).await.expect("put");
    let first = writer
        .commit_pending()
        .await
        .expect("commit")
        .expect("a commit");
    assert_eq!(first.devices, vec!["router1".to_string()]);
    assert_eq!(first.runs, vec![1]);
    // Same content again through the sink: no snapshot, no commit.
    let again = sink.put(new_snap(1, Some(2), "a\n")).await.expect("put");
    assert!(!again.changed);
    assert!(writer.commit_pending().await.expect("commit").is_none());
    // Same content in a snapshot that bypassed the sink's check: still no commit, and the
    // snapshot is recorded against the commit that already holds the content.
    let meta = store
        .insert_snapshot(&Snapshot {
            meta: SnapshotMeta {
                id: 0,
                device_id: 1,
                hostname: "router1".into(),
                run_id: Some(3),
                hash: content_hash("a\n"),
                size: 2,
                created_at: Utc::now(),
                commit_id: None,
                author: None,
            },
            content: "a\n".into(),
        })
        .await
        .expect("insert");
    assert!(writer.commit_pending().await.expect("commit").is_none());
    assert_eq!(commit_count(&repo), 1);
    let s = store.get_snapshot(meta.id).await.expect("get");
    assert_eq!(s.meta.commit_id.as_deref(), Some(first.commit_id.as_str()));
    fsck(&repo);
}

#[tokio::test]
async fn crash_before_the_ref_moved_leaves_a_valid_repo_and_the_next_start_goes_on() {
    let dir = tempfile::tempdir().expect("tempdir");
    let repo_path = dir.path().join("r.git");
    let store = Arc::new(MemoryStore::new());
    let sink = StoreSnapshotSink::new(store.clone());
    {
        let writer =
            GitWriter::open(GitWriterConfig::new(&repo_path), store.clone()).expect("open");
        sink.put(new_snap(1, Some(1), "v1\n")).await.expect("put");
        writer.commit_pending().await.expect("commit");
    }
    sink.put(new_snap(1, Some(2), "v2\n")).await.expect("put");
    sink.put(new_snap(2, Some(2), "other\n"))
        .await
        .expect("put");
    let tip_before = head(&repo_path).expect("tip");
    {
        // The crash: blobs, tree and commit written, the process dies before the ref update.
        let repo = git2::Repository::open_bare(&repo_path).expect("open");
        let parent = repo
            .find_commit(git2::Oid::from_str(&tip_before).expect("oid"))
            .expect("parent");
        let mut tb = repo
            .treebuilder(Some(&parent.tree().expect("tree")))
            .expect("tb");
        let b1 = repo.blob(b"v2\n").expect("blob");
        let b2 = repo.blob(b"other\n").expect("blob");
        tb.insert("router1.cfg", b1, 0o100644).expect("insert");
        tb.insert("router2.cfg", b2, 0o100644).expect("insert");
        let tree = repo.find_tree(tb.write().expect("write")).expect("tree");
        let sig = git2::Signature::now("NetRaven", "netraven@localhost").expect("sig");
        repo.commit(None, &sig, &sig, "half done", &tree, &[&parent])
            .expect("orphan commit");
        // A stray lock file from a writer killed mid ref update.
        std::fs::write(repo_path.join("index.lock"), b"").ok();
        std::fs::remove_file(repo_path.join("index.lock")).ok();
    }
    fsck(&repo_path);
    assert_eq!(head(&repo_path).as_deref(), Some(tip_before.as_str()));
    assert_eq!(
        store
            .uncommitted_snapshots(10)
            .await
            .expect("pending")
            .len(),
        2
    );
    // Next start.
    let writer = GitWriter::open(GitWriterConfig::new(&repo_path), store.clone()).expect("reopen");
    let c = writer
        .commit_pending()
        .await
        .expect("commit")
        .expect("the pending snapshots get their commit");
    assert_eq!(c.snapshot_ids.len(), 2);
    assert!(
        store
            .uncommitted_snapshots(10)
            .await
            .expect("pending")
            .is_empty()
    );
    assert_all_findable(&store, &writer, &[1, 2]).await;
    assert_eq!(commit_count(&repo_path), 2);
    fsck(&repo_path);
}

/// A store whose `mark_committed` fails while `fail` is set: a crash after the ref moved and
/// before the store learned the commit.
#[derive(Debug)]
struct FlakyMark {
    inner: Arc<MemoryStore>,
    fail: AtomicBool,
}

#[async_trait]
impl SnapshotStore for FlakyMark {
    async fn insert_snapshot(&self, s: &Snapshot) -> Result<SnapshotMeta> {
        self.inner.insert_snapshot(s).await
    }
    async fn latest_snapshot(&self, d: DeviceId) -> Result<Option<SnapshotMeta>> {
        self.inner.latest_snapshot(d).await
    }
    async fn get_snapshot(&self, id: SnapshotId) -> Result<Snapshot> {
        self.inner.get_snapshot(id).await
    }
    async fn list_snapshots(&self, d: DeviceId, p: Page) -> Result<Paged<SnapshotMeta>> {
        self.inner.list_snapshots(d, p).await
    }
    async fn latest_snapshots(&self, d: &[DeviceId]) -> Result<Vec<SnapshotMeta>> {
        self.inner.latest_snapshots(d).await
    }
    async fn uncommitted_snapshots(&self, limit: u32) -> Result<Vec<Snapshot>> {
        self.inner.uncommitted_snapshots(limit).await
    }
    async fn mark_committed(&self, ids: &[SnapshotId], c: &str) -> Result<()> {
        if self.fail.load(Ordering::SeqCst) {
            return Err(Error::unavailable("database went away"));
        }
        self.inner.mark_committed(ids, c).await
    }
    async fn search_latest(&self, n: &str, p: Page) -> Result<Paged<SnapshotMeta>> {
        self.inner.search_latest(n, p).await
    }
}

#[tokio::test]
async fn crash_after_the_ref_moved_is_recorded_on_the_next_batch() {
    let dir = tempfile::tempdir().expect("tempdir");
    let repo_path = dir.path().join("r.git");
    let mem = Arc::new(MemoryStore::new());
    let store = Arc::new(FlakyMark {
        inner: mem.clone(),
        fail: AtomicBool::new(true),
    });
    let sink = StoreSnapshotSink::new(store.clone());
    let writer = GitWriter::open(GitWriterConfig::new(&repo_path), store.clone()).expect("open");
    sink.put(new_snap(1, Some(1), "one\n")).await.expect("put");
    assert!(
        writer.commit_pending().await.is_err(),
        "mark_committed failed"
    );
    let tip = head(&repo_path).expect("the ref moved");
    assert_eq!(
        mem.uncommitted_snapshots(10).await.expect("pending").len(),
        1
    );
    store.fail.store(false, Ordering::SeqCst);
    assert!(
        writer.commit_pending().await.expect("retry").is_none(),
        "no second commit for content already in the tree"
    );
    assert!(
        mem.uncommitted_snapshots(10)
            .await
            .expect("pending")
            .is_empty()
    );
    let s = mem.get_snapshot(1).await;
    let s = match s {
        Ok(s) => s,
        Err(_) => {
            let h = mem.list_snapshots(1, Page::first(1)).await.expect("list");
            mem.get_snapshot(h.items[0].id).await.expect("get")
        }
    };
    assert_eq!(s.meta.commit_id.as_deref(), Some(tip.as_str()));
    assert_eq!(commit_count(&repo_path), 1);
    fsck(&repo_path);
}

#[tokio::test]
async fn two_snapshots_of_one_device_go_to_two_commits() {
    let dir = tempfile::tempdir().expect("tempdir");
    let repo = dir.path().join("r.git");
    let store = Arc::new(MemoryStore::new());
    let sink = StoreSnapshotSink::new(store.clone());
    let writer = GitWriter::open(GitWriterConfig::new(&repo), store.clone()).expect("open");
    sink.put(new_snap(1, Some(1), "first\n"))
        .await
        .expect("put");
    sink.put(new_snap(2, Some(1), "x\n")).await.expect("put");
    sink.put(new_snap(1, Some(2), "second\n"))
        .await
        .expect("put");
    let commits = writer.commit_all_pending().await.expect("commit");
    assert_eq!(commits.len(), 2);
    assert_eq!(commits[0].snapshot_ids.len(), 2);
    assert_eq!(commits[1].devices, vec!["router1".to_string()]);
    assert_all_findable(&store, &writer, &[1, 2]).await;
    fsck(&repo);
}

#[tokio::test]
async fn grouped_layout_writes_directories_and_keeps_their_other_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let repo = dir.path().join("r.git");
    let store = Arc::new(MemoryStore::new());
    let sink = StoreSnapshotSink::new(store.clone());
    let mut cfg = GitWriterConfig::new(&repo);
    cfg.layout = Layout::Grouped(Arc::new(|m: &SnapshotMeta| {
        (m.device_id % 2 == 0).then(|| "core".to_string())
    }));
    let writer = GitWriter::open(cfg, store.clone()).expect("open");
    sink.put(new_snap(2, None, "core a\n")).await.expect("put");
    sink.put(new_snap(3, None, "edge\n")).await.expect("put");
    writer
        .commit_pending()
        .await
        .expect("commit")
        .expect("commit");
    sink.put(new_snap(4, None, "core b\n")).await.expect("put");
    let c = writer
        .commit_pending()
        .await
        .expect("commit")
        .expect("commit");
    assert_eq!(c.snapshot_ids.len(), 1);
    assert_eq!(
        writer
            .read_blob(&c.commit_id, "core/router2.cfg")
            .await
            .expect("kept"),
        "core a\n"
    );
    assert_eq!(
        writer
            .read_blob(&c.commit_id, "core/router4.cfg")
            .await
            .expect("added"),
        "core b\n"
    );
    assert_eq!(
        writer
            .read_blob(&c.commit_id, "router3.cfg")
            .await
            .expect("top"),
        "edge\n"
    );
    let missing = writer
        .read_blob(&c.commit_id, "nope.cfg")
        .await
        .expect_err("missing path");
    assert_eq!(missing.kind(), netraven_core::ErrorKind::NotFound);
    assert_all_findable(&store, &writer, &[2, 3, 4]).await;
    fsck(&repo);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_loop_commits_on_notify_and_flushes_on_shutdown() {
    let dir = tempfile::tempdir().expect("tempdir");
    let repo = dir.path().join("r.git");
    let store = Arc::new(MemoryStore::new());
    let sink = StoreSnapshotSink::new(store.clone());
    let mut cfg = GitWriterConfig::new(&repo);
    cfg.debounce = Duration::from_millis(50);
    cfg.interval = Duration::from_secs(60);
    let writer = GitWriter::open(cfg, store.clone()).expect("open");
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(writer.clone().run(shutdown.clone()));
    // Puts through the writer (the git sink) wake it.
    for d in 1..=5 {
        writer
            .put(new_snap(d, Some(9), &format!("cfg {d}\n")))
            .await
            .expect("put");
    }
    let mut waited = 0;
    while !store
        .uncommitted_snapshots(10)
        .await
        .expect("pending")
        .is_empty()
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
        waited += 1;
        assert!(waited < 250, "writer did not commit after notify");
    }
    // Arrives through the index alone (no wake-up): the shutdown flush commits it.
    sink.put(new_snap(6, Some(9), "late\n")).await.expect("put");
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("writer stops")
        .expect("join");
    assert!(
        store
            .uncommitted_snapshots(10)
            .await
            .expect("pending")
            .is_empty()
    );
    assert_all_findable(&store, &writer, &[1, 2, 3, 4, 5, 6]).await;
    fsck(&repo);
}

#[tokio::test]
async fn diff_between_snapshots_from_index_and_blobs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let repo = dir.path().join("r.git");
    let store = Arc::new(MemoryStore::new());
    let sink = StoreSnapshotSink::new(store.clone());
    let writer = GitWriter::open(GitWriterConfig::new(&repo), store.clone()).expect("open");
    let a = sink
        .put(new_snap(
            1,
            Some(1),
            "hostname r1\ninterface Gi0/1\n description old\n!\n",
        ))
        .await
        .expect("put");
    let b = sink
        .put(new_snap(
            1,
            Some(2),
            "hostname r1\ninterface Gi0/1\n description new\n!\n",
        ))
        .await
        .expect("put");
    writer.commit_all_pending().await.expect("commit");
    let d = writer
        .diff(a.snapshot_id, b.snapshot_id)
        .await
        .expect("diff");
    assert!(
        d.contains("-- description old") || d.contains("- description old"),
        "{d}"
    );
    assert!(d.contains("+ description new"), "{d}");
    assert!(d.contains("@@"), "{d}");
    assert!(d.contains("router1.cfg"), "{d}");
    let sa = store.get_snapshot(a.snapshot_id).await.expect("a");
    assert_eq!(unified_diff(&sa, &sa), "");
}

#[tokio::test]
async fn sink_conformance_over_the_store_the_writer_reads() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(MemoryStore::new());
    let sink = Arc::new(StoreSnapshotSink::new(store.clone()));
    testkit::sink::run_all(sink, 77).await;
    let writer = GitWriter::open(
        GitWriterConfig::new(dir.path().join("r.git")),
        store.clone(),
    )
    .expect("open");
    writer.commit_all_pending().await.expect("commit");
    assert_all_findable(&store, &writer, &[77]).await;
}

#[tokio::test]
async fn a_large_batch_is_written_as_one_pack() {
    let dir = tempfile::tempdir().expect("tempdir");
    let repo = dir.path().join("r.git");
    let store = Arc::new(MemoryStore::new());
    let sink = StoreSnapshotSink::new(store.clone());
    let writer = GitWriter::open(GitWriterConfig::new(&repo), store.clone()).expect("open");
    let devices: Vec<DeviceId> = (1..=300).collect();
    for d in &devices {
        let mut s = new_snap(*d, Some(1), &format!("hostname r{d}\nvlan {d}\n"));
        s.hostname = format!("r{d}");
        sink.put(s).await.expect("put");
    }
    let c = writer
        .commit_pending()
        .await
        .expect("commit")
        .expect("a commit");
    assert_eq!(c.snapshot_ids.len(), 300);
    let packs = std::fs::read_dir(repo.join("objects/pack"))
        .expect("pack dir")
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "pack"))
        })
        .count();
    assert_eq!(packs, 1, "the batch must land in one pack");
    let loose = std::fs::read_dir(repo.join("objects"))
        .expect("objects")
        .filter(|e| e.as_ref().is_ok_and(|e| e.file_name().len() == 2))
        .count();
    assert_eq!(loose, 0, "no loose objects for a packed batch");
    assert_eq!(head(&repo).as_deref(), Some(c.commit_id.as_str()));
    assert_all_findable(&store, &writer, &devices).await;
    fsck(&repo);
    // A small follow-up batch on top of the packed one.
    let mut s = new_snap(1, Some(2), "hostname r1\nvlan 999\n");
    s.hostname = "r1".into();
    sink.put(s).await.expect("put");
    let c2 = writer
        .commit_pending()
        .await
        .expect("commit")
        .expect("a commit");
    assert_eq!(c2.devices, vec!["r1".to_string()]);
    assert_all_findable(&store, &writer, &devices).await;
    fsck(&repo);
}

#[tokio::test]
async fn git_is_a_snapshot_sink_passing_the_sink_suite() {
    let dir = tempfile::tempdir().expect("tempdir");
    let repo = dir.path().join("sink.git");
    let store = Arc::new(MemoryStore::new());
    let writer = GitWriter::open(GitWriterConfig::new(&repo), store.clone()).expect("open");
    testkit::sink::run_all(Arc::new(writer.clone()), 41).await;
    // What the suite put is pending until the sink is flushed; then git holds the latest.
    assert!(
        !store
            .uncommitted_snapshots(10)
            .await
            .expect("pending")
            .is_empty()
    );
    writer.flush().await.expect("flush");
    assert!(
        store
            .uncommitted_snapshots(10)
            .await
            .expect("pending")
            .is_empty()
    );
    let head = writer.head_commit().await.expect("head").expect("a commit");
    let latest = writer.latest(41).await.expect("latest").expect("some");
    assert_eq!(
        writer
            .read_blob(&head, &writer.path_for(&latest.meta))
            .await
            .expect("blob"),
        latest.content
    );
    fsck(&repo);
}

#[tokio::test]
async fn a_tee_of_git_and_a_second_sink_passes_the_suite_and_feeds_both() {
    use netraven_core::snapshot::Tee;
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(MemoryStore::new());
    let writer = GitWriter::open(
        GitWriterConfig::new(dir.path().join("t.git")),
        store.clone(),
    )
    .expect("open");
    let mirror_store = Arc::new(MemoryStore::new());
    let tee = Tee::new(Arc::new(writer.clone()))
        .with(Arc::new(StoreSnapshotSink::new(mirror_store.clone())));
    testkit::sink::run_all(Arc::new(tee.clone()), 7).await;
    tee.flush().await.expect("flush");
    assert!(writer.head_commit().await.expect("head").is_some());
    let mirrored = mirror_store
        .latest_snapshot(7)
        .await
        .expect("latest")
        .expect("mirrored");
    assert_eq!(mirrored.hash, content_hash("hostname a\n"));
}

#[tokio::test]
async fn a_directory_mirror_over_git_passes_the_suite_and_matches_the_tree() {
    use netraven_store::mirror::DirectoryMirror;
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(MemoryStore::new());
    let writer = GitWriter::open(
        GitWriterConfig::new(dir.path().join("m.git")),
        store.clone(),
    )
    .expect("open");
    let mirror =
        DirectoryMirror::new(dir.path().join("mirror"), Arc::new(writer.clone())).expect("mirror");
    testkit::sink::run_all(Arc::new(mirror.clone()), 3).await;
    mirror.flush().await.expect("flush");
    let head = writer.head_commit().await.expect("head").expect("a commit");
    let latest = writer.latest(3).await.expect("latest").expect("some");
    let in_git = writer
        .read_blob(&head, &writer.path_for(&latest.meta))
        .await
        .expect("blob");
    let on_disk = std::fs::read_to_string(mirror.path_for(&latest.meta.hostname)).expect("file");
    assert_eq!(on_disk, in_git);
    assert_eq!(
        mirror
            .path_for(&latest.meta.hostname)
            .file_name()
            .and_then(|n| n.to_str()),
        Some(writer.path_for(&latest.meta).as_str())
    );
}

/// A push remote's password shows in no log, error or `{:?}`: the remote is masked by a URL
/// parser, and git's own error output is masked too.
#[tokio::test]
async fn a_failed_push_names_the_remote_without_its_password() {
    let dir = tempfile::tempdir().expect("tempdir");
    let repo = dir.path().join("r.git");
    let store = Arc::new(MemoryStore::new());
    let mut cfg = GitWriterConfig::new(&repo);
    // Port 9 on the loopback: refused at once, nothing leaves the host.
    cfg.push_remote = Some("http://bot:push-canary@127.0.0.1:9/r.git".into());
    cfg.push_timeout = Duration::from_secs(20);
    assert!(!format!("{cfg:?}").contains("push-canary"));
    let writer = GitWriter::open(cfg, store.clone()).expect("open");
    let sink = StoreSnapshotSink::new(store.clone());
    sink.put(new_snap(1, Some(1), "a\n")).await.expect("put");
    writer.commit_pending().await.expect("commit");
    let e = writer.push().await.expect_err("nothing listens on port 9");
    let shown = format!("{e} {e:?}");
    assert!(!shown.contains("push-canary"), "{shown}");
    assert!(shown.contains("bot:********@127.0.0.1:9"), "{shown}");
    assert!(!format!("{writer:?}").contains("push-canary"));
}

/// The final flush on shutdown stops starting commit batches at its deadline: a deadline already
/// passed commits nothing and reports work left; the pending snapshots stay for the next flush.
#[tokio::test]
async fn flush_until_stops_at_its_deadline_and_leaves_the_rest_pending() {
    let dir = tempfile::tempdir().expect("tempdir");
    let repo = dir.path().join("configs.git");
    let store = Arc::new(MemoryStore::new());
    let writer = GitWriter::open(GitWriterConfig::new(&repo), store.clone()).expect("open");
    // Two snapshots of one device: two batches (one snapshot per path per commit).
    for rev in 0..2 {
        writer
            .put(new_snap(
                1,
                Some(1),
                &format!("hostname router1\n! rev {rev}\n"),
            ))
            .await
            .expect("put");
    }
    let past = tokio::time::Instant::now();
    assert!(
        !writer.flush_until(past).await.expect("flush"),
        "a passed deadline must leave work"
    );
    assert_eq!(
        commit_count(&repo),
        0,
        "nothing is committed after the deadline"
    );
    assert_eq!(
        store
            .uncommitted_snapshots(10)
            .await
            .expect("pending")
            .len(),
        2
    );
    let later = tokio::time::Instant::now() + Duration::from_secs(60);
    assert!(
        writer.flush_until(later).await.expect("flush"),
        "all flushed in time"
    );
    assert_eq!(commit_count(&repo), 2);
    assert!(
        store
            .uncommitted_snapshots(10)
            .await
            .expect("pending")
            .is_empty()
    );
    fsck(&repo);
}
