//! The rules of docs/api.md, checked for every route of the route table and point by point:
//! strict parameters, list envelopes, 404 for unknown path ids, filters (repeatable, literal),
//! sorting, validation, references, PUT vs PATCH, body errors with field paths, conflicts in the
//! API's words, the status sections, the log cursor and the OpenAPI document.

mod api_support;

use api_support::{PLATFORM, Rig, rig, rig_on};
use netraven_core::prelude::*;
use netraven_server::api::{self, RespBody};
use serde_json::{Value, json};
use std::sync::Arc;
use tower::ServiceExt;

/// An id no test creates.
const MISSING: i64 = 2_000_000_001;

/// Extra query a list needs to answer at all (its required parameters).
fn required_query(path: &str) -> &'static str {
    match path {
        "/api/configs/search" => "q=hostname&",
        _ => "",
    }
}

fn ids(v: &Value) -> Vec<i64> {
    v["items"]
        .as_array()
        .unwrap_or_else(|| panic!("no items: {v}"))
        .iter()
        .map(|i| i["id"].as_i64().unwrap())
        .collect()
}

fn names(v: &Value, field: &str) -> Vec<String> {
    v["items"]
        .as_array()
        .unwrap_or_else(|| panic!("no items: {v}"))
        .iter()
        .map(|i| i[field].as_str().unwrap().to_string())
        .collect()
}

async fn device(r: &Rig, hostname: &str, tags: &[&str]) -> i64 {
    let resp = r
        .json(
            "POST",
            "/api/devices",
            &r.operator,
            json!({"hostname": hostname, "address": "192.0.2.10", "platform": PLATFORM,
                   "tags": tags, "create_missing_tags": true}),
        )
        .await;
    assert_eq!(resp.status, 201, "{}", resp.text());
    resp.json()["id"].as_i64().unwrap()
}

#[tokio::test]
async fn every_list_is_strict_and_paged_and_every_path_id_is_404_when_unknown() {
    let r = rig().await;
    let routes = api::routes();
    let lists: Vec<_> = routes.iter().filter(|s| s.is_list()).collect();
    assert!(lists.len() >= 10, "{} list routes", lists.len());
    for s in &lists {
        assert_eq!(s.method, "GET", "{}", s.path);
        if s.path.contains('{') {
            continue; // with a path id: below, after a device exists
        }
        let q = required_query(s.path);
        let bad = r
            .get(&format!("{}?{q}no_such_filter=1", s.path), &r.admin)
            .await;
        let v = bad.assert_error(422);
        assert!(
            v["detail"].as_str().unwrap().contains("no_such_filter"),
            "{} does not name the parameter: {v}",
            s.path
        );
        r.get(&format!("{}?{q}size=101", s.path), &r.admin)
            .await
            .assert_error(422);
        let ok = r.get(&format!("{}?{q}size=100", s.path), &r.admin).await;
        assert_eq!(ok.status, 200, "{}: {}", s.path, ok.text());
        let v = ok.json();
        for k in ["items", "total", "page", "size", "pages"] {
            assert!(v.get(k).is_some(), "{} answers no {k}: {v}", s.path);
        }
        assert_eq!(v["size"], 100, "{}", s.path);
        assert!(v["items"].is_array(), "{}", s.path);
    }
    // Lists under a path id, for an id that exists.
    let id = device(&r, "r1", &[]).await;
    for s in lists.iter().filter(|s| s.path.contains('{')) {
        let path = s.path.replace("{device_id}", &id.to_string());
        r.get(&format!("{path}?no_such_filter=1"), &r.admin)
            .await
            .assert_error(422);
        r.get(&format!("{path}?size=101"), &r.admin)
            .await
            .assert_error(422);
        let v = r.get(&path, &r.admin).await.json();
        for k in ["items", "total", "page", "size", "pages"] {
            assert!(v.get(k).is_some(), "{path} answers no {k}: {v}");
        }
    }
    // Every route with a path id, every method: an id that does not exist is 404.
    let mut checked = 0;
    for s in routes.iter().filter(|s| s.path.contains('{')) {
        let path = s
            .path
            .replace("{id}", &MISSING.to_string())
            .replace("{device_id}", &MISSING.to_string());
        let body = s.request.map(|_| ("application/json", b"{}".to_vec()));
        let resp = r.send(s.method, &path, Some(&r.admin), body, &[]).await;
        assert_eq!(resp.status, 404, "{} {path}: {}", s.method, resp.text());
        resp.assert_error(404);
        checked += 1;
    }
    assert!(checked >= 20, "{checked} routes with a path id");
    // Every route refuses a parameter it does not know, lists or not.
    for s in &routes {
        let path = s
            .path
            .replace("{id}", &MISSING.to_string())
            .replace("{device_id}", &id.to_string());
        let body = s.request.map(|_| ("application/json", b"{}".to_vec()));
        let resp = r
            .send(
                s.method,
                &format!("{path}?no_such_filter=1"),
                Some(&r.admin),
                body,
                &[],
            )
            .await;
        let v = resp.assert_error(422);
        assert!(
            v["detail"].as_str().unwrap().contains("no_such_filter"),
            "{} {path}: {v}",
            s.method
        );
    }
}

