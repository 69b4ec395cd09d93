//! Git writer benchmarks: one batch commit of 10,000 device configs, and a device's history plus
//! a diff in a repository with 10,000 commits. A plain timing harness (`harness = false`).
//!
//! ```text
//! cargo bench -p netraven-store --bench git_writer
//! ```

use chrono::Utc;
use netraven_core::memory::MemoryStore;
use netraven_core::model::*;
use netraven_core::store::SnapshotStore;
use netraven_store::git::{GitWriter, GitWriterConfig, unified_diff};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A plausible ~3 KB IOS-style config; `v` varies one line.
fn config(device: i64, v: usize) -> String {
    let mut s = format!(
        "hostname router{device}\n!\nversion 15.2\nservice timestamps log datetime msec\n!\n"
    );
    for i in 0..48 {
        s.push_str(&format!(
            "interface GigabitEthernet0/{i}\n description uplink {device}-{i}\n ip address 10.{}.{}.1 255.255.255.0\n!\n",
            device % 250,
            i
        ));
    }
    s.push_str(&format!(
        "ntp server 10.0.0.{}\nbanner motd ^rev {v}^\nend\n",
        v % 250
    ));
    s
}

fn snapshot(device: i64, v: usize) -> Snapshot {
    let content = config(device, v);
    Snapshot {
        meta: SnapshotMeta {
            id: 0,
            device_id: device,
            hostname: format!("router{device}"),
            run_id: Some(v as i64),
            hash: content_hash(&content),
            size: content.len() as u64,
            created_at: Utc::now(),
            commit_id: None,
            author: None,
        },
        content,
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

async fn batch_commit() {
    let Ok(dir) = tempfile::tempdir() else {
        panic!("tempdir")
    };
    let store = Arc::new(MemoryStore::new());
    for d in 0..10_000 {
        if let Err(e) = store.insert_snapshot(&snapshot(d, 1)).await {
            panic!("insert: {e}");
        }
    }
    let writer = match GitWriter::open(
        GitWriterConfig::new(dir.path().join("r.git")),
        store.clone(),
    ) {
        Ok(w) => w,
        Err(e) => panic!("open: {e}"),
    };
    let t = Instant::now();
    let c = match writer.commit_pending().await {
        Ok(Some(c)) => c,
        other => panic!("commit: {other:?}"),
    };
    let first = t.elapsed();
    // Second batch: every device changed (the tree exists now).
    for d in 0..10_000 {
        if let Err(e) = store.insert_snapshot(&snapshot(d, 2)).await {
            panic!("insert: {e}");
        }
    }
    let t = Instant::now();
    let c2 = match writer.commit_pending().await {
        Ok(Some(c)) => c,
        other => panic!("commit: {other:?}"),
    };
    let second = t.elapsed();
    println!(
        "batch commit of {} configs (new repo):         {:>8.1} ms",
        c.snapshot_ids.len(),
        ms(first)
    );
    println!(
        "batch commit of {} configs (all changed):      {:>8.1} ms",
        c2.snapshot_ids.len(),
        ms(second)
    );
}

async fn history_and_diff() {
    const COMMITS: usize = 10_000;
    const DEVICES: i64 = 200;
    let Ok(dir) = tempfile::tempdir() else {
        panic!("tempdir")
    };
    let store = Arc::new(MemoryStore::new());
    let writer = match GitWriter::open(
        GitWriterConfig::new(dir.path().join("r.git")),
        store.clone(),
    ) {
        Ok(w) => w,
        Err(e) => panic!("open: {e}"),
    };
    let t = Instant::now();
    for i in 0..COMMITS {
        let d = (i as i64) % DEVICES;
        if let Err(e) = store.insert_snapshot(&snapshot(d, i)).await {
            panic!("insert: {e}");
        }
        match writer.commit_pending().await {
            Ok(Some(_)) => {}
            other => panic!("commit {i}: {other:?}"),
        }
    }
    println!(
        "built a repository of {COMMITS} commits ({DEVICES} devices) in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let device = 7;
    let mut hist = Vec::new();
    let mut diff_store = Vec::new();
    let mut diff_git = Vec::new();
    for _ in 0..200 {
        let t = Instant::now();
        let h = match store.list_snapshots(device, Page::first(50)).await {
            Ok(h) => h,
            Err(e) => panic!("history: {e}"),
        };
        hist.push(t.elapsed());
        let (newer, older) = (&h.items[0], &h.items[1]);
        let t = Instant::now();
        let d = match writer.diff(older.id, newer.id).await {
            Ok(d) => d,
            Err(e) => panic!("diff: {e}"),
        };
        diff_store.push(t.elapsed());
        assert!(d.contains("banner motd"));
        // The same diff with both contents read from git objects (commit id + path).
        let t = Instant::now();
        let mut snaps = Vec::new();
        for m in [older, newer] {
            let commit = m.commit_id.clone().unwrap_or_default();
            let content = match writer.read_blob(&commit, &writer.path_for(m)).await {
                Ok(c) => c,
                Err(e) => panic!("blob: {e}"),
            };
            snaps.push(Snapshot {
                meta: m.clone(),
                content,
            });
        }
        let d2 = unified_diff(&snaps[0], &snaps[1]);
        diff_git.push(t.elapsed());
        assert_eq!(d, d2);
    }
    let p = |v: &mut Vec<Duration>, q: f64| {
        v.sort();
        let i = ((v.len() as f64 - 1.0) * q).round() as usize;
        ms(v[i])
    };
    println!(
        "device history (50 of {} entries, store index): p50 {:.3} ms  p99 {:.3} ms",
        COMMITS as i64 / DEVICES,
        p(&mut hist, 0.5),
        p(&mut hist, 0.99)
    );
    println!(
        "diff of two snapshots (store content):          p50 {:.3} ms  p99 {:.3} ms",
        p(&mut diff_store, 0.5),
        p(&mut diff_store, 0.99)
    );
    println!(
        "diff of two snapshots (two git blobs):          p50 {:.3} ms  p99 {:.3} ms",
        p(&mut diff_git, 0.5),
        p(&mut diff_git, 0.99)
    );
}

fn main() {
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => panic!("runtime: {e}"),
    };
    rt.block_on(async {
        batch_commit().await;
        history_and_diff().await;
    });
}
