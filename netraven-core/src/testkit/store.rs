//! The store conformance suite.

use super::{t0, unique};
use crate::error::ErrorKind;
use crate::model::*;
use crate::secret::Secret;
use crate::store::{ServerStore, Store, StoreExt, UserStore};
use std::sync::Arc;
use std::time::Duration;

/// Runs every check against a store that also keeps users and tokens (the memory and SQL
/// stores): [`run_engine`] and the user checks. Names are made unique, so the store may hold
/// other data.
pub async fn run_all(store: Arc<dyn ServerStore>) {
    users(store.as_ref()).await;
    update_user_checks_the_username(store.as_ref()).await;
    run_engine(store).await;
}

/// Runs every check of the traits the engine uses ([`Store`]) against one store: what a store of
/// an embedder's own must pass. Names are made unique, so the store may hold other data.
pub async fn run_engine(store: Arc<dyn Store>) {
    devices(store.as_ref()).await;
    tags(store.as_ref()).await;
    credentials(store.as_ref()).await;
    jobs(store.as_ref()).await;
    runs_and_results(store.as_ref()).await;
    latest_results(store.as_ref()).await;
    concurrent_results_are_recorded_once(store.clone()).await;
    logs(store.as_ref()).await;
    snapshots(store.as_ref()).await;
    put_snapshot_dedupes_by_hash(store.as_ref()).await;
    device_tags_keep_their_order(store.as_ref()).await;
    host_keys(store.as_ref()).await;
    jump_hosts(store.as_ref()).await;
    leases(store.as_ref()).await;
    finish_run_needs_a_final_status(store.as_ref()).await;
    lookups_by_name(store.as_ref()).await;
    schema(store.as_ref()).await;
}

/// A store handed out by its constructor has every migration it knows applied.
pub async fn schema(s: &dyn Store) {
    let st = s.schema_status().await.expect("schema status");
    assert!(st.is_current(), "pending migrations after open: {st:?}");
    assert_eq!(st.applied, Some(st.latest), "{st:?}");
}

async fn new_device(s: &dyn Store, name: &str, platform: &str, tags: &[&str]) -> Device {
    let mut d = Device::new(name, "10.0.0.1", platform).with_tags(tags.iter().copied());
    d.created_at = t0();
    d.updated_at = t0();
    s.create_device(&d).await.expect("create device")
}

async fn new_job(s: &dyn Store, targets: Targets) -> Job {
    let mut j = Job::backup(unique("job"), targets);
    j.created_at = t0();
    j.updated_at = t0();
    s.create_job(&j).await.expect("create job")
}

/// Device CRUD, unique hostnames, filters (partial, case-insensitive, literal), pagination.
pub async fn devices(s: &dyn Store) {
    let p = unique("dev");
    let tag = unique("tag");
    let a = new_device(s, &format!("{p}-Core-1"), "cisco_ios", &[&tag]).await;
    let b = new_device(s, &format!("{p}-core-2"), "arista_eos", &[&tag]).await;
    let c = new_device(s, &format!("{p}-edge_1"), "cisco_ios", &[]).await;
    assert!(a.id > 0 && a.id != b.id);
    assert_eq!(a.tags, vec![tag.clone()]);
    let dup = s
        .create_device(&Device::new(&a.hostname, "10.0.0.9", "linux"))
        .await;
    assert_eq!(
        dup.expect_err("duplicate hostname").kind(),
        ErrorKind::Conflict
    );
    let got = s.get_device(a.id).await.expect("get");
    assert_eq!(got.hostname, a.hostname);
    assert_eq!(got.port, 22);
    assert_eq!(got.host_key_policy, HostKeyPolicy::Tofu);
    // A device's own timeout multiplier is kept (stored in percent) and read back.
    let mut slow = Device::new(format!("{p}-slow"), "10.0.0.8", "cisco_ios");
    slow.timeout_multiplier = Some(0.1);
    let slow = s
        .create_device(&slow)
        .await
        .expect("device with a multiplier");
    let got = s.get_device(slow.id).await.expect("get");
    assert_eq!(got.timeout_multiplier, Some(0.1));
    assert_eq!(
        got.transport,
        Transport::Ssh,
        "SSH unless the device says otherwise"
    );
    assert_eq!(got.jump_host, None);
    let mut upd = got.clone();
    upd.timeout_multiplier = Some(2.5);
    upd.transport = Transport::Telnet;
    upd.jump_host = Some("bastion-1".into());
    s.update_device(&upd).await.expect("update multiplier");
    let got = s.get_device(slow.id).await.expect("get");
    assert_eq!(got.timeout_multiplier, Some(2.5));
    assert_eq!(got.transport, Transport::Telnet);
    assert_eq!(got.jump_host.as_deref(), Some("bastion-1"));
    let mut tel = Device::new(format!("{p}-tel"), "10.0.0.7", "cisco_ios").with_port(23);
    tel.transport = Transport::Telnet;
    let tel = s.create_device(&tel).await.expect("telnet device");
    assert_eq!(
        s.get_device(tel.id).await.expect("get").transport,
        Transport::Telnet
    );
    s.delete_device(tel.id).await.expect("delete");
    s.delete_device(slow.id).await.expect("delete");
    // A device's zone is kept, changed and cleared; a bad zone name is refused.
    let mut remote = Device::new(format!("{p}-remote"), "10.0.0.9", "cisco_ios");
    remote.zone = Some("site-a".into());
    let remote = s.create_device(&remote).await.expect("device with a zone");
    let got = s.get_device(remote.id).await.expect("get");
    assert_eq!(got.zone.as_deref(), Some("site-a"));
    let mut upd = got.clone();
    upd.zone = Some("site_b".into());
    s.update_device(&upd).await.expect("update zone");
    assert_eq!(
        s.devices_by_ids(&[remote.id]).await.expect("by ids")[0]
            .zone
            .as_deref(),
        Some("site_b")
    );
    upd.zone = None;
    s.update_device(&upd).await.expect("clear zone");
    assert_eq!(s.get_device(remote.id).await.expect("get").zone, None);
    upd.zone = Some("Site A".into());
    assert_eq!(
        s.update_device(&upd).await.expect_err("bad zone").kind(),
        ErrorKind::InvalidInput
    );
    s.delete_device(remote.id).await.expect("delete");

    let f = |h: &str| DeviceFilter {
        hostname: Some(h.to_string()),
        ..Default::default()
    };
    let page = s
        .list_devices(&f(&format!("{p}-core")), Page::first(10))
        .await
        .expect("list");
    assert_eq!(
        page.total, 2,
        "hostname filter must be partial and case-insensitive"
    );
    assert_eq!(page.items[0].hostname, a.hostname, "ordered by hostname");
    let page = s
        .list_devices(&f(&format!("{p}-edge_")), Page::first(10))
        .await
        .expect("list");
    assert_eq!(page.total, 1);
    let page = s
        .list_devices(&f(&format!("{p}-edge%")), Page::first(10))
        .await
        .expect("list");
    assert_eq!(page.total, 0, "'%' must match literally");
    let page = s
        .list_devices(&f(&format!("{p}-%")), Page::first(10))
        .await
        .expect("list");
    assert_eq!(page.total, 0, "'%' must match literally");
    let page = s
        .list_devices(
            &DeviceFilter {
                tag: Some(tag.clone()),
                ..Default::default()
            },
            Page::first(10),
        )
        .await
        .expect("list");
    assert_eq!(page.total, 2);
    let page = s
        .list_devices(
            &DeviceFilter {
                tag: Some(tag.clone()),
                platform: Some("arista_eos".into()),
                ..Default::default()
            },
            Page::first(10),
        )
        .await
        .expect("list");
    assert_eq!(page.items.len(), 1);
    assert_eq!(page.items[0].id, b.id);
    let page = s.list_devices(&f(&p), Page::new(2, 2)).await.expect("list");
    assert_eq!((page.total, page.items.len(), page.pages), (3, 1, 2));

    let evil = format!("{p}'; DROP TABLE devices;--");
    let e = new_device(s, &evil, "linux", &[]).await;
    let page = s
        .list_devices(&f(&evil), Page::first(10))
        .await
        .expect("injection filter");
    assert_eq!(page.items.len(), 1);
    assert_eq!(page.items[0].hostname, evil, "stored and matched literally");
    let page = s
        .list_devices(&f("' OR '1'='1"), Page::first(10))
        .await
        .expect("injection filter");
    assert_eq!(page.total, 0);

    let mut upd = c.clone();
    upd.tags = vec![tag.clone()];
    upd.description = Some("edge router".into());
    let upd = s.update_device(&upd).await.expect("update");
    assert_eq!(
        s.get_device(c.id)
            .await
            .expect("get")
            .description
            .as_deref(),
        Some("edge router")
    );
    let ids = s
        .device_ids_with_tags(std::slice::from_ref(&tag))
        .await
        .expect("by tag");
    assert_eq!(ids.len(), 3);
    let mut clash = upd.clone();
    clash.hostname = a.hostname.clone();
    assert_eq!(
        s.update_device(&clash)
            .await
            .expect_err("rename clash")
            .kind(),
        ErrorKind::Conflict
    );
    let by_ids = s
        .devices_by_ids(&[b.id, a.id, 987_654_321])
        .await
        .expect("by ids");
    assert_eq!(
        by_ids.iter().map(|d| d.id).collect::<Vec<_>>(),
        vec![a.id, b.id]
    );
    s.delete_device(e.id).await.expect("delete");
    assert_eq!(
        s.get_device(e.id).await.expect_err("deleted").kind(),
        ErrorKind::NotFound
    );
    assert_eq!(
        s.delete_device(e.id)
            .await
            .expect_err("deleted twice")
            .kind(),
        ErrorKind::NotFound
    );
}

