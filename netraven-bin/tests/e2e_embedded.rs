//! End to end on the embedded default: the real `netraven serve` (SQLite, in-process queue, git
//! under a temporary data directory) backing up an in-process simulated fleet through the REST
//! API: seed, run, poll, results, logs (no secrets), history, a config change and its diff,
//! then a graceful SIGTERM and commits in the git repository.

mod e2e_support;

use e2e_support::*;
use netraven_drivers::sim::{Faults, SimConfig, SimFleet};
use serde_json::Value;
use std::collections::HashMap;
use std::time::Duration;

const DEVICES: usize = 6;

/// Results of a run, by device id.
async fn results_by_device(api: &Api, run_id: i64) -> HashMap<i64, Value> {
    let items = api
        .all_items(&format!("/api/job-results?run_id={run_id}"))
        .await;
    let mut by = HashMap::new();
    for r in items {
        let d = r["device_id"].as_i64().expect("device_id");
        assert!(
            by.insert(d, r.clone()).is_none(),
            "two results for device {d} in run {run_id}"
        );
    }
    by
}

async fn history_len(api: &Api, device_id: i64) -> u64 {
    api.get(&format!("/api/configs/{device_id}/history")).await["total"]
        .as_u64()
        .expect("history total")
}

/// `--version` names the commit; `migrate --check` reports pending migrations (exit 1) without
/// applying them, and none (exit 0) after `migrate`.
#[test]
fn version_and_migration_check() {
    let out = std::process::Command::new(BIN)
        .arg("--version")
        .output()
        .expect("run --version");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert_eq!(
        text.trim(),
        format!("netraven {}", netraven_server::VERSION),
        "{text}"
    );
    let tmp = tempfile::tempdir().expect("tempdir");
    let run = |args: &[&str]| {
        std::process::Command::new(BIN)
            .args(args)
            .env("NETRAVEN_DATA_DIR", tmp.path())
            .env_remove("NETRAVEN_DATABASE_URL")
            .output()
            .expect("run netraven")
    };
    let check = run(&["migrate", "--check"]);
    let text = String::from_utf8_lossy(&check.stdout);
    assert_eq!(check.status.code(), Some(1), "{text}");
    assert!(text.contains("pending migrations: 1"), "{text}");
    let again = run(&["migrate", "--check"]);
    assert_eq!(again.status.code(), Some(1), "--check applied something");
    assert!(run(&["migrate"]).status.success());
    let check = run(&["migrate", "--check"]);
    let text = String::from_utf8_lossy(&check.stdout);
    assert_eq!(check.status.code(), Some(0), "{text}");
    assert!(text.contains("no migrations pending"), "{text}");
}

