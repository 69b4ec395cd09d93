//! Role matrix: the intended minimum role of every route, stated here as a literal table (not
//! read back from the route table), checked for anonymous, viewer, operator and admin callers;
//! and a check that this table and `netraven_server::api::routes()` list the same routes, so a
//! new route without a stated role fails this test.

mod api_support;

use api_support::{PLATFORM, rig};
use netraven_server::api::routes;
use serde_json::json;
use std::collections::{BTreeSet, HashMap};

/// Who may call a route, weakest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Min {
    /// No token needed.
    Anonymous,
    /// Any active user.
    Viewer,
    /// Operators and admins.
    Operator,
    /// Admins only.
    Admin,
}

use Min::{Admin as A, Anonymous as P, Operator as O, Viewer as V};

/// The intended access of every route of the route table. A change here is a change of the
/// security model: say why in docs/security.md.
const MATRIX: &[(&str, &str, Min)] = &[
    // Probes and login.
    ("GET", "/api/health", P),
    ("GET", "/api/ready", P),
    ("GET", "/metrics", P),
    ("POST", "/api/auth/token", P),
    // Reading: any role.
    ("GET", "/api/openapi.json", V),
    ("GET", "/api/system/status", V),
    ("GET", "/api/auth/me", V),
    ("GET", "/api/dashboard", V),
    ("GET", "/api/devices/recent", V),
    ("POST", "/api/jobs/preview", V),
    // Users and API tokens: admins.
    ("GET", "/api/users", A),
    ("POST", "/api/users", A),
    ("GET", "/api/users/{id}", A),
    ("PUT", "/api/users/{id}", A),
    ("PATCH", "/api/users/{id}", A),
    ("DELETE", "/api/users/{id}", A),
    ("GET", "/api/tokens", A),
    ("POST", "/api/tokens", A),
    ("DELETE", "/api/tokens/{id}", A),
    // Tags: read by all, changed by operators.
    ("GET", "/api/tags", V),
    ("POST", "/api/tags", O),
    ("GET", "/api/tags/{id}", V),
    ("PUT", "/api/tags/{id}", O),
    ("PATCH", "/api/tags/{id}", O),
    ("DELETE", "/api/tags/{id}", O),
    // Jump hosts: admins only, reading included (a bastion decides where connections and the
    // credentials offered on them go; its address and login user are not for every viewer).
    ("GET", "/api/jump-hosts", A),
    ("POST", "/api/jump-hosts", A),
    ("GET", "/api/jump-hosts/{id}", A),
    ("PUT", "/api/jump-hosts/{id}", A),
    ("PATCH", "/api/jump-hosts/{id}", A),
    ("DELETE", "/api/jump-hosts/{id}", A),
    // Credentials: names and user names readable by all (never a secret), changed by admins.
    ("GET", "/api/credentials", V),
    ("POST", "/api/credentials", A),
    ("GET", "/api/credentials/{id}", V),
    ("PUT", "/api/credentials/{id}", A),
    ("PATCH", "/api/credentials/{id}", A),
    ("DELETE", "/api/credentials/{id}", A),
    // Devices: operators (credential_id, host_key_policy and moves are refused per field).
    ("POST", "/api/devices/import", O),
    ("POST", "/api/devices/bulk", O),
    ("GET", "/api/devices", V),
    ("POST", "/api/devices", O),
    ("GET", "/api/devices/{id}", V),
    ("PUT", "/api/devices/{id}", O),
    ("PATCH", "/api/devices/{id}", O),
    ("DELETE", "/api/devices/{id}", O),
    // Jobs and runs: operators (command jobs limited per command for non-admins).
    ("GET", "/api/jobs", V),
    ("POST", "/api/jobs", O),
    ("GET", "/api/jobs/{id}", V),
    ("PUT", "/api/jobs/{id}", O),
    ("PATCH", "/api/jobs/{id}", O),
    ("DELETE", "/api/jobs/{id}", O),
    ("POST", "/api/devices/{id}/backup", O),
    ("POST", "/api/jobs/{id}/run", O),
    ("GET", "/api/runs", V),
    ("GET", "/api/runs/{id}", V),
    ("GET", "/api/job-results", V),
    ("GET", "/api/logs", V),
    ("GET", "/api/logs/stream", V),
    // Configurations (redacted): any role.
    ("GET", "/api/configs/search", V),
    ("GET", "/api/configs/diff", V),
    ("GET", "/api/configs/snapshots/{id}", V),
    ("GET", "/api/configs/{device_id}/latest", V),
    ("GET", "/api/configs/{device_id}/history", V),
];