/// Tags: unique names; a rename follows on devices; delete removes from devices.
pub async fn tags(s: &dyn Store) {
    let name = unique("tag");
    let t = s
        .create_tag(&Tag {
            id: 0,
            name: name.clone(),
            description: None,
            zone: Some("site-a".into()),
        })
        .await
        .expect("create tag");
    assert_eq!(t.zone.as_deref(), Some("site-a"));
    assert_eq!(
        s.get_tag(t.id).await.expect("get").zone.as_deref(),
        Some("site-a")
    );
    assert_eq!(
        s.create_tag(&Tag {
            id: 0,
            name: name.clone(),
            description: None,
            zone: None,
        })
        .await
        .expect_err("dup")
        .kind(),
        ErrorKind::Conflict
    );
    let d = new_device(s, &unique("tagged"), "linux", &[&name]).await;
    let renamed = unique("renamed");
    let updated = s
        .update_tag(&Tag {
            id: t.id,
            name: renamed.clone(),
            description: Some("x".into()),
            zone: Some("dc1".into()),
        })
        .await
        .expect("rename");
    assert_eq!(updated.zone.as_deref(), Some("dc1"));
    assert_eq!(
        s.create_tag(&Tag {
            id: 0,
            name: unique("badzone"),
            description: None,
            zone: Some("no spaces".into()),
        })
        .await
        .expect_err("bad zone")
        .kind(),
        ErrorKind::InvalidInput
    );
    assert_eq!(
        s.get_device(d.id).await.expect("get").tags,
        vec![renamed.clone()]
    );
    assert_eq!(s.get_tag(t.id).await.expect("get").name, renamed);
    let all = s.list_tags(Page::first(10_000)).await.expect("list");
    assert!(
        all.items
            .iter()
            .any(|x| x.name == renamed && x.zone.as_deref() == Some("dc1"))
    );
    s.delete_tag(t.id).await.expect("delete");
    assert!(s.get_device(d.id).await.expect("get").tags.is_empty());
    assert_eq!(
        s.get_tag(t.id).await.expect_err("deleted").kind(),
        ErrorKind::NotFound
    );
}

/// Credentials keep their secrets; statistics are kept by the store, not overwritten by updates.
pub async fn credentials(s: &dyn Store) {
    let tag = unique("ctag");
    let mut c = Credential::new(unique("cred"), "admin", Secret::new("pa'ss\"word%"));
    c.enable_secret = Some(Secret::new("en-able"));
    c.priority = 5;
    c.tags = vec![tag.clone()];
    let c = s.create_credential(&c).await.expect("create");
    let got = s.get_credential(c.id).await.expect("get");
    assert_eq!(got.password.expose(), "pa'ss\"word%");
    assert_eq!(
        got.enable_secret.as_ref().map(|x| x.expose()),
        Some("en-able")
    );
    assert_eq!(got.tags, vec![tag.clone()]);
    assert_eq!(
        s.create_credential(&Credential::new(c.name.clone(), "x", Secret::new("y")))
            .await
            .expect_err("dup")
            .kind(),
        ErrorKind::Conflict
    );
    s.record_credential_use(c.id, true, t0())
        .await
        .expect("use");
    s.record_credential_use(c.id, true, t0())
        .await
        .expect("use");
    s.record_credential_use(c.id, false, t0())
        .await
        .expect("use");
    let mut upd = s.get_credential(c.id).await.expect("get");
    assert_eq!((upd.success_count, upd.failure_count), (2, 1));
    assert_eq!(upd.last_used, Some(t0()));
    upd.password = Secret::new("new-pass");
    upd.enable_secret = None;
    upd.success_count = 0;
    let upd = s.update_credential(&upd).await.expect("update");
    assert_eq!(upd.success_count, 2, "update must not reset statistics");
    let got = s.get_credential(c.id).await.expect("get");
    assert_eq!(got.password.expose(), "new-pass");
    assert!(got.enable_secret.is_none());
    assert!(
        s.all_credentials()
            .await
            .expect("all")
            .iter()
            .any(|x| x.id == c.id)
    );
    let page = s.list_credentials(Page::first(10_000)).await.expect("list");
    assert!(
        page.items
            .windows(2)
            .all(|w| w[0].priority <= w[1].priority),
        "ordered by priority"
    );
    s.delete_credential(c.id).await.expect("delete");
    assert_eq!(
        s.get_credential(c.id).await.expect_err("deleted").kind(),
        ErrorKind::NotFound
    );
}

