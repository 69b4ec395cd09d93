//! Optional push after each commit: the branch reaches the remote; a broken remote never fails
//! the commit.

use netraven_core::memory::MemoryStore;
use netraven_core::model::NewSnapshot;
use netraven_core::snapshot::{SnapshotSink, StoreSnapshotSink};
use netraven_store::git::{GitWriter, GitWriterConfig};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;

fn git(args: &[&str]) -> String {
    let out = Command::new("git").args(args).output().expect("git");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

async fn put(store: &Arc<MemoryStore>, content: &str) {
    StoreSnapshotSink::new(store.clone())
        .put(NewSnapshot {
            device_id: 1,
            hostname: "r1".into(),
            run_id: Some(1),
            content: content.into(),
            taken_at: chrono::Utc::now(),
            author: None,
        })
        .await
        .expect("put");
}

fn head(repo: &Path) -> String {
    git(&[
        "--git-dir",
        &repo.to_string_lossy(),
        "rev-parse",
        "refs/heads/main",
    ])
}

#[tokio::test]
async fn each_commit_is_pushed_to_the_remote() {
    let dir = tempfile::tempdir().expect("tempdir");
    let remote = dir.path().join("mirror.git");
    git(&["init", "--bare", "--quiet", &remote.to_string_lossy()]);
    let store = Arc::new(MemoryStore::new());
    let mut cfg = GitWriterConfig::new(dir.path().join("configs.git"));
    cfg.push_remote = Some(remote.to_string_lossy().into_owned());
    let writer = GitWriter::open(cfg, store.clone()).expect("open");

    put(&store, "hostname r1\n").await;
    let c1 = writer
        .commit_pending()
        .await
        .expect("commit")
        .expect("a commit");
    assert_eq!(head(&remote), c1.commit_id);
    put(&store, "hostname r1\ninterface x\n").await;
    let c2 = writer
        .commit_pending()
        .await
        .expect("commit")
        .expect("a commit");
    assert_eq!(
        head(&remote),
        c2.commit_id,
        "the remote follows every commit"
    );
}

#[tokio::test]
async fn a_failing_push_does_not_fail_the_commit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(MemoryStore::new());
    let mut cfg = GitWriterConfig::new(dir.path().join("configs.git"));
    cfg.push_remote = Some(
        dir.path()
            .join("does-not-exist.git")
            .to_string_lossy()
            .into_owned(),
    );
    let writer = GitWriter::open(cfg, store.clone()).expect("open");
    put(&store, "hostname r1\n").await;
    let c = writer
        .commit_pending()
        .await
        .expect("commit still succeeds")
        .expect("a commit");
    assert_eq!(head(&dir.path().join("configs.git")), c.commit_id);
    assert!(
        writer.push().await.is_err(),
        "the push error is reported to a direct caller"
    );
}
