//! JWT attacks against the API: every forged, stale or foreign token answers 401, and a token
//! carries no authority of its own — the user and role are read from the store on every
//! request, so a demoted admin's old token gets 403 on admin routes and a deleted or
//! deactivated user's token 401.

mod api_support;

use api_support::{Rig, rig};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use serde_json::{Value, json};

/// The signing key of the test rig (`api_support::rig_on`).
const RIG_SECRET: &[u8] = b"test-secret-test-secret";

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Signs `claims` with HS256 and `key`.
fn sign(claims: &Value, key: &[u8]) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        claims,
        &jsonwebtoken::EncodingKey::from_secret(key),
    )
    .expect("sign")
}

/// The three parts of a token.
fn parts(token: &str) -> (String, String, String) {
    let p: Vec<&str> = token.split('.').collect();
    assert_eq!(p.len(), 3, "not a JWS: {token}");
    (p[0].into(), p[1].into(), p[2].into())
}

fn decode_part(part: &str) -> Value {
    serde_json::from_slice(&B64.decode(part).expect("base64url")).expect("json")
}

fn encode_part(v: &Value) -> String {
    B64.encode(v.to_string())
}

async fn user_id(r: &Rig, token: &str) -> i64 {
    r.get("/api/auth/me", token).await.json()["user"]["id"]
        .as_i64()
        .expect("user id")
}

/// Creates a user through the API and logs it in; returns (id, token).
async fn user(r: &Rig, name: &str, role: &str) -> (i64, String) {
    let u = r
        .json(
            "POST",
            "/api/users",
            &r.admin,
            json!({"username": name, "password": "password-of-a-user", "role": role}),
        )
        .await;
    assert_eq!(u.status, 201, "{}", u.text());
    let id = u.json()["id"].as_i64().expect("id");
    let resp = r
        .json(
            "POST",
            "/api/auth/token",
            "",
            json!({"username": name, "password": "password-of-a-user"}),
        )
        .await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    (
        id,
        resp.json()["access_token"].as_str().unwrap().to_string(),
    )
}

/// A token is refused with 401 on a viewer route and an admin route, and on the
/// Oxidized-compatible routes (which authenticate the same way).
async fn refused(r: &Rig, token: &str, what: &str) {
    for path in ["/api/devices", "/api/users", "/oxidized/nodes.json"] {
        let resp = r.get(path, token).await;
        assert_eq!(resp.status, 401, "{what}: GET {path}: {}", resp.text());
        resp.assert_error(401);
    }
}

#[tokio::test]
async fn the_rig_secret_is_the_servers() {
    // The attacks below forge tokens with the rig's key; this shows that a token made that way
    // with honest claims is accepted, so each refusal is caused by what the attack changed.
    let r = rig().await;
    let admin_id = user_id(&r, &r.admin).await;
    let t = sign(
        &json!({"sub": "admin", "uid": admin_id, "role": "admin", "iat": now(), "exp": now() + 600}),
        RIG_SECRET,
    );
    assert_eq!(r.get("/api/users", &t).await.status, 200);
}

#[tokio::test]
async fn expired_tokens_are_refused() {
    let r = rig().await;
    let admin_id = user_id(&r, &r.admin).await;
    let t = sign(
        &json!({"sub": "admin", "uid": admin_id, "role": "admin", "iat": now() - 7200, "exp": now() - 3600}),
        RIG_SECRET,
    );
    refused(&r, &t, "expired an hour ago").await;
    // Past the 5 s leeway.
    let t = sign(
        &json!({"sub": "admin", "uid": admin_id, "role": "admin", "iat": now() - 1800, "exp": now() - 60}),
        RIG_SECRET,
    );
    refused(&r, &t, "expired a minute ago").await;
    // No expiry at all.
    let t = sign(
        &json!({"sub": "admin", "uid": admin_id, "role": "admin", "iat": now()}),
        RIG_SECRET,
    );
    refused(&r, &t, "without exp").await;
}

