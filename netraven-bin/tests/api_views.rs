//! The web page's read models (`/api/dashboard`, `/api/devices/recent`, `/api/jobs/preview`)
//! and the embedded page itself (assets, content types, CSP).

mod api_support;

use api_support::{PLATFORM, rig};
use netraven_core::memory::FakeBehavior;
use netraven_core::prelude::ErrorKind;
use serde_json::json;

#[tokio::test]
async fn dashboard_and_recent_results_reflect_a_run() {
    let r = rig().await;
    let op = r.operator.clone();
    let c = r
        .json(
            "POST",
            "/api/credentials",
            &r.admin,
            json!({"name": "lab", "username": "netops", "password": "pw-123456", "tags": ["core"], "create_missing_tags": true}),
        )
        .await;
    assert_eq!(c.status, 201, "{}", c.text());
    r.driver.set_config("good", "hostname good\n");
    r.driver.script(
        "bad",
        FakeBehavior {
            connect_error: Some(ErrorKind::Timeout),
            ..FakeBehavior::default()
        },
    );
    let mut ids = Vec::new();
    for h in ["good", "bad"] {
        let d = r
            .json("POST", "/api/devices", &op, json!({"hostname": h, "address": "192.0.2.1", "platform": PLATFORM, "tags": ["core"]}))
            .await;
        assert_eq!(d.status, 201, "{}", d.text());
        ids.push(d.json()["id"].as_i64().unwrap());
    }
    // Before any run: nothing ok, both stale, no results.
    let d = r.get("/api/dashboard", &r.viewer).await.json();
    assert_eq!(d["devices"]["total"], 2, "{d}");
    assert_eq!(d["devices"]["ok"], 0);
    assert_eq!(d["devices"]["stale"], 2);
    assert_eq!(d["runs_by_day"].as_array().unwrap().len(), 7);
    let recent = r
        .get(
            &format!("/api/devices/recent?ids={},{}", ids[0], ids[1]),
            &r.viewer,
        )
        .await
        .json();
    assert_eq!(recent[ids[0].to_string()]["recent"], json!([]), "{recent}");
    assert!(recent[ids[0].to_string()]["last_success"].is_null());

    let job = r
        .json("POST", "/api/jobs", &op, json!({"name": "nightly", "kind": {"type": "backup"}, "targets": {"tags": ["core"]}, "schedule": {"type": "manual"}}))
        .await;
    let job_id = job.json()["id"].as_i64().unwrap();
    let run = r
        .send(
            "POST",
            &format!("/api/jobs/{job_id}/run"),
            Some(&op),
            None,
            &[],
        )
        .await;
    assert_eq!(run.status, 202, "{}", run.text());
    r.engine.drain().await.unwrap();

    let d = r.get("/api/dashboard?days=30", &r.viewer).await.json();
    assert_eq!(d["days"], 30);
    let devices = &d["devices"];
    assert_eq!(devices["total"], 2, "{d}");
    assert_eq!(devices["ok"], 1);
    assert_eq!(devices["failing"], 1);
    assert_eq!(devices["stale"], 1);
    assert_eq!(devices["changed_24h"], 1);
    assert_eq!(d["failing"][0]["hostname"], "bad");
    assert_eq!(d["failing"][0]["error_kind"], "timeout");
    assert_eq!(d["latest_runs"].as_array().unwrap().len(), 1);
    let days = d["runs_by_day"].as_array().unwrap();
    assert_eq!(days.len(), 30);
    let today = days.last().unwrap();
    assert_eq!(today["counts"]["COMPLETED_PARTIAL_FAILURE"], 1, "{today}");
    assert!(
        today["p50_ms"].is_u64() && today["p95_ms"].is_u64(),
        "{today}"
    );
    assert_eq!(d["duration"]["runs"], 1);

    let recent = r
        .get(
            &format!("/api/devices/recent?ids={},{}&n=5", ids[0], ids[1]),
            &r.viewer,
        )
        .await
        .json();
    let good = &recent[ids[0].to_string()];
    assert_eq!(good["recent"][0]["status"], "SUCCESS", "{recent}");
    assert_eq!(good["credential"], "lab");
    assert!(good["last_failure"].is_null());
    let bad = &recent[ids[1].to_string()];
    assert_eq!(bad["last_failure"]["error_kind"], "timeout", "{recent}");
    assert!(bad["last_success"].is_null());
    assert!(!recent.to_string().contains("pw-123456"));

    for bad_query in [
        "/api/dashboard?days=0",
        "/api/dashboard?days=91",
        "/api/dashboard?stale_hours=0",
        "/api/dashboard?nope=1",
        "/api/devices/recent?ids=x",
        "/api/devices/recent?ids=1&n=21",
    ] {
        r.get(bad_query, &r.viewer).await.assert_error(422);
    }
    let many: Vec<String> = (1..=101).map(|i| i.to_string()).collect();
    r.get(
        &format!("/api/devices/recent?ids={}", many.join(",")),
        &r.viewer,
    )
    .await
    .assert_error(422);
    r.send("GET", "/api/dashboard", None, None, &[])
        .await
        .assert_error(401);
}

