//! The web page at scale: a SQLite store seeded with 10,000 devices and 100 snapshots each (the
//! last 20 runs with a result per device), `netraven serve` (release) on it, and Debian's
//! chromium timing each page's first render with data and each list/diff/search interaction
//! (`tests/browser/ui-scale.js`). Prints one row per page or interaction; nothing is asserted.
//!
//! ```sh
//! cargo build --release -p netraven-bin && bash .ci/ui-tests   # installs chromium + puppeteer
//! cargo bench --bench ui_scale
//! ```
//!
//! `NETRAVEN_UI_SCALE=DEVICES,SNAPSHOTS` changes the size (default `10000,100`). The seeded data
//! is kept under `target/ui-scale/DEVICESxSNAPSHOTS/` and reused by the next run.

use chrono::{Duration as Days, Utc};
use netraven::Netraven;
use netraven::core::model::{
    Device, DeviceResult, DeviceStatus, Job, NewRun, RunStatus, Snapshot, SnapshotMeta, Targets,
    Trigger,
};
use netraven::core::store::ServerStore;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Runs with a result for every device (the devices page's sparkline shows 20).
const RESULT_RUNS: usize = 20;
const PORT: u16 = 18796;

fn main() {
    let (devices, snaps) = std::env::var("NETRAVEN_UI_SCALE")
        .ok()
        .and_then(|v| {
            let (a, b) = v.split_once(',')?;
            Some((a.trim().parse().ok()?, b.trim().parse().ok()?))
        })
        .unwrap_or((10_000usize, 100usize));
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let bin = root.join("target/release/netraven");
    let node_modules = root.join("target/ui-tests/node_modules");
    if !bin.exists() || !node_modules.exists() {
        eprintln!(
            "ui_scale: needs target/release/netraven and target/ui-tests/node_modules \
             (cargo build --release -p netraven-bin && bash .ci/ui-tests); skipped"
        );
        return;
    }
    let dir = root.join(format!("target/ui-scale/{devices}x{snaps}"));
    let data = dir.join("netraven-data");
    let done = dir.join("seeded");
    if !done.exists() {
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&data).expect("data dir");
        let t = Instant::now();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(seed(&data, devices, snaps));
        std::fs::write(&done, "").expect("marker");
        println!(
            "seeded {devices} devices x {snaps} snapshots in {:.0} s",
            t.elapsed().as_secs_f64()
        );
    }
    let pw = "ui-scale-Bench-pw-1";
    let log = std::fs::File::create(dir.join("serve.log")).expect("serve log");
    let mut serve = Command::new(&bin)
        .arg("serve")
        .current_dir(&dir)
        .env("NETRAVEN_ADMIN_PASSWORD", pw)
        .env("NETRAVEN_API_LISTEN", format!("127.0.0.1:{PORT}"))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::from(log))
        .spawn()
        .expect("start netraven serve");
    let url = format!("http://127.0.0.1:{PORT}/");
    let deadline = Instant::now() + Duration::from_secs(120);
    while std::net::TcpStream::connect(("127.0.0.1", PORT)).is_err() {
        assert!(Instant::now() < deadline, "netraven serve did not listen");
        std::thread::sleep(Duration::from_millis(200));
    }
    let status = Command::new("node")
        .arg(root.join("tests/browser/ui-scale.js"))
        .env("UI_URL", &url)
        .env("ADMIN_PASSWORD", pw)
        .env("NODE_PATH", &node_modules)
        .env("SHOTS", dir.join("shots"))
        .status();
    let _ = Command::new("kill").arg(serve.id().to_string()).status();
    let _ = serve.wait();
    match status {
        Ok(s) if s.success() => {}
        other => panic!("ui-scale.js failed: {other:?}"),
    }
}

/// A configuration of ~1 KB whose `description` line changes with every snapshot.
fn config(host: &str, rev: usize) -> String {
    let mut s = format!("hostname {host}\n! revision {rev}\n");
    for i in 0..12 {
        s.push_str(&format!(
            "interface GigabitEthernet0/{i}\n description uplink {i} rev {}\n ip address 10.{}.{}.1 255.255.255.0\n!\n",
            if i == rev % 12 { rev } else { 0 },
            i,
            rev % 250
        ));
    }
    s.push_str("ntp server 192.0.2.1\nline vty 0 4\n transport input ssh\nend\n");
    s
}