#[tokio::test]
async fn tampered_claims_are_refused() {
    let r = rig().await;
    let admin_id = user_id(&r, &r.admin).await;
    let (h, p, s) = parts(&r.viewer);
    let claims = decode_part(&p);
    assert_eq!(claims["role"], "viewer", "{claims}");
    // Role changed, re-encoded, old signature.
    let mut c = claims.clone();
    c["role"] = json!("admin");
    refused(&r, &format!("{h}.{}.{s}", encode_part(&c)), "role changed").await;
    // The admin's id and name, old signature.
    let mut c = claims.clone();
    c["uid"] = json!(admin_id);
    c["sub"] = json!("admin");
    refused(&r, &format!("{h}.{}.{s}", encode_part(&c)), "uid changed").await;
    // A later expiry, old signature.
    let mut c = claims.clone();
    c["exp"] = json!(now() + 365 * 86400);
    refused(&r, &format!("{h}.{}.{s}", encode_part(&c)), "exp changed").await;
    // The viewer token itself still works (the changes above are what was refused).
    assert_eq!(r.get("/api/devices", &r.viewer).await.status, 200);
    r.get("/api/users", &r.viewer).await.assert_error(403);
}

#[tokio::test]
async fn changed_signatures_are_refused() {
    let r = rig().await;
    let (h, p, s) = parts(&r.admin);
    let sig = B64.decode(&s).expect("signature");
    for i in [0, sig.len() / 2, sig.len() - 1] {
        let mut bad = sig.clone();
        bad[i] ^= 0x01;
        refused(
            &r,
            &format!("{h}.{p}.{}", B64.encode(&bad)),
            "signature bit flipped",
        )
        .await;
    }
    refused(&r, &format!("{h}.{p}."), "signature removed").await;
    refused(&r, &format!("{h}.{p}"), "signature part missing").await;
    refused(&r, &format!("{h}.{p}.{s}{s}"), "signature doubled").await;
    let truncated = B64.encode(&sig[..16]);
    refused(&r, &format!("{h}.{p}.{truncated}"), "signature truncated").await;
}

#[tokio::test]
async fn alg_none_and_other_algorithms_are_refused() {
    let r = rig().await;
    let admin_id = user_id(&r, &r.admin).await;
    let claims =
        json!({"sub": "admin", "uid": admin_id, "role": "admin", "iat": now(), "exp": now() + 600});
    let (_, _, real_sig) = parts(&r.admin);
    let body = encode_part(&claims);
    for alg in ["none", "None", "NONE", "nOnE"] {
        let h = encode_part(&json!({"alg": alg, "typ": "JWT"}));
        refused(
            &r,
            &format!("{h}.{body}."),
            &format!("alg {alg}, no signature"),
        )
        .await;
        refused(
            &r,
            &format!("{h}.{body}.{real_sig}"),
            &format!("alg {alg}, a signature"),
        )
        .await;
    }
    // An HS512 token with the right key: only HS256 is accepted.
    let t = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS512),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(RIG_SECRET),
    )
    .expect("sign");
    refused(&r, &t, "HS512").await;
    // A header without alg, or not JSON.
    let h = encode_part(&json!({"typ": "JWT"}));
    refused(&r, &format!("{h}.{body}.{real_sig}"), "no alg").await;
    refused(&r, &format!("e30.{body}.{real_sig}"), "empty header").await;
    refused(&r, &format!("!!!.{body}.{real_sig}"), "header not base64").await;
}

