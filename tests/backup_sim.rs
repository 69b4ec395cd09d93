//! End to end over real SSH: the simulator serves every built-in platform on 127.0.0.1, the
//! one-shot backup (the same engine the server uses) backs them up into a bare git repository,
//! and a second backup finds every device unchanged and makes no commit.

use netraven::backup::{BackupOptions, run};
use netraven_drivers::sim::{SimConfig, SimFleet};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_platform_backs_up_and_a_rerun_is_unchanged() {
    let fleet = SimFleet::start(SimConfig {
        devices: 8,
        platforms: ["cisco_ios", "arista_eos", "juniper_junos", "linux"]
            .iter()
            .map(|s| s.to_string())
            .collect(),
        ..SimConfig::default()
    })
    .await
    .expect("simulator");
    let dir = tempfile::tempdir().expect("tempdir");
    let inventory = dir.path().join("inventory.csv");
    fleet.write_inventory(&inventory).expect("inventory");
    let opts = BackupOptions {
        inventory,
        repo: dir.path().join("configs.git"),
        concurrency: 4,
        device_timeout: Duration::from_secs(30),
        progress: None,
        platforms_dir: None,
    };
    let first = run(&opts).await.expect("first backup");
    assert_eq!(first.failed_total(), 0, "{}", first.render());
    assert_eq!((first.ok, first.changed), (8, 8));
    assert!(first.commit.is_some());

    // What git holds is the simulator's config minus volatile lines, secrets replaced.
    let repo = git_show(
        &opts.repo,
        &format!("HEAD:{}.cfg", fleet.device(0).hostname()),
    );
    assert_eq!(repo, fleet.device(0).expected_backup());
    for d in fleet.devices() {
        let content = git_show(&opts.repo, &format!("HEAD:{}.cfg", d.hostname()));
        for s in d.secrets() {
            assert!(
                !content.contains(&s),
                "{} leaked a secret into git",
                d.hostname()
            );
        }
    }

    let second = run(&opts).await.expect("second backup");
    assert_eq!(
        (second.ok, second.changed, second.unchanged),
        (8, 0, 8),
        "{}",
        second.render()
    );
    assert!(second.commit.is_none(), "an unchanged fleet made a commit");
    // Host keys are pinned across runs: a device that presents a new key is refused.
    fleet.device(1).rotate_host_key();
    let third = run(&opts).await.expect("third backup");
    assert_eq!(third.failed.get("host_key"), Some(&1), "{}", third.render());
    assert_eq!(third.ok, 7);

    let fsck = std::process::Command::new("git")
        .args([
            "--git-dir",
            &opts.repo.to_string_lossy(),
            "fsck",
            "--strict",
        ])
        .output()
        .expect("git fsck");
    assert!(
        fsck.status.success(),
        "git fsck: {}",
        String::from_utf8_lossy(&fsck.stderr)
    );
}

fn git_show(repo: &std::path::Path, what: &str) -> String {
    let out = std::process::Command::new("git")
        .args(["--git-dir", &repo.to_string_lossy(), "show", what])
        .output()
        .expect("git show");
    assert!(
        out.status.success(),
        "git show {what}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn devices_that_only_offer_sha1_key_exchange_back_up_when_marked_legacy() {
    let fleet = SimFleet::start(SimConfig {
        devices: 2,
        legacy_kex_only: true,
        ..SimConfig::default()
    })
    .await
    .expect("simulator");
    let dir = tempfile::tempdir().expect("tempdir");
    let inventory = dir.path().join("inventory.csv");
    fleet.write_inventory(&inventory).expect("inventory");
    let text = std::fs::read_to_string(&inventory).expect("read");
    assert!(text.lines().next().unwrap_or("").ends_with(",legacy_ssh"));
    let mut opts = BackupOptions {
        inventory: inventory.clone(),
        repo: dir.path().join("configs.git"),
        concurrency: 2,
        device_timeout: Duration::from_secs(30),
        progress: None,
        platforms_dir: None,
    };
    let s = run(&opts).await.expect("backup");
    assert_eq!((s.ok, s.failed_total()), (2, 0), "{}", s.render());

    // Without the opt-in the same devices are refused before any password is sent.
    let plain = dir.path().join("plain.csv");
    std::fs::write(
        &plain,
        text.replace(",legacy_ssh", "").replace(",true\n", "\n"),
    )
    .expect("write");
    opts.inventory = plain;
    opts.repo = dir.path().join("other.git");
    let s = run(&opts).await.expect("backup");
    assert_eq!(s.failed_total(), 2, "{}", s.render());
    assert!(
        fleet.devices().iter().all(|d| d.passwords_received() == 1),
        "only the legacy run sent passwords"
    );
}
