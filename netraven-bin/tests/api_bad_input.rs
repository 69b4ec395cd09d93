//! Bad input gets a 4xx with a JSON `{error, detail}` body and changes nothing; credentials never
//! leak their secrets; failed logins are rate limited.

mod api_support;

use api_support::{PLATFORM, rig};
use serde_json::json;

fn device(hostname: &str) -> serde_json::Value {
    json!({"hostname": hostname, "address": "10.0.0.1", "platform": PLATFORM})
}

#[tokio::test]
async fn malformed_and_mistyped_bodies_change_nothing() {
    let r = rig().await;
    let t = r.operator.clone();
    // Malformed JSON: 400.
    r.raw(
        "POST",
        "/api/devices",
        &t,
        "application/json",
        br#"{"hostname": "#,
    )
    .await
    .assert_error(400);
    // Wrong types, unknown fields, missing fields: 422.
    r.json(
        "POST",
        "/api/devices",
        &t,
        json!({"hostname": 1, "address": "a", "platform": "p"}),
    )
    .await
    .assert_error(422);
    r.json(
        "POST",
        "/api/devices",
        &t,
        json!({"hostname": "a", "address": "a", "platform": "p", "port": "ssh"}),
    )
    .await
    .assert_error(422);
    r.json(
        "POST",
        "/api/devices",
        &t,
        json!({"hostname": "a", "address": "a", "platform": "p", "port": 70000}),
    )
    .await
    .assert_error(422);
    r.json(
        "POST",
        "/api/devices",
        &t,
        json!({"hostname": "a", "address": "a", "platform": "p", "is_admin": true}),
    )
    .await
    .assert_error(422);
    r.json("POST", "/api/devices", &t, json!({"hostname": "a"}))
        .await
        .assert_error(422);
    r.json("POST", "/api/devices", &t, json!([1, 2]))
        .await
        .assert_error(422);
    // Wrong content type: 415.
    r.raw(
        "POST",
        "/api/devices",
        &t,
        "text/plain",
        device("a").to_string().as_bytes(),
    )
    .await
    .assert_error(415);
    // Over 1 MiB: 413.
    let huge = format!(
        r#"{{"hostname":"{}","address":"a","platform":"p"}}"#,
        "x".repeat(2 * 1024 * 1024)
    );
    r.raw(
        "POST",
        "/api/devices",
        &t,
        "application/json",
        huge.as_bytes(),
    )
    .await
    .assert_error(413);
    r.raw(
        "POST",
        "/api/devices/import",
        &t,
        "text/csv",
        huge.as_bytes(),
    )
    .await
    .assert_error(413);
    // Names with path separators or control characters: 422.
    for bad in [
        "$(rm -rf /)",
        "../../etc/passwd",
        "a\nb",
        "tab\there",
        "",
        "   ",
    ] {
        r.json("POST", "/api/devices", &t, device(bad))
            .await
            .assert_error(422);
        r.json("POST", "/api/tags", &t, json!({"name": bad}))
            .await
            .assert_error(422);
    }
    // Jobs: invalid schedule and unknown kinds.
    r.json("POST", "/api/jobs", &t, json!({"name": "j", "kind": {"type": "backup"}, "schedule": {"type": "interval", "seconds": 5}}))
        .await
        .assert_error(422);
    r.json(
        "POST",
        "/api/jobs",
        &t,
        json!({"name": "j", "kind": {"type": "format_disk"}, "schedule": {"type": "manual"}}),
    )
    .await
    .assert_error(422);
    r.json("POST", "/api/jobs", &t, json!({"name": "j", "kind": {"type": "backup"}, "schedule": {"type": "cron", "expression": "not cron"}}))
        .await
        .assert_error(422);
    r.json("POST", "/api/jobs", &t, json!({"name": "j", "kind": {"type": "backup"}, "schedule": {"type": "manual"}, "system": true}))
        .await
        .assert_error(422);
    // Bad path and query parameters: 422.
    r.get("/api/devices/abc", &t).await.assert_error(422);
    r.get("/api/devices?size=1000", &t).await.assert_error(422);
    r.get("/api/devices?page=0", &t).await.assert_error(422);
    r.get("/api/devices?page=-1", &t).await.assert_error(422);
    r.get("/api/runs?status=BOGUS", &t).await.assert_error(422);
    r.get("/api/logs?level=loud", &t).await.assert_error(422);
    r.get("/api/logs?since=yesterday", &t)
        .await
        .assert_error(422);
    r.get("/api/configs/diff?from=1", &t)
        .await
        .assert_error(422);
    r.get("/api/configs/search?q=", &t).await.assert_error(422);
    // Unknown routes and methods: JSON 404 / 405.
    r.get("/api/nope", &t).await.assert_error(404);
    r.get("/nope", &t).await.assert_error(404);
    r.send("DELETE", "/api/health", None, None, &[])
        .await
        .assert_error(405);
    // Missing objects: 404.
    r.get("/api/devices/424242", &t).await.assert_error(404);
    r.send("POST", "/api/jobs/424242/run", Some(&t), None, &[])
        .await
        .assert_error(404);
    assert_eq!(r.device_count().await, 0);
    let tags = r.get("/api/tags", &t).await.json();
    assert_eq!(tags["total"], 0);
    let jobs = r.get("/api/jobs", &t).await.json();
    assert_eq!(jobs["total"], 0);
}

