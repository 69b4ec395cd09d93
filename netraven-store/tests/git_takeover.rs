//! A git writer taking over (issue #11): it refuses a repository that does not hold the last
//! commit the store recorded, and removes the ref lock a killed writer left. (fsync of objects
//! and refs is libgit2's process-wide option, which has no getter: not observable here.)

use chrono::Utc;
use netraven_core::error::ErrorKind;
use netraven_core::memory::MemoryStore;
use netraven_core::model::*;
use netraven_core::snapshot::SnapshotSink;
use netraven_core::store::SnapshotStore;
use netraven_store::git::{GitWriter, GitWriterConfig};
use std::path::Path;
use std::sync::Arc;

fn snap(device: DeviceId, content: &str) -> NewSnapshot {
    NewSnapshot {
        device_id: device,
        hostname: format!("router{device}"),
        run_id: Some(1),
        content: content.to_string(),
        taken_at: Utc::now(),
        author: None,
    }
}

fn git(repo: &Path, args: &[&str]) -> (bool, String) {
    let out = std::process::Command::new("git")
        .arg("--git-dir")
        .arg(repo)
        .args(args)
        .output()
        .expect("run git");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        return (
            false,
            format!("{text}{}", String::from_utf8_lossy(&out.stderr)),
        );
    }
    (true, text)
}

/// A second writer over the same store but another (empty) repository refuses to commit, with
/// an error naming the missing commit; nothing is marked committed against its repository.
#[tokio::test]
async fn a_writer_whose_repository_lacks_the_last_commit_refuses() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Arc::new(MemoryStore::new());
    let a = GitWriter::open(
        GitWriterConfig::new(tmp.path().join("a.git")),
        store.clone(),
    )
    .unwrap();
    a.put(snap(1, "hostname r1\n")).await.unwrap();
    let first = a.commit_pending().await.unwrap().expect("a commit");
    a.check_repository().await.unwrap();

    // The lease moves to a host whose repository is another one.
    let b = GitWriter::open(
        GitWriterConfig::new(tmp.path().join("b.git")),
        store.clone(),
    )
    .unwrap();
    let err = b
        .check_repository()
        .await
        .expect_err("an empty repository was accepted");
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(err.message().contains(&first.commit_id), "{err}");
    let put = b.put(snap(2, "hostname r2\n")).await.unwrap();
    let err = b
        .commit_pending()
        .await
        .expect_err("committed into a foreign repository");
    assert!(err.message().contains("does not hold commit"), "{err}");
    let s = store.get_snapshot(put.snapshot_id).await.unwrap();
    assert_eq!(
        s.meta.commit_id, None,
        "a snapshot was recorded against the wrong history"
    );
    // The right repository takes it.
    let second = a.commit_pending().await.unwrap().expect("a commit");
    assert_ne!(second.commit_id, first.commit_id);
}

/// A writer killed while moving the branch leaves `refs/heads/main.lock`; the next writer (the
/// only one: it holds the lease) removes it and commits; `git fsck` is clean.
#[tokio::test]
async fn a_stale_ref_lock_is_removed_by_the_next_writer() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("configs.git");
    let store = Arc::new(MemoryStore::new());
    let w = GitWriter::open(GitWriterConfig::new(&repo), store.clone()).unwrap();
    w.put(snap(1, "hostname r1\n")).await.unwrap();
    w.commit_pending().await.unwrap().expect("first commit");
    std::fs::write(
        repo.join("refs/heads/main.lock"),
        b"0000000000000000000000000000000000000000\n",
    )
    .unwrap();
    w.put(snap(1, "hostname r1\nntp server 192.0.2.1\n"))
        .await
        .unwrap();
    let c = w
        .commit_pending()
        .await
        .expect("a stale lock blocked the commit")
        .expect("a commit");
    assert!(!repo.join("refs/heads/main.lock").exists());
    let (ok, out) = git(&repo, &["fsck", "--full", "--strict"]);
    assert!(ok, "{out}");
    let (_, tip) = git(&repo, &["rev-parse", "refs/heads/main"]);
    assert_eq!(tip.trim(), c.commit_id);
}
