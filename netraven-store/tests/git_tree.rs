//! GitTreeSink: the streaming one-shot git sink passes the sink conformance suite, commits every
//! changed file once (content byte-identical, packs instead of loose objects, `git fsck` clean),
//! and a second session over unchanged content reports unchanged and makes no commit.

use chrono::Utc;
use netraven_core::model::*;
use netraven_core::snapshot::SnapshotSink;
use netraven_core::testkit;
use netraven_store::git_tree::{GitTreeSink, PACK_EVERY};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;

fn snap(device: DeviceId, content: String) -> NewSnapshot {
    NewSnapshot {
        device_id: device,
        hostname: format!("sw-{device:04}"),
        run_id: Some(1),
        content,
        taken_at: Utc::now(),
        author: None,
    }
}

fn config(device: DeviceId, version: u32) -> String {
    format!("hostname sw-{device:04}\n! v{version}\ninterface Gi0/{device}\n description uplink\n")
}

fn git(repo: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("--git-dir")
        .arg(repo)
        .args(args)
        .output()
        .expect("run git");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passes_the_sink_conformance_suite() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sink = GitTreeSink::open(dir.path().join("r.git"), "main")
        .await
        .expect("open");
    testkit::sink::run_all(Arc::new(sink), 7).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_a_fleet_into_one_commit_and_a_rerun_commits_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let repo = dir.path().join("r.git");
    let n = PACK_EVERY as i64 + 44; // more than one pack flush
    let sink = Arc::new(GitTreeSink::open(&repo, "main").await.expect("open"));
    let mut tasks = Vec::new();
    for d in 1..=n {
        let sink = sink.clone();
        tasks.push(tokio::spawn(async move {
            sink.put(snap(d, config(d, 1))).await
        }));
    }
    for t in tasks {
        assert!(t.await.expect("join").expect("put").changed);
    }
    let first = sink
        .commit("Backup")
        .await
        .expect("commit")
        .expect("a commit");
    assert_eq!(first.files, n as usize);
    assert_eq!(git(&repo, &["rev-list", "--count", "main"]).trim(), "1");
    for d in [1, n / 2, n] {
        assert_eq!(
            git(&repo, &["show", &format!("main:sw-{d:04}.cfg")]),
            config(d, 1)
        );
    }
    // The blobs are in packs, not one loose file per device (only trees and the commit are loose).
    let counts = git(&repo, &["count-objects", "-v"]);
    assert!(counts.contains(&format!("in-pack: {n}\n")), "{counts}");
    git(&repo, &["fsck", "--full", "--strict"]);

    // Second session: one device changed, the rest unchanged.
    let sink = GitTreeSink::open(&repo, "main").await.expect("reopen");
    assert_eq!(sink.tip().as_deref(), Some(first.commit_id.as_str()));
    let mut changed = 0;
    for d in 1..=n {
        let v = if d == 3 { 2 } else { 1 };
        if sink.put(snap(d, config(d, v))).await.expect("put").changed {
            changed += 1;
        }
    }
    assert_eq!(changed, 1);
    let latest = sink.latest(3).await.expect("latest").expect("some");
    assert_eq!(latest.content, config(3, 2), "read back before the commit");
    let second = sink
        .commit("Backup")
        .await
        .expect("commit")
        .expect("a commit");
    assert_eq!(second.files, 1);
    assert_eq!(git(&repo, &["show", "main:sw-0003.cfg"]), config(3, 2));
    assert_eq!(git(&repo, &["show", "main:sw-0004.cfg"]), config(4, 1));
    let files = git(&repo, &["ls-tree", "--name-only", "main"]);
    assert_eq!(files.lines().count(), n as usize);

    // Third session: nothing changed, no commit.
    let sink = GitTreeSink::open(&repo, "main").await.expect("reopen");
    for d in 1..=n {
        let v = if d == 3 { 2 } else { 1 };
        assert!(!sink.put(snap(d, config(d, v))).await.expect("put").changed);
    }
    assert!(sink.commit("Backup").await.expect("commit").is_none());
    assert_eq!(git(&repo, &["rev-list", "--count", "main"]).trim(), "2");
    git(&repo, &["fsck", "--full", "--strict"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_committed_sink_refuses_more_snapshots() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sink = GitTreeSink::open(dir.path().join("r.git"), "main")
        .await
        .expect("open");
    sink.put(snap(1, config(1, 1))).await.expect("put");
    sink.commit("Backup").await.expect("commit");
    let e = sink.put(snap(2, config(2, 1))).await.unwrap_err();
    assert_eq!(e.kind(), netraven_core::ErrorKind::InvalidInput, "{e}");
}