#[tokio::test]
async fn lists_filter_by_their_fields_case_insensitively_and_literally() {
    let r = rig().await;
    let op = r.operator.clone();
    for name in ["Core-DC", "edge", "100%_lit", "100x"] {
        let t = r
            .json("POST", "/api/tags", &op, json!({ "name": name }))
            .await;
        assert_eq!(t.status, 201, "{}", t.text());
    }
    let v = r.get("/api/tags?name=core", &op).await.json();
    assert_eq!(names(&v, "name"), vec!["Core-DC"]);
    // % and _ are literal characters, not wildcards.
    let v = r.get("/api/tags?name=100%25_", &op).await.json();
    assert_eq!(names(&v, "name"), vec!["100%_lit"]);
    // Users: username contains, role, active.
    let v = r.get("/api/users?username=OPER", &r.admin).await.json();
    assert_eq!(names(&v, "username"), vec!["operator"]);
    let v = r.get("/api/users?role=viewer", &r.admin).await.json();
    assert_eq!(names(&v, "username"), vec!["viewer"]);
    r.get("/api/users?role=root", &r.admin)
        .await
        .assert_error(422);
    // Credentials: name, username contains; tag.
    for (name, user, tag) in [("lab", "netops", "edge"), ("prod", "backup", "Core-DC")] {
        let c = r
            .json(
                "POST",
                "/api/credentials",
                &r.admin,
                json!({"name": name, "username": user, "password": "pw-123456", "tags": [tag]}),
            )
            .await;
        assert_eq!(c.status, 201, "{}", c.text());
    }
    let v = r.get("/api/credentials?username=NETOPS", &op).await.json();
    assert_eq!(names(&v, "name"), vec!["lab"]);
    let v = r.get("/api/credentials?tag=Core-DC", &op).await.json();
    assert_eq!(names(&v, "name"), vec!["prod"]);
    let v = r.get("/api/credentials?name=ro", &op).await.json();
    assert_eq!(names(&v, "name"), vec!["prod"]);
}

#[tokio::test]
async fn a_repeated_filter_means_any_of_its_values() {
    let r = rig().await;
    let op = r.operator.clone();
    device(&r, "a1", &["A"]).await;
    device(&r, "b1", &["B"]).await;
    device(&r, "c1", &["C"]).await;
    let v = r.get("/api/devices?tag=A&tag=B", &op).await.json();
    assert_eq!(v["total"], 2, "{v}");
    assert_eq!(names(&v, "hostname"), vec!["a1", "b1"]);
    let v = r
        .get("/api/devices?hostname=a1&hostname=c1", &op)
        .await
        .json();
    assert_eq!(names(&v, "hostname"), vec!["a1", "c1"]);
    let v = r.get("/api/tags?name=a&name=b", &op).await.json();
    assert_eq!(names(&v, "name"), vec!["A", "B"]);
    let v = r
        .get("/api/users?role=viewer&role=operator", &r.admin)
        .await
        .json();
    assert_eq!(v["total"], 2, "{v}");
    // Repeated numeric filters too.
    let v = r.get("/api/runs?job_id=1&job_id=2", &op).await;
    assert_eq!(v.status, 200, "{}", v.text());
    let v = r.get("/api/logs?run_id=1&run_id=2", &op).await;
    assert_eq!(v.status, 200, "{}", v.text());
}

#[tokio::test]
async fn lists_sort_on_their_fields() {
    let r = rig().await;
    let op = r.operator.clone();
    for n in ["b", "c", "a"] {
        r.json("POST", "/api/tags", &op, json!({ "name": n })).await;
        device(&r, n, &[]).await;
    }
    let v = r.get("/api/tags", &op).await.json();
    assert_eq!(names(&v, "name"), vec!["a", "b", "c"], "default: by name");
    let v = r.get("/api/tags?sort=-name", &op).await.json();
    assert_eq!(names(&v, "name"), vec!["c", "b", "a"]);
    let v = r.get("/api/tags?sort=id", &op).await.json();
    assert_eq!(names(&v, "name"), vec!["b", "c", "a"]);
    let v = r
        .get("/api/devices?sort=-hostname&size=2", &op)
        .await
        .json();
    assert_eq!(names(&v, "hostname"), vec!["c", "b"]);
    assert_eq!(
        (v["total"].clone(), v["pages"].clone()),
        (json!(3), json!(2))
    );
    let v = r
        .get("/api/devices?sort=-hostname&size=2&page=2", &op)
        .await
        .json();
    assert_eq!(names(&v, "hostname"), vec!["a"]);
    let v = r.get("/api/devices?sort=-id", &op).await.json();
    let got = ids(&v);
    assert!(got.windows(2).all(|w| w[0] > w[1]), "{got:?}");
    let e = r
        .get("/api/devices?sort=password", &op)
        .await
        .assert_error(422);
    assert!(e["detail"].as_str().unwrap().contains("hostname"), "{e}");
}

