//! Device output never reaches results or logs unredacted: a device that hangs right after a
//! secret line, and one that floods its client, fail with messages that say what was awaited.

use netraven::Netraven;
use netraven::core::engine::EngineConfig;
use netraven::core::prelude::*;
use netraven::drivers::sim::{Faults, SimConfig, SimFleet};
use std::time::Duration;

async fn run_against(faults: Faults) -> (Vec<DeviceResult>, Vec<LogEntry>, Vec<String>) {
    let fleet = SimFleet::start(SimConfig {
        devices: 1,
        platform: "cisco_ios".into(),
        faults,
        ..SimConfig::default()
    })
    .await
    .expect("simulator");
    let nr = Netraven::builder()
        .in_memory()
        .without_git()
        .engine_config(EngineConfig {
            command_timeout: Duration::from_secs(2),
            device_timeout: Duration::from_secs(60),
            device_attempts: 1,
            ..EngineConfig::default()
        })
        .build()
        .await
        .expect("build");
    let dev = fleet.device(0);
    let cred = nr
        .store()
        .create_credential(&dev.credential())
        .await
        .expect("credential");
    let mut device = dev.core_device();
    device.credential_id = Some(cred.id);
    let device = nr.store().create_device(&device).await.expect("device");
    let job = nr
        .store()
        .create_job(&Job::backup(
            "hostile",
            Targets {
                device_ids: vec![device.id],
                tags: vec![],
            },
        ))
        .await
        .expect("job");
    let run = nr.run_and_wait(job.id).await.expect("run");
    let results = nr
        .store()
        .list_results(
            &ResultFilter {
                run_id: Some(run.id),
                ..Default::default()
            },
            Page::first(10),
        )
        .await
        .expect("results")
        .items;
    let logs = nr
        .store()
        .list_logs(&LogFilter::default(), Page::first(500))
        .await
        .expect("logs")
        .items;
    let mut secrets = dev.secrets();
    secrets.push(dev.credential().password.expose().to_string());
    (results, logs, secrets)
}

fn assert_clean(results: &[DeviceResult], logs: &[LogEntry], forbidden: &[String]) {
    let mut all = format!("{results:?}");
    for l in logs {
        all.push_str(&format!("{} {}\n", l.message, l.fields));
    }
    for f in forbidden {
        assert!(
            !all.contains(f.as_str()),
            "`{f}` reached results or logs:\n{all}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hang_after_a_secret_line_leaves_no_device_bytes_in_results_or_logs() {
    let (results, logs, mut secrets) = run_against(Faults {
        hang_in_line: Some("enable secret 9 ".into()),
        ..Faults::default()
    })
    .await;
    assert_eq!(results.len(), 1);
    assert_eq!(
        results[0].error_kind,
        Some(ErrorKind::Timeout),
        "{results:?}"
    );
    let msg = results[0].message.as_deref().unwrap_or("");
    assert!(
        msg.contains("show running-config"),
        "says what was awaited: {msg}"
    );
    secrets.push("secret 9".into());
    assert_clean(&results, &logs, &secrets);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flooding_device_fails_too_large_without_its_bytes_anywhere() {
    let (results, logs, mut secrets) = run_against(Faults {
        flood: Some(64 * 1024 * 1024),
        ..Faults::default()
    })
    .await;
    assert_eq!(
        results[0].error_kind,
        Some(ErrorKind::TooLarge),
        "{results:?}"
    );
    secrets.push("xxxxxxxx".into());
    assert_clean(&results, &logs, &secrets);
}
