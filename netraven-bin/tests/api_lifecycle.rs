//! The seed lifecycle through the API on the in-memory parts with a FakeDriver: credentials,
//! tags, devices, a job; run it (idempotently); read the run, results, logs (list and SSE),
//! history, a diff after the config changed, search, status and metrics.

mod api_support;

use api_support::{PLATFORM, rig, rig_on};
use serde_json::json;
use std::sync::Arc;

#[tokio::test]
async fn run_through_the_api() {
    lifecycle(rig().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_through_the_api_on_sqlite() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cipher = Arc::new(netraven_store::cipher::AesGcmCipher::from_key(
        &netraven_store::cipher::KeyMaterial::generate(),
    ));
    let store = netraven_store::sql::SqliteStore::open(dir.path().join("netraven.db"), cipher)
        .await
        .expect("sqlite");
    lifecycle(rig_on(Arc::new(store)).await).await;
}

/// `/api/ready` answers 503 naming the pending migrations when the database lacks one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_follows_the_schema() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cipher = Arc::new(netraven_store::cipher::AesGcmCipher::from_key(
        &netraven_store::cipher::KeyMaterial::generate(),
    ));
    let store = netraven_store::sql::SqliteStore::open(dir.path().join("netraven.db"), cipher)
        .await
        .expect("sqlite");
    let pool = store.pool().clone();
    let r = rig_on(Arc::new(store)).await;
    let ready = r.send("GET", "/api/ready", None, None, &[]).await;
    assert_eq!(ready.status, 200, "{}", ready.text());
    // As if this build were newer than the database: its latest migration is not applied.
    let latest: i64 = sqlx::query_scalar("SELECT max(version) FROM netraven_migrations")
        .fetch_one(&pool)
        .await
        .expect("latest");
    sqlx::query("DELETE FROM netraven_migrations WHERE version = $1")
        .bind(latest)
        .execute(&pool)
        .await
        .expect("forget a migration");
    let ready = r.send("GET", "/api/ready", None, None, &[]).await;
    assert_eq!(ready.status, 503, "{}", ready.text());
    let v = ready.json();
    assert_eq!(v["status"], "not_ready", "{v}");
    assert_eq!(v["store"]["error"], "migrations_pending", "{v}");
    assert_eq!(v["store"]["pending"], json!([latest]), "{v}");
    assert_eq!(v["queue"]["ok"], true, "{v}");
    // Liveness stays cheap and green.
    assert_eq!(
        r.send("GET", "/api/health", None, None, &[]).await.status,
        200
    );
}