/// Jobs: validation, unique names, JSON fields round-trip, scheduled list.
pub async fn jobs(s: &dyn Store) {
    let mut j = Job::backup(
        unique("job"),
        Targets {
            device_ids: vec![1, 2],
            tags: vec!["core".into()],
        },
    );
    j.schedule = Schedule::Cron {
        expression: "0 3 * * *".into(),
        timezone: "Europe/Berlin".into(),
    };
    j.created_at = t0();
    j.updated_at = t0();
    let j = s.create_job(&j).await.expect("create");
    let got = s.get_job(j.id).await.expect("get");
    assert_eq!(got, j, "job must round-trip unchanged");
    let mut bad = j.clone();
    bad.name = unique("bad");
    bad.schedule = Schedule::Interval { seconds: 5 };
    assert_eq!(
        s.create_job(&bad).await.expect_err("interval < 60").kind(),
        ErrorKind::InvalidInput
    );
    assert_eq!(
        s.create_job(&j).await.expect_err("dup").kind(),
        ErrorKind::Conflict
    );
    let mut manual = Job::backup(unique("manual"), Targets::default());
    manual.kind = JobKind::Command {
        commands: vec!["show clock".into()],
    };
    let manual = s.create_job(&manual).await.expect("create");
    let sched = s.scheduled_jobs().await.expect("scheduled");
    assert!(sched.iter().any(|x| x.id == j.id));
    assert!(
        !sched.iter().any(|x| x.id == manual.id),
        "manual jobs are not scheduled"
    );
    let mut off = got.clone();
    off.enabled = false;
    s.update_job(&off).await.expect("update");
    assert!(
        !s.scheduled_jobs()
            .await
            .expect("scheduled")
            .iter()
            .any(|x| x.id == j.id),
        "disabled job scheduled"
    );
    let page = s
        .list_jobs(
            &JobFilter {
                name: Some(manual.name.clone()),
                enabled: None,
            },
            Page::first(10),
        )
        .await
        .expect("list");
    assert_eq!(page.total, 1);
    assert_eq!(
        page.items[0].kind,
        JobKind::Command {
            commands: vec!["show clock".into()]
        }
    );
    s.delete_job(j.id).await.expect("delete");
    assert_eq!(
        s.get_job(j.id).await.expect_err("deleted").kind(),
        ErrorKind::NotFound
    );
}

fn result(run: &Run, device: DeviceId, ok: bool, changed: Option<bool>) -> DeviceResult {
    DeviceResult {
        id: 0,
        run_id: run.id,
        job_id: run.job_id,
        device_id: device,
        status: if ok {
            DeviceStatus::Success
        } else {
            DeviceStatus::Failed
        },
        error_kind: (!ok).then_some(ErrorKind::Timeout),
        message: Some("m".into()),
        duration_ms: 12,
        credential_id: None,
        snapshot_id: None,
        changed,
        output: None,
        attempt: 1,
        started_at: t0(),
        finished_at: t0(),
    }
}

fn new_run(job: JobId, fire: Option<chrono::DateTime<chrono::Utc>>, key: Option<&str>) -> NewRun {
    NewRun {
        job_id: job,
        trigger: if fire.is_some() {
            Trigger::Schedule
        } else {
            Trigger::Manual
        },
        fire_time: fire,
        idempotency_key: key.map(str::to_string),
        status: RunStatus::Queued,
        message: None,
        queued_at: t0(),
    }
}

