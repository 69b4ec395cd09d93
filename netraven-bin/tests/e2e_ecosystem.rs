//! End to end through the binary: a Nornir inventory of simulated devices imported with
//! `netraven import --from nornir` (dry run first), then `netraven serve`, `netraven ctl jobs
//! run` exiting 0 on success and 2 when a device fails, and the Oxidized-compatible node list.

mod e2e_support;

use e2e_support::*;
use netraven_drivers::sim::{SimConfig, SimFleet};
use std::process::Command;
use std::time::Duration;

fn run(args: &[&str], envs: &[(&str, &str)]) -> (i32, String) {
    let out = Command::new(BIN)
        .args(args)
        .envs(envs.iter().copied())
        .env_remove("NETRAVEN_DATABASE_URL")
        .env_remove("NETRAVEN_CONFIG")
        .output()
        .expect("run netraven");
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nornir_import_ctl_and_oxidized() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let data_s = data.display().to_string();
    let fleet = SimFleet::start(SimConfig {
        devices: 2,
        ..Default::default()
    })
    .await
    .expect("simulator");
    let nornir = tmp.path().join("nornir");
    std::fs::create_dir_all(&nornir).unwrap();
    let mut hosts = String::new();
    for d in fleet.devices() {
        let c = d.credential();
        hosts.push_str(&format!(
            "{}:\n  hostname: 127.0.0.1\n  port: {}\n  username: {}\n  password: \"{}\"\n  groups: [lab]\n  connection_options:\n    netmiko:\n      extras:\n        secret: \"{}\"\n",
            d.hostname(),
            d.port(),
            c.username,
            c.password.expose(),
            c.enable_secret.as_ref().map(|s| s.expose()).unwrap_or_default()
        ));
    }
    std::fs::write(nornir.join("hosts.yaml"), hosts).unwrap();
    std::fs::write(nornir.join("groups.yaml"), "lab:\n  platform: ios\n").unwrap();
    let dir = nornir.display().to_string();
    let env = [("NETRAVEN_DATA_DIR", data_s.as_str())];

    let (code, text) = run(&["import", "--from", "nornir", &dir, "--dry-run"], &env);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("2 added"), "{text}");
    let (code, text) = run(&["import", "--from", "nornir", &dir], &env);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("2 added"), "{text}");
    let (code, text) = run(&["import", "--from", "nornir", &dir], &env);
    assert!(
        code == 0 && text.contains("0 added, 0 updated, 0 disabled, 2 unchanged"),
        "{text}"
    );
    for s in fleet_secrets(&fleet) {
        assert!(!text.contains(s.as_str()), "import output shows a secret");
    }

    let addr = format!("127.0.0.1:{}", free_port());
    let senv = vec![
        ("NETRAVEN_DATA_DIR".to_string(), data_s.clone()),
        ("NETRAVEN_API_LISTEN".to_string(), addr.clone()),
        ("NETRAVEN_ADMIN_PASSWORD".to_string(), ADMIN_PASSWORD.into()),
    ];
    let mut server = Proc::spawn("serve", &["serve"], &senv, tmp.path());
    let mut api = Api::new(&addr);
    api.wait_healthy(&mut server, Duration::from_secs(20)).await;
    api.login_admin().await;
    api.post(
        "/api/jobs",
        serde_json::json!({"name": "lab", "kind": {"type": "backup"},
            "targets": {"tags": ["lab"]}, "schedule": {"type": "manual"}}),
        201,
    )
    .await;
    let http = reqwest::Client::new();
    let login: serde_json::Value = http
        .post(format!("http://{addr}/api/auth/token"))
        .json(&serde_json::json!({"username": "admin", "password": ADMIN_PASSWORD}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = login["access_token"].as_str().unwrap().to_string();
    let url = format!("http://{addr}");
    let cenv = [
        ("NETRAVEN_URL", url.as_str()),
        ("NETRAVEN_TOKEN", token.as_str()),
    ];

    let (code, text) = run(&["ctl", "jobs", "run", "lab"], &cenv);
    assert_eq!(
        code,
        0,
        "{text}\n{}",
        run(&["ctl", "logs", "tail", "-n", "30"], &cenv).1
    );
    assert!(
        text.contains("COMPLETED_SUCCESS (2 devices: 2 ok, 0 failed"),
        "{text}"
    );
    let port = free_port().to_string();
    let (code, text) = run(
        &[
            "ctl",
            "devices",
            "add",
            "broken",
            "127.0.0.1",
            "cisco_ios",
            "--port",
            &port,
            "--tag",
            "lab",
        ],
        &cenv,
    );
    assert_eq!(code, 0, "{text}");
    let (code, text) = run(&["ctl", "jobs", "run", "lab", "--json"], &cenv);
    assert_eq!(code, 2, "{text}");
    let run_json: serde_json::Value =
        serde_json::from_str(text.trim()).expect("--json prints the run");
    assert_eq!(run_json["status"], "COMPLETED_PARTIAL_FAILURE");

    let nodes: serde_json::Value = http
        .get(format!("{url}/oxidized/nodes?format=json"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let nodes = nodes.as_array().expect("a list");
    assert_eq!(nodes.len(), 3, "{nodes:?}");
    let broken = nodes.iter().find(|n| n["name"] == "broken").unwrap();
    assert_eq!(
        (
            broken["status"].as_str(),
            broken["group"].as_str(),
            broken["model"].as_str()
        ),
        (Some("no_connection"), Some("lab"), Some("ios"))
    );
    assert!(
        nodes.iter().filter(|n| n["status"] == "success").count() == 2,
        "{nodes:?}"
    );
    server.term();
    server.expect_exit_ok(Duration::from_secs(10)).await;
}
