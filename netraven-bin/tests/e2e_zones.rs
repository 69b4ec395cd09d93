//! End to end with zones (remote pollers): PostgreSQL + Redis and the real binary as separate
//! processes — `api`, `scheduler`, a central `worker` (the default zone: it starts runs) and
//! one `worker --zone a` and `worker --zone b`. Simulated devices in zone `a` (through a tag's
//! zone) and zone `b` (their own zone): a run over both completes, and each device's result was
//! recorded by its own zone's worker (the source of its "device succeeded" log line, matched
//! with the worker ids `/api/system/status` lists per zone). Then a run over devices of zone
//! `c`, which has no worker: with `worker.zone_timeout_secs` = 3 they fail with `no_worker`
//! (one result each) instead of hanging, and the status shows `c` as `no_worker`.
//!
//! Needs `NETRAVEN_TEST_PG_URL` and `NETRAVEN_TEST_REDIS_URL`; without them the test prints a
//! skip note, unless `CI=true`, where it fails. Own schema and key prefix, removed at the end.

mod e2e_support;

use e2e_support::*;
use netraven_drivers::sim::{SimConfig, SimFleet};
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Devices per zone.
const PER_ZONE: usize = 5;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_zones_devices_are_backed_up_by_its_own_worker() {
    let Some(pg_url) = test_env("NETRAVEN_TEST_PG_URL") else {
        return;
    };
    let Some(redis_url) = test_env("NETRAVEN_TEST_REDIS_URL") else {
        return;
    };
    let backends = Arc::new(Backends::new(pg_url, redis_url, "nrz"));
    let outcome = tokio::spawn(scenario(backends.clone())).await;
    backends.clean_up().await;
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

/// The zones `/api/system/status` lists: zone name (`""` for the default zone) → its entry.
async fn zones(api: &Api) -> HashMap<String, Value> {
    let status = api.get("/api/system/status").await;
    status["zones"]
        .as_array()
        .unwrap_or_else(|| panic!("no zones in the status: {status}"))
        .iter()
        .map(|z| (z["zone"].as_str().unwrap_or("").to_string(), z.clone()))
        .collect()
}

async fn job_over(api: &Api, name: &str, ids: &[i64]) -> i64 {
    let job = api
        .post(
            "/api/jobs",
            json!({
                "name": name,
                "kind": {"type": "backup"},
                "targets": {"device_ids": ids},
                "schedule": {"type": "manual"},
            }),
            201,
        )
        .await;
    job["id"].as_i64().expect("job id")
}

async fn scenario(b: Arc<Backends>) {
    let started = Instant::now();
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let fleet = SimFleet::start(SimConfig {
        devices: 3 * PER_ZONE,
        platform: "cisco_ios".into(),
        ..Default::default()
    })
    .await
    .expect("simulator");

    let addr = format!("127.0.0.1:{}", free_port());
    let env = b.process_env(&data, &addr, &[("NETRAVEN_ZONE_TIMEOUT_SECS", "3")]);
    let mut env_b = env.clone();
    env_b.push(("NETRAVEN_WORKER_ZONE".into(), "b".into()));

    let mut migrate = Proc::spawn("migrate", &["migrate"], &env, tmp.path());
    migrate.expect_exit_ok(Duration::from_secs(30)).await;
    let mut api_proc = Proc::spawn("api", &["api"], &env, tmp.path());
    let mut scheduler = Proc::spawn("scheduler", &["scheduler"], &env, tmp.path());
    let mut central = Proc::spawn("worker-central", &["worker"], &env, tmp.path());
    // Zone a by the command line, zone b by the environment.
    let mut worker_a = Proc::spawn("worker-a", &["worker", "--zone", "a"], &env, tmp.path());
    let mut worker_b = Proc::spawn("worker-b", &["worker"], &env_b, tmp.path());
    let mut api = Api::new(&addr);
    api.wait_healthy(&mut api_proc, Duration::from_secs(20))
        .await;
    api.login_admin().await;
    let (_, ids) = seed_fleet(&api, &fleet, "zones").await;
    assert_eq!(ids.len(), 3 * PER_ZONE);
    let report = |procs: &[&Proc]| all_output(procs);

    // Zone a through a tag, zone b and c as the devices' own zone.
    let tag = api
        .post("/api/tags", json!({"name": "site-a", "zone": "a"}), 201)
        .await;
    assert_eq!(tag["zone"], "a", "{tag}");
    let mut zone_of: HashMap<i64, &str> = HashMap::new();
    for (i, &id) in ids.iter().enumerate() {
        let (patch, zone) = match i / PER_ZONE {
            0 => (json!({"tags": ["zones", "site-a"]}), "a"),
            1 => (json!({"zone": "b"}), "b"),
            _ => (json!({"zone": "c"}), "c"),
        };
        let r = api
            .send("PATCH", &format!("/api/devices/{id}"), Some(patch))
            .await;
        assert_eq!(r.status, 200, "PATCH device {id}: {}", r.text);
        if zone != "a" {
            assert_eq!(r.body["zone"], zone, "{}", r.text);
        }
        zone_of.insert(id, zone);
    }

    // Every worker reports its heartbeat: the status lists each zone's one live worker.
    let deadline = Instant::now() + Duration::from_secs(30);
    let zone_workers = loop {
        let z = zones(&api).await;
        let live = |name: &str| z.get(name).and_then(|v| v["live_workers"].as_u64()) == Some(1);
        if live("") && live("a") && live("b") {
            break z;
        }
        assert!(
            Instant::now() < deadline,
            "workers not live in the status within 30 s: {z:?}\n{}",
            report(&[&api_proc, &scheduler, &central, &worker_a, &worker_b])
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let worker_of = |zone: &str| -> String {
        zone_workers[zone]["workers"][0]
            .as_str()
            .unwrap_or_else(|| panic!("no worker id for zone {zone:?}: {zone_workers:?}"))
            .to_string()
    };
    let (w_a, w_b, w_central) = (worker_of("a"), worker_of("b"), worker_of(""));
    assert!(w_a != w_b && w_a != w_central && w_b != w_central);

    // A run over zones a and b completes; each device by its own zone's worker.
    let ab: Vec<i64> = ids[..2 * PER_ZONE].to_vec();
    let job = job_over(&api, "zones-ab", &ab).await;
    let run_id = api.run_job(job).await;
    let run = api.wait_run_final(run_id, Duration::from_secs(60)).await;
    let procs = [&api_proc, &scheduler, &central, &worker_a, &worker_b];
    assert_eq!(
        run["status"],
        "COMPLETED_SUCCESS",
        "{run}\n{}\n{}",
        api.run_report(run_id).await,
        report(&procs)
    );
    let results = api
        .all_items(&format!("/api/job-results?run_id={run_id}"))
        .await;
    assert_eq!(results.len(), 2 * PER_ZONE, "{results:?}");
    let mut seen = HashSet::new();
    let mut by_worker: HashMap<String, usize> = HashMap::new();
    for r in &results {
        let d = r["device_id"].as_i64().expect("device_id");
        assert!(seen.insert(d), "two results for device {d}");
        let logs = api
            .get(&format!(
                "/api/logs?run_id={run_id}&device_id={d}&search=device%20succeeded&size=10"
            ))
            .await;
        let items = logs["items"].as_array().expect("items");
        assert_eq!(items.len(), 1, "device {d}: {logs}");
        let source = items[0]["source"].as_str().unwrap_or_default();
        let want = match zone_of[&d] {
            "a" => &w_a,
            _ => &w_b,
        };
        assert_eq!(
            source,
            format!("worker:{want}"),
            "device {d} of zone {} was backed up by another zone's worker",
            zone_of[&d]
        );
        *by_worker.entry(source.to_string()).or_default() += 1;
    }
    assert_eq!(by_worker.len(), 2, "{by_worker:?}");
    eprintln!(
        "zones a+b: run {} in {:?}, results by worker {by_worker:?}",
        run["status"],
        started.elapsed()
    );

    // Zone c has no worker: its devices fail with no_worker after the (3 s) timeout.
    let c: Vec<i64> = ids[2 * PER_ZONE..].to_vec();
    let job = job_over(&api, "zones-c", &c).await;
    let t = Instant::now();
    let run_id = api.run_job(job).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let z = zones(&api).await;
        if let Some(zc) = z.get("c")
            && zc["state"] == "no_worker"
            && zc["live_workers"] == 0
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "zone c not shown as no_worker: {z:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let run = api.wait_run_final(run_id, Duration::from_secs(45)).await;
    eprintln!("zone c: run {} after {:?}", run["status"], t.elapsed());
    assert_eq!(run["status"], "COMPLETED_FAILURE", "{run}");
    let results = api
        .all_items(&format!("/api/job-results?run_id={run_id}"))
        .await;
    assert_eq!(
        results.len(),
        PER_ZONE,
        "one result per device: {results:?}"
    );
    for r in &results {
        assert_eq!(r["status"], "FAILED", "{r}");
        assert_eq!(r["error_kind"], "no_worker", "{r}");
    }

    // The rest stop cleanly on SIGTERM.
    for p in [&central, &worker_a, &worker_b, &scheduler, &api_proc] {
        p.term();
    }
    for p in [
        &mut central,
        &mut worker_a,
        &mut worker_b,
        &mut scheduler,
        &mut api_proc,
    ] {
        p.expect_exit_ok(Duration::from_secs(15)).await;
    }
}