/// Runs: dedupe by fire time and idempotency key, start fixes the device set, results are unique
/// per (run, device) and tallied, finish happens once.
pub async fn runs_and_results(s: &dyn Store) {
    let job = new_job(s, Targets::default()).await;
    let fire = t0() + chrono::Duration::minutes(5);
    let r1 = s
        .create_run(&new_run(job.id, Some(fire), None))
        .await
        .expect("create");
    assert!(r1.created);
    assert_eq!(r1.run.status, RunStatus::Queued);
    let r1b = s
        .create_run(&new_run(job.id, Some(fire), None))
        .await
        .expect("create again");
    assert!(!r1b.created, "a second run for the same fire");
    assert_eq!(r1b.run.id, r1.run.id);
    let m1 = s
        .create_run(&new_run(job.id, None, Some("key-1")))
        .await
        .expect("manual");
    let m2 = s
        .create_run(&new_run(job.id, None, Some("key-1")))
        .await
        .expect("manual again");
    assert!(m1.created && !m2.created);
    assert_eq!(m1.run.id, m2.run.id);
    let m3 = s
        .create_run(&new_run(job.id, None, None))
        .await
        .expect("manual without key");
    let m4 = s
        .create_run(&new_run(job.id, None, None))
        .await
        .expect("manual without key");
    assert!(m3.created && m4.created && m3.run.id != m4.run.id);
    assert_eq!(
        s.last_fire_time(job.id).await.expect("last fire"),
        Some(fire)
    );
    assert!(s.job_has_active_run(job.id).await.expect("active"));

    let run = s
        .start_run(r1.run.id, &[11, 12, 13, 12], t0())
        .await
        .expect("start");
    assert_eq!(run.status, RunStatus::Running);
    assert_eq!(run.counts.total, 3, "device set is deduplicated");
    assert_eq!(run.started_at, Some(t0()));
    let again = s
        .start_run(r1.run.id, &[99], t0())
        .await
        .expect("start again");
    assert_eq!(again.counts.total, 3, "a started run keeps its device set");
    assert_eq!(
        s.run_device_ids(run.id).await.expect("ids"),
        vec![11, 12, 13]
    );
    // An attempt marks a device as started once: a second mark (a redelivery) is told so.
    assert!(
        s.mark_device_started(run.id, 12, t0())
            .await
            .expect("mark started")
    );
    assert!(
        !s.mark_device_started(run.id, 12, t0())
            .await
            .expect("mark again")
    );
    assert!(
        s.mark_device_started(run.id, 13, t0())
            .await
            .expect("another device")
    );
    assert_eq!(
        s.mark_device_started(run.id, 99, t0())
            .await
            .expect_err("outside the run")
            .kind(),
        ErrorKind::NotFound
    );

    let o = s
        .record_result(&result(&run, 11, true, Some(true)))
        .await
        .expect("record");
    assert!(o.inserted);
    assert_eq!((o.counts.succeeded, o.counts.changed), (1, 1));
    let dup = s
        .record_result(&result(&run, 11, false, None))
        .await
        .expect("record dup");
    assert!(!dup.inserted, "second result for one (run, device)");
    assert_eq!(dup.counts.failed, 0);
    assert_eq!(
        s.get_result(run.id, 11)
            .await
            .expect("get")
            .expect("some")
            .status,
        DeviceStatus::Success
    );
    assert_eq!(
        s.pending_device_ids(run.id).await.expect("pending"),
        vec![12, 13]
    );
    s.record_result(&result(&run, 12, true, Some(false)))
        .await
        .expect("record");
    let last = s
        .record_result(&result(&run, 13, false, None))
        .await
        .expect("record");
    assert!(last.counts.is_complete());
    assert_eq!(
        last.counts,
        RunCounts {
            total: 3,
            succeeded: 2,
            failed: 1,
            changed: 1,
            unchanged: 1
        }
    );
    assert!(
        s.finish_run(run.id, last.counts.final_status(), t0(), None)
            .await
            .expect("finish")
    );
    assert!(
        !s.finish_run(run.id, RunStatus::FailedError, t0(), Some("x"))
            .await
            .expect("finish twice")
    );
    let done = s.get_run(run.id).await.expect("get");
    assert_eq!(done.status, RunStatus::CompletedPartialFailure);
    assert_eq!(done.finished_at, Some(t0()));
    assert_eq!(done.counts, last.counts);

    let page = s
        .list_results(
            &ResultFilter {
                run_id: Some(run.id),
                status: Some(DeviceStatus::Failed),
                ..Default::default()
            },
            Page::first(10),
        )
        .await
        .expect("list results");
    assert_eq!(page.total, 1);
    assert_eq!(page.items[0].device_id, 13);
    assert_eq!(page.items[0].error_kind, Some(ErrorKind::Timeout));
    let page = s
        .list_results(
            &ResultFilter {
                device_id: Some(12),
                job_id: Some(job.id),
                ..Default::default()
            },
            Page::first(10),
        )
        .await
        .expect("list results");
    assert_eq!(page.total, 1);
    let runs = s
        .list_runs(
            &RunFilter {
                job_id: Some(job.id),
                ..Default::default()
            },
            Page::first(10),
        )
        .await
        .expect("list runs");
    assert_eq!(runs.total, 4);
    assert!(
        runs.items.windows(2).all(|w| w[0].id > w[1].id),
        "runs newest first"
    );
    let active = s
        .list_runs(
            &RunFilter {
                job_id: Some(job.id),
                statuses: vec![RunStatus::Queued],
                ..Default::default()
            },
            Page::first(10),
        )
        .await
        .expect("list runs");
    assert_eq!(active.total, 3);
    assert!(
        s.active_runs()
            .await
            .expect("active")
            .iter()
            .all(|r| !r.status.is_final())
    );
    let skipped = s
        .create_run(&NewRun {
            status: RunStatus::Skipped,
            message: Some("overlap".into()),
            ..new_run(job.id, Some(fire + chrono::Duration::minutes(5)), None)
        })
        .await
        .expect("skip record");
    assert_eq!(skipped.run.status, RunStatus::Skipped);
    assert!(skipped.run.finished_at.is_some(), "a skip is final at once");
}

/// [`ResultStore::latest_results`](crate::store::ResultStore::latest_results): per device its
/// newest result and newest success, in the order of `list_results` (latest `finished_at`, ties
/// by the later recorded), for several devices at once; devices without results have no entry.
pub async fn latest_results(s: &dyn Store) {
    let job = new_job(s, Targets::default()).await;
    // Device ids no other check records results for (results need no device row).
    let base = 1_000_000_000 + (uuid::Uuid::new_v4().as_u128() % 1_000_000_000) as DeviceId * 10;
    let (none, ok, ok_then_fail, fail, tie_fail, tie_ok, late, unknown) = (
        base,
        base + 1,
        base + 2,
        base + 3,
        base + 4,
        base + 5,
        base + 6,
        base + 9,
    );
    let at = |m: i64| t0() + chrono::Duration::minutes(m);
    let mut recorded = std::collections::HashMap::new();
    // In recording order (ids grow): (device, success, finished minutes after t0, credential).
    let plan = [
        (ok, true, 1, None),
        (ok_then_fail, true, 1, Some(7)),
        (ok_then_fail, false, 2, None),
        (fail, false, 1, None),
        (tie_fail, true, 3, None),
        (tie_fail, false, 3, None),
        (tie_ok, false, 3, None),
        (tie_ok, true, 3, None),
        // Recorded later but finished earlier: not the newest.
        (late, true, 10, None),
        (late, false, 5, None),
    ];
    for (i, (device, success, minutes, credential)) in plan.into_iter().enumerate() {
        let run = s
            .create_run(&new_run(job.id, None, None))
            .await
            .expect("create run")
            .run;
        let mut r = result(&run, device, success, None);
        r.finished_at = at(minutes);
        r.credential_id = credential;
        assert!(s.record_result(&r).await.expect("record").inserted);
        let stored = s
            .get_result(run.id, device)
            .await
            .expect("get")
            .expect("recorded");
        recorded.insert(i, stored);
    }
    assert!(
        s.latest_results(&[]).await.expect("none asked").is_empty(),
        "no devices, no entries"
    );
    let asked = [
        none,
        ok,
        ok_then_fail,
        fail,
        tie_fail,
        tie_ok,
        late,
        unknown,
        ok,
    ];
    let got = s.latest_results(&asked).await.expect("latest results");
    let mut keys: Vec<DeviceId> = got.keys().copied().collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        vec![ok, ok_then_fail, fail, tie_fail, tie_ok, late],
        "an entry for each device with a result, none for the others"
    );
    let id = |i: usize| recorded[&i].id;
    let ids = |d: DeviceId| {
        let l = &got[&d];
        (l.latest.id, l.latest_success.as_ref().map(|r| r.id))
    };
    assert_eq!(ids(ok), (id(0), Some(id(0))));
    assert_eq!(got[&ok].latest, recorded[&0], "the whole result is read");
    assert_eq!(
        ids(ok_then_fail),
        (id(2), Some(id(1))),
        "a failure after a success: the earlier success is the latest success"
    );
    assert_eq!(
        got[&ok_then_fail]
            .latest_success
            .as_ref()
            .and_then(|r| r.credential_id),
        Some(7)
    );
    assert_eq!(ids(fail), (id(3), None), "never succeeded");
    assert_eq!(
        ids(tie_fail),
        (id(5), Some(id(4))),
        "same time: later recorded"
    );
    assert_eq!(
        ids(tie_ok),
        (id(7), Some(id(7))),
        "same time: later recorded"
    );
    assert_eq!(ids(late), (id(8), Some(id(8))), "finished later wins");
    // The same answer as page 1 of list_results, per device (what callers read before).
    for d in asked {
        let newest = |status: Option<DeviceStatus>| {
            let f = ResultFilter {
                device_id: Some(d),
                status,
                ..Default::default()
            };
            async move {
                s.list_results(&f, Page::first(1))
                    .await
                    .expect("list")
                    .items
                    .pop()
            }
        };
        let (newest_success, newest) = (
            newest(Some(DeviceStatus::Success)).await,
            newest(None).await,
        );
        assert_eq!(got.get(&d).map(|l| l.latest.clone()), newest, "device {d}");
        assert_eq!(
            got.get(&d).and_then(|l| l.latest_success.clone()),
            newest_success,
            "device {d}"
        );
    }
    let one = s.latest_results(&[fail]).await.expect("one device");
    assert_eq!(one.len(), 1);
    assert_eq!(one[&fail], got[&fail]);
}

