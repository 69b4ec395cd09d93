//! Security boundaries of the device routes (issue #10 finding 1): an operator cannot decide
//! where credentials go. Admin-only: `credential_id`, `host_key_policy`, and moving an existing
//! device to another address or port. Every role is held to the address policy (link-local
//! and cloud metadata addresses are refused with 422).

mod api_support;

use api_support::{PLATFORM, rig};
use serde_json::json;

fn device(host: &str, address: &str) -> serde_json::Value {
    json!({"hostname": host, "address": address, "platform": PLATFORM})
}

#[tokio::test]
async fn an_operator_cannot_choose_where_credentials_go() {
    let r = rig().await;
    let cred = r
        .json(
            "POST",
            "/api/credentials",
            &r.admin,
            json!({"name": "c1", "username": "u", "password": "p-123456"}),
        )
        .await;
    assert_eq!(cred.status, 201, "{}", cred.text());
    let cid = cred.json()["id"].as_i64().unwrap();
    let before = r.device_count().await;

    let mut pinned = device("pin", "127.0.0.1");
    pinned["credential_id"] = json!(cid);
    r.json("POST", "/api/devices", &r.operator, pinned.clone())
        .await
        .assert_error(403);
    let mut open = device("hk", "127.0.0.1");
    open["host_key_policy"] = json!("off");
    r.json("POST", "/api/devices", &r.operator, open.clone())
        .await
        .assert_error(403);
    for address in ["169.254.169.254", "fe80::1", "[fe80::1]"] {
        for token in [&r.operator, &r.admin] {
            r.json("POST", "/api/devices", token, device("meta", address))
                .await
                .assert_error(422);
        }
    }
    assert_eq!(r.device_count().await, before, "a refused device was saved");

    // An operator may create and edit a device without touching its trust fields.
    let d = r
        .json(
            "POST",
            "/api/devices",
            &r.operator,
            device("ok", "127.0.0.1"),
        )
        .await;
    assert_eq!(d.status, 201, "{}", d.text());
    let id = d.json()["id"].as_i64().unwrap();
    let path = format!("/api/devices/{id}");
    let ok = r
        .json(
            "PATCH",
            &path,
            &r.operator,
            json!({"description": "rack 4"}),
        )
        .await;
    assert_eq!(ok.status, 200, "{}", ok.text());
    for patch in [
        json!({"address": "127.0.0.9"}),
        json!({"port": 2222}),
        json!({"credential_id": cid}),
        json!({"host_key_policy": "off"}),
    ] {
        r.json("PATCH", &path, &r.operator, patch.clone())
            .await
            .assert_error(403);
    }
    let mut moved = device("ok", "127.0.0.9");
    moved["description"] = json!("rack 4");
    r.json("PUT", &path, &r.operator, moved.clone())
        .await
        .assert_error(403);
    let now = r.get(&path, &r.admin).await.json();
    assert_eq!(now["address"], "127.0.0.1");
    assert_eq!(now["port"], 22);
    assert!(now["credential_id"].is_null());

    // The admin may.
    let ok = r
        .json(
            "PATCH",
            &path,
            &r.admin,
            json!({"address": "127.0.0.9", "credential_id": cid, "host_key_policy": "off"}),
        )
        .await;
    assert_eq!(ok.status, 200, "{}", ok.text());

    // An operator's import may not set them either.
    let rows = json!([{"hostname": "imp", "address": "127.0.0.2", "platform": PLATFORM,
                       "host_key_policy": "off"}]);
    r.json("POST", "/api/devices/import", &r.operator, rows)
        .await
        .assert_error(403);
}

#[tokio::test]
async fn an_operator_may_only_run_read_only_commands() {
    let r = rig().await;
    let d = r
        .json("POST", "/api/devices", &r.admin, device("cmd", "127.0.0.1"))
        .await;
    assert_eq!(d.status, 201, "{}", d.text());
    let id = d.json()["id"].as_i64().unwrap();
    let job = |name: &str, commands: &[&str]| {
        json!({"name": name, "kind": {"type": "command", "commands": commands},
               "targets": {"device_ids": [id]}, "schedule": {"type": "manual"}})
    };
    for commands in [
        &[
            "configure terminal",
            "username x privilege 15 secret y",
            "end",
        ][..],
        &["conf t"][..],
        &["show version", "reload"][..],
    ] {
        let resp = r
            .json("POST", "/api/jobs", &r.operator, job("bad", commands))
            .await;
        resp.assert_error(422);
    }
    let ok = r
        .json(
            "POST",
            "/api/jobs",
            &r.operator,
            job("ok", &["show version", "display current-configuration"]),
        )
        .await;
    assert_eq!(ok.status, 201, "{}", ok.text());
    let jid = ok.json()["id"].as_i64().unwrap();
    r.json(
        "PATCH",
        &format!("/api/jobs/{jid}"),
        &r.operator,
        json!({"kind": {"type": "command", "commands": ["write erase"]}}),
    )
    .await
    .assert_error(422);
    // The admin decides what runs anywhere.
    let admin = r
        .json(
            "POST",
            "/api/jobs",
            &r.admin,
            job("adm", &["configure terminal"]),
        )
        .await;
    assert_eq!(admin.status, 201, "{}", admin.text());
}
