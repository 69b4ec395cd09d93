//! Security boundaries of the device routes (issue #10 finding 1): an operator cannot decide
//! where credentials go. Admin-only: `credential_id`, `host_key_policy`, and moving an existing
//! device to another address or port, and a device's or tag's zone (which workers reach it).
//! Every role is held to the address policy (link-local
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

#[tokio::test]
async fn login_input_is_bounded_and_lockouts_say_when_to_retry() {
    let r = rig().await;
    // A 1 MiB body is refused by the body limit (413), a long name by the login (422): both
    // before any lookup or hashing.
    let huge = "u".repeat(1 << 20);
    let resp = r
        .json(
            "POST",
            "/api/auth/token",
            &r.admin,
            json!({"username": huge, "password": "x"}),
        )
        .await;
    assert!(matches!(resp.status, 413 | 422), "{}", resp.status);
    r.json(
        "POST",
        "/api/auth/token",
        &r.admin,
        json!({"username": "u".repeat(300), "password": "x"}),
    )
    .await
    .assert_error(422);
    let long_pw = "p".repeat(300);
    r.json(
        "POST",
        "/api/auth/token",
        &r.admin,
        json!({"username": "admin", "password": long_pw}),
    )
    .await
    .assert_error(422);
    let mut last = None;
    for _ in 0..20 {
        let resp = r
            .send(
                "POST",
                "/api/auth/token",
                None,
                Some((
                    "application/json",
                    json!({"username": "nobody", "password": "wrong-password"})
                        .to_string()
                        .into_bytes(),
                )),
                &[],
            )
            .await;
        if resp.status == 429 {
            last = Some(resp);
            break;
        }
        assert_eq!(resp.status, 401, "{}", resp.text());
    }
    let locked = last.expect("failed logins are limited");
    let retry = locked
        .headers
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .expect("429 carries Retry-After in seconds");
    assert!(retry >= 1, "{retry}");
}

#[test]
fn a_lockout_from_one_address_does_not_lock_the_user_out_elsewhere() {
    use netraven_server::api::LoginLimiter;
    use std::net::IpAddr;
    use std::time::Duration;
    let l = LoginLimiter::with_capacity(1_000);
    let attacker: IpAddr = "192.0.2.66".parse().unwrap();
    let office: IpAddr = "198.51.100.7".parse().unwrap();
    let w = Duration::from_secs(300);
    for _ in 0..5 {
        l.failed_from("admin", Some(attacker));
    }
    assert!(l.check("admin", Some(attacker), 5, w).is_err());
    assert!(l.check("admin", Some(office), 5, w).is_ok());
    // A flood of random names from many addresses fills the table without clearing the
    // attacker's lockout wholesale, and the table stays bounded.
    for i in 0..5_000u32 {
        let a: IpAddr = format!("203.0.113.{}", i % 250).parse().unwrap();
        l.failed_from(&format!("spray{i}"), Some(a));
        if i % 500 == 0 {
            l.failed_from("admin", Some(attacker));
        }
    }
    assert!(l.len() <= 1_000, "{}", l.len());
    assert!(l.check("admin", Some(attacker), 5, w).is_err());
}

#[tokio::test]
async fn manual_runs_respect_overlap_and_a_per_user_limit() {
    let r = rig().await;
    let d = r
        .json(
            "POST",
            "/api/devices",
            &r.admin,
            device("runs", "127.0.0.1"),
        )
        .await;
    let id = d.json()["id"].as_i64().unwrap();
    let job = |name: &str, overlap: &str| {
        json!({"name": name, "kind": {"type": "backup"}, "targets": {"device_ids": [id]},
               "schedule": {"type": "manual"}, "overlap": overlap})
    };
    // No worker runs in this rig: a started run stays active.
    let forbid = r
        .json("POST", "/api/jobs", &r.admin, job("forbid", "forbid"))
        .await;
    assert_eq!(forbid.status, 201, "{}", forbid.text());
    let run_path = format!("/api/jobs/{}/run", forbid.json()["id"]);
    let first = r.json("POST", &run_path, &r.operator, json!({})).await;
    assert_eq!(first.status, 202, "{}", first.text());
    let run_id = first.json()["run_id"].clone();
    let second = r.json("POST", &run_path, &r.operator, json!({})).await;
    let body = second.assert_error(409);
    assert!(
        body.to_string().contains(&run_id.to_string()),
        "409 names the active run {run_id}: {body}"
    );

    let allow = r
        .json("POST", "/api/jobs", &r.admin, job("allow", "allow"))
        .await;
    assert_eq!(allow.status, 201, "{}", allow.text());
    let run_path = format!("/api/jobs/{}/run", allow.json()["id"]);
    let mut limited = None;
    for _ in 0..40 {
        let resp = r.json("POST", &run_path, &r.operator, json!({})).await;
        if resp.status == 429 {
            limited = Some(resp);
            break;
        }
        assert_eq!(resp.status, 202, "{}", resp.text());
    }
    let limited = limited.expect("manual runs are rate-limited per user");
    assert!(limited.headers.contains_key("retry-after"));
    // Another user is not affected by the first one's limit.
    let other = r.json("POST", &run_path, &r.admin, json!({})).await;
    assert_eq!(other.status, 202, "{}", other.text());
}