/// 20 writers racing on one (run, device) record one result; 20 devices written concurrently
/// are all tallied.
pub async fn concurrent_results_are_recorded_once(s: Arc<dyn Store>) {
    let job = new_job(s.as_ref(), Targets::default()).await;
    let run = s
        .create_run(&new_run(job.id, None, None))
        .await
        .expect("create")
        .run;
    let devices: Vec<DeviceId> = (1..=20).collect();
    let run = s.start_run(run.id, &devices, t0()).await.expect("start");
    let mut hs = Vec::new();
    for _ in 0..20 {
        let s = s.clone();
        let r = result(&run, 1, true, Some(true));
        hs.push(tokio::spawn(async move {
            s.record_result(&r).await.expect("record").inserted
        }));
    }
    let mut inserted = 0;
    for h in hs {
        if h.await.expect("join") {
            inserted += 1;
        }
    }
    assert_eq!(inserted, 1, "exactly one writer may insert the result");
    let mut hs = Vec::new();
    for d in 2..=20 {
        let s = s.clone();
        let r = result(&run, d, d % 2 == 0, None);
        hs.push(tokio::spawn(async move {
            s.record_result(&r).await.expect("record")
        }));
    }
    let mut completes = 0;
    for h in hs {
        if h.await.expect("join").counts.is_complete() {
            completes += 1;
        }
    }
    assert!(completes >= 1);
    let run = s.get_run(run.id).await.expect("get");
    assert_eq!(run.counts.done(), 20);
    assert_eq!(run.counts.succeeded, 11);
    assert_eq!(run.counts.failed, 9);
}

/// Logs: filters, literal search, order, after_id, pagination and pruning.
pub async fn logs(s: &dyn Store) {
    let job = new_job(s, Targets::default()).await;
    let run = s
        .create_run(&new_run(job.id, None, None))
        .await
        .expect("run")
        .run;
    let mk = |i: i64, level: LogLevel, kind: LogKind, msg: &str| {
        let mut e = LogEntry::new(
            t0() + chrono::Duration::seconds(i),
            level,
            kind,
            "worker:test",
            msg,
        );
        e.run_id = Some(run.id);
        e.job_id = Some(job.id);
        e.device_id = Some(i % 2);
        e.fields = serde_json::json!({ "i": i });
        e
    };
    s.append_logs(&[
        mk(1, LogLevel::Info, LogKind::Job, "run started"),
        mk(
            2,
            LogLevel::Warning,
            LogKind::Connection,
            "credential rejected",
        ),
        mk(3, LogLevel::Error, LogKind::Connection, "100% CPU; timeout"),
        mk(
            4,
            LogLevel::Info,
            LogKind::Snapshot,
            "configuration unchanged",
        ),
        mk(5, LogLevel::Debug, LogKind::Session, "it's a 'quote'"),
    ])
    .await
    .expect("append");
    let base = LogFilter {
        run_id: Some(run.id),
        ..Default::default()
    };
    let all = s
        .list_logs(
            &LogFilter {
                order: Order::Asc,
                ..base.clone()
            },
            Page::first(10),
        )
        .await
        .expect("list");
    assert_eq!(all.total, 5);
    assert_eq!(all.items[0].message, "run started");
    assert_eq!(all.items[0].fields, serde_json::json!({ "i": 1 }));
    assert!(
        all.items.windows(2).all(|w| w[0].id < w[1].id),
        "ids increase in append order"
    );
    let desc = s.list_logs(&base, Page::first(2)).await.expect("list");
    assert_eq!(
        desc.items[0].message, "it's a 'quote'",
        "default order is newest first"
    );
    assert_eq!((desc.total, desc.pages), (5, 3));
    let warn = s
        .list_logs(
            &LogFilter {
                min_level: Some(LogLevel::Warning),
                ..base.clone()
            },
            Page::first(10),
        )
        .await
        .expect("list");
    assert_eq!(warn.total, 2);
    let conn = s
        .list_logs(
            &LogFilter {
                kind: Some(LogKind::Connection),
                device_id: Some(1),
                ..base.clone()
            },
            Page::first(10),
        )
        .await
        .expect("list");
    assert_eq!(conn.total, 1);
    let search = |q: &str| LogFilter {
        search: Some(q.into()),
        ..base.clone()
    };
    assert_eq!(
        s.list_logs(&search("100%"), Page::first(10))
            .await
            .expect("search")
            .total,
        1
    );
    assert_eq!(
        s.list_logs(&search("%"), Page::first(10))
            .await
            .expect("search")
            .total,
        1,
        "'%' is literal"
    );
    assert_eq!(
        s.list_logs(&search("_"), Page::first(10))
            .await
            .expect("search")
            .total,
        0,
        "'_' is literal"
    );
    assert_eq!(
        s.list_logs(&search("'quote'"), Page::first(10))
            .await
            .expect("search")
            .total,
        1
    );
    assert_eq!(
        s.list_logs(&search("CREDENTIAL"), Page::first(10))
            .await
            .expect("search")
            .total,
        1,
        "case-insensitive"
    );
    assert_eq!(
        s.list_logs(&search("' OR 1=1 --"), Page::first(10))
            .await
            .expect("search")
            .total,
        0
    );
    let after = s
        .list_logs(
            &LogFilter {
                after_id: Some(all.items[2].id),
                order: Order::Asc,
                ..base.clone()
            },
            Page::first(10),
        )
        .await
        .expect("list");
    assert_eq!(after.items.len(), 2);
    let window = s
        .list_logs(
            &LogFilter {
                since: Some(t0() + chrono::Duration::seconds(2)),
                until: Some(t0() + chrono::Duration::seconds(4)),
                ..base.clone()
            },
            Page::first(10),
        )
        .await
        .expect("list");
    assert_eq!(window.total, 2);
    let pruned = s
        .prune_logs(t0() + chrono::Duration::seconds(3), 1)
        .await
        .expect("prune");
    assert!(pruned >= 2, "prune removed {pruned}");
    assert_eq!(
        s.list_logs(&base, Page::first(10))
            .await
            .expect("list")
            .total,
        3
    );
}