async fn seed(data: &Path, devices: usize, snaps: usize) {
    let store: Arc<dyn ServerStore> = Netraven::builder()
        .data_dir(data)
        .open_store()
        .await
        .expect("open the store");
    let mut ids = Vec::with_capacity(devices);
    for i in 0..devices {
        let mut d = Device::new(
            format!("scale-{i:05}"),
            format!("127.0.{}.{}", i / 250 % 250, i % 250 + 1),
            "cisco_ios",
        );
        d.spec.tags = vec![format!("site-{}", i % 50), "scale".into()];
        ids.push(store.create_device(&d).await.expect("device").id);
    }
    let job = store
        .create_job(&Job::backup(
            "nightly",
            Targets {
                device_ids: Vec::new(),
                tags: vec!["scale".into()],
            },
        ))
        .await
        .expect("job");
    let commit = seed_commit(&data.join("configs.git"));
    let start = Utc::now() - Days::days(snaps as i64);
    for r in 0..snaps {
        let at = start + Days::days(r as i64);
        let run = store
            .create_run(&NewRun {
                job_id: job.id,
                trigger: Trigger::Schedule,
                fire_time: Some(at),
                idempotency_key: None,
                status: RunStatus::Queued,
                message: None,
                queued_at: at,
            })
            .await
            .expect("run")
            .run;
        store.start_run(run.id, &ids, at).await.expect("start run");
        let with_results = r + RESULT_RUNS >= snaps;
        // Eight writers: SQLite takes one at a time, the rest is the store's own work.
        let chunks: Vec<Vec<(usize, i64)>> = ids
            .iter()
            .copied()
            .enumerate()
            .collect::<Vec<_>>()
            .chunks(devices.div_ceil(8).max(1))
            .map(|c| c.to_vec())
            .collect();
        let mut tasks = Vec::new();
        for chunk in chunks {
            let store = store.clone();
            let commit = commit.clone();
            tasks.push(tokio::spawn(async move {
                for (i, id) in chunk {
                    let host = format!("scale-{i:05}");
                    let meta = SnapshotMeta {
                        id: 0,
                        device_id: id,
                        hostname: host.clone(),
                        run_id: Some(run.id),
                        hash: String::new(),
                        size: 0,
                        created_at: at,
                        // Content stays in the store; the id (a real commit of the
                        // repository, which the server's git writer checks on start) only
                        // marks it committed so the writer leaves it alone.
                        commit_id: Some(commit.clone()),
                        author: None,
                    };
                    let snap = store
                        .insert_snapshot(&Snapshot {
                            meta,
                            content: config(&host, r),
                        })
                        .await
                        .expect("snapshot");
                    if with_results {
                        let failed = (i + r) % 97 == 0;
                        store
                            .record_result(&DeviceResult {
                                id: 0,
                                run_id: run.id,
                                job_id: job.id,
                                device_id: id,
                                status: if failed {
                                    DeviceStatus::Failed
                                } else {
                                    DeviceStatus::Success
                                },
                                error_kind: None,
                                message: Some(if failed { "timeout" } else { "ok" }.into()),
                                duration_ms: 800 + (i % 400) as u64,
                                credential_id: None,
                                snapshot_id: Some(snap.id),
                                changed: Some(true),
                                output: None,
                                attempt: 1,
                                started_at: at,
                                finished_at: at,
                            })
                            .await
                            .expect("result");
                    }
                }
            }));
        }
        for t in tasks {
            t.await.expect("seed task");
        }
        if !with_results {
            store
                .finish_run(run.id, RunStatus::CompletedSuccess, at, None)
                .await
                .expect("finish run");
        }
        if r % 10 == 9 {
            println!("seeded run {} of {snaps}", r + 1);
        }
    }
}

/// Creates the bare repository with one empty commit (git's CLI) and returns its id.
fn seed_commit(repo: &Path) -> String {
    let git = |args: &[&str], stdin: Option<&str>| -> String {
        let mut cmd = Command::new("git");
        cmd.arg("--git-dir")
            .arg(repo)
            .args(args)
            .env("GIT_AUTHOR_NAME", "ui-scale")
            .env("GIT_AUTHOR_EMAIL", "ui-scale@localhost")
            .env("GIT_COMMITTER_NAME", "ui-scale")
            .env("GIT_COMMITTER_EMAIL", "ui-scale@localhost")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped());
        let mut child = cmd.spawn().expect("git");
        if let Some(text) = stdin {
            use std::io::Write;
            child
                .stdin
                .take()
                .expect("stdin")
                .write_all(text.as_bytes())
                .expect("git stdin");
        }
        drop(child.stdin.take());
        let out = child.wait_with_output().expect("git");
        assert!(out.status.success(), "git {args:?} failed");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let _ = Command::new("git")
        .args(["init", "-q", "--bare", "-b", "main"])
        .arg(repo)
        .status()
        .expect("git init");
    let tree = git(&["mktree"], Some(""));
    let commit = git(&["commit-tree", &tree, "-m", "ui-scale seed"], None);
    git(&["update-ref", "refs/heads/main", &commit], None);
    commit
}