/// The inventory `netraven sim` writes imports with `netraven import --from csv` (credentials
/// from its login columns) into a fresh data directory; `serve` then backs every device up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sim_inventory_imports_through_the_cli() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let fleet = SimFleet::start(SimConfig {
        devices: 3,
        ..Default::default()
    })
    .await
    .expect("simulator");
    let inv = tmp.path().join("inv.csv");
    fleet.write_inventory(&inv).expect("inventory");
    let out = std::process::Command::new(BIN)
        .args(["import", "--from", "csv"])
        .arg(&inv)
        .env("NETRAVEN_DATA_DIR", &data)
        .env_remove("NETRAVEN_DATABASE_URL")
        .output()
        .expect("run netraven import");
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("3 devices created"), "{text}");
    assert!(text.contains("credentials: 3 created"), "{text}");
    for s in fleet_secrets(&fleet) {
        assert!(!text.contains(s.as_str()), "import output shows a secret");
    }
    let addr = format!("127.0.0.1:{}", free_port());
    let env = vec![
        ("NETRAVEN_DATA_DIR".to_string(), data.display().to_string()),
        ("NETRAVEN_API_LISTEN".to_string(), addr.clone()),
        ("NETRAVEN_ADMIN_PASSWORD".to_string(), ADMIN_PASSWORD.into()),
    ];
    let mut server = Proc::spawn("serve", &["serve"], &env, tmp.path());
    let mut api = Api::new(&addr);
    api.wait_healthy(&mut server, Duration::from_secs(20)).await;
    api.login_admin().await;
    let job = api
        .post(
            "/api/jobs",
            serde_json::json!({"name": "imported", "kind": {"type": "backup"},
                "targets": {"tags": ["sim"]}, "schedule": {"type": "manual"}}),
            201,
        )
        .await;
    let run_id = api.run_job(job["id"].as_i64().expect("job id")).await;
    let run = api.wait_run_final(run_id, Duration::from_secs(60)).await;
    assert_eq!(
        run["status"],
        "COMPLETED_SUCCESS",
        "{run}\n{}",
        api.run_report(run_id).await
    );
    assert_eq!(run["counts"]["total"], 3, "{run}");
    server.term();
    server.expect_exit_ok(Duration::from_secs(10)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_seed_lifecycle() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let fleet = SimFleet::start(SimConfig {
        devices: DEVICES,
        platforms: vec![
            "cisco_ios".into(),
            "arista_eos".into(),
            "juniper_junos".into(),
        ],
        ..Default::default()
    })
    .await
    .expect("simulator");
    let secrets = fleet_secrets(&fleet);

    let addr = format!("127.0.0.1:{}", free_port());
    let env = vec![
        ("NETRAVEN_DATA_DIR".to_string(), data.display().to_string()),
        ("NETRAVEN_API_LISTEN".to_string(), addr.clone()),
        ("NETRAVEN_ADMIN_PASSWORD".to_string(), ADMIN_PASSWORD.into()),
        ("NETRAVEN_SCHEDULER_TICK_SECS".to_string(), "1".into()),
    ];
    let mut server = Proc::spawn("serve", &["serve"], &env, tmp.path());
    let mut api = Api::new(&addr);
    api.wait_healthy(&mut server, Duration::from_secs(20)).await;
    api.login_admin().await;

    let (job_id, ids) = seed_fleet(&api, &fleet, "e2e").await;
    assert_eq!(ids.len(), DEVICES);
    for c in api.all_items("/api/credentials").await {
        let text = c.to_string();
        assert!(
            secrets.iter().all(|s| !text.contains(s.as_str())),
            "a credential shows a secret: {text}"
        );
    }

    // First run: every device backed up, changed (first snapshot).
    let run1 = api.run_job(job_id).await;
    let run = api.wait_run_final(run1, Duration::from_secs(30)).await;
    assert_eq!(
        run["status"],
        "COMPLETED_SUCCESS",
        "{run}\n{}",
        api.run_report(run1).await
    );
    assert_eq!(run["counts"]["total"], DEVICES as u64, "{run}");
    assert_eq!(run["counts"]["succeeded"], DEVICES as u64, "{run}");
    let results = results_by_device(&api, run1).await;
    assert_eq!(results.len(), DEVICES, "{results:?}");
    for id in &ids {
        let r = &results[id];
        assert_eq!(r["status"], "SUCCESS", "{r}");
        assert!(r["snapshot_id"].is_i64(), "{r}");
    }

    // Logs exist and show no password or enable secret.
    let logs = api
        .all_items(&format!("/api/logs?run_id={run1}&order=asc"))
        .await;
    assert!(logs.len() > DEVICES, "too few logs: {logs:?}");
    assert!(
        logs.iter()
            .any(|l| l["message"].as_str().unwrap_or("").contains("run finished")),
        "no run summary in {logs:?}"
    );
    for id in &ids {
        assert!(
            logs.iter().any(|l| l["device_id"] == *id),
            "no log entry for device {id}"
        );
    }
    let text = serde_json::to_string(&logs).unwrap();
    for s in &secrets {
        assert!(!text.contains(s.as_str()), "a secret appears in the logs");
    }

    // One snapshot per device; its content is redacted.
    let mut first_snapshot = HashMap::new();
    for (i, id) in ids.iter().enumerate() {
        let h = api.get(&format!("/api/configs/{id}/history")).await;
        assert_eq!(h["total"], 1, "device {id}: {h}");
        let snap_id = h["items"][0]["id"].as_i64().expect("snapshot id");
        first_snapshot.insert(*id, snap_id);
        let snap = api.get(&format!("/api/configs/snapshots/{snap_id}")).await;
        let content = snap["content"].as_str().expect("content");
        assert!(!content.is_empty());
        for s in fleet.devices()[i].secrets() {
            assert!(
                !content.contains(&s),
                "device {id}: planted secret '{s}' not redacted"
            );
        }
    }

    // The config of device 0 changes on every fetch from now on.
    let changing = ids[0];
    fleet.devices()[0].set_faults(Faults {
        change_every: Some(1),
        ..Default::default()
    });
    let run2 = api.run_job(job_id).await;
    assert_ne!(run2, run1);
    let run = api.wait_run_final(run2, Duration::from_secs(30)).await;
    assert_eq!(run["status"], "COMPLETED_SUCCESS", "{run}");
    assert_eq!(run["counts"]["changed"], 1, "{run}");
    assert_eq!(run["counts"]["unchanged"], DEVICES as u64 - 1, "{run}");
    let results = results_by_device(&api, run2).await;
    assert_eq!(results.len(), DEVICES);
    for id in &ids {
        assert_eq!(
            results[id]["changed"],
            *id == changing,
            "device {id}: {}",
            results[id]
        );
        assert_eq!(
            history_len(&api, *id).await,
            if *id == changing { 2 } else { 1 },
            "history of device {id}"
        );
    }
    let h = api.get(&format!("/api/configs/{changing}/history")).await;
    let new_id = h["items"][0]["id"].as_i64().unwrap();
    let old_id = h["items"][1]["id"].as_i64().unwrap();
    assert_eq!(old_id, first_snapshot[&changing], "{h}");
    let diff = api
        .get(&format!("/api/configs/diff?from={old_id}&to={new_id}"))
        .await;
    assert_eq!(diff["changed"], true, "{diff}");
    let d = diff["diff"].as_str().expect("diff text");
    assert!(
        d.lines()
            .any(|l| l.starts_with('+') && !l.starts_with("+++")),
        "no added line in the diff: {d}"
    );

    // Third run: the same device changes again, the others stay unchanged.
    let run3 = api.run_job(job_id).await;
    let run = api.wait_run_final(run3, Duration::from_secs(30)).await;
    assert_eq!(run["status"], "COMPLETED_SUCCESS", "{run}");
    assert_eq!(run["counts"]["changed"], 1, "{run}");
    let results = results_by_device(&api, run3).await;
    for id in &ids {
        assert_eq!(results[id]["changed"], *id == changing, "{}", results[id]);
        assert_eq!(
            history_len(&api, *id).await,
            if *id == changing { 3 } else { 1 },
            "history of device {id}"
        );
    }

    // Graceful shutdown: SIGTERM, exit 0 within a few seconds.
    server.term();
    server.expect_exit_ok(Duration::from_secs(10)).await;
    let out = server.output();
    for s in &secrets {
        assert!(
            !out.contains(s.as_str()),
            "a secret appears in the server output"
        );
    }

    // The snapshots are committed to the git repository.
    let git_dir = data.join("configs.git");
    let log = std::process::Command::new("git")
        .arg("--git-dir")
        .arg(&git_dir)
        .args(["log", "--oneline"])
        .output()
        .expect("run git");
    assert!(
        log.status.success(),
        "git log failed: {}",
        String::from_utf8_lossy(&log.stderr)
    );
    let commits = String::from_utf8_lossy(&log.stdout).lines().count();
    assert!(commits >= 1, "no commits in {}", git_dir.display());
    // Logs written to a file carry no colour codes, and each commit is logged once.
    assert!(
        !out.contains('\u{1b}'),
        "ANSI escape codes in the log file:\n{out}"
    );
    let logged = out
        .lines()
        .filter(|l| l.contains("committed snapshots to git"))
        .count();
    assert_eq!(logged, commits, "one log line per git commit:\n{out}");
    let files = std::process::Command::new("git")
        .arg("--git-dir")
        .arg(&git_dir)
        .args(["ls-tree", "-r", "--name-only", "HEAD"])
        .output()
        .expect("run git");
    let files = String::from_utf8_lossy(&files.stdout);
    for dev in fleet.devices() {
        assert!(
            files.contains(dev.hostname()),
            "{} missing from git HEAD: {files}",
            dev.hostname()
        );
    }
}
