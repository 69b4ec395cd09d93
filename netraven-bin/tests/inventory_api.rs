//! `POST /api/inventory/sync`: a dry run previews without saving, the sync saves, a second sync
//! reports no change; operators and viewers may not (a sync moves devices and creates
//! credentials: an admin's rights).

mod api_support;

use api_support::rig;
use serde_json::json;

#[tokio::test]
async fn preview_then_sync_then_nothing_to_do() {
    let r = rig().await;
    let body = |dry: bool| {
        json!({
            "from": "nornir",
            "dry_run": dry,
            "content": "r1:\n  hostname: 192.0.2.1\n  groups: [edge]\nr2:\n  hostname: 192.0.2.2\n  port: 2222\n  groups: [edge]\n",
            "groups": "edge:\n  platform: ios\n",
            "owner_tag": "nornir",
        })
    };
    let preview = r
        .json("POST", "/api/inventory/sync", &r.admin, body(true))
        .await;
    assert_eq!(preview.status, 200, "{}", preview.text());
    let p = preview.json();
    assert_eq!(p["added"], json!(["r1", "r2"]), "{p}");
    assert_eq!(p["dry_run"], true);
    assert_eq!(r.device_count().await, 0, "the preview saved nothing");

    let done = r
        .json("POST", "/api/inventory/sync", &r.admin, body(false))
        .await
        .json();
    assert_eq!(done["added"], json!(["r1", "r2"]));
    let d = r.get("/api/devices?hostname=r2", &r.viewer).await.json();
    let r2 = &d["items"][0];
    assert_eq!(
        (r2["port"].as_u64(), r2["platform"].as_str()),
        (Some(2222), Some("cisco_ios")),
        "{d}"
    );
    assert_eq!(r2["tags"], json!(["edge", "nornir"]));

    let again = r
        .json("POST", "/api/inventory/sync", &r.admin, body(false))
        .await
        .json();
    assert_eq!(
        (
            again["added"].as_array().unwrap().len(),
            again["unchanged"].as_u64()
        ),
        (0, Some(2)),
        "{again}"
    );

    for who in [&r.viewer, &r.operator] {
        r.json("POST", "/api/inventory/sync", who, body(true))
            .await
            .assert_error(403);
    }
    r.json(
        "POST",
        "/api/inventory/sync",
        &r.admin,
        json!({"from": "nope"}),
    )
    .await
    .assert_error(422);
}