/// A zone decides which workers (sites) reach a device: only an admin sets it, on a device,
/// a tag or an import row; an operator's edit that sends the zone back unchanged is fine, and
/// a merge patch keeps it. Bad zone names are 422.
#[tokio::test]
async fn only_an_admin_sets_a_zone() {
    let r = rig().await;
    let mut zoned = device("zoned", "127.0.0.1");
    zoned["zone"] = json!("site-a");
    r.json("POST", "/api/devices", &r.operator, zoned.clone())
        .await
        .assert_error(403);
    let mut bad = zoned.clone();
    bad["zone"] = json!("Site A");
    r.json("POST", "/api/devices", &r.admin, bad)
        .await
        .assert_error(422);
    let created = r
        .json("POST", "/api/devices", &r.admin, zoned.clone())
        .await;
    assert_eq!(created.status, 201, "{}", created.text());
    let d = created.json();
    assert_eq!(d["zone"], "site-a", "{d}");
    let id = d["id"].as_i64().unwrap();
    // An operator's PUT sending the zone back, and a PATCH of another field, keep it.
    let mut same = zoned.clone();
    same["description"] = json!("edited");
    let put = r
        .json("PUT", &format!("/api/devices/{id}"), &r.operator, same)
        .await;
    assert_eq!(put.status, 200, "{}", put.text());
    let patch = r
        .json(
            "PATCH",
            &format!("/api/devices/{id}"),
            &r.operator,
            json!({"serial": "S1"}),
        )
        .await;
    assert_eq!(patch.status, 200, "{}", patch.text());
    assert_eq!(patch.json()["zone"], "site-a");
    // Changing or clearing it is an admin's.
    for z in [json!("site-b"), json!(null)] {
        r.json(
            "PATCH",
            &format!("/api/devices/{id}"),
            &r.operator,
            json!({ "zone": z }),
        )
        .await
        .assert_error(403);
    }
    let moved = r
        .json(
            "PATCH",
            &format!("/api/devices/{id}"),
            &r.admin,
            json!({"zone": "site-b"}),
        )
        .await;
    assert_eq!(moved.json()["zone"], "site-b", "{}", moved.text());

    // Tags: the same rule.
    r.json(
        "POST",
        "/api/tags",
        &r.operator,
        json!({"name": "t-op", "zone": "site-a"}),
    )
    .await
    .assert_error(403);
    let tag = r
        .json(
            "POST",
            "/api/tags",
            &r.admin,
            json!({"name": "t-site", "zone": "site-a"}),
        )
        .await;
    assert_eq!(tag.status, 201, "{}", tag.text());
    let tid = tag.json()["id"].as_i64().unwrap();
    let renamed = r
        .json(
            "PATCH",
            &format!("/api/tags/{tid}"),
            &r.operator,
            json!({"description": "the site"}),
        )
        .await;
    assert_eq!(renamed.status, 200, "{}", renamed.text());
    assert_eq!(renamed.json()["zone"], "site-a", "a patch keeps the zone");
    r.json(
        "PUT",
        &format!("/api/tags/{tid}"),
        &r.operator,
        json!({"name": "t-site"}),
    )
    .await
    .assert_error(403);
    r.json(
        "POST",
        "/api/tags",
        &r.admin,
        json!({"name": "t-bad", "zone": "a:b"}),
    )
    .await
    .assert_error(422);

    // Import rows naming a zone: admin only.
    let rows = json!([{"hostname": "imp-z", "address": "127.0.0.1", "platform": PLATFORM, "zone": "site-a"}]);
    r.json("POST", "/api/devices/import", &r.operator, rows.clone())
        .await
        .assert_error(403);
}
