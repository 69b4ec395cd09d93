//! `POST /api/devices/{id}/backup`: a backup of one device for other tools, recorded with
//! trigger `api` on a run of the device's own system job.

mod api_support;

use api_support::{PLATFORM, rig};
use serde_json::json;

#[tokio::test]
async fn a_device_backup_is_queued_once_recorded_and_limited() {
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
    let mut ids = Vec::new();
    for h in ["r1", "r2"] {
        r.driver.set_config(h, format!("hostname {h}\n"));
        let d = r
            .json("POST", "/api/devices", &op, json!({"hostname": h, "address": "192.0.2.1", "platform": PLATFORM, "tags": ["core"]}))
            .await;
        assert_eq!(d.status, 201, "{}", d.text());
        ids.push(d.json()["id"].as_i64().unwrap());
    }
    let path = format!("/api/devices/{}/backup", ids[1]);
    r.send("POST", &path, Some(&r.viewer), None, &[])
        .await
        .assert_error(403);
    r.send("POST", "/api/devices/99999/backup", Some(&op), None, &[])
        .await
        .assert_error(404);
    let a = r.send("POST", &path, Some(&op), None, &[]).await;
    assert_eq!(a.status, 202, "{}", a.text());
    let a = a.json();
    assert_eq!(a["created"], true, "{a}");
    // Still queued: the same run comes back.
    let b = r.send("POST", &path, Some(&op), None, &[]).await.json();
    assert_eq!(b["created"], false, "{b}");
    assert_eq!(a["run_id"], b["run_id"]);
    r.engine.drain().await.unwrap();
    let run = r
        .get(&format!("/api/runs/{}", a["run_id"]), &r.viewer)
        .await
        .json();
    assert_eq!(run["status"], "COMPLETED_SUCCESS", "{run}");
    assert_eq!(run["trigger"], "api", "{run}");
    assert_eq!(run["counts"]["total"], 1, "{run}");
    assert!(
        run["message"].as_str().unwrap_or("").contains("operator"),
        "{run}"
    );
    // Only that device was backed up.
    let results = r
        .get(
            &format!("/api/job-results?run_id={}", a["run_id"]),
            &r.viewer,
        )
        .await
        .json();
    assert_eq!(results["total"], 1, "{results}");
    assert_eq!(results["items"][0]["device_id"], ids[1], "{results}");
    // The device's job is a system job: not deletable through the API.
    let job = r
        .get(&format!("/api/jobs/{}", a["job_id"]), &r.viewer)
        .await
        .json();
    assert_eq!(job["name"], format!("device-backup-{}", ids[1]), "{job}");
    assert_eq!(job["system"], true, "{job}");
    r.send(
        "DELETE",
        &format!("/api/jobs/{}", a["job_id"]),
        Some(&r.admin),
        None,
        &[],
    )
    .await
    .assert_error(409);
    // Finished: the next request makes a new run of the same job.
    let c = r.send("POST", &path, Some(&op), None, &[]).await.json();
    assert_eq!(c["created"], true, "{c}");
    assert_eq!(c["job_id"], a["job_id"]);
    assert_ne!(c["run_id"], a["run_id"]);
    // The manual-run limit per user covers these requests too (3 made so far).
    let mut limited = None;
    for i in 0..40 {
        let resp = r.send("POST", &path, Some(&op), None, &[]).await;
        if resp.status == 429 {
            limited = Some(i);
            assert!(resp.headers.contains_key("retry-after"));
            break;
        }
        assert_eq!(resp.status, 202, "{}", resp.text());
    }
    assert_eq!(
        limited,
        Some(27),
        "the 31st request of the minute is refused"
    );
}
