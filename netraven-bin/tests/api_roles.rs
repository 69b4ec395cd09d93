//! Role matrix: every route of the route table, for anonymous, viewer, operator and admin.

mod api_support;

use api_support::rig;
use netraven_core::model::Role;
use netraven_server::api::{Access, routes};
use serde_json::json;

fn concrete(path: &str) -> String {
    // Ids that exist nowhere: allowed callers get 404/422, never a change.
    let p = path
        .replace("{id}", "999999")
        .replace("{device_id}", "999999");
    match p.as_str() {
        "/api/logs/stream" => "/api/logs/stream?run_id=999999".into(),
        "/api/configs/diff" => "/api/configs/diff?from=999998&to=999999".into(),
        "/api/configs/search" => "/api/configs/search?q=hostname".into(),
        _ => p,
    }
}

#[tokio::test]
async fn every_route_checks_roles() {
    let r = rig().await;
    let callers = [
        (None, None),
        (Some(Role::Viewer), Some(r.viewer.clone())),
        (Some(Role::Operator), Some(r.operator.clone())),
        (Some(Role::Admin), Some(r.admin.clone())),
    ];
    let specs = routes();
    assert!(specs.len() >= 40, "route table too small: {}", specs.len());
    for spec in &specs {
        let path = concrete(spec.path);
        for (role, token) in &callers {
            let body = (spec.method != "GET" && spec.method != "DELETE")
                .then(|| ("application/json", json!({}).to_string().into_bytes()));
            let resp = r
                .send(spec.method, &path, token.as_deref(), body, &[])
                .await;
            let allowed = match (spec.access, role) {
                (Access::Public, _) => true,
                (Access::Role(_), None) => false,
                (Access::Role(min), Some(have)) => *have >= min,
            };
            let who = role.map(|r| r.as_str()).unwrap_or("anonymous");
            if allowed {
                assert!(
                    resp.status != 401 && resp.status != 403,
                    "{who} must be allowed {} {path}: {} {}",
                    spec.method,
                    resp.status,
                    resp.text()
                );
                if spec.method == "GET" && !spec.path.contains('{') && resp.status != 200 {
                    // Lists without parameters answer 200 for anyone allowed.
                    assert!(
                        spec.path.contains("stream") || spec.path.contains("diff"),
                        "{who} GET {path}: {} {}",
                        resp.status,
                        resp.text()
                    );
                }
            } else if role.is_none() {
                resp.assert_error(401);
            } else {
                resp.assert_error(403);
            }
        }
    }
    // Nothing was created or deleted by the walk (users: admin, operator, viewer).
    let users = r.get("/api/users", &r.admin).await.json();
    assert_eq!(users["total"], 3);
    assert_eq!(r.device_count().await, 0);
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