/// Snapshot index: insert, latest, history, batch latest, commit marking, search.
pub async fn snapshots(s: &dyn Store) {
    let d1 = new_device(s, &unique("snap"), "linux", &[]).await;
    let d2 = new_device(s, &unique("snap"), "linux", &[]).await;
    let mk = |d: &Device, content: &str, sec: i64| Snapshot {
        meta: SnapshotMeta {
            id: 0,
            device_id: d.id,
            hostname: d.hostname.clone(),
            run_id: None,
            hash: content_hash(content),
            size: content.len() as u64,
            created_at: t0() + chrono::Duration::seconds(sec),
            commit_id: None,
            author: None,
        },
        content: content.to_string(),
    };
    let needle = unique("needle");
    let a = s
        .insert_snapshot(&mk(&d1, "hostname a\n", 1))
        .await
        .expect("insert");
    let b = s
        .insert_snapshot(&mk(&d1, &format!("hostname b\n{needle}\n"), 2))
        .await
        .expect("insert");
    let c = s
        .insert_snapshot(&mk(&d2, &format!("hostname c\n{needle}\n"), 3))
        .await
        .expect("insert");
    assert_eq!(
        s.latest_snapshot(d1.id)
            .await
            .expect("latest")
            .map(|m| m.id),
        Some(b.id)
    );
    assert!(
        s.latest_snapshot(d1.id + 1_000_000)
            .await
            .expect("latest")
            .is_none()
    );
    let got = s.get_snapshot(b.id).await.expect("get");
    assert_eq!(got.content, format!("hostname b\n{needle}\n"));
    assert_eq!(got.meta.hash, content_hash(&got.content));
    let h = s
        .list_snapshots(d1.id, Page::first(10))
        .await
        .expect("history");
    assert_eq!(
        h.items.iter().map(|m| m.id).collect::<Vec<_>>(),
        vec![b.id, a.id]
    );
    let latest = s
        .latest_snapshots(&[d1.id, d2.id])
        .await
        .expect("latest many");
    let mut ids: Vec<_> = latest.iter().map(|m| m.id).collect();
    ids.sort();
    assert_eq!(ids, vec![b.id, c.id]);
    let pending = s.uncommitted_snapshots(100_000).await.expect("pending");
    assert!(pending.iter().any(|p| p.meta.id == a.id));
    s.mark_committed(&[a.id, b.id], "abc123")
        .await
        .expect("mark");
    assert_eq!(
        s.get_snapshot(a.id)
            .await
            .expect("get")
            .meta
            .commit_id
            .as_deref(),
        Some("abc123")
    );
    let pending = s.uncommitted_snapshots(100_000).await.expect("pending");
    assert!(
        !pending
            .iter()
            .any(|p| p.meta.id == a.id || p.meta.id == b.id)
    );
    assert!(pending.iter().any(|p| p.meta.id == c.id));
    let found = s
        .search_latest(&needle.to_uppercase(), Page::first(10))
        .await
        .expect("search");
    assert_eq!(found.total, 2);
    let found = s
        .search_latest("hostname a", Page::first(10))
        .await
        .expect("search");
    assert!(
        !found.items.iter().any(|m| m.device_id == d1.id),
        "search covers latest snapshots only"
    );
}

/// `put_snapshot`: a new snapshot only when the content differs from the device's latest one
/// (then the latest one's id comes back, unchanged); another device's content does not count.
pub async fn put_snapshot_dedupes_by_hash(s: &dyn Store) {
    let d1 = new_device(s, &unique("put"), "linux", &[]).await;
    let d2 = new_device(s, &unique("put"), "linux", &[]).await;
    let mk = |d: &Device, content: &str, sec: i64, with_hash: bool| Snapshot {
        meta: SnapshotMeta {
            id: 0,
            device_id: d.id,
            hostname: d.hostname.clone(),
            run_id: None,
            // An empty hash is computed by the store.
            hash: if with_hash {
                content_hash(content)
            } else {
                String::new()
            },
            size: content.len() as u64,
            created_at: t0() + chrono::Duration::seconds(sec),
            commit_id: None,
            author: None,
        },
        content: content.to_string(),
    };
    let first = s
        .put_snapshot(mk(&d1, "hostname one\n", 1, true))
        .await
        .expect("put");
    assert!(first.changed);
    assert_eq!(first.hash, content_hash("hostname one\n"));
    let same = s
        .put_snapshot(mk(&d1, "hostname one\n", 2, false))
        .await
        .expect("put");
    assert_eq!(
        (same.snapshot_id, same.changed, same.hash.as_str()),
        (first.snapshot_id, false, first.hash.as_str())
    );
    let other = s
        .put_snapshot(mk(&d2, "hostname one\n", 3, true))
        .await
        .expect("put");
    assert!(
        other.changed,
        "another device's content is not this one's latest"
    );
    assert_ne!(other.snapshot_id, first.snapshot_id);
    let next = s
        .put_snapshot(mk(&d1, "hostname two\n", 4, true))
        .await
        .expect("put");
    assert!(next.changed);
    let latest = s
        .latest_snapshot(d1.id)
        .await
        .expect("latest")
        .expect("some");
    assert_eq!((latest.id, latest.hash), (next.snapshot_id, next.hash));
    assert_eq!(
        s.get_snapshot(next.snapshot_id).await.expect("get").content,
        "hostname two\n"
    );
    // Back to the first content: it differs from the latest, so it is a new snapshot.
    let back = s
        .put_snapshot(mk(&d1, "hostname one\n", 5, true))
        .await
        .expect("put");
    assert!(back.changed);
    let h = s
        .list_snapshots(d1.id, Page::first(10))
        .await
        .expect("history");
    assert_eq!(h.total, 3);
}