async fn lifecycle(r: api_support::Rig) {
    let op = r.operator.clone();
    assert_eq!(
        r.json("POST", "/api/tags", &op, json!({"name": "core"}))
            .await
            .status,
        201
    );
    let c = r
        .json(
            "POST",
            "/api/credentials",
            &r.admin,
            json!({"name": "lab", "username": "netops", "password": "pw-123456", "tags": ["core"]}),
        )
        .await;
    assert_eq!(c.status, 201, "{}", c.text());
    let mut ids = Vec::new();
    for h in ["r1", "r2", "r3"] {
        r.driver.set_config(
            h,
            format!("hostname {h}\ninterface Gi0/1\n description uplink\n"),
        );
        let d = r
            .json("POST", "/api/devices", &op, json!({"hostname": h, "address": "192.0.2.1", "platform": PLATFORM, "tags": ["core"]}))
            .await;
        assert_eq!(d.status, 201, "{}", d.text());
        ids.push(d.json()["id"].as_i64().unwrap());
    }
    let job = r
        .json("POST", "/api/jobs", &op, json!({"name": "nightly", "kind": {"type": "backup"}, "targets": {"tags": ["core"]}, "schedule": {"type": "manual"}}))
        .await;
    assert_eq!(job.status, 201, "{}", job.text());
    let job_id = job.json()["id"].as_i64().unwrap();
    r.json(
        "POST",
        "/api/jobs",
        &op,
        json!({"name": "nightly", "kind": {"type": "backup"}, "targets": {"tags": ["core"]}, "schedule": {"type": "manual"}}),
    )
    .await
    .assert_error(409);

    // Run now, twice with the same key: one run.
    let run_path = format!("/api/jobs/{job_id}/run");
    let a = r
        .send(
            "POST",
            &run_path,
            Some(&op),
            None,
            &[("idempotency-key", "k-1")],
        )
        .await;
    assert_eq!(a.status, 202, "{}", a.text());
    let b = r
        .send(
            "POST",
            &run_path,
            Some(&op),
            None,
            &[("idempotency-key", "k-1")],
        )
        .await;
    assert_eq!(b.status, 202);
    assert_eq!(a.json()["run_id"], b.json()["run_id"]);
    assert_eq!(a.json()["created"], true);
    assert_eq!(b.json()["created"], false);
    let run_id = a.json()["run_id"].as_i64().unwrap();
    r.send("POST", &run_path, Some(&r.viewer), None, &[])
        .await
        .assert_error(403);

    // Follow the logs live while the engine works.
    let app = r.app.clone();
    let viewer = r.viewer.clone();
    let stream = tokio::spawn(async move {
        use tower::ServiceExt;
        let req = axum::http::Request::get(format!("/api/logs/stream?run_id={run_id}"))
            .header("authorization", format!("Bearer {viewer}"))
            .body(axum::body::Body::empty())
            .unwrap();
        let resp = app.oneshot(req).await.unwrap();
        assert_eq!(resp.status(), 200);
        let body = tokio::time::timeout(
            std::time::Duration::from_secs(30),
            axum::body::to_bytes(resp.into_body(), 16 * 1024 * 1024),
        )
        .await
        .expect("the stream ends when the run is final")
        .unwrap();
        String::from_utf8_lossy(&body).into_owned()
    });
    r.engine.drain().await.unwrap();

    let run = r
        .get(&format!("/api/runs/{run_id}"), &r.viewer)
        .await
        .json();
    assert_eq!(run["status"], "COMPLETED_SUCCESS", "{run}");
    assert_eq!(run["counts"]["total"], 3);
    assert_eq!(run["counts"]["changed"], 3);
    let runs = r
        .get(
            &format!("/api/runs?job_id={job_id}&status=COMPLETED_SUCCESS"),
            &r.viewer,
        )
        .await
        .json();
    assert_eq!(runs["total"], 1);
    let results = r
        .get(
            &format!("/api/job-results?run_id={run_id}&status=SUCCESS"),
            &r.viewer,
        )
        .await
        .json();
    assert_eq!(results["total"], 3, "{results}");
    let logs = r
        .get(&format!("/api/logs?run_id={run_id}&order=asc"), &r.viewer)
        .await
        .json();
    assert!(logs["total"].as_u64().unwrap() >= 4, "{logs}");
    let warn = r
        .get(&format!("/api/logs?run_id={run_id}&level=error"), &r.viewer)
        .await
        .json();
    assert_eq!(warn["total"], 0, "{warn}");

    let sse = stream.await.unwrap();
    assert!(sse.contains("event: log"), "{sse}");
    assert!(sse.contains("event: end"), "{sse}");
    assert!(sse.contains("COMPLETED_SUCCESS"), "{sse}");

    // The config of r1 changes; run again; history and diff show it.
    r.driver.set_config(
        "r1",
        "hostname r1\ninterface Gi0/1\n description core uplink\n",
    );
    let c = r.send("POST", &run_path, Some(&op), None, &[]).await;
    assert_eq!(c.status, 202);
    assert_ne!(c.json()["run_id"], run_id);
    r.engine.drain().await.unwrap();
    let hist = r
        .get(&format!("/api/configs/{}/history", ids[0]), &r.viewer)
        .await
        .json();
    assert_eq!(hist["total"], 2, "{hist}");
    let new_id = hist["items"][0]["id"].as_i64().unwrap();
    let old_id = hist["items"][1]["id"].as_i64().unwrap();
    let snap = r
        .get(&format!("/api/configs/snapshots/{new_id}"), &r.viewer)
        .await
        .json();
    assert!(snap["content"].as_str().unwrap().contains("core uplink"));
    let diff = r
        .get(
            &format!("/api/configs/diff?from={old_id}&to={new_id}"),
            &r.viewer,
        )
        .await
        .json();
    assert_eq!(diff["changed"], true);
    let text = diff["diff"].as_str().unwrap();
    assert!(text.contains("- description uplink"), "{text}");
    assert!(text.contains("+ description core uplink"), "{text}");
    let unchanged = r
        .get(&format!("/api/configs/{}/history", ids[1]), &r.viewer)
        .await
        .json();
    assert_eq!(unchanged["total"], 1);
    let found = r
        .get("/api/configs/search?q=CORE%20UPLINK", &r.viewer)
        .await
        .json();
    assert_eq!(found["total"], 1, "{found}");
    assert_eq!(found["items"][0]["device_id"], ids[0]);

    // Status and metrics.
    let st = r.get("/api/system/status", &r.viewer).await.json();
    assert_eq!(st["status"], "ok", "{st}");
    assert_eq!(st["workers"]["devices_ok"], 6);
    let m = r.send("GET", "/metrics", None, None, &[]).await;
    assert_eq!(m.status, 200);
    let m = m.text();
    assert!(
        m.contains("netraven_runs_finished_total{status=\"COMPLETED_SUCCESS\"} 2"),
        "{m}"
    );
    assert!(
        m.contains("netraven_device_duration_seconds_count 6"),
        "{m}"
    );
    assert!(m.contains("netraven_queue_tasks{state=\"ready\"} 0"), "{m}");
    let h = r.send("GET", "/api/health", None, None, &[]).await.json();
    assert_eq!(h["status"], "ok");
    assert_eq!(h["version"], env!("CARGO_PKG_VERSION"), "{h}");
    assert_eq!(h["commit"], netraven_server::GIT_COMMIT, "{h}");
    let ready = r.send("GET", "/api/ready", None, None, &[]).await;
    assert_eq!(ready.status, 200, "{}", ready.text());
    assert_eq!(ready.json()["status"], "ready");
    assert_eq!(st["schema"]["pending"], json!([]), "{st}");
    assert_eq!(st["schema"]["applied"], st["schema"]["latest"], "{st}");

    // Deleting a device keeps its history; deleting the job keeps its runs.
    assert_eq!(
        r.send(
            "DELETE",
            &format!("/api/devices/{}", ids[2]),
            Some(&op),
            None,
            &[]
        )
        .await
        .status,
        204
    );
    assert_eq!(
        r.get(&format!("/api/configs/{}/history", ids[2]), &r.viewer)
            .await
            .json()["total"],
        1
    );
    assert_eq!(
        r.send(
            "DELETE",
            &format!("/api/jobs/{job_id}"),
            Some(&op),
            None,
            &[]
        )
        .await
        .status,
        204
    );
    assert_eq!(
        r.get(&format!("/api/runs/{run_id}"), &r.viewer)
            .await
            .status,
        200
    );
}
