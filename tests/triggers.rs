//! Device-triggered backups end to end: a simulated device's `%SYS-5-CONFIG_I` message to the
//! syslog listener (UDP, then TCP) starts a backup of that device — and only of it — over real
//! SSH, recorded on the run with trigger `syslog` and the user the message names. A message from
//! an address no device has starts nothing.

use netraven::Netraven;
use netraven::core::prelude::*;
use netraven::core::triggers::{SyslogSettings, change_user_of, device_job_name};
use netraven_drivers::sim::{SimConfig, SimFleet};
use std::time::Duration;

async fn runs_of(nr: &Netraven, device: DeviceId) -> Vec<Run> {
    let jobs = nr
        .store()
        .list_jobs(
            &JobFilter {
                name: Some(device_job_name(device)),
                enabled: None,
            },
            Page::new(1, 10),
        )
        .await
        .unwrap();
    let Some(job) = jobs
        .items
        .into_iter()
        .find(|j| j.name == device_job_name(device))
    else {
        return Vec::new();
    };
    nr.store()
        .list_runs(
            &RunFilter {
                job_id: Some(job.id),
                ..RunFilter::default()
            },
            Page::new(1, 10),
        )
        .await
        .unwrap()
        .items
}

/// Polls until the device's job has a final run (a generous bound, not a timing assertion).
async fn final_run(nr: &Netraven, device: DeviceId) -> Run {
    for _ in 0..600 {
        if let Some(r) = runs_of(nr, device)
            .await
            .into_iter()
            .find(|r| r.status.is_final())
        {
            return r;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no finished run for device {device}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_config_change_message_backs_up_the_device_that_sent_it() {
    let fleet = SimFleet::start(SimConfig {
        devices: 2,
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let nr = Netraven::builder()
        .data_dir(dir.path())
        .build()
        .await
        .unwrap();
    let mut ids = Vec::new();
    for dev in fleet.devices() {
        let cred = nr
            .store()
            .create_credential(&dev.credential())
            .await
            .unwrap();
        let mut d = dev.core_device();
        d.credential_id = Some(cred.id);
        ids.push(nr.store().create_device(&d).await.unwrap().id);
    }
    let settings = SyslogSettings {
        listen: Some("127.0.0.1:0".into()),
        debounce_secs: 0,
        ..SyslogSettings::default()
    };
    let (udp, tcp) = netraven::syslog::start(&nr, &settings, None, nr.shutdown_token())
        .await
        .unwrap()
        .expect("listening");
    let (udp, tcp) = (udp.unwrap(), tcp.unwrap());
    nr.start();

    // Both simulated devices live at 127.0.0.1: the message's HOSTNAME picks sim-0001.
    let msg = format!(
        "<189>Jan  1 10:00:00 {} 123: %SYS-5-CONFIG_I: Configured from console by alice on vty0 (10.0.0.9)",
        fleet.device(1).hostname()
    );
    // First from an address no device has: nothing happens.
    let stranger = tokio::net::UdpSocket::bind("127.0.0.2:0").await.unwrap();
    stranger.send_to(msg.as_bytes(), udp).await.unwrap();
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    // Not a change message: nothing happens either.
    let other = msg.replace("%SYS-5-CONFIG_I", "%LINK-3-UPDOWN");
    sock.send_to(other.as_bytes(), udp).await.unwrap();
    sock.send_to(msg.as_bytes(), udp).await.unwrap();

    let run = final_run(&nr, ids[1]).await;
    assert_eq!(run.trigger, Trigger::Syslog);
    assert_eq!(run.status, RunStatus::CompletedSuccess, "{run:?}");
    assert_eq!(run.counts.total, 1);
    let message = run.message.clone().unwrap_or_default();
    assert!(message.contains("%SYS-5-CONFIG_I"), "{message}");
    assert_eq!(change_user_of(&message), Some("alice"));
    let results = nr
        .store()
        .list_results(
            &ResultFilter {
                run_id: Some(run.id),
                ..ResultFilter::default()
            },
            Page::new(1, 10),
        )
        .await
        .unwrap();
    assert_eq!(results.items.len(), 1);
    assert_eq!(results.items[0].device_id, ids[1]);
    assert_eq!(results.items[0].status, DeviceStatus::Success);
    // The packets are handled in order: the stranger's and the link message came first and
    // queued nothing for either device.
    assert!(runs_of(&nr, ids[0]).await.is_empty());
    assert_eq!(runs_of(&nr, ids[1]).await.len(), 1);

    // Over TCP (octet counting, RFC 6587), for the other device.
    let msg0 = format!(
        "<189>Jan  1 10:00:01 {} 124: %SYS-5-CONFIG_I: Configured from console by bob on vty0",
        fleet.device(0).hostname()
    );
    let mut conn = tokio::net::TcpStream::connect(tcp).await.unwrap();
    use tokio::io::AsyncWriteExt;
    conn.write_all(format!("{} {msg0}", msg0.len()).as_bytes())
        .await
        .unwrap();
    conn.flush().await.unwrap();
    let run0 = final_run(&nr, ids[0]).await;
    assert_eq!(run0.trigger, Trigger::Syslog);
    assert_eq!(run0.status, RunStatus::CompletedSuccess, "{run0:?}");
    assert_eq!(
        change_user_of(run0.message.as_deref().unwrap_or("")),
        Some("bob")
    );
    drop(conn);

    // Who changed it: the device's own "! Last configuration change at ... by admin" line
    // (read before normalising drops it) wins over the user the syslog message named; the API
    // shows it with the snapshot and git records it as the commit's author.
    nr.sink().flush().await.unwrap();
    let snap = nr
        .store()
        .latest_snapshot(ids[1])
        .await
        .unwrap()
        .expect("a snapshot");
    assert_eq!(snap.author.as_deref(), Some("admin"), "{snap:?}");
    let full = nr.store().get_snapshot(snap.id).await.unwrap();
    assert!(!full.content.contains("Last configuration change"));
    let commit = snap.commit_id.clone().expect("committed");
    let git = nr.git().expect("git sink");
    let out = std::process::Command::new("git")
        .args([
            "--git-dir",
            &git.config().path.to_string_lossy(),
            "log",
            "-1",
            "--format=%an <%ae>|%cn",
            &commit,
        ])
        .output()
        .expect("git log");
    let line = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert_eq!(line, "admin <admin@localhost>|NetRaven", "{line}");
    nr.shutdown().await.unwrap();
}