/// Routes mounted beside the route table (the Oxidized-compatible reader and the inventory
/// sync), with their intended access.
const EXTRA: &[(&str, &str, Min)] = &[
    ("GET", "/oxidized/nodes", V),
    ("GET", "/oxidized/nodes.json", V),
    ("GET", "/oxidized/node/show/{node}", V),
    ("GET", "/oxidized/node/fetch/{node}", V),
    ("GET", "/oxidized/node/version", V),
    ("GET", "/oxidized/node/version.json", V),
    ("GET", "/oxidized/node/version/view", V),
    ("GET", "/oxidized/node/version/diffs", V),
    // A sync moves devices and creates credentials from the source's logins: an admin's.
    ("POST", "/api/inventory/sync", A),
];

/// The table and the router list the same routes: a route added to `routes()` without a line
/// above fails here, and so does a line for a route that no longer exists.
#[test]
fn the_matrix_states_every_route() {
    let table: BTreeSet<(String, String)> = routes()
        .iter()
        .map(|s| (s.method.to_string(), s.path.to_string()))
        .collect();
    let stated: BTreeSet<(String, String)> = MATRIX
        .iter()
        .map(|(m, p, _)| (m.to_string(), p.to_string()))
        .collect();
    assert_eq!(stated.len(), MATRIX.len(), "a route is stated twice");
    let missing: Vec<_> = table.difference(&stated).collect();
    let gone: Vec<_> = stated.difference(&table).collect();
    assert!(
        missing.is_empty(),
        "routes without an intended role in MATRIX: {missing:?}"
    );
    assert!(
        gone.is_empty(),
        "MATRIX states routes that do not exist: {gone:?}"
    );
    for (m, p, _) in EXTRA {
        assert!(
            !table.contains(&(m.to_string(), p.to_string())),
            "{m} {p} is in the route table: move it to MATRIX"
        );
    }
}

/// Real ids of every resource, so that allowed reads answer 200.
struct Ids {
    user: i64,
    tag: i64,
    credential: i64,
    jump_host: i64,
    device: i64,
    hostname: String,
    job: i64,
    run: i64,
    snapshot: i64,
    oid: String,
}