/// A device's tags come back in the order they were given, whichever way it is read.
pub async fn device_tags_keep_their_order(s: &dyn Store) {
    let tags = [unique("zz"), unique("aa"), unique("mm")];
    let d = new_device(
        s,
        &unique("ordered"),
        "linux",
        &[&tags[0], &tags[1], &tags[2]],
    )
    .await;
    assert_eq!(d.tags, tags);
    assert_eq!(s.get_device(d.id).await.expect("get").tags, tags);
    assert_eq!(
        s.devices_by_ids(&[d.id]).await.expect("by ids")[0].tags,
        tags
    );
    let none = new_device(s, &unique("untagged"), "linux", &[]).await;
    assert!(s.get_device(none.id).await.expect("get").tags.is_empty());
}

/// Host keys: first pin wins.
/// Jump hosts: create (unique names), read by id and name with the secret intact, update
/// (creation time kept), list by name, delete; invalid ones are refused.
pub async fn jump_hosts(s: &dyn Store) {
    let name = unique("bastion");
    let mut j = JumpHost::new(&name, "192.0.2.10", "jumper", Secret::new("Jump-pw-1"));
    j.port = 2222;
    j.via = Some(unique("outer"));
    j.host_key_policy = HostKeyPolicy::Strict;
    j.host_key = Some(format!("SHA256:{}", "A".repeat(43)));
    let created = s.create_jump_host(&j).await.expect("create jump host");
    assert!(created.id > 0);
    assert_eq!(created.password.expose(), "Jump-pw-1");
    let got = s.get_jump_host(created.id).await.expect("get");
    assert_eq!(
        (
            got.name.as_str(),
            got.address.as_str(),
            got.port,
            got.username.as_str()
        ),
        (name.as_str(), "192.0.2.10", 2222, "jumper")
    );
    assert_eq!(got.password.expose(), "Jump-pw-1", "the secret reads back");
    assert_eq!(got.host_key_policy, HostKeyPolicy::Strict);
    assert_eq!(got.host_key, j.host_key);
    assert_eq!(got.via, j.via);
    assert_eq!(
        s.jump_host_by_name(&name)
            .await
            .expect("by name")
            .map(|x| x.id),
        Some(created.id)
    );
    assert!(
        s.jump_host_by_name(&unique("none"))
            .await
            .expect("by name")
            .is_none()
    );
    let dup = s.create_jump_host(&j).await.expect_err("duplicate name");
    assert_eq!(dup.kind(), ErrorKind::Conflict);
    let mut upd = got.clone();
    upd.password = Secret::new("Jump-pw-2");
    upd.port = 22;
    upd.via = None;
    upd.host_key = None;
    let updated = s.update_jump_host(&upd).await.expect("update");
    assert_eq!(updated.created_at, got.created_at);
    let got = s.get_jump_host(created.id).await.expect("get");
    assert_eq!((got.port, got.via.clone()), (22, None));
    assert_eq!(got.password.expose(), "Jump-pw-2");
    assert!(
        s.list_jump_hosts()
            .await
            .expect("list")
            .iter()
            .any(|x| x.id == created.id)
    );
    let mut bad = JumpHost::new(unique("bad"), "not an address!", "u", Secret::new("p"));
    assert_eq!(
        s.create_jump_host(&bad)
            .await
            .expect_err("bad address")
            .kind(),
        ErrorKind::InvalidInput
    );
    bad.address = "192.0.2.1".into();
    bad.host_key = Some("MD5:aa".into());
    assert_eq!(
        s.create_jump_host(&bad)
            .await
            .expect_err("bad fingerprint")
            .kind(),
        ErrorKind::InvalidInput
    );
    s.delete_jump_host(created.id).await.expect("delete");
    assert_eq!(
        s.get_jump_host(created.id).await.expect_err("gone").kind(),
        ErrorKind::NotFound
    );
    assert_eq!(
        s.delete_jump_host(created.id)
            .await
            .expect_err("gone")
            .kind(),
        ErrorKind::NotFound
    );
}

pub async fn host_keys(s: &dyn Store) {
    let host = unique("host");
    assert!(s.get_host_key(&host, 22).await.expect("get").is_none());
    let k = HostKey {
        host: host.clone(),
        port: 22,
        key_type: "ssh-ed25519".into(),
        fingerprint: "SHA256:aaa".into(),
        first_seen: t0(),
    };
    assert_eq!(s.pin_host_key(&k).await.expect("pin"), k);
    let other = HostKey {
        fingerprint: "SHA256:bbb".into(),
        ..k.clone()
    };
    assert_eq!(
        s.pin_host_key(&other).await.expect("pin again").fingerprint,
        "SHA256:aaa",
        "a pinned key is never replaced silently"
    );
    assert!(
        s.get_host_key(&host, 2222).await.expect("get").is_none(),
        "keys are per port"
    );
    s.delete_host_key(&host, 22).await.expect("delete");
    assert!(s.get_host_key(&host, 22).await.expect("get").is_none());
}

/// Leases: one holder at a time until expiry.
pub async fn leases(s: &dyn Store) {
    let name = unique("lease");
    let ttl = Duration::from_secs(30);
    assert!(
        s.try_acquire_lease(&name, "a", ttl, t0())
            .await
            .expect("acquire")
    );
    assert!(
        !s.try_acquire_lease(&name, "b", ttl, t0())
            .await
            .expect("acquire"),
        "two holders"
    );
    assert!(
        s.try_acquire_lease(&name, "a", ttl, t0() + chrono::Duration::seconds(10))
            .await
            .expect("renew")
    );
    assert!(
        !s.try_acquire_lease(&name, "b", ttl, t0() + chrono::Duration::seconds(35))
            .await
            .expect("acquire"),
        "renewal ignored"
    );
    assert!(
        s.try_acquire_lease(&name, "b", ttl, t0() + chrono::Duration::seconds(41))
            .await
            .expect("acquire after expiry")
    );
    s.release_lease(&name, "a")
        .await
        .expect("release by non-holder is a no-op");
    assert!(
        !s.try_acquire_lease(&name, "a", ttl, t0() + chrono::Duration::seconds(42))
            .await
            .expect("acquire")
    );
    s.release_lease(&name, "b").await.expect("release");
    assert!(
        s.try_acquire_lease(&name, "a", ttl, t0() + chrono::Duration::seconds(43))
            .await
            .expect("acquire after release")
    );
}