#[tokio::test]
async fn devices_are_validated_and_bad_import_rows_are_reported() {
    let r = rig().await;
    let op = r.operator.clone();
    let e = r
        .json(
            "POST",
            "/api/devices",
            &op,
            json!({"hostname": "x", "address": "192.0.2.1", "platform": "no_such_platform"}),
        )
        .await
        .assert_error(422);
    assert!(e["detail"].as_str().unwrap().contains("platform"), "{e}");
    let e = r
        .json(
            "POST",
            "/api/devices",
            &op,
            json!({"hostname": "x", "address": "not an address!", "platform": PLATFORM}),
        )
        .await
        .assert_error(422);
    assert!(e["detail"].as_str().unwrap().contains("address"), "{e}");
    for ok in ["192.0.2.1", "2001:db8::1", "core-sw1.lab.example.net"] {
        let h = format!("h{}", ok.len());
        let resp = r
            .json(
                "POST",
                "/api/devices",
                &op,
                json!({"hostname": h, "address": ok, "platform": PLATFORM}),
            )
            .await;
        assert_eq!(resp.status, 201, "{ok}: {}", resp.text());
    }
    assert_eq!(r.device_count().await, 3);
    // A patch cannot make a device invalid either.
    let id = r.get("/api/devices", &op).await.json()["items"][0]["id"].clone();
    r.json(
        "PATCH",
        &format!("/api/devices/{id}"),
        &op,
        json!({"platform": "nope"}),
    )
    .await
    .assert_error(422);
    // Import: good rows saved, bad rows reported with their row number and reason.
    let csv = format!(
        "hostname,address,platform\ni1,192.0.2.21,{PLATFORM}\ni2,192.0.2.22,no_such_platform\n\
         i3,bad address!,{PLATFORM}\ni4,192.0.2.24,{PLATFORM}\n"
    );
    let v = r
        .raw(
            "POST",
            "/api/devices/import",
            &op,
            "text/csv",
            csv.as_bytes(),
        )
        .await
        .json();
    assert_eq!(v["created"], 2, "{v}");
    let errors = v["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 2, "{v}");
    assert_eq!(errors[0]["row"], 2);
    assert!(errors[0]["detail"].as_str().unwrap().contains("platform"));
    assert_eq!(errors[1]["row"], 3);
    assert!(errors[1]["detail"].as_str().unwrap().contains("address"));
    assert_eq!(r.device_count().await, 5);
}

#[tokio::test]
async fn references_are_checked_and_tags_are_created_only_on_request() {
    let r = rig().await;
    let op = r.operator.clone();
    let job = |name: &str, targets: Value| json!({"name": name, "kind": {"type": "backup"}, "targets": targets, "schedule": {"type": "manual"}});
    let e = r
        .json(
            "POST",
            "/api/jobs",
            &op,
            job("j1", json!({"device_ids": [MISSING]})),
        )
        .await
        .assert_error(422);
    assert!(
        e["detail"].as_str().unwrap().contains(&MISSING.to_string()),
        "{e}"
    );
    r.json("POST", "/api/jobs", &op, job("j2", json!({})))
        .await
        .assert_error(422);
    r.json(
        "POST",
        "/api/jobs",
        &op,
        job("j3", json!({"device_ids": [], "tags": []})),
    )
    .await
    .assert_error(422);
    // Unknown tags: 422 listing them, unless create_missing_tags.
    let e = r
        .json(
            "POST",
            "/api/jobs",
            &op,
            job("j4", json!({"tags": ["ghost", "spook"]})),
        )
        .await
        .assert_error(422);
    let d = e["detail"].as_str().unwrap();
    assert!(d.contains("ghost") && d.contains("spook"), "{e}");
    let e = r
        .json(
            "POST",
            "/api/devices",
            &op,
            json!({"hostname": "d1", "address": "192.0.2.1", "platform": PLATFORM, "tags": ["ghost"]}),
        )
        .await
        .assert_error(422);
    assert!(e["detail"].as_str().unwrap().contains("ghost"), "{e}");
    r.json(
        "POST",
        "/api/credentials",
        &r.admin,
        json!({"name": "c", "username": "u", "password": "p", "tags": ["ghost"],
               "create_missing_tags": false}),
    )
    .await
    .assert_error(422);
    let tags = r.get("/api/tags", &op).await.json();
    assert_eq!(tags["total"], 0, "no tag was created: {tags}");
    // A credential creates its tags unless told not to (scripts set it up before its devices).
    let c = r
        .json(
            "POST",
            "/api/credentials",
            &r.admin,
            json!({"name": "c", "username": "u", "password": "p", "tags": ["cred-tag"]}),
        )
        .await;
    assert_eq!(c.status, 201, "{}", c.text());
    device(&r, "after-cred", &[]).await;
    let d = r
        .json(
            "POST",
            "/api/devices",
            &op,
            json!({"hostname": "d0", "address": "192.0.2.1", "platform": PLATFORM, "tags": ["cred-tag"]}),
        )
        .await;
    assert_eq!(d.status, 201, "{}", d.text());
    let id = device(&r, "d1", &["ghost"]).await;
    let mut b = job("j5", json!({"device_ids": [id], "tags": ["ghost"]}));
    let ok = r.json("POST", "/api/jobs", &op, b.clone()).await;
    assert_eq!(ok.status, 201, "{}", ok.text());
    b["name"] = json!("j6");
    b["targets"]["tags"] = json!(["new-one"]);
    b["create_missing_tags"] = json!(true);
    let ok = r.json("POST", "/api/jobs", &op, b).await;
    assert_eq!(ok.status, 201, "{}", ok.text());
    assert_eq!(r.get("/api/tags", &op).await.json()["total"], 3);
}

#[tokio::test]
async fn put_replaces_and_patch_merges_on_every_resource() {
    let r = rig().await;
    let op = r.operator.clone();
    let adm = r.admin.clone();
    // Devices.
    let id = r
        .json(
            "POST",
            "/api/devices",
            &op,
            json!({"hostname": "r1", "address": "192.0.2.1", "platform": PLATFORM, "description": "first"}),
        )
        .await
        .json()["id"]
        .clone();
    let p = r
        .json(
            "PATCH",
            &format!("/api/devices/{id}"),
            // Moving a device (address/port) is an admin's right (api_security.rs).
            &r.admin,
            json!({"port": 2222}),
        )
        .await;
    assert_eq!(p.status, 200, "{}", p.text());
    let v = r.get(&format!("/api/devices/{id}"), &op).await.json();
    assert_eq!(
        (v["port"].clone(), v["hostname"].clone()),
        (json!(2222), json!("r1"))
    );
    assert_eq!(v["description"], "first");
    // null resets a field to its default.
    let v = r
        .json(
            "PATCH",
            &format!("/api/devices/{id}"),
            &op,
            json!({"description": null}),
        )
        .await
        .json();
    assert_eq!(v["description"], Value::Null);
    assert_eq!(v["port"], 2222);
    // PUT needs the whole object and resets what it leaves out.
    r.json(
        "PUT",
        &format!("/api/devices/{id}"),
        &op,
        json!({"port": 2222}),
    )
    .await
    .assert_error(422);
    let v = r
        .json(
            "PUT",
            &format!("/api/devices/{id}"),
            &r.admin,
            json!({"hostname": "r1", "address": "192.0.2.1", "platform": PLATFORM}),
        )
        .await
        .json();
    assert_eq!(v["port"], 22, "PUT resets the port: {v}");
    // Tags.
    let t = r
        .json(
            "POST",
            "/api/tags",
            &op,
            json!({"name": "t", "description": "d"}),
        )
        .await
        .json()["id"]
        .clone();
    let v = r
        .json(
            "PATCH",
            &format!("/api/tags/{t}"),
            &op,
            json!({"name": "t2"}),
        )
        .await
        .json();
    assert_eq!(
        (v["name"].clone(), v["description"].clone()),
        (json!("t2"), json!("d"))
    );
    let v = r
        .json("PUT", &format!("/api/tags/{t}"), &op, json!({"name": "t3"}))
        .await
        .json();
    assert_eq!(
        (v["name"].clone(), v["description"].clone()),
        (json!("t3"), Value::Null)
    );
    // Users: PUT replaces (role and active are required), PATCH merges.
    let vid = r.get("/api/users?username=viewer", &adm).await.json()["items"][0]["id"].clone();
    r.json(
        "PUT",
        &format!("/api/users/{vid}"),
        &adm,
        json!({"active": true}),
    )
    .await
    .assert_error(422);
    let v = r
        .json(
            "PATCH",
            &format!("/api/users/{vid}"),
            &adm,
            json!({"role": "operator"}),
        )
        .await
        .json();
    assert_eq!(
        (v["role"].clone(), v["active"].clone()),
        (json!("operator"), json!(true))
    );
    let v = r
        .json(
            "PUT",
            &format!("/api/users/{vid}"),
            &adm,
            json!({"username": "viewer", "role": "viewer", "active": true}),
        )
        .await
        .json();
    assert_eq!(v["role"], "viewer");
    // Credentials: PATCH keeps the rest, PUT resets what it leaves out (but keeps secrets).
    let c = r
        .json(
            "POST",
            "/api/credentials",
            &adm,
            json!({"name": "lab", "username": "netops", "password": "pw-1", "priority": 5, "description": "x"}),
        )
        .await
        .json()["id"]
        .clone();
    let v = r
        .json(
            "PATCH",
            &format!("/api/credentials/{c}"),
            &adm,
            json!({"username": "ops"}),
        )
        .await
        .json();
    assert_eq!(
        (v["priority"].clone(), v["description"].clone()),
        (json!(5), json!("x"))
    );
    let v = r
        .json(
            "PUT",
            &format!("/api/credentials/{c}"),
            &adm,
            json!({"name": "lab", "username": "ops"}),
        )
        .await
        .json();
    assert_eq!(
        (v["priority"].clone(), v["description"].clone()),
        (json!(100), Value::Null)
    );
    let stored = r.store.get_credential(c.as_i64().unwrap()).await.unwrap();
    assert_eq!(
        stored.password.expose(),
        "pw-1",
        "PUT keeps an omitted secret"
    );
    // Jobs.
    let dev = id.as_i64().unwrap();
    let j = r
        .json(
            "POST",
            "/api/jobs",
            &op,
            json!({"name": "j", "description": "d", "kind": {"type": "backup"},
                   "targets": {"device_ids": [dev]}, "schedule": {"type": "manual"}}),
        )
        .await
        .json()["id"]
        .clone();
    let v = r
        .json(
            "PATCH",
            &format!("/api/jobs/{j}"),
            &op,
            json!({"enabled": false}),
        )
        .await
        .json();
    assert_eq!(
        (v["enabled"].clone(), v["description"].clone()),
        (json!(false), json!("d"))
    );
    assert_eq!(v["targets"]["device_ids"], json!([dev]));
    r.json(
        "PUT",
        &format!("/api/jobs/{j}"),
        &op,
        json!({"enabled": true}),
    )
    .await
    .assert_error(422);
}

#[tokio::test]
async fn wrong_json_types_are_422_with_the_field_path_and_bad_syntax_is_400() {
    let r = rig().await;
    let e = r
        .json(
            "POST",
            "/api/users",
            &r.admin,
            json!({"username": "u1", "password": "Long-enough-pw-1", "role": 7}),
        )
        .await
        .assert_error(422);
    assert!(e["detail"].as_str().unwrap().starts_with("role"), "{e}");
    let e = r
        .json(
            "POST",
            "/api/jobs",
            &r.operator,
            json!({"name": "j", "kind": {"type": "backup"}, "targets": {"device_ids": ["x"]},
                   "schedule": {"type": "manual"}}),
        )
        .await
        .assert_error(422);
    assert!(
        e["detail"]
            .as_str()
            .unwrap()
            .starts_with("targets.device_ids[0]"),
        "{e}"
    );
    r.json("POST", "/api/tags", &r.operator, json!({"name": ["x"]}))
        .await
        .assert_error(422);
    r.raw(
        "POST",
        "/api/users",
        &r.admin,
        "application/json",
        b"{\"username\": ",
    )
    .await
    .assert_error(400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conflicts_name_the_field_never_the_storage() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cipher = Arc::new(netraven_store::cipher::AesGcmCipher::from_key(
        &netraven_store::cipher::KeyMaterial::generate(),
    ));
    let store = netraven_store::sql::SqliteStore::open(dir.path().join("netraven.db"), cipher)
        .await
        .expect("sqlite");
    let r = rig_on(Arc::new(store)).await;
    let op = r.operator.clone();
    device(&r, "dup", &[]).await;
    let e = r
        .json(
            "POST",
            "/api/devices",
            &op,
            json!({"hostname": "dup", "address": "192.0.2.1", "platform": PLATFORM}),
        )
        .await
        .assert_error(409);
    let d = e["detail"].as_str().unwrap();
    assert!(d.contains("hostname") && d.contains("dup"), "{e}");
    r.json("POST", "/api/tags", &op, json!({"name": "t"})).await;
    let e = r
        .json("POST", "/api/tags", &op, json!({"name": "t"}))
        .await
        .assert_error(409);
    assert!(e["detail"].as_str().unwrap().contains("name"), "{e}");
    let csv = format!("hostname,address,platform\ndup,192.0.2.2,{PLATFORM}\n");
    let v = r
        .raw(
            "POST",
            "/api/devices/import",
            &op,
            "text/csv",
            csv.as_bytes(),
        )
        .await
        .json();
    let text = v.to_string();
    assert_eq!(v["duplicates"][0]["row"], 1, "{v}");
    assert!(text.contains("hostname"), "{v}");
    for internal in ["UNIQUE", "constraint", "devices.hostname", "sqlite"] {
        assert!(
            !text.contains(internal),
            "storage detail {internal} leaked: {v}"
        );
        assert!(!e.to_string().contains(internal), "{e}");
    }
}

#[tokio::test]
async fn history_of_an_unknown_device_is_404() {
    let r = rig().await;
    r.get(&format!("/api/configs/{MISSING}/history"), &r.viewer)
        .await
        .assert_error(404);
    let id = device(&r, "r1", &[]).await;
    let v = r
        .get(&format!("/api/configs/{id}/history"), &r.viewer)
        .await
        .json();
    assert_eq!(v["total"], 0);
}

#[tokio::test]
async fn status_reports_scheduler_queue_git_and_workers() {
    let r = rig().await;
    let id = device(&r, "r1", &[]).await;
    let j = r
        .json(
            "POST",
            "/api/jobs",
            &r.operator,
            json!({"name": "hourly", "kind": {"type": "backup"}, "targets": {"device_ids": [id]},
                   "schedule": {"type": "interval", "seconds": 3600}}),
        )
        .await;
    assert_eq!(j.status, 201, "{}", j.text());
    let v = r.get("/api/system/status", &r.viewer).await.json();
    assert_eq!(v["scheduler"]["running_here"], false, "{v}");
    assert_eq!(v["scheduler"]["next_fires"][0]["job"], "hourly", "{v}");
    for k in ["ready", "leased", "delayed", "dead"] {
        assert!(v["queue"][k].is_u64(), "queue.{k}: {v}");
    }
    assert!(v["git"]["pending_snapshots"].is_u64(), "{v}");
    assert!(v["workers"]["in_flight"].is_u64(), "{v}");
    assert!(v["store"]["ok"].as_bool().unwrap(), "{v}");
    // A scheduler sharing the engine's status shows up as leader with its last tick.
    let sched = netraven_core::scheduler::Scheduler::new(
        r.store.clone(),
        r.engine.queue().clone(),
        Arc::new(netraven_core::clock::SystemClock),
        netraven_core::scheduler::SchedulerConfig {
            holder: "test-scheduler".into(),
            tick: std::time::Duration::from_millis(20),
            ..Default::default()
        },
    )
    .with_status(r.engine.scheduler_status().clone());
    let stop = tokio_util::sync::CancellationToken::new();
    let task = tokio::spawn({
        let stop = stop.clone();
        async move { sched.run(stop).await }
    });
    let mut v = Value::Null;
    for _ in 0..500 {
        v = r.get("/api/system/status", &r.viewer).await.json();
        if !v["scheduler"]["last_tick"].is_null() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    stop.cancel();
    task.await.unwrap().unwrap();
    assert_eq!(v["scheduler"]["running_here"], true, "{v}");
    assert_eq!(v["scheduler"]["holder"], "test-scheduler", "{v}");
    assert_eq!(v["scheduler"]["leader"], true, "{v}");
}

#[tokio::test]
async fn logs_have_a_cursor_and_the_stream_resumes_after_last_event_id() {
    let r = rig().await;
    let job = r
        .store
        .create_job(&Job::backup("j", Targets::default()))
        .await
        .unwrap();
    let run = r
        .store
        .create_run(&NewRun {
            job_id: job.id,
            trigger: Trigger::Manual,
            fire_time: None,
            idempotency_key: None,
            status: RunStatus::Skipped,
            message: None,
            queued_at: chrono::Utc::now(),
        })
        .await
        .unwrap()
        .run;
    let now = chrono::Utc::now();
    let entries: Vec<LogEntry> = (0..5)
        .map(|i| {
            let mut e = LogEntry::new(
                now,
                LogLevel::Info,
                LogKind::Job,
                "test",
                format!("line {i}"),
            );
            e.run_id = Some(run.id);
            e
        })
        .collect();
    r.store.append_logs(&entries).await.unwrap();
    let all = r
        .get(&format!("/api/logs?run_id={}&size=100", run.id), &r.viewer)
        .await
        .json();
    let mut got = ids(&all);
    got.sort();
    assert_eq!(got.len(), 5);
    let after = r
        .get(
            &format!("/api/logs?run_id={}&after_id={}&size=100", run.id, got[1]),
            &r.viewer,
        )
        .await
        .json();
    assert_eq!(
        ids(&after),
        got[2..].to_vec(),
        "strictly greater, ascending"
    );
    // The stream resumes after Last-Event-ID (it wins over after_id) without repeating lines.
    let last = got[2].to_string();
    let s = r
        .send(
            "GET",
            &format!("/api/logs/stream?run_id={}&after_id=0", run.id),
            Some(&r.viewer),
            None,
            &[("last-event-id", last.as_str())],
        )
        .await;
    assert_eq!(s.status, 200, "{}", s.text());
    let sent: Vec<i64> = s
        .text()
        .lines()
        .filter_map(|l| l.strip_prefix("id:"))
        .map(|v| v.trim().parse().unwrap())
        .collect();
    assert_eq!(sent, got[3..].to_vec(), "{}", s.text());
    assert!(s.text().contains("event: end"), "{}", s.text());
}

#[tokio::test]
async fn openapi_has_a_schema_for_every_body() {
    let r = rig().await;
    let doc = r.get("/api/openapi.json", &r.viewer).await.json();
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    assert!(schemas.len() >= 20, "{} schemas", schemas.len());
    let mut ops = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            ops += 1;
            // Actions without a body: run a job, back up a device.
            if ["post", "put", "patch"].contains(&method.as_str())
                && !path.ends_with("/run")
                && !path.ends_with("/backup")
            {
                assert!(
                    op.get("requestBody").is_some(),
                    "{method} {path}: no requestBody"
                );
            }
            let responses = op["responses"].as_object().unwrap();
            for (code, resp) in responses {
                if code.starts_with('2') && code != "204" {
                    assert!(
                        resp.get("content").is_some(),
                        "{method} {path} {code}: no content"
                    );
                }
            }
        }
    }
    assert_eq!(ops, api::routes().len());
    // Every reference resolves.
    let text = doc.to_string();
    for part in text.split("\"#/components/schemas/").skip(1) {
        let name = part.split('"').next().unwrap();
        assert!(schemas.contains_key(name), "dangling $ref {name}");
    }
    // The list routes document their envelope.
    for s in api::routes().iter().filter(|s| s.is_list()) {
        let RespBody::Page(item) = s.response else {
            unreachable!()
        };
        assert!(schemas.contains_key(item), "{item}");
    }
}

#[tokio::test]
async fn devices_show_their_state_and_filter_by_it() {
    let r = rig().await;
    let op = r.operator.clone();
    let c = r
        .json(
            "POST",
            "/api/credentials",
            &r.admin,
            json!({"name": "lab", "username": "netops", "password": "pw-123456", "tags": ["core"]}),
        )
        .await;
    assert_eq!(c.status, 201, "{}", c.text());
    r.driver.set_config("good", "hostname good\n");
    r.driver.script(
        "bad",
        netraven_core::memory::FakeBehavior {
            connect_error: Some(ErrorKind::Timeout),
            ..Default::default()
        },
    );
    let good = device(&r, "good", &["core"]).await;
    let bad = device(&r, "bad", &["core"]).await;
    let never = device(&r, "never", &[]).await;
    let before = chrono::Utc::now();
    let job = r
        .json(
            "POST",
            "/api/jobs",
            &op,
            json!({"name": "n", "kind": {"type": "backup"}, "targets": {"device_ids": [good, bad]},
                   "schedule": {"type": "manual"}}),
        )
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
    let g = r.get(&format!("/api/devices/{good}"), &op).await.json();
    let s = &g["state"];
    assert_eq!(s["last_status"], "SUCCESS", "{g}");
    assert!(
        s["last_success"].is_string() && s["last_change"].is_string(),
        "{g}"
    );
    assert_eq!(s["credential"], "lab", "{g}");
    assert!(s["failure_reason"].is_null(), "{g}");
    let b = r.get(&format!("/api/devices/{bad}"), &op).await.json();
    assert_eq!(b["state"]["last_status"], "FAILED", "{b}");
    assert!(
        b["state"]["failure_reason"]
            .as_str()
            .unwrap()
            .starts_with("timeout"),
        "{b}"
    );
    assert!(b["state"]["last_success"].is_null(), "{b}");
    let list = r.get("/api/devices", &op).await.json();
    assert_eq!(list["items"][0]["state"]["last_status"], "FAILED", "{list}");
    // Filters on the state.
    let v = r.get("/api/devices?last_status=failed", &op).await.json();
    assert_eq!(ids(&v), vec![bad]);
    let v = r
        .get("/api/devices?last_status=FAILED&last_status=none", &op)
        .await
        .json();
    assert_eq!(ids(&v), vec![bad, never]);
    let since = before.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let v = r
        .get(&format!("/api/devices?changed_since={since}"), &op)
        .await
        .json();
    assert_eq!(ids(&v), vec![good]);
    let v = r
        .get(&format!("/api/devices?stale_since={since}"), &op)
        .await
        .json();
    assert_eq!(ids(&v), vec![bad, never]);
    r.get("/api/devices?last_status=maybe", &op)
        .await
        .assert_error(422);
    // By id: any of several (repeats and unknown ids are harmless), with the other filters.
    let v = r
        .get(
            &format!("/api/devices?id={never}&id={bad}&id={bad}&id=999999"),
            &op,
        )
        .await
        .json();
    let mut got = ids(&v);
    got.sort();
    let mut want = vec![bad, never];
    want.sort();
    assert_eq!(got, want, "{v}");
    assert_eq!(v["total"], 2, "{v}");
    let v = r
        .get(
            &format!("/api/devices?id={never}&id={bad}&last_status=none"),
            &op,
        )
        .await
        .json();
    assert_eq!(ids(&v), vec![never]);
    let many: String = (1..=101).map(|i| format!("id={i}&")).collect();
    r.get(&format!("/api/devices?{many}"), &op)
        .await
        .assert_error(422);
}

#[tokio::test]
async fn latest_config_downloads_as_text_and_snapshots_have_etags() {
    let r = rig().await;
    let op = r.operator.clone();
    r.driver.set_config("r1", "hostname r1\ninterface x\n");
    r.json(
        "POST",
        "/api/credentials",
        &r.admin,
        json!({"name": "lab", "username": "netops", "password": "pw-123456", "tags": ["core"]}),
    )
    .await;
    let id = device(&r, "r1", &["core"]).await;
    r.get(&format!("/api/configs/{id}/latest"), &op)
        .await
        .assert_error(404);
    let job = r
        .json(
            "POST",
            "/api/jobs",
            &op,
            json!({"name": "n", "kind": {"type": "backup"}, "targets": {"device_ids": [id]},
                   "schedule": {"type": "manual"}}),
        )
        .await;
    let job_id = job.json()["id"].as_i64().unwrap();
    r.send(
        "POST",
        &format!("/api/jobs/{job_id}/run"),
        Some(&op),
        None,
        &[],
    )
    .await;
    r.engine.drain().await.unwrap();
    let latest = r.get(&format!("/api/configs/{id}/latest"), &op).await;
    assert_eq!(latest.status, 200, "{}", latest.text());
    let v = latest.json();
    assert!(
        v["content"].as_str().unwrap().contains("interface x"),
        "{v}"
    );
    let raw = r
        .get(&format!("/api/configs/{id}/latest?format=text"), &op)
        .await;
    assert_eq!(raw.status, 200);
    assert!(
        raw.content_type.starts_with("text/plain"),
        "{}",
        raw.content_type
    );
    assert!(raw.text().contains("interface x"));
    // ETag: the same snapshot again is 304 with If-None-Match.
    let snap = v["id"].as_i64().unwrap();
    let resp = r
        .app
        .clone()
        .oneshot(
            axum::http::Request::get(format!("/api/configs/snapshots/{snap}"))
                .header("authorization", format!("Bearer {op}"))
                .body(axum::body::Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let tag = resp.headers()["etag"].to_str().unwrap().to_string();
    let again = r
        .send(
            "GET",
            &format!("/api/configs/snapshots/{snap}"),
            Some(&op),
            None,
            &[("if-none-match", tag.as_str())],
        )
        .await;
    assert_eq!(again.status, 304);
    assert!(again.body.is_empty());
    let other = r
        .send(
            "GET",
            &format!("/api/configs/{id}/latest"),
            Some(&op),
            None,
            &[("if-none-match", "\"0-other\"")],
        )
        .await;
    assert_eq!(other.status, 200);
}

#[tokio::test]
async fn bulk_retags_and_deletes_many_devices() {
    let r = rig().await;
    let op = r.operator.clone();
    let a = device(&r, "a", &["x"]).await;
    let b = device(&r, "b", &[]).await;
    let c = device(&r, "c", &[]).await;
    let e = r
        .json(
            "POST",
            "/api/devices/bulk",
            &op,
            json!({"ids": [a, MISSING], "action": "delete"}),
        )
        .await
        .assert_error(422);
    assert!(
        e["detail"].as_str().unwrap().contains(&MISSING.to_string()),
        "{e}"
    );
    assert_eq!(r.device_count().await, 3, "nothing deleted");
    r.json(
        "POST",
        "/api/devices/bulk",
        &op,
        json!({"ids": [a, b], "action": "add_tags", "tags": ["new"]}),
    )
    .await
    .assert_error(422);
    let v = r
        .json(
            "POST",
            "/api/devices/bulk",
            &op,
            json!({"ids": [a, b], "action": "add_tags", "tags": ["x", "new"], "create_missing_tags": true}),
        )
        .await
        .json();
    assert_eq!(v["changed"], 2, "{v}");
    let t = r.get("/api/devices?tag=new", &op).await.json();
    assert_eq!(ids(&t), vec![a, b]);
    let v = r
        .json(
            "POST",
            "/api/devices/bulk",
            &op,
            json!({"ids": [a], "action": "remove_tags", "tags": ["x"]}),
        )
        .await
        .json();
    assert_eq!(v["changed"], 1, "{v}");
    let d = r.get(&format!("/api/devices/{a}"), &op).await.json();
    assert_eq!(d["tags"], json!(["new"]));
    r.json(
        "POST",
        "/api/devices/bulk",
        &r.viewer,
        json!({"ids": [c], "action": "delete"}),
    )
    .await
    .assert_error(403);
    let v = r
        .json(
            "POST",
            "/api/devices/bulk",
            &op,
            json!({"ids": [b, c], "action": "delete"}),
        )
        .await
        .json();
    assert_eq!(v["changed"], 2, "{v}");
    assert_eq!(r.device_count().await, 1);
}

#[tokio::test]
async fn search_gives_line_numbers_context_and_takes_regexes() {
    let r = rig().await;
    let op = r.operator.clone();
    r.json(
        "POST",
        "/api/credentials",
        &r.admin,
        json!({"name": "lab", "username": "netops", "password": "pw-123456", "tags": ["core"]}),
    )
    .await;
    r.driver.set_config(
        "s1",
        "hostname s1\ninterface Gi0/1\n ip address 10.1.1.1 255.255.255.0\n!\n",
    );
    r.driver
        .set_config("s2", "hostname s2\ninterface Gi0/2\n shutdown\n!\n");
    let a = device(&r, "s1", &["core"]).await;
    let b = device(&r, "s2", &["core"]).await;
    let job = r
        .json(
            "POST",
            "/api/jobs",
            &op,
            json!({"name": "n", "kind": {"type": "backup"}, "targets": {"device_ids": [a, b]},
                   "schedule": {"type": "manual"}}),
        )
        .await;
    let job_id = job.json()["id"].as_i64().unwrap();
    r.send(
        "POST",
        &format!("/api/jobs/{job_id}/run"),
        Some(&op),
        None,
        &[],
    )
    .await;
    r.engine.drain().await.unwrap();
    let v = r
        .get("/api/configs/search?q=IP%20ADDRESS&context=1", &op)
        .await
        .json();
    assert_eq!(v["total"], 1, "{v}");
    let m = &v["items"][0]["matches"][0];
    assert_eq!(v["items"][0]["hostname"], "s1");
    assert_eq!(m["line"], 3, "{v}");
    assert_eq!(m["before"], json!(["interface Gi0/1"]));
    assert_eq!(m["after"], json!(["!"]));
    let v = r
        .get(
            "/api/configs/search?q=%5Einterface%20gi0%2F%5B12%5D%24&regex=true",
            &op,
        )
        .await
        .json();
    assert_eq!(v["total"], 2, "{v}");
    assert_eq!(v["items"][1]["matches"][0]["line"], 2, "{v}");
    r.get("/api/configs/search?q=(unclosed&regex=true", &op)
        .await
        .assert_error(422);
}