/// The path to call: reads get real ids (allowed callers must get 200), changes get ids that
/// exist nowhere (allowed callers get 404 or 422, never a change).
fn concrete(method: &str, path: &str, ids: &Ids) -> String {
    let read = method == "GET";
    let id = |real: i64| {
        if read {
            real.to_string()
        } else {
            "999999".into()
        }
    };
    let resource = path.split('/').nth(2).unwrap_or_default();
    let own = match resource {
        "users" => ids.user,
        "tags" => ids.tag,
        "credentials" => ids.credential,
        "jump-hosts" => ids.jump_host,
        "devices" | "configs" => ids.device,
        "jobs" => ids.job,
        "runs" => ids.run,
        "tokens" => 999_999,
        _ if !path.contains("{id}") => 0,
        other => panic!("no id for resource {other} of {path}"),
    };
    let p = if path.starts_with("/api/configs/snapshots/") {
        path.replace("{id}", &id(ids.snapshot))
    } else {
        path.replace("{id}", &id(own))
            .replace("{device_id}", &id(ids.device))
    };
    let node = &ids.hostname;
    let (run, snap, oid) = (ids.run, ids.snapshot, &ids.oid);
    match p.as_str() {
        "/api/logs/stream" => format!("{p}?run_id={run}"),
        "/api/configs/diff" => format!("{p}?from={snap}&to={snap}"),
        "/api/configs/search" => format!("{p}?q=hostname"),
        "/oxidized/node/show/{node}" | "/oxidized/node/fetch/{node}" => p.replace("{node}", node),
        "/oxidized/node/version" | "/oxidized/node/version.json" => format!("{p}?node={node}"),
        "/oxidized/node/version/view" | "/oxidized/node/version/diffs" => {
            format!("{p}?node={node}&oid={oid}")
        }
        _ => p,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_admits_exactly_its_roles() {
    let r = rig().await;
    // One of everything, so that reads have something to read.
    let created = |v: api_support::Resp| {
        assert!(v.status == 201, "{}", v.text());
        v.json()["id"].as_i64().expect("id")
    };
    let tag = created(
        r.json("POST", "/api/tags", &r.admin, json!({"name": "core"}))
            .await,
    );
    let credential = created(
        r.json(
            "POST",
            "/api/credentials",
            &r.admin,
            json!({"name": "lab", "username": "netops", "password": "pw-123456", "tags": ["core"]}),
        )
        .await,
    );
    let jump_host = created(
        r.json(
            "POST",
            "/api/jump-hosts",
            &r.admin,
            json!({"name": "dc1", "address": "192.0.2.10", "username": "jump", "password": "jump-pw-1"}),
        )
        .await,
    );
    r.driver.set_config("r1", "hostname r1\n".to_string());
    let device = created(
        r.json(
            "POST",
            "/api/devices",
            &r.admin,
            json!({"hostname": "r1", "address": "192.0.2.1", "platform": PLATFORM, "tags": ["core"]}),
        )
        .await,
    );
    let job = created(
        r.json(
            "POST",
            "/api/jobs",
            &r.admin,
            json!({"name": "nightly", "kind": {"type": "backup"}, "targets": {"tags": ["core"]}, "schedule": {"type": "manual"}}),
        )
        .await,
    );
    let run = r
        .send(
            "POST",
            &format!("/api/jobs/{job}/run"),
            Some(&r.admin),
            None,
            &[],
        )
        .await;
    assert_eq!(run.status, 202, "{}", run.text());
    let run = run.json()["run_id"].as_i64().expect("run id");
    r.engine.drain().await.expect("drain");
    let h = r
        .get(&format!("/api/configs/{device}/history"), &r.admin)
        .await
        .json();
    let snapshot = h["items"][0]["id"]
        .as_i64()
        .unwrap_or_else(|| panic!("{h}"));
    let versions = r
        .get("/oxidized/node/version.json?node=r1", &r.admin)
        .await
        .json();
    let oid = versions[0]["oid"]
        .as_str()
        .map(String::from)
        .or_else(|| versions[0]["oid"].as_i64().map(|i| i.to_string()))
        .unwrap_or_else(|| panic!("no oid in {versions}"));
    let me = r.get("/api/auth/me", &r.viewer).await.json();
    let ids = Ids {
        user: me["user"]["id"].as_i64().expect("user id"),
        tag,
        credential,
        jump_host,
        device,
        hostname: "r1".into(),
        job,
        run,
        snapshot,
        oid,
    };
    let before = state(&r).await;

    let callers = [
        (P, None),
        (V, Some(r.viewer.clone())),
        (O, Some(r.operator.clone())),
        (A, Some(r.admin.clone())),
    ];
    let mut checked = 0;
    for (method, route, min) in MATRIX.iter().chain(EXTRA) {
        let path = concrete(method, route, &ids);
        for (who, token) in &callers {
            let body = (*method != "GET" && *method != "DELETE")
                .then(|| ("application/json", json!({}).to_string().into_bytes()));
            let resp = r.send(method, &path, token.as_deref(), body, &[]).await;
            let ctx = format!("{who:?} {method} {path}: {} {}", resp.status, resp.text());
            if who >= min {
                assert!(
                    resp.status != 401 && resp.status != 403,
                    "must be allowed: {ctx}"
                );
                if *method == "GET" {
                    assert_eq!(resp.status, 200, "an allowed read answers 200: {ctx}");
                }
            } else if *who == P {
                assert_eq!(resp.status, 401, "anonymous must get 401: {ctx}");
                resp.assert_error(401);
            } else {
                assert_eq!(resp.status, 403, "a lower role must get 403: {ctx}");
                resp.assert_error(403);
            }
            checked += 1;
        }
    }
    assert_eq!(checked, (MATRIX.len() + EXTRA.len()) * 4);
    // Nothing was created, changed or deleted by the walk.
    assert_eq!(state(&r).await, before, "the walk changed something");
}

/// Counts and versions of everything a walk could change.
async fn state(r: &api_support::Rig) -> HashMap<&'static str, String> {
    let mut m = HashMap::new();
    for (k, path) in [
        ("users", "/api/users?size=100"),
        ("tags", "/api/tags?size=100"),
        ("credentials", "/api/credentials?size=100"),
        ("jump-hosts", "/api/jump-hosts?size=100"),
        ("devices", "/api/devices?size=100"),
        ("jobs", "/api/jobs?size=100"),
        ("runs", "/api/runs?size=100"),
        ("tokens", "/api/tokens?size=100"),
    ] {
        let v = r.get(path, &r.admin).await.json();
        let mut items = v["items"].clone();
        // Fields that move by themselves (last use, current state).
        if let Some(a) = items.as_array_mut() {
            for i in a {
                for f in ["last_used", "state", "last_login"] {
                    if let Some(o) = i.as_object_mut() {
                        o.remove(f);
                    }
                }
            }
        }
        m.insert(k, format!("{} {}", v["total"], items));
    }
    m
}

#[tokio::test]
async fn bad_tokens_are_rejected() {
    let r = rig().await;
    r.get("/api/devices", "not-a-token").await.assert_error(401);
    r.get("/api/devices", "nrt_0000").await.assert_error(401);
    // A JWT signed with another key.
    let forged = format!("{}x", r.viewer);
    r.get("/api/devices", &forged).await.assert_error(401);
    let resp = r
        .send(
            "GET",
            "/api/devices",
            None,
            None,
            &[("authorization", "Basic YWRtaW46YWRtaW4=")],
        )
        .await;
    resp.assert_error(401);
}

#[tokio::test]
async fn api_tokens_act_as_their_user_and_can_be_revoked() {
    let r = rig().await;
    let viewer_id = r.get("/api/auth/me", &r.viewer).await.json()["user"]["id"].clone();
    // Only admins create tokens.
    r.json("POST", "/api/tokens", &r.operator, json!({"name": "ci"}))
        .await
        .assert_error(403);
    let t = r
        .json(
            "POST",
            "/api/tokens",
            &r.admin,
            json!({"name": "ci", "user_id": viewer_id}),
        )
        .await;
    assert_eq!(t.status, 201, "{}", t.text());
    let t = t.json();
    let token = t["token"].as_str().unwrap().to_string();
    assert!(token.starts_with("nrt_"));
    // The token reads as the viewer, and cannot write.
    assert_eq!(r.get("/api/devices", &token).await.status, 200);
    let me = r.get("/api/auth/me", &token).await.json();
    assert_eq!(me["user"]["username"], "viewer");
    assert_eq!(me["auth"], "api_token");
    r.json("POST", "/api/tags", &token, json!({"name": "x"}))
        .await
        .assert_error(403);
    // Listing never shows the token or its hash.
    let list = r
        .get(&format!("/api/tokens?user_id={viewer_id}"), &r.admin)
        .await;
    assert_eq!(list.status, 200);
    assert!(!list.text().contains(&token));
    assert!(!list.text().contains("token_hash"));
    assert_eq!(list.json()["total"], 1);
    assert!(
        list.json()["items"][0]["last_used"].is_string(),
        "a used token shows when it was last used: {}",
        list.text()
    );
    // Revoked tokens stop working.
    let id = t["id"].as_i64().unwrap();
    assert_eq!(
        r.send(
            "DELETE",
            &format!("/api/tokens/{id}"),
            Some(&r.admin),
            None,
            &[]
        )
        .await
        .status,
        204
    );
    r.get("/api/devices", &token).await.assert_error(401);
}

#[tokio::test]
async fn deactivated_users_lose_access_and_last_admin_is_protected() {
    let r = rig().await;
    let viewer_id = r.get("/api/auth/me", &r.viewer).await.json()["user"]["id"].clone();
    let admin_id = r.get("/api/auth/me", &r.admin).await.json()["user"]["id"].clone();
    let u = r
        .json(
            "PATCH",
            &format!("/api/users/{viewer_id}"),
            &r.admin,
            json!({"active": false}),
        )
        .await;
    assert_eq!(u.status, 200, "{}", u.text());
    assert!(!u.text().contains("password"));
    r.get("/api/devices", &r.viewer).await.assert_error(401);
    r.json(
        "PATCH",
        &format!("/api/users/{admin_id}"),
        &r.admin,
        json!({"role": "viewer"}),
    )
    .await
    .assert_error(409);
    r.send(
        "DELETE",
        &format!("/api/users/{admin_id}"),
        Some(&r.admin),
        None,
        &[],
    )
    .await
    .assert_error(409);
}

#[tokio::test]
async fn openapi_lists_every_route() {
    let r = rig().await;
    let doc = r.get("/api/openapi.json", &r.viewer).await.json();
    assert_eq!(doc["openapi"], "3.0.3");
    for spec in routes() {
        let op = &doc["paths"][spec.path][spec.method.to_ascii_lowercase()];
        assert!(op.is_object(), "{} {} missing", spec.method, spec.path);
    }
}