/// Users and tokens.
pub async fn users(s: &dyn UserStore) {
    let name = unique("user");
    let u = s
        .create_user(&User {
            id: 0,
            username: name.clone(),
            password_hash: "$argon2id$x".into(),
            role: Role::Operator,
            active: true,
            created_at: t0(),
        })
        .await
        .expect("create");
    assert_eq!(
        s.get_user_by_name(&name)
            .await
            .expect("by name")
            .map(|x| x.id),
        Some(u.id)
    );
    assert_eq!(
        s.get_user(u.id).await.expect("get").password_hash,
        "$argon2id$x"
    );
    assert_eq!(
        s.create_user(&u).await.expect_err("dup").kind(),
        ErrorKind::Conflict
    );
    let mut upd = u.clone();
    upd.role = Role::Admin;
    s.update_user(&upd).await.expect("update");
    assert_eq!(s.get_user(u.id).await.expect("get").role, Role::Admin);
    let hash = unique("hash");
    let t = s
        .create_token(&ApiToken {
            id: 0,
            user_id: u.id,
            name: "ci".into(),
            token_hash: hash.clone(),
            created_at: t0(),
            last_used: None,
            expires_at: None,
        })
        .await
        .expect("token");
    assert_eq!(
        s.find_token(&hash).await.expect("find").map(|x| x.id),
        Some(t.id)
    );
    s.touch_token(t.id, t0()).await.expect("touch");
    assert_eq!(
        s.find_token(&hash)
            .await
            .expect("find")
            .and_then(|x| x.last_used),
        Some(t0())
    );
    assert_eq!(s.list_tokens(u.id).await.expect("list").len(), 1);
    assert!(
        s.list_users(Page::first(10_000))
            .await
            .expect("list")
            .items
            .iter()
            .any(|x| x.id == u.id)
    );
    s.delete_user(u.id).await.expect("delete");
    assert!(
        s.find_token(&hash).await.expect("find").is_none(),
        "tokens go with their user"
    );
}

/// Drift case: `finish_run` refuses a status that is not final (`QUEUED`, `RUNNING`) with
/// `InvalidInput` and leaves the run as it was. (The SQL stores refused it while the memory store
/// took it; the rule now lives once, in `store::check::final_status`.)
pub async fn finish_run_needs_a_final_status(s: &dyn Store) {
    let job = new_job(s, Targets::default()).await;
    let run = s
        .create_run(&new_run(job.id, None, None))
        .await
        .expect("create run")
        .run;
    for status in [RunStatus::Queued, RunStatus::Running] {
        let err = s
            .finish_run(run.id, status, t0(), Some("not final"))
            .await
            .expect_err("finish_run with a status that is not final");
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{status:?}");
    }
    let after = s.get_run(run.id).await.expect("get run");
    assert_eq!(
        after.status,
        RunStatus::Queued,
        "a refused finish changes nothing"
    );
    assert_eq!(after.finished_at, None);
    assert_eq!(after.message, None);
    assert!(
        s.finish_run(run.id, RunStatus::FailedError, t0(), None)
            .await
            .expect("a final status finishes it")
    );
}

/// Drift case: `update_user` applies the same username rule as `create_user` (the memory store
/// skipped it on update); a refused update leaves the user as it was.
pub async fn update_user_checks_the_username(s: &dyn UserStore) {
    let name = unique("user");
    let u = s
        .create_user(&User {
            id: 0,
            username: name.clone(),
            password_hash: "$argon2id$x".into(),
            role: Role::Viewer,
            active: true,
            created_at: t0(),
        })
        .await
        .expect("create");
    for bad in ["", "   ", "a/b", "a\\b", "line\nbreak"] {
        let mut upd = u.clone();
        upd.username = bad.to_string();
        let err = s
            .update_user(&upd)
            .await
            .expect_err("update_user with an invalid username");
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{bad:?}");
    }
    assert_eq!(s.get_user(u.id).await.expect("get").username, name);
    s.delete_user(u.id).await.expect("delete");
}

/// The [`StoreExt`] helpers over this store: exact lookups by name (a hostname that is a prefix
/// of another is not confused with it), upserts that keep the id, paging through every device.
pub async fn lookups_by_name(s: &dyn Store) {
    let p = unique("ext");
    let short = new_device(s, &format!("{p}-r1"), "cisco_ios", &[]).await;
    let long = new_device(s, &format!("{p}-r10"), "cisco_ios", &[]).await;
    assert_eq!(
        s.device_by_hostname(&short.hostname)
            .await
            .expect("by hostname")
            .map(|d| d.id),
        Some(short.id)
    );
    assert!(
        s.device_by_hostname(&format!("{p}-r"))
            .await
            .expect("by hostname")
            .is_none(),
        "a substring is not a hostname"
    );
    let mut moved = long.clone();
    moved.id = 0;
    moved.address = "10.9.9.9".into();
    let up = s.upsert_device(&moved).await.expect("upsert existing");
    assert_eq!(up.id, long.id, "an upsert keeps the id");
    assert_eq!(
        s.get_device(long.id).await.expect("get").address,
        "10.9.9.9"
    );
    let new = s
        .upsert_device(&Device::new(format!("{p}-r2"), "10.0.0.2", "linux"))
        .await
        .expect("upsert new");
    assert!(new.id > 0 && new.id != short.id && new.id != long.id);
    let all = s
        .all_devices(&DeviceFilter {
            hostname: Some(p.clone()),
            ..DeviceFilter::default()
        })
        .await
        .expect("all devices");
    let names: Vec<_> = all.iter().map(|d| d.hostname.clone()).collect();
    assert_eq!(
        names,
        vec![format!("{p}-r1"), format!("{p}-r10"), format!("{p}-r2")],
        "every device, ordered by hostname"
    );

    let cname = unique("cred");
    let c = s
        .upsert_credential(&Credential::new(&cname, "netops", Secret::new("a")))
        .await
        .expect("upsert credential");
    let mut c2 = Credential::new(&cname, "netops2", Secret::new("b"));
    c2.priority = 7;
    let c2 = s
        .upsert_credential(&c2)
        .await
        .expect("upsert credential again");
    assert_eq!(c2.id, c.id);
    let got = s
        .credential_by_name(&cname)
        .await
        .expect("by name")
        .expect("found");
    assert_eq!((got.id, got.username.as_str()), (c.id, "netops2"));
    assert!(
        s.credential_by_name(&unique("none"))
            .await
            .expect("by name")
            .is_none()
    );

    let jname = unique("job");
    let j = s
        .upsert_job(&Job::backup(&jname, Targets::default()))
        .await
        .expect("upsert job");
    let j2 = s
        .upsert_job(&Job::backup(&jname, Targets::default()))
        .await
        .expect("upsert job again");
    assert_eq!(j.id, j2.id);
    assert_eq!(
        s.job_by_name(&jname).await.expect("by name").map(|x| x.id),
        Some(j.id)
    );
    assert!(
        s.job_by_name(&unique("none"))
            .await
            .expect("by name")
            .is_none()
    );
}
