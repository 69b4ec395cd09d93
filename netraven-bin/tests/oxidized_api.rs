//! The Oxidized-compatible API answers the request shapes LibreNMS's Oxidized integration sends
//! (`/nodes?format=json`, `/node/show/NAME?format=json`, `/node/version?node_full=…&format=json`,
//! `/node/version/view?node=…&group=…&oid=…&date=…&num=…&format=text`,
//! `/node/version/diffs?…`, `/node/fetch/GROUP/NAME`), with Bearer or Basic authentication.

mod api_support;

use api_support::{PLATFORM, password, rig};
use base64::Engine as _;
use netraven_core::memory::FakeBehavior;
use netraven_core::prelude::*;

#[tokio::test]
async fn librenms_request_shapes() {
    let r = rig().await;
    let cred = r
        .store
        .create_credential(&Credential::new("lab", "netops", Secret::new("pw-123456")))
        .await
        .unwrap();
    let mut ids = Vec::new();
    for (h, tags) in [
        ("core1", vec!["core"]),
        ("edge1", vec![]),
        ("down1", vec!["core"]),
    ] {
        let mut d = Device::new(h, "192.0.2.1", PLATFORM).with_tags(tags);
        d.credential_id = Some(cred.id);
        ids.push(r.store.create_device(&d).await.unwrap().id);
    }
    r.driver.script(
        "down1",
        FakeBehavior {
            connect_error: Some(ErrorKind::Timeout),
            ..FakeBehavior::default()
        },
    );
    let job = r
        .store
        .create_job(&Job::backup(
            "nightly",
            Targets {
                device_ids: vec![ids[0], ids[2]],
                ..Default::default()
            },
        ))
        .await
        .unwrap();
    for config in [
        "hostname core1\nsnmp-server community s3cr3t RO\n",
        "hostname core1\nsnmp-server community s3cr3t RO\ninterface Gi1\n",
    ] {
        r.driver.set_config("core1", config);
        r.engine.run_now(job.id, None).await.unwrap();
        r.engine.drain().await.unwrap();
    }

    // The node list LibreNMS reads: name, ip, model, group, status, time.
    let nodes = r.get("/oxidized/nodes?format=json", &r.viewer).await;
    assert_eq!(nodes.status, 200, "{}", nodes.text());
    let list = nodes.json();
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 3);
    let by = |n: &str| list.iter().find(|x| x["name"] == n).unwrap().clone();
    let core1 = by("core1");
    assert_eq!(core1["group"], "core");
    assert_eq!(core1["full_name"], "core/core1");
    assert_eq!(core1["ip"], "192.0.2.1");
    assert_eq!(
        core1["model"], PLATFORM,
        "no Oxidized model for a fake platform: its own name"
    );
    assert_eq!(core1["status"], "success");
    assert!(core1["time"].as_str().unwrap().ends_with(" UTC"), "{core1}");
    assert_eq!(by("down1")["status"], "no_connection");
    let edge = by("edge1");
    assert_eq!(
        (
            edge["status"].as_str(),
            edge["time"].as_str(),
            edge["group"].as_str()
        ),
        (Some("never"), Some("never"), Some("default"))
    );
    assert_eq!(
        r.get("/oxidized/nodes.json", &r.viewer).await.json(),
        nodes.json()
    );

    let show = r
        .get("/oxidized/node/show/core1?format=json", &r.viewer)
        .await
        .json();
    assert_eq!(show["full_name"], "core/core1");

    // Versions, newest first; view one by oid; diff two.
    let versions = r
        .get(
            "/oxidized/node/version?node_full=core/core1&format=json",
            &r.viewer,
        )
        .await;
    assert_eq!(versions.status, 200, "{}", versions.text());
    let v = versions.json();
    let v = v.as_array().unwrap();
    assert_eq!(v.len(), 2, "{v:?}");
    assert_eq!(v[0]["num"], 2);
    let (new, old) = (v[0]["oid"].as_str().unwrap(), v[1]["oid"].as_str().unwrap());
    let date = v[0]["date"]
        .as_str()
        .unwrap()
        .replace(' ', "%20")
        .replace('+', "%2B");
    let view = r
        .get(&format!("/oxidized/node/version/view?node=core1&group=core&oid={new}&date={date}&num=2&format=text"), &r.viewer)
        .await;
    assert_eq!(view.status, 200, "{}", view.text());
    assert!(view.text().contains("interface Gi1"));
    assert!(
        !view.text().contains("s3cr3t"),
        "stored redacted: {}",
        view.text()
    );
    let lines = r
        .get(
            &format!("/oxidized/node/version/view?node=core1&group=core&oid={old}&format=json"),
            &r.viewer,
        )
        .await
        .json();
    assert_eq!(lines[0], "hostname core1");
    let diff = r
        .get(&format!("/oxidized/node/version/diffs?node=core1&group=core&oid={new}&date={date}&num=2&oid2={old}&format=text"), &r.viewer)
        .await
        .text();
    assert!(diff.contains("+interface Gi1"), "{diff}");
    let diff_prev = r
        .get(
            &format!("/oxidized/node/version/diffs?node=core1&oid={new}&format=text"),
            &r.viewer,
        )
        .await
        .text();
    assert_eq!(diff, diff_prev, "without oid2: against the version before");

    // Fetch by name and by group/name.
    for path in [
        "/oxidized/node/fetch/core1",
        "/oxidized/node/fetch/core/core1",
    ] {
        let f = r.get(path, &r.viewer).await;
        assert_eq!(f.status, 200, "{path}: {}", f.text());
        assert!(f.text().contains("interface Gi1"));
    }
    r.get("/oxidized/node/fetch/edge1", &r.viewer)
        .await
        .assert_error(404);
    r.get("/oxidized/node/fetch/nosuch", &r.viewer)
        .await
        .assert_error(404);
    // Another device's oid is not a version of this node.
    let other = r
        .get(
            &format!("/oxidized/node/version/view?node=down1&oid={new}&format=text"),
            &r.viewer,
        )
        .await;
    other.assert_error(404);
    r.get("/oxidized/node/version?format=json", &r.viewer)
        .await
        .assert_error(422);

    // Authentication: none → 401 with a Basic challenge; Basic with the password works.
    let anon = r
        .send("GET", "/oxidized/nodes?format=json", None, None, &[])
        .await;
    assert_eq!(anon.status, 401);
    let basic = |u: &str, p: &str| {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))
        )
    };
    let ok = r
        .send(
            "GET",
            "/oxidized/nodes?format=json",
            None,
            None,
            &[("authorization", &basic("viewer", &password("viewer")))],
        )
        .await;
    assert_eq!(ok.status, 200, "{}", ok.text());
    let bad = r
        .send(
            "GET",
            "/oxidized/nodes?format=json",
            None,
            None,
            &[("authorization", &basic("viewer", "wrong"))],
        )
        .await;
    assert_eq!(bad.status, 401);
    let junk = r
        .send(
            "GET",
            "/oxidized/nodes?format=json",
            Some("not-a-token"),
            None,
            &[],
        )
        .await;
    assert_eq!(junk.status, 401);
}