#[tokio::test]
async fn sql_and_shell_metacharacters_are_plain_text() {
    let r = rig().await;
    let t = r.operator.clone();
    let names = [
        "r1'; DROP TABLE devices;--",
        "r2\" OR 1=1",
        "r3 && reboot",
        "r4 `id` | tee",
        "50%_off",
    ];
    for n in names {
        let resp = r.json("POST", "/api/devices", &t, device(n)).await;
        assert_eq!(resp.status, 201, "{n}: {}", resp.text());
        assert_eq!(resp.json()["hostname"], n);
    }
    // Duplicates: 409, nothing changes.
    r.json("POST", "/api/devices", &t, device(names[0]))
        .await
        .assert_error(409);
    assert_eq!(r.device_count().await, names.len() as u64);
    // Filters match literally: `%` and `_` are not wildcards, quotes do not break out.
    let v = r.get("/api/devices?hostname=50%25_", &t).await.json();
    assert_eq!(v["total"], 1);
    let v = r
        .get("/api/devices?hostname=%27%20OR%20%271%27%3D%271", &t)
        .await
        .json();
    assert_eq!(v["total"], 0);
    let v = r.get("/api/logs?search=%27%20OR%201%3D1--", &t).await;
    assert_eq!(v.status, 200);
}

#[tokio::test]
async fn device_import_reports_rows() {
    let r = rig().await;
    let t = r.operator.clone();
    r.json("POST", "/api/devices", &t, device("existing")).await;
    let csv = "hostname,address,port,platform,tags\n\
               sw1,10.0.0.1,22,fake_ios,core;dc1\n\
               sw2,10.0.0.2,,fake_ios,edge|dc1\n\
               sw1,10.0.0.3,22,fake_ios,\n\
               existing,10.0.0.4,22,fake_ios,\n\
               bad/name,10.0.0.5,22,fake_ios,\n\
               sw3,10.0.0.6,notaport,fake_ios,\n\
               sw4,10.0.0.7\n";
    let resp = r
        .raw(
            "POST",
            "/api/devices/import",
            &t,
            "text/csv",
            csv.as_bytes(),
        )
        .await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    let v = resp.json();
    assert_eq!(v["created"], 2, "{v}");
    assert_eq!(v["duplicates"].as_array().unwrap().len(), 2, "{v}");
    assert_eq!(v["errors"].as_array().unwrap().len(), 3, "{v}");
    let rows: Vec<i64> = v["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["row"].as_i64().unwrap())
        .collect();
    assert_eq!(rows, vec![5, 6, 7]);
    let sw1 = r.get("/api/devices?hostname=sw1", &t).await.json();
    assert_eq!(sw1["items"][0]["tags"], json!(["core", "dc1"]));
    let sw2 = r.get("/api/devices?hostname=sw2", &t).await.json();
    assert_eq!(sw2["items"][0]["port"], 22);
    assert_eq!(sw2["items"][0]["tags"], json!(["edge", "dc1"]));
    // JSON array form, with a bad row.
    let body = json!([device("j1"), {"hostname": "j2", "address": "a", "platform": "p", "bogus": 1}, device("j1")]);
    let v = r.json("POST", "/api/devices/import", &t, body).await.json();
    assert_eq!(v["created"], 1);
    assert_eq!(v["errors"][0]["row"], 2);
    assert_eq!(v["duplicates"][0]["row"], 3);
    // A header with an unknown column is refused as a whole.
    r.raw(
        "POST",
        "/api/devices/import",
        &t,
        "text/csv",
        b"hostname,address,platform,bogus\na,b,c,d\n",
    )
    .await
    .assert_error(422);
    // Viewers cannot import.
    r.raw(
        "POST",
        "/api/devices/import",
        &r.viewer,
        "text/csv",
        csv.as_bytes(),
    )
    .await
    .assert_error(403);
    assert_eq!(r.device_count().await, 4);
}

/// The inventory `netraven sim` writes imports with its login columns: credentials pinned to the
/// devices (reused for identical logins), reported without secrets; only admins may do it.
#[tokio::test]
async fn device_import_with_logins() {
    let r = rig().await;
    let csv = format!(
        "hostname,address,port,platform,username,password,enable_secret,tags\n\
         s1,127.0.0.1,21001,{PLATFORM},admin,Pw-s1-secret,En-s1-secret,sim;{PLATFORM}\n\
         s2,127.0.0.1,21002,{PLATFORM},admin,Pw-s1-secret,En-s1-secret,sim\n\
         s3,127.0.0.1,21003,{PLATFORM},ops,Pw-s3-secret,,sim\n"
    );
    r.raw(
        "POST",
        "/api/devices/import",
        &r.operator,
        "text/csv",
        csv.as_bytes(),
    )
    .await
    .assert_error(403);
    assert_eq!(r.device_count().await, 0);
    let resp = r
        .raw(
            "POST",
            "/api/devices/import",
            &r.admin,
            "text/csv",
            csv.as_bytes(),
        )
        .await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    let text = resp.text();
    for s in ["Pw-s1-secret", "En-s1-secret", "Pw-s3-secret"] {
        assert!(
            !text.contains(s),
            "the import answer shows a secret: {text}"
        );
    }
    let v = resp.json();
    assert_eq!(v["created"], 3, "{v}");
    assert_eq!(v["credentials"]["created"], 2, "{v}");
    assert_eq!(v["credentials"]["reused"], 0, "{v}");
    let creds = r.get("/api/credentials", &r.admin).await;
    assert_eq!(creds.json()["total"], 2);
    assert!(!creds.text().contains("Pw-s1-secret"));
    let s1 = &r.get("/api/devices?hostname=s1", &r.viewer).await.json()["items"][0];
    let s2 = &r.get("/api/devices?hostname=s2", &r.viewer).await.json()["items"][0];
    assert!(s1["credential_id"].is_i64(), "{s1}");
    assert_eq!(s1["credential_id"], s2["credential_id"]);
    // A second file with the same login reuses the credential.
    let more = format!(
        "hostname,address,platform,username,password,enable_secret\n\
         s4,127.0.0.1,{PLATFORM},admin,Pw-s1-secret,En-s1-secret\n"
    );
    let v = r
        .raw(
            "POST",
            "/api/devices/import",
            &r.admin,
            "text/csv",
            more.as_bytes(),
        )
        .await
        .json();
    assert_eq!(v["credentials"]["reused"], 1, "{v}");
    assert_eq!(
        v["credentials"]["items"][0]["id"], s1["credential_id"],
        "{v}"
    );
    assert_eq!(r.get("/api/credentials", &r.admin).await.json()["total"], 2);
}

#[tokio::test]
async fn credential_secrets_are_never_returned() {
    let r = rig().await;
    let pw = "Sup3r-S3cret-Pw!";
    let en = "En4ble-S3cret!";
    let c = r
        .json("POST", "/api/credentials", &r.admin, json!({"name": "lab", "username": "netops", "password": pw, "enable_secret": en, "tags": ["core"], "create_missing_tags": true}))
        .await;
    assert_eq!(c.status, 201, "{}", c.text());
    let id = c.json()["id"].as_i64().unwrap();
    assert_eq!(c.json()["has_enable_secret"], true);
    // Operators cannot create credentials.
    r.json(
        "POST",
        "/api/credentials",
        &r.operator,
        json!({"name": "x", "username": "u", "password": "p"}),
    )
    .await
    .assert_error(403);
    let u = r
        .json(
            "PATCH",
            &format!("/api/credentials/{id}"),
            &r.admin,
            json!({"priority": 5, "password": "N3w-Secret-Pw"}),
        )
        .await;
    assert_eq!(u.status, 200, "{}", u.text());
    r.json(
        "POST",
        "/api/credentials",
        &r.admin,
        json!({"name": "lab", "username": "u", "password": "p"}),
    )
    .await
    .assert_error(409);
    r.json(
        "POST",
        "/api/credentials",
        &r.admin,
        json!({"name": "c2", "username": "u", "password": ""}),
    )
    .await
    .assert_error(422);
    for (tok, path) in [
        (&r.admin, "/api/credentials".to_string()),
        (&r.viewer, "/api/credentials".to_string()),
        (&r.admin, format!("/api/credentials/{id}")),
        (&r.operator, format!("/api/credentials/{id}")),
        (&r.admin, "/api/logs".to_string()),
    ] {
        let resp = r.get(&path, tok).await;
        assert_eq!(resp.status, 200);
        let text = resp.text();
        for secret in [pw, en, "N3w-Secret-Pw"] {
            assert!(!text.contains(secret), "{path} leaked a secret: {text}");
        }
        assert!(!text.contains("\"password\""), "{path}: {text}");
    }
    // The secret was stored (the engine needs it).
    let stored = netraven_core::store::CredentialStore::get_credential(r.store.as_ref(), id)
        .await
        .unwrap();
    assert_eq!(stored.password.expose(), "N3w-Secret-Pw");
    assert_eq!(stored.priority, 5);
}

#[tokio::test]
async fn failed_logins_are_limited() {
    let r = rig().await;
    let form = |pw: &str| {
        (
            "application/x-www-form-urlencoded",
            format!("username=viewer&password={pw}").into_bytes(),
        )
    };
    for _ in 0..5 {
        r.send(
            "POST",
            "/api/auth/token",
            None,
            Some(form("wrong-password")),
            &[],
        )
        .await
        .assert_error(401);
    }
    // Even the right password is refused now.
    let resp = r
        .send(
            "POST",
            "/api/auth/token",
            None,
            Some(form(&api_support::password("viewer"))),
            &[],
        )
        .await;
    resp.assert_error(429);
    // Other users are unaffected; JSON logins work too.
    let resp = r
        .json(
            "POST",
            "/api/auth/token",
            "unused",
            json!({"username": "operator", "password": api_support::password("operator")}),
        )
        .await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    // Unknown users get the same 401 as wrong passwords.
    r.json(
        "POST",
        "/api/auth/token",
        "unused",
        json!({"username": "ghost", "password": "whatever1"}),
    )
    .await
    .assert_error(401);
    r.raw(
        "POST",
        "/api/auth/token",
        "unused",
        "application/json",
        b"{bad",
    )
    .await
    .assert_error(400);
}

#[tokio::test]
async fn system_jobs_cannot_be_deleted() {
    let r = rig().await;
    let mut job = netraven_core::model::Job::backup("system-backup", Default::default());
    job.system = true;
    let job = netraven_core::store::JobStore::create_job(r.store.as_ref(), &job)
        .await
        .unwrap();
    let v = r
        .send(
            "DELETE",
            &format!("/api/jobs/{}", job.id),
            Some(&r.admin),
            None,
            &[],
        )
        .await
        .assert_error(409);
    assert!(v["detail"].as_str().unwrap().contains("system job"));
    assert_eq!(
        r.get(&format!("/api/jobs/{}", job.id), &r.viewer)
            .await
            .status,
        200
    );
}
