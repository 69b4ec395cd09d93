//! `netraven demo`: the newcomer's first command. Starts a simulated fleet on 127.0.0.1, the
//! embedded server over it, creates tags, credentials, devices and an hourly backup job, runs the
//! job once, prints the API address, the admin login and the first run's summary, and serves
//! until Ctrl-C.

use crate::config::Config;
use crate::wiring::build;
use netraven_core::prelude::*;
use netraven_drivers::sim::{Faults, SimConfig, SimFleet};
use std::collections::HashMap;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Demo settings.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Simulated devices.
    pub devices: usize,
    /// First simulator port (consecutive ports from there); `None` picks free ports.
    pub port_base: Option<u16>,
}

/// The name of the demo's backup job.
pub const DEMO_JOB: &str = "demo-backup";

fn faults_for(devices: usize) -> HashMap<usize, Faults> {
    let mut m = HashMap::new();
    // A few faulty devices, so the first run shows each kind of outcome.
    let picks = [
        (
            3,
            Faults {
                wrong_password: true,
                ..Faults::default()
            },
        ),
        (
            7,
            Faults {
                second_credential_only: true,
                ..Faults::default()
            },
        ),
        (
            11,
            Faults {
                hang_after: Some(200),
                ..Faults::default()
            },
        ),
        (
            13,
            Faults {
                drop_after: Some(300),
                ..Faults::default()
            },
        ),
        (
            17,
            Faults {
                change_every: Some(1),
                ..Faults::default()
            },
        ),
    ];
    for (i, f) in picks {
        if i < devices {
            m.insert(i, f);
        }
    }
    m
}

async fn upsert_device(store: &dyn Store, d: Device) -> Result<Device> {
    let existing = store
        .list_devices(
            &DeviceFilter {
                hostname: Some(d.hostname.clone()),
                ..Default::default()
            },
            Page::first(10),
        )
        .await?
        .items
        .into_iter()
        .find(|x| x.hostname == d.hostname);
    match existing {
        Some(mut x) => {
            x.address = d.spec.address;
            x.port = d.spec.port;
            x.platform = d.spec.platform;
            x.tags = d.spec.tags;
            x.credential_id = d.spec.credential_id;
            // The simulator makes new host keys per start; the demo trusts them.
            x.host_key_policy = HostKeyPolicy::Off;
            store.update_device(&x).await
        }
        None => store.create_device(&d).await,
    }
}

async fn upsert_credential(store: &dyn Store, c: Credential) -> Result<Credential> {
    let all = store.all_credentials().await?;
    match all.into_iter().find(|x| x.name == c.name) {
        Some(x) => {
            let mut u = c;
            u.id = x.id;
            store.update_credential(&u).await
        }
        None => store.create_credential(&c).await,
    }
}