#[tokio::test]
async fn schedule_preview_lists_the_next_fires() {
    let r = rig().await;
    let p = r
        .json("POST", "/api/jobs/preview", &r.viewer, json!({"schedule": {"type": "cron", "expression": "30 2 * * 1-5", "timezone": "Europe/Berlin"}, "after": "2026-01-09T00:00:00Z"}))
        .await;
    assert_eq!(p.status, 200, "{}", p.text());
    let v = p.json();
    assert_eq!(v["valid"], true);
    // Friday 9 January 2026, 02:30 in Berlin (UTC+1), then the next weekdays.
    assert_eq!(
        v["fires"],
        json!([
            "2026-01-09T01:30:00Z",
            "2026-01-12T01:30:00Z",
            "2026-01-13T01:30:00Z",
            "2026-01-14T01:30:00Z",
            "2026-01-15T01:30:00Z"
        ])
    );
    let v = r
        .json("POST", "/api/jobs/preview", &r.viewer, json!({"schedule": {"type": "interval", "seconds": 3600}, "after": "2026-01-09T00:00:00Z", "count": 2}))
        .await
        .json();
    assert_eq!(
        v["fires"],
        json!(["2026-01-09T01:00:00Z", "2026-01-09T02:00:00Z"])
    );
    let v = r
        .json(
            "POST",
            "/api/jobs/preview",
            &r.viewer,
            json!({"schedule": {"type": "manual"}}),
        )
        .await
        .json();
    assert_eq!(v, json!({"valid": true, "fires": []}));
    // A schedule being typed is not a failed request: 200 with the reason.
    for s in [
        json!({"type": "cron", "expression": "61 * * * *", "timezone": "UTC"}),
        json!({"type": "cron", "expression": "0 2 * * *", "timezone": "Mars/Olympus"}),
        json!({"type": "interval", "seconds": 5}),
    ] {
        let v = r
            .json(
                "POST",
                "/api/jobs/preview",
                &r.viewer,
                json!({ "schedule": s }),
            )
            .await
            .json();
        assert_eq!(v["valid"], false, "{s} -> {v}");
        assert!(v["detail"].as_str().is_some_and(|d| !d.is_empty()));
    }
    r.json(
        "POST",
        "/api/jobs/preview",
        &r.viewer,
        json!({"schedule": {"type": "manual"}, "count": 0}),
    )
    .await
    .assert_error(422);
}

#[tokio::test]
async fn the_page_and_its_assets_are_served() {
    let r = rig().await;
    let page = r.send("GET", "/", None, None, &[]).await;
    assert_eq!(page.status, 200);
    assert!(page.content_type.starts_with("text/html"));
    assert!(page.text().contains("assets/js/app.js"));
    for (path, ct) in [
        ("/assets/vendor/vue.global.prod.js", "text/javascript"),
        ("/assets/js/core.js", "text/javascript"),
        ("/assets/app.css", "text/css"),
        ("/assets/favicon.svg", "image/svg+xml"),
        ("/assets/samples/devices.csv", "text/csv"),
    ] {
        let a = r.send("GET", path, None, None, &[]).await;
        assert_eq!(a.status, 200, "{path}");
        assert!(a.content_type.starts_with(ct), "{path}: {}", a.content_type);
    }
    assert_eq!(
        r.send("GET", "/assets/nope.js", None, None, &[])
            .await
            .status,
        404
    );
    assert_eq!(
        r.send("GET", "/assets/../Cargo.toml", None, None, &[])
            .await
            .status,
        404
    );
}