#[tokio::test]
async fn tokens_signed_with_another_secret_are_refused() {
    let r = rig().await;
    let admin_id = user_id(&r, &r.admin).await;
    let claims =
        json!({"sub": "admin", "uid": admin_id, "role": "admin", "iat": now(), "exp": now() + 600});
    for key in [
        &b"another-secret-another-secret-0123456789"[..],
        b"",
        b"test-secret-test-secre",
        b"TEST-SECRET-TEST-SECRET",
    ] {
        // (The key with zero bytes appended is HMAC's same key — keys are zero-padded to the
        // block size — so it is not "another secret".)
        refused(&r, &sign(&claims, key), "another secret").await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_users_token_is_refused_and_never_becomes_a_new_users() {
    let r = rig().await;
    let (id, token) = user(&r, "temp-admin", "admin").await;
    assert_eq!(r.get("/api/users", &token).await.status, 200);
    let del = r
        .send(
            "DELETE",
            &format!("/api/users/{id}"),
            Some(&r.admin),
            None,
            &[],
        )
        .await;
    assert_eq!(del.status, 204, "{}", del.text());
    refused(&r, &token, "deleted user").await;
    // A new user, even with the same name, is not the deleted one: its old token stays dead.
    let (_, _) = user(&r, "temp-admin", "admin").await;
    refused(&r, &token, "deleted user, name reused").await;
    // A token naming another user than its id's is refused (a forged or stale pairing).
    let admin_id = user_id(&r, &r.admin).await;
    let t = sign(
        &json!({"sub": "someone-else", "uid": admin_id, "role": "admin", "iat": now(), "exp": now() + 600}),
        RIG_SECRET,
    );
    refused(&r, &t, "sub is not the user of uid").await;
    // A token issued before its user existed cannot be that user's.
    let t = sign(
        &json!({"sub": "admin", "uid": admin_id, "role": "admin", "iat": now() - 86400, "exp": now() + 600}),
        RIG_SECRET,
    );
    refused(&r, &t, "issued before the user was created").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deactivated_users_token_is_refused() {
    let r = rig().await;
    let (id, token) = user(&r, "temp-op", "operator").await;
    assert_eq!(r.get("/api/devices", &token).await.status, 200);
    let u = r
        .json(
            "PATCH",
            &format!("/api/users/{id}"),
            &r.admin,
            json!({"active": false}),
        )
        .await;
    assert_eq!(u.status, 200, "{}", u.text());
    refused(&r, &token, "deactivated user").await;
    // Reactivated, the same token works again (it was refused for the flag alone).
    let u = r
        .json(
            "PATCH",
            &format!("/api/users/{id}"),
            &r.admin,
            json!({"active": true}),
        )
        .await;
    assert_eq!(u.status, 200, "{}", u.text());
    assert_eq!(r.get("/api/devices", &token).await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_demoted_admins_old_token_has_the_new_role() {
    let r = rig().await;
    let (id, token) = user(&r, "temp-boss", "admin").await;
    let claims = decode_part(&parts(&token).1);
    assert_eq!(claims["role"], "admin");
    assert_eq!(r.get("/api/users", &token).await.status, 200);
    let u = r
        .json(
            "PATCH",
            &format!("/api/users/{id}"),
            &r.admin,
            json!({"role": "viewer"}),
        )
        .await;
    assert_eq!(u.status, 200, "{}", u.text());
    // The token still says admin; the store says viewer, and the store wins.
    for (method, path, body) in [
        ("GET", "/api/users", None),
        ("GET", "/api/tokens", None),
        (
            "POST",
            "/api/users",
            Some(json!({"username": "x-by-demoted", "password": "password-123"})),
        ),
        (
            "POST",
            "/api/credentials",
            Some(json!({"name": "c", "username": "u", "password": "p-123456"})),
        ),
        ("POST", "/api/tags", Some(json!({"name": "t-by-demoted"}))),
        ("DELETE", &format!("/api/users/{id}"), None),
    ] {
        let resp = match body {
            Some(b) => r.json(method, path, &token, b).await,
            None => r.send(method, path, Some(&token), None, &[]).await,
        };
        assert_eq!(
            resp.status,
            403,
            "demoted admin: {method} {path}: {}",
            resp.text()
        );
    }
    assert_eq!(r.get("/api/devices", &token).await.status, 200);
    let me = r.get("/api/auth/me", &token).await.json();
    assert_eq!(me["user"]["role"], "viewer", "{me}");
    // Nothing was created by the refused calls.
    let users = r
        .get("/api/users?username=x-by-demoted", &r.admin)
        .await
        .json();
    assert_eq!(users["total"], 0, "{users}");
    // Demoted to operator: operator routes yes, admin routes no.
    let u = r
        .json(
            "PATCH",
            &format!("/api/users/{id}"),
            &r.admin,
            json!({"role": "operator"}),
        )
        .await;
    assert_eq!(u.status, 200, "{}", u.text());
    let t = r
        .json("POST", "/api/tags", &token, json!({"name": "by-operator"}))
        .await;
    assert_eq!(t.status, 201, "{}", t.text());
    r.get("/api/users", &token).await.assert_error(403);
}

#[tokio::test]
async fn malformed_authorization_headers_are_refused() {
    let r = rig().await;
    for value in [
        "Bearer".to_string(),
        "Bearer ".to_string(),
        "Bearer  ".to_string(),
        format!("Token {}", r.admin),
        format!("Bearer{}", r.admin),
        format!("Bearer {}.", r.admin),
        format!("Bearer {} extra", r.admin),
        "Bearer a.b.c".to_string(),
        "Bearer ....".to_string(),
        format!("Bearer {}", "x".repeat(64 * 1024)),
        format!("Bearer nrt_{}", "0".repeat(64)),
    ] {
        let resp = r
            .send(
                "GET",
                "/api/users",
                None,
                None,
                &[("authorization", value.as_str())],
            )
            .await;
        let shown: String = value.chars().take(60).collect();
        assert_eq!(resp.status, 401, "{shown}: {}", resp.text());
    }
}