/// Runs the demo until `shutdown`.
pub async fn run(cfg: &Config, opts: &DemoOptions, shutdown: CancellationToken) -> Result<()> {
    let platforms = ["cisco_ios", "arista_eos", "juniper_junos", "linux"];
    let fleet = SimFleet::start(SimConfig {
        devices: opts.devices,
        platforms: platforms.iter().map(|s| s.to_string()).collect(),
        port_base: opts.port_base,
        hostname_prefix: "demo-".into(),
        device_faults: faults_for(opts.devices),
        ..SimConfig::default()
    })
    .await?;
    println!(
        "simulated fleet: {} devices on 127.0.0.1:{}..",
        fleet.devices().len(),
        fleet.port_base()
    );

    let mut cfg = cfg.clone();
    // Faulty demo devices should fail fast rather than after three minutes.
    cfg.worker.device_timeout_secs = cfg.worker.device_timeout_secs.min(20);
    cfg.worker.connect_timeout_secs = cfg.worker.connect_timeout_secs.min(10);
    cfg.worker.command_timeout_secs = cfg.worker.command_timeout_secs.min(10);
    cfg.worker.attempts = 1;
    let node = build(&cfg, "demo", false).await?;
    let store = node.store.as_ref();
    for t in ["sim", "fallback"].iter().chain(platforms.iter()) {
        if let Err(e) = store
            .create_tag(&Tag {
                id: 0,
                name: t.to_string(),
                description: Some("demo".into()),
            })
            .await
            && e.kind() != ErrorKind::Conflict
        {
            return Err(e);
        }
    }
    for dev in fleet.devices() {
        let creds = dev.credentials();
        let mut first = creds[0].to_credential(&format!("{}-login", dev.hostname()));
        first.priority = 10;
        let first = upsert_credential(store, first).await?;
        let mut d = dev.core_device();
        d.tags = vec!["sim".into(), dev.platform().name().to_string()];
        d.credential_id = Some(first.id);
        d.host_key_policy = HostKeyPolicy::Off;
        if let Some(second) = creds.get(1) {
            let mut c = second.to_credential(&format!("{}-fallback", dev.hostname()));
            c.priority = 20;
            c.tags = vec![format!("fallback-{}", dev.hostname())];
            upsert_credential(store, c).await?;
            d.tags.push(format!("fallback-{}", dev.hostname()));
        }
        upsert_device(store, d).await?;
    }
    let job = match store
        .list_jobs(
            &JobFilter {
                name: Some(DEMO_JOB.into()),
                enabled: None,
            },
            Page::first(10),
        )
        .await?
        .items
        .into_iter()
        .find(|j| j.name == DEMO_JOB)
    {
        Some(j) => j,
        None => {
            let mut j = Job::backup(
                DEMO_JOB,
                Targets {
                    device_ids: vec![],
                    tags: vec!["sim".into()],
                },
            );
            j.description = Some("Backs up the simulated demo fleet every hour".into());
            j.schedule = Schedule::Interval { seconds: 3600 };
            j.created_at = chrono::Utc::now();
            j.updated_at = j.created_at;
            store.create_job(&j).await?
        }
    };

    let listener = TcpListener::bind(&cfg.api.listen).await.map_err(|e| {
        Error::new(
            ErrorKind::Unavailable,
            format!("cannot listen on {}: {e}", cfg.api.listen),
        )
    })?;
    let addr = listener
        .local_addr()
        .map_err(|e| Error::internal(e.to_string()))?;
    let server = tokio::spawn(crate::server::serve_node(
        node.clone(),
        listener,
        shutdown.clone(),
    ));
    println!(
        "web page: http://{addr}/   API: http://{addr}/api  (health: http://{addr}/api/health, metrics: http://{addr}/metrics)"
    );
    println!("data directory: {}", cfg.data_dir.display());

    let run = node.engine.run_now(job.id, None).await?.run;
    println!("first run {} of job '{}' started...", run.id, job.name);
    let run = loop {
        let r = node.store.get_run(run.id).await?;
        if r.status.is_final() || shutdown.is_cancelled() {
            break r;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let c = run.counts;
    println!(
        "first run {}: {} devices, {} ok ({} changed, {} unchanged), {} failed",
        run.status.as_str(),
        c.total,
        c.succeeded,
        c.changed,
        c.unchanged,
        c.failed
    );
    let failed = node
        .store
        .list_results(
            &ResultFilter {
                run_id: Some(run.id),
                status: Some(DeviceStatus::Failed),
                ..Default::default()
            },
            Page::first(100),
        )
        .await?;
    for r in failed.items {
        let host = node
            .store
            .get_device(r.device_id)
            .await
            .map(|d| d.spec.hostname)
            .unwrap_or_default();
        println!(
            "  {host}: {} ({})",
            r.error_kind.map(|k| k.as_str()).unwrap_or("?"),
            r.message.unwrap_or_default()
        );
    }
    println!("serving until Ctrl-C; log in with POST http://{addr}/api/auth/token");
    let r = server
        .await
        .map_err(|e| Error::internal(format!("server panicked: {e}")))?;
    drop(fleet);
    r
}
