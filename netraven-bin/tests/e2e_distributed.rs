//! End to end in distributed mode: PostgreSQL + Redis, and the real binary as separate
//! processes (`migrate`, then `api`, `scheduler` and two `worker`s). One worker is killed with
//! SIGKILL in the middle of a run; its leased devices are delivered again once their (short)
//! leases expire, every device still ends with exactly one result, and the run reaches a final
//! status. The others then stop on SIGTERM with exit status 0.
//!
//! Needs `NETRAVEN_TEST_PG_URL` (postgres://…) and `NETRAVEN_TEST_REDIS_URL` (redis://…); without
//! them the test prints a skip note, unless `CI=true`, where it fails. It uses its own
//! PostgreSQL schema and Redis key prefix, and removes both at the end (never FLUSHALL).

mod e2e_support;

use e2e_support::*;
use netraven_drivers::sim::{Faults, SimConfig, SimFleet};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

const DEVICES: usize = 40;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn distributed_run_survives_a_killed_worker() {
    let Some(pg_url) = test_env("NETRAVEN_TEST_PG_URL") else {
        return;
    };
    let Some(redis_url) = test_env("NETRAVEN_TEST_REDIS_URL") else {
        return;
    };
    let backends = Arc::new(Backends::new(pg_url, redis_url, "nrt"));
    // The body runs as a task so that the schema and keys are removed even when it fails (its
    // processes are killed when it unwinds).
    let outcome = tokio::spawn(scenario(backends.clone())).await;
    backends.clean_up().await;
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

async fn scenario(b: Arc<Backends>) {
    let started = Instant::now();
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let fleet = SimConfig {
        devices: DEVICES,
        platform: "cisco_ios".into(),
        faults: Faults {
            latency: Some(Duration::from_millis(100)),
            ..Default::default()
        },
        ..Default::default()
    };
    let fleet = SimFleet::start(fleet).await.expect("simulator");

    let addr = format!("127.0.0.1:{}", free_port());
    let env = b.process_env(&data, &addr, &[("NETRAVEN_WORKER_LEASE_SECS", "5")]);

    // Migrations first, once.
    let mut migrate = Proc::spawn("migrate", &["migrate"], &env, tmp.path());
    migrate.expect_exit_ok(Duration::from_secs(30)).await;

    let mut api_proc = Proc::spawn("api", &["api"], &env, tmp.path());
    let mut scheduler = Proc::spawn("scheduler", &["scheduler"], &env, tmp.path());
    let mut worker_a = Proc::spawn("worker-a", &["worker"], &env, tmp.path());
    let mut worker_b = Proc::spawn("worker-b", &["worker"], &env, tmp.path());
    let mut api = Api::new(&addr);
    api.wait_healthy(&mut api_proc, Duration::from_secs(20))
        .await;
    api.login_admin().await;
    let (job_id, ids) = seed_fleet(&api, &fleet, "dist").await;
    assert_eq!(ids.len(), DEVICES);
    scheduler.assert_alive();
    worker_a.assert_alive();
    worker_b.assert_alive();

    // Start the run; once some devices are done but the run is not, kill worker A.
    let run_id = api.run_job(job_id).await;
    let kill_deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let done = api
            .get(&format!("/api/job-results?run_id={run_id}&size=1"))
            .await["total"]
            .as_u64()
            .unwrap_or(0);
        let run = api.get(&format!("/api/runs/{run_id}")).await;
        let status = run["status"].as_str().unwrap_or_default().to_string();
        assert!(
            status == "QUEUED" || status == "RUNNING",
            "the run ended before a worker could be killed (too fast?): {run}"
        );
        if done >= 4 {
            worker_a.kill9();
            eprintln!(
                "killed worker-a after {done} of {DEVICES} results ({:?} in)",
                started.elapsed()
            );
            break;
        }
        assert!(
            Instant::now() < kill_deadline,
            "no results within 30 s: {run}\n{}",
            all_output(&[&api_proc, &scheduler, &worker_a, &worker_b])
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(worker_a.try_exit().is_some(), "worker-a survived SIGKILL");

    // The run still finishes, every device with exactly one result.
    let run = api.wait_run_final(run_id, Duration::from_secs(45)).await;
    let results = api
        .all_items(&format!("/api/job-results?run_id={run_id}"))
        .await;
    let report = || {
        format!(
            "{run}\n{}",
            all_output(&[&api_proc, &scheduler, &worker_a, &worker_b])
        )
    };
    assert_eq!(results.len(), DEVICES, "{}", report());
    let mut seen = HashSet::new();
    for r in &results {
        let d = r["device_id"].as_i64().expect("device_id");
        assert!(seen.insert(d), "two results for device {d}: {results:?}");
    }
    assert_eq!(
        seen,
        ids.iter().copied().collect::<HashSet<_>>(),
        "results are not for the job's devices"
    );
    assert_eq!(
        run["status"],
        "COMPLETED_SUCCESS",
        "{}\n{}",
        api.run_report(run_id).await,
        report()
    );
    assert_eq!(run["counts"]["total"], DEVICES as u64, "{run}");
    assert_eq!(run["counts"]["succeeded"], DEVICES as u64, "{run}");
    let listed = api
        .get(&format!("/api/job-results?run_id={run_id}&size=1"))
        .await;
    assert_eq!(listed["total"], DEVICES as u64, "{listed}");
    // A redelivery uses up no device attempt (results say attempt 1); the run's log says it.
    let logs = api
        .get(&format!(
            "/api/logs?run_id={run_id}&search=delivered%20again&size=100"
        ))
        .await;
    let redelivered = logs["total"].as_u64().unwrap_or(0);
    eprintln!(
        "run {} in {:?}; {redelivered} results after a redelivery",
        run["status"],
        started.elapsed()
    );
    assert!(
        redelivered >= 1,
        "no device was delivered again: worker-a was killed with nothing in flight?\n{}",
        report()
    );

    // The rest stop cleanly on SIGTERM.
    for p in [&worker_b, &scheduler, &api_proc] {
        p.term();
    }
    for p in [&mut worker_b, &mut scheduler, &mut api_proc] {
        p.expect_exit_ok(Duration::from_secs(15)).await;
    }
    let out = all_output(&[&api_proc, &scheduler, &worker_a, &worker_b]);
    for s in fleet_secrets(&fleet) {
        assert!(
            !out.contains(&s),
            "a device secret appears in process output"
        );
    }
}
