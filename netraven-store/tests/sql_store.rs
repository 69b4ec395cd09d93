//! Focused tests of the SQL stores, on SQLite always and on PostgreSQL when
//! `NETRAVEN_TEST_PG_URL` is set: migrations, one result per (run, device) under concurrent
//! writers, credential encryption at rest, log retention, literal matching of hostile filters,
//! leases and run idempotency.

mod sql_support;

use chrono::{Duration as CDuration, TimeZone, Utc};
use netraven_core::ErrorKind;
use netraven_core::model::*;
use netraven_core::secret::Secret;
use netraven_core::store::{DeviceStore, ServerStore, Store};
use netraven_store::cipher::{AesGcmCipher, KeyMaterial};
use netraven_store::sql::{PostgresStore, SecretCipher, SqliteStore};
use sql_support::*;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

fn t(secs: i64) -> chrono::DateTime<Utc> {
    Utc.timestamp_opt(1_700_000_000 + secs, 0).single().unwrap()
}

async fn job_and_run(store: &dyn Store, devices: usize) -> (Job, Run, Vec<DeviceId>) {
    let job = store
        .create_job(&Job::backup(
            format!("job-{}", uuid::Uuid::new_v4().simple()),
            Targets::default(),
        ))
        .await
        .unwrap();
    let mut ids = Vec::new();
    for i in 0..devices {
        let d = store
            .create_device(&Device::new(
                format!("r{i}-{}", job.id),
                format!("10.0.0.{i}"),
                "cisco_ios",
            ))
            .await
            .unwrap();
        ids.push(d.id);
    }
    let run = store
        .create_run(&NewRun {
            job_id: job.id,
            trigger: Trigger::Manual,
            fire_time: None,
            idempotency_key: None,
            status: RunStatus::Queued,
            message: None,
            queued_at: t(0),
        })
        .await
        .unwrap()
        .run;
    let run = store.start_run(run.id, &ids, t(1)).await.unwrap();
    (job, run, ids)
}

fn result(run: &Run, device: DeviceId, ok: bool) -> DeviceResult {
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
        error_kind: if ok { None } else { Some(ErrorKind::Auth) },
        message: None,
        duration_ms: 5,
        credential_id: None,
        snapshot_id: None,
        changed: if ok { Some(true) } else { None },
        output: None,
        attempt: 1,
        started_at: t(2),
        finished_at: t(3),
    }
}

// ---------------------------------------------------------------------------------------------

async fn concurrent_results(store: Arc<dyn Store>) {
    let (_job, run, ids) = job_and_run(store.as_ref(), 10).await;
    assert_eq!(run.status, RunStatus::Running);
    assert_eq!(run.counts.total, 10);
    let mut tasks = Vec::new();
    for w in 0..20 {
        let store = store.clone();
        let run = run.clone();
        let ids = ids.clone();
        tasks.push(tokio::spawn(async move {
            let mut inserted = 0u32;
            for (i, d) in ids.iter().enumerate() {
                // Every writer records every device; half of them claim failure.
                let out = store
                    .record_result(&result(&run, *d, (i + w) % 2 == 0 || w == 0))
                    .await
                    .unwrap();
                if out.inserted {
                    inserted += 1;
                }
                assert!(out.counts.done() <= 10);
            }
            inserted
        }));
    }
    let mut total_inserted = 0;
    for t in tasks {
        total_inserted += t.await.unwrap();
    }
    assert_eq!(total_inserted, 10, "exactly one result per (run, device)");
    let run = store.get_run(run.id).await.unwrap();
    assert_eq!(run.counts.done(), 10);
    assert_eq!(run.counts.changed, run.counts.succeeded);
    let page = store
        .list_results(
            &ResultFilter {
                run_id: Some(run.id),
                ..Default::default()
            },
            Page::first(100),
        )
        .await
        .unwrap();
    assert_eq!(page.total, 10);
    let ok = page
        .items
        .iter()
        .filter(|r| r.status == DeviceStatus::Success)
        .count() as u32;
    assert_eq!(ok, run.counts.succeeded);
    assert!(store.pending_device_ids(run.id).await.unwrap().is_empty());
}

async fn hostile_filters(store: Arc<dyn ServerStore>) {
    let evil = [
        "'; DROP TABLE devices; --",
        "\" OR 1=1 --",
        "%",
        "_",
        "\\",
        "a'b",
        "100%_off\\",
    ];
    for (i, e) in evil.iter().enumerate() {
        let hostname = format!("h{i}{}", e.replace(['/', '\\'], "x"));
        store
            .create_device(
                &Device::new(hostname, format!("addr{i}{e}"), "cisco_ios")
                    .with_tags([format!("tag{e}").replace(['/', '\\'], "x")]),
            )
            .await
            .unwrap();
    }
    store
        .create_device(&Device::new("plain", "10.1.1.1", "cisco_ios"))
        .await
        .unwrap();
    for e in evil {
        let f = DeviceFilter {
            address: Some(e.to_string()),
            ..Default::default()
        };
        let page = store.list_devices(&f, Page::first(50)).await.unwrap();
        assert!(
            page.items.iter().all(|d| d.address.contains(e)),
            "filter {e:?} must match literally, got {:?}",
            page.items.iter().map(|d| &d.address).collect::<Vec<_>>()
        );
        assert!(page.total >= 1, "filter {e:?} finds its own device");
        let f = DeviceFilter {
            platform: Some(e.to_string()),
            ..Default::default()
        };
        assert_eq!(
            store.list_devices(&f, Page::first(50)).await.unwrap().total,
            0
        );
        let f = DeviceFilter {
            tag: Some(e.to_string()),
            ..Default::default()
        };
        assert_eq!(
            store.list_devices(&f, Page::first(50)).await.unwrap().total,
            0
        );
        let f = LogFilter {
            search: Some(e.to_string()),
            source: Some(e.to_string()),
            ..Default::default()
        };
        assert_eq!(store.list_logs(&f, Page::first(50)).await.unwrap().total, 0);
        let f = JobFilter {
            name: Some(e.to_string()),
            ..Default::default()
        };
        assert_eq!(store.list_jobs(&f, Page::first(50)).await.unwrap().total, 0);
        assert!(store.get_user_by_name(e).await.unwrap().is_none());
        assert!(store.find_token(e).await.unwrap().is_none());
        assert_eq!(
            store.search_latest(e, Page::first(10)).await.unwrap().total,
            0
        );
    }
    // "%" matches only the address that contains a literal percent sign.
    let f = DeviceFilter {
        address: Some("%".into()),
        ..Default::default()
    };
    assert_eq!(
        store.list_devices(&f, Page::first(50)).await.unwrap().total,
        2
    );
    // Case-insensitive partial match.
    let f = DeviceFilter {
        hostname: Some("PLAI".into()),
        ..Default::default()
    };
    assert_eq!(
        store.list_devices(&f, Page::first(50)).await.unwrap().total,
        1
    );
    // The table survived.
    assert_eq!(
        store
            .list_devices(&DeviceFilter::default(), Page::first(50))
            .await
            .unwrap()
            .total,
        8
    );
    // Logs: hostile text stored and matched literally.
    let mut e = LogEntry::new(
        t(0),
        LogLevel::Info,
        LogKind::System,
        "api",
        "it's 100% done_ok",
    );
    e.fields = serde_json::json!({"k": "'; DROP TABLE logs; --"});
    store
        .append_logs(&[
            e.clone(),
            LogEntry::new(t(1), LogLevel::Info, LogKind::System, "api", "1000 done"),
        ])
        .await
        .unwrap();
    let f = LogFilter {
        search: Some("100%".into()),
        ..Default::default()
    };
    let page = store.list_logs(&f, Page::first(10)).await.unwrap();
    assert_eq!(page.total, 1);
    assert_eq!(page.items[0].message, e.message);
    assert_eq!(page.items[0].fields, e.fields);
    let f = LogFilter {
        search: Some("DONE_".into()),
        ..Default::default()
    };
    assert_eq!(store.list_logs(&f, Page::first(10)).await.unwrap().total, 1);
}

async fn log_retention(store: Arc<dyn Store>) {
    let mut old = Vec::new();
    for i in 0..2500 {
        old.push(LogEntry::new(
            t(i),
            LogLevel::Debug,
            LogKind::Job,
            "worker:1",
            format!("old {i}"),
        ));
    }
    store.append_logs(&old).await.unwrap();
    let mut new = Vec::new();
    for i in 0..100 {
        let mut e = LogEntry::new(
            t(100_000 + i),
            LogLevel::Error,
            LogKind::Job,
            "worker:1",
            "new",
        );
        e.run_id = Some(7);
        new.push(e);
    }
    store.append_logs(&new).await.unwrap();
    // Ids follow insertion order.
    let asc = store
        .list_logs(
            &LogFilter {
                order: Order::Asc,
                ..Default::default()
            },
            Page::first(3),
        )
        .await
        .unwrap();
    assert_eq!(asc.total, 2600);
    assert!(asc.items[0].id < asc.items[1].id && asc.items[1].id < asc.items[2].id);
    assert_eq!(asc.items[0].message, "old 0");
    let deleted = store.prune_logs(t(50_000), 1000).await.unwrap();
    assert_eq!(deleted, 2500);
    let left = store
        .list_logs(&LogFilter::default(), Page::first(10))
        .await
        .unwrap();
    assert_eq!(left.total, 100);
    assert_eq!(left.pages, 10);
    let f = LogFilter {
        run_id: Some(7),
        min_level: Some(LogLevel::Warning),
        ..Default::default()
    };
    assert_eq!(
        store.list_logs(&f, Page::first(10)).await.unwrap().total,
        100
    );
    let f = LogFilter {
        min_level: Some(LogLevel::Error),
        after_id: Some(left.items[0].id),
        ..Default::default()
    };
    assert_eq!(store.list_logs(&f, Page::first(10)).await.unwrap().total, 0);
    assert_eq!(store.prune_logs(t(50_000), 0).await.unwrap(), 0);
}

async fn runs_leases_and_snapshots(store: Arc<dyn Store>) {
    let job = store
        .create_job(&Job::backup("j", Targets::default()))
        .await
        .unwrap();
    let new = NewRun {
        job_id: job.id,
        trigger: Trigger::Schedule,
        fire_time: Some(t(60)),
        idempotency_key: None,
        status: RunStatus::Queued,
        message: None,
        queued_at: t(60),
    };
    let a = store.create_run(&new).await.unwrap();
    let b = store.create_run(&new).await.unwrap();
    assert!(a.created && !b.created);
    assert_eq!(a.run.id, b.run.id);
    let manual = NewRun {
        trigger: Trigger::Manual,
        fire_time: None,
        idempotency_key: Some("k'1".into()),
        ..new.clone()
    };
    let c = store.create_run(&manual).await.unwrap();
    let d = store.create_run(&manual).await.unwrap();
    assert!(c.created && !d.created && c.run.id == d.run.id && c.run.id != a.run.id);
    assert_eq!(store.last_fire_time(job.id).await.unwrap(), Some(t(60)));
    assert!(store.job_has_active_run(job.id).await.unwrap());
    let started = store
        .start_run(a.run.id, &[3, 1, 2, 2], t(61))
        .await
        .unwrap();
    assert_eq!(started.counts.total, 3);
    let again = store.start_run(a.run.id, &[9], t(62)).await.unwrap();
    assert_eq!(again.started_at, Some(t(61)));
    assert_eq!(store.run_device_ids(a.run.id).await.unwrap(), vec![1, 2, 3]);
    assert!(
        store
            .finish_run(a.run.id, RunStatus::CompletedFailure, t(70), Some("x"))
            .await
            .unwrap()
    );
    assert!(
        !store
            .finish_run(a.run.id, RunStatus::CompletedSuccess, t(71), None)
            .await
            .unwrap()
    );
    assert_eq!(
        store.get_run(a.run.id).await.unwrap().status,
        RunStatus::CompletedFailure
    );
    assert_eq!(
        store.get_run(999_999).await.unwrap_err().kind(),
        ErrorKind::NotFound
    );

    // Leases.
    let ttl = Duration::from_secs(30);
    assert!(
        store
            .try_acquire_lease("scheduler", "a", ttl, t(0))
            .await
            .unwrap()
    );
    assert!(
        !store
            .try_acquire_lease("scheduler", "b", ttl, t(10))
            .await
            .unwrap()
    );
    assert!(
        store
            .try_acquire_lease("scheduler", "a", ttl, t(20))
            .await
            .unwrap()
    );
    assert!(
        !store
            .try_acquire_lease("scheduler", "b", ttl, t(40))
            .await
            .unwrap()
    );
    assert!(
        store
            .try_acquire_lease("scheduler", "b", ttl, t(51))
            .await
            .unwrap()
    );
    store.release_lease("scheduler", "a").await.unwrap();
    assert!(
        !store
            .try_acquire_lease("scheduler", "a", ttl, t(52))
            .await
            .unwrap()
    );
    store.release_lease("scheduler", "b").await.unwrap();
    assert!(
        store
            .try_acquire_lease("scheduler", "a", ttl, t(53))
            .await
            .unwrap()
    );

    // Snapshots: latest per device, history, uncommitted, search.
    for (i, content) in [
        "hostname r1\n",
        "hostname r1\nntp 1\n",
        "hostname r1\nntp 2\n",
    ]
    .iter()
    .enumerate()
    {
        let s = Snapshot {
            meta: SnapshotMeta {
                id: 0,
                device_id: 1,
                hostname: "r1".into(),
                run_id: None,
                hash: content_hash(content),
                size: content.len() as u64,
                created_at: t(i as i64 * 10),
                commit_id: None,
                author: None,
            },
            content: content.to_string(),
        };
        store.insert_snapshot(&s).await.unwrap();
    }
    let latest = store.latest_snapshot(1).await.unwrap().unwrap();
    assert_eq!(latest.created_at, t(20));
    assert_eq!(
        store.get_snapshot(latest.id).await.unwrap().content,
        "hostname r1\nntp 2\n"
    );
    let hist = store.list_snapshots(1, Page::first(2)).await.unwrap();
    assert_eq!(
        (hist.total, hist.items.len(), hist.items[0].id),
        (3, 2, latest.id)
    );
    assert_eq!(store.latest_snapshots(&[1, 2]).await.unwrap().len(), 1);
    let unc = store.uncommitted_snapshots(10).await.unwrap();
    assert_eq!(unc.len(), 3);
    store
        .mark_committed(&[unc[0].meta.id, unc[1].meta.id], "abc123")
        .await
        .unwrap();
    assert_eq!(store.uncommitted_snapshots(10).await.unwrap().len(), 1);
    assert_eq!(
        store
            .search_latest("NTP 2", Page::first(10))
            .await
            .unwrap()
            .total,
        1
    );
    assert_eq!(
        store
            .search_latest("ntp 1", Page::first(10))
            .await
            .unwrap()
            .total,
        0
    );
}

/// A stored secret is `v1:<key id>:<base64(nonce || ciphertext || tag)>` under [`known_cipher`]'s key, holds
/// no trace of the plaintext, and decodes to 12 + len(plaintext) + 16 bytes. (Never assert that
/// random ciphertext lacks a short substring: base64 of random bytes contains any two letters by
/// chance.)
fn assert_sealed(stored: &str, plain: &str) {
    use base64::Engine as _;
    let prefix = format!("v1:{}:", known_cipher().key_ids()[0]);
    let body = stored
        .strip_prefix(&prefix)
        .unwrap_or_else(|| panic!("stored secret lacks the {prefix:?} prefix"));
    assert!(!stored.contains(plain), "plaintext stored");
    let blob = base64::engine::general_purpose::STANDARD
        .decode(body)
        .expect("stored secret is base64");
    assert_eq!(
        blob.len(),
        12 + plain.len() + 16,
        "nonce + ciphertext + tag"
    );
    assert!(
        !blob.windows(plain.len()).any(|w| w == plain.as_bytes()),
        "plaintext inside the sealed bytes"
    );
}

async fn credentials_at_rest<S: Store>(
    store: &S,
    raw: impl AsyncFn(&str) -> Vec<(i64, String, Option<String>)>,
    exec: impl AsyncFn(&str),
) {
    let mut c = Credential::new("core", "admin", Secret::new("s3cret-pw"));
    c.enable_secret = Some(Secret::new("en-able"));
    c.tags = vec!["core".into(), "edge".into()];
    let c1 = store.create_credential(&c).await.unwrap();
    let c2 = store
        .create_credential(&Credential::new("other", "op", Secret::new("other-pw")))
        .await
        .unwrap();
    let got = store.get_credential(c1.id).await.unwrap();
    assert_eq!(got.password.expose(), "s3cret-pw");
    assert_eq!(
        got.enable_secret.as_ref().map(|s| s.expose()),
        Some("en-able")
    );
    assert_eq!(got.tags, vec!["core".to_string(), "edge".to_string()]);
    // Only ciphertext in the database.
    let rows = raw("SELECT id, password_enc, enable_secret_enc FROM credentials ORDER BY id").await;
    assert_eq!(rows.len(), 2);
    assert_sealed(&rows[0].1, "s3cret-pw");
    assert_sealed(
        rows[0].2.as_deref().expect("enable secret stored"),
        "en-able",
    );
    assert_sealed(&rows[1].1, "other-pw");
    assert!(rows[1].2.is_none());
    // Statistics.
    store
        .record_credential_use(c1.id, true, t(5))
        .await
        .unwrap();
    store
        .record_credential_use(c1.id, false, t(6))
        .await
        .unwrap();
    let got = store.get_credential(c1.id).await.unwrap();
    assert_eq!(
        (got.success_count, got.failure_count, got.last_used),
        (1, 1, Some(t(6)))
    );
    assert_eq!(
        store
            .record_credential_use(424242, true, t(1))
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::NotFound
    );
    // Moved row: copy c1's password ciphertext onto c2. A row the key cannot open is returned
    // flagged, without secrets, and breaks neither the listing nor the other credentials.
    exec(&format!(
        "UPDATE credentials SET password_enc = (SELECT password_enc FROM credentials WHERE id = {}) WHERE id = {}",
        c1.id, c2.id
    ))
    .await;
    let moved = store.get_credential(c2.id).await.unwrap();
    assert!(moved.unreadable && moved.password.is_empty(), "{moved:?}");
    // Tampered value.
    exec(&format!(
        "UPDATE credentials SET password_enc = password_enc || 'AAAA' WHERE id = {}",
        c2.id
    ))
    .await;
    let bad = store.get_credential(c2.id).await.unwrap();
    assert!(bad.unreadable && bad.password.is_empty() && bad.enable_secret.is_none());
    assert!(bad.info().unreadable);
    let all = store.all_credentials().await.unwrap();
    assert_eq!(all.len(), 2, "one bad row does not fail the list");
    let good = all.iter().find(|c| c.id == c1.id).unwrap();
    assert!(!good.unreadable);
    assert_eq!(good.password.expose(), "s3cret-pw");
    let page = store.list_credentials(Page::first(10)).await.unwrap();
    assert_eq!(page.items.iter().filter(|c| c.unreadable).count(), 1);
    // Renaming it keeps its stored ciphertext (never an encrypted empty password).
    let before =
        raw("SELECT id, password_enc, enable_secret_enc FROM credentials ORDER BY id").await;
    let mut renamed = bad.clone();
    renamed.name = "other-renamed".into();
    let renamed = store.update_credential(&renamed).await.unwrap();
    assert!(renamed.unreadable);
    assert_eq!(renamed.name, "other-renamed");
    let after =
        raw("SELECT id, password_enc, enable_secret_enc FROM credentials ORDER BY id").await;
    assert_eq!(
        before, after,
        "the secrets of an unreadable row were rewritten"
    );
    // New secrets make it readable again.
    let mut fixed = renamed.clone();
    fixed.unreadable = false;
    fixed.password = Secret::new("new-pw");
    let fixed = store.update_credential(&fixed).await.unwrap();
    assert!(!fixed.unreadable);
    assert_eq!(fixed.password.expose(), "new-pw");
    store.delete_credential(c2.id).await.unwrap();
    assert_eq!(store.all_credentials().await.unwrap().len(), 1);
}

/// Spawns `f` to run once every task waiting on `start` is there.
fn spawn_after<F>(start: Arc<tokio::sync::Barrier>, f: F) -> tokio::task::JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    tokio::spawn(async move {
        start.wait().await;
        f.await
    })
}

/// Many concurrent writers of every per-device write (results, logs, snapshots, credential
/// statistics, command marks) — on SQLite they share group-commit transactions — each get their
/// own outcome: duplicates of a result are reported as not inserted, a write that fails (a
/// result for a missing run fails after its insert, a missing credential, a device outside the
/// run) fails alone and leaves nothing behind, and every other write is there.
async fn concurrent_mixed_writes(store: Arc<dyn Store>) {
    const DEVICES: usize = 24;
    let (_job, run, ids) = job_and_run(store.as_ref(), DEVICES).await;
    let cred = store
        .create_credential(&Credential::new(
            format!("c-{}", run.id),
            "ops",
            Secret::new("pw"),
        ))
        .await
        .unwrap();
    let missing_run = Run {
        id: run.id + 10_000,
        ..run.clone()
    };
    // Everything starts at once, so the writes queue up together.
    let start = Arc::new(tokio::sync::Barrier::new(DEVICES * 9));
    let mut tasks = Vec::new();
    for (i, d) in ids.iter().copied().enumerate() {
        for copy in 0..3 {
            let (store, run) = (store.clone(), run.clone());
            tasks.push(spawn_after(start.clone(), async move {
                let r = store
                    .record_result(&result(&run, d, (i + copy) % 2 == 0))
                    .await
                    .map(|o| i64::from(o.inserted))
                    .map_err(|e| e.kind());
                ("result", d, r)
            }));
        }
        let (store2, run2) = (store.clone(), missing_run.clone());
        tasks.push(spawn_after(start.clone(), async move {
            let r = store2
                .record_result(&result(&run2, d, true))
                .await
                .map(|o| i64::from(o.inserted))
                .map_err(|e| e.kind());
            ("orphan", d, r)
        }));
        let (store3, run3) = (store.clone(), run.clone());
        tasks.push(spawn_after(start.clone(), async move {
            let entries: Vec<LogEntry> = (0..3)
                .map(|n| LogEntry {
                    run_id: Some(run3.id),
                    device_id: Some(d),
                    ..LogEntry::new(
                        t(2),
                        LogLevel::Info,
                        LogKind::Job,
                        "test",
                        format!("line {n}"),
                    )
                })
                .collect();
            let r = store3
                .append_logs(&entries)
                .await
                .map(|()| 3)
                .map_err(|e| e.kind());
            ("logs", d, r)
        }));
        let (store4, run4) = (store.clone(), run.clone());
        tasks.push(spawn_after(start.clone(), async move {
            let r = store4
                .insert_snapshot(&Snapshot {
                    meta: SnapshotMeta {
                        id: 0,
                        device_id: d,
                        hostname: format!("r{i}"),
                        run_id: Some(run4.id),
                        hash: String::new(),
                        size: 0,
                        created_at: t(2),
                        commit_id: None,
                        author: None,
                    },
                    content: format!("hostname r{i}\n"),
                })
                .await
                .map(|m| m.id)
                .map_err(|e| e.kind());
            ("snapshot", d, r)
        }));
        let store5 = store.clone();
        tasks.push(spawn_after(start.clone(), async move {
            let r = store5
                .record_credential_use(cred.id, i % 3 != 0, t(2))
                .await
                .map(|()| 1)
                .map_err(|e| e.kind());
            ("credential", d, r)
        }));
        let store6 = store.clone();
        tasks.push(spawn_after(start.clone(), async move {
            let r = store6
                .record_credential_use(cred.id + 10_000, true, t(2))
                .await
                .map(|()| 1)
                .map_err(|e| e.kind());
            ("no-credential", d, r)
        }));
        let (store7, run7) = (store.clone(), run.clone());
        tasks.push(spawn_after(start.clone(), async move {
            // A device of the run, and one that is not in it.
            let r = store7
                .mark_device_started(run7.id, if i % 2 == 0 { d } else { d + 10_000 }, t(2))
                .await
                .map(i64::from)
                .map_err(|e| e.kind());
            ("started", d, r)
        }));
    }
    let mut inserted = std::collections::HashMap::<DeviceId, i64>::new();
    let mut snapshots = std::collections::HashMap::<DeviceId, i64>::new();
    for task in tasks {
        let (what, d, r) = task.await.unwrap();
        let i = ids.iter().position(|x| *x == d).unwrap();
        match what {
            "result" => *inserted.entry(d).or_default() += r.unwrap(),
            "orphan" => assert_eq!(r, Err(ErrorKind::NotFound), "result for a missing run"),
            "logs" | "credential" => assert!(r.is_ok(), "{what} {d}: {r:?}"),
            "snapshot" => {
                snapshots.insert(d, r.unwrap());
            }
            "no-credential" => assert_eq!(r, Err(ErrorKind::NotFound)),
            "started" if i % 2 == 0 => assert_eq!(r, Ok(1)),
            "started" => assert_eq!(r, Err(ErrorKind::NotFound)),
            other => unreachable!("{other}"),
        }
    }
    // Exactly one of the three copies of each result was inserted, and the tallies agree.
    assert!(inserted.values().all(|n| *n == 1), "{inserted:?}");
    let done = store.get_run(run.id).await.unwrap();
    assert_eq!(done.counts.done() as usize, DEVICES);
    assert!(done.counts.is_complete());
    let results = store
        .list_results(
            &ResultFilter {
                run_id: Some(run.id),
                ..Default::default()
            },
            Page::first(100),
        )
        .await
        .unwrap();
    assert_eq!(results.total as usize, DEVICES);
    assert_eq!(
        results
            .items
            .iter()
            .filter(|r| r.status == DeviceStatus::Success)
            .count() as u32,
        done.counts.succeeded
    );
    // The failed result insert left nothing behind (rolled back to before its insert).
    let orphans = store
        .list_results(
            &ResultFilter {
                run_id: Some(missing_run.id),
                ..Default::default()
            },
            Page::first(10),
        )
        .await
        .unwrap();
    assert_eq!(orphans.total, 0);
    let logs = store
        .list_logs(
            &LogFilter {
                run_id: Some(run.id),
                ..Default::default()
            },
            Page::first(10),
        )
        .await
        .unwrap();
    assert_eq!(logs.total as usize, DEVICES * 3);
    for (d, id) in &snapshots {
        let latest = store.latest_snapshot(*d).await.unwrap().unwrap();
        assert_eq!(latest.id, *id);
        assert_eq!(store.get_snapshot(*id).await.unwrap().meta.device_id, *d);
    }
    assert_eq!(snapshots.len(), DEVICES);
    let cred = store.get_credential(cred.id).await.unwrap();
    assert_eq!(cred.success_count + cred.failure_count, DEVICES as u64);
    assert_eq!(cred.failure_count as usize, DEVICES.div_ceil(3));
    // The marked devices are marked: a second mark says so.
    for (i, d) in ids.iter().enumerate() {
        let again = store.mark_device_started(run.id, *d, t(3)).await.unwrap();
        assert_eq!(again, i % 2 == 1, "device {d}");
    }
}

macro_rules! both {
    ($name:ident, $body:ident) => {
        mod $name {
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn sqlite() {
                let dir = tempfile::tempdir().unwrap();
                let store = SqliteStore::open(dir.path().join("nr.db"), cipher())
                    .await
                    .unwrap();
                $body(Arc::new(store)).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn postgres() {
                let Some(store) = pg(cipher()).await else {
                    return;
                };
                let s2 = store.clone();
                $body(Arc::new(store)).await;
                s2.drop_schema().await.unwrap();
            }
        }
    };
}

both!(
    record_result_is_unique_under_20_concurrent_writers,
    concurrent_results
);
both!(
    concurrent_writes_each_get_their_own_outcome,
    concurrent_mixed_writes
);
both!(hostile_filter_strings_match_literally, hostile_filters);
both!(log_retention_prunes_in_batches, log_retention);
both!(runs_leases_snapshots, runs_leases_and_snapshots);

#[tokio::test]
async fn sqlite_in_memory_works_and_file_is_wal() {
    let mem = sqlite_mem(cipher()).await;
    concurrent_results(Arc::new(mem)).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sub").join("nr.db");
    let store = SqliteStore::open(&path, cipher()).await.unwrap();
    let mode: (String,) = sqlx::query_as("PRAGMA journal_mode")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(mode.0.to_lowercase(), "wal");
    assert!(path.exists());
}

#[tokio::test]
async fn sqlite_migrations_from_empty_and_reapplied() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nr.db");
    let c = cipher();
    let store = SqliteStore::open(&path, c.clone()).await.unwrap();
    store
        .create_device(&Device::new("r1", "10.0.0.1", "cisco_ios"))
        .await
        .unwrap();
    store.migrate().await.unwrap();
    store.migrate().await.unwrap();
    store.close().await;
    let store = SqliteStore::open(&path, c).await.unwrap();
    assert_eq!(store.get_device(1).await.unwrap().hostname, "r1");
    let n: (i64,) = sqlx::query_as("SELECT COUNT(*) FROM netraven_migrations")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert!(n.0 >= 1);
    // No default-named sqlx table that could clash with an embedding app.
    let other: Option<(String,)> =
        sqlx::query_as("SELECT name FROM sqlite_master WHERE name = '_sqlx_migrations'")
            .fetch_optional(store.pool())
            .await
            .unwrap();
    assert!(other.is_none());
}

#[tokio::test]
async fn postgres_migrations_from_empty_and_reapplied() {
    let Some(url) = pg_url() else { return };
    let schema = random_schema();
    let c = cipher();
    let store = PostgresStore::connect(&url, Some(&schema), c.clone())
        .await
        .unwrap();
    store
        .create_device(&Device::new("r1", "10.0.0.1", "cisco_ios"))
        .await
        .unwrap();
    store.migrate().await.unwrap();
    let again = PostgresStore::connect(&url, Some(&schema), c)
        .await
        .unwrap();
    assert_eq!(again.get_device(1).await.unwrap().hostname, "r1");
    let n: (i64,) = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT COUNT(*) FROM {schema}.netraven_migrations"
    )))
    .fetch_one(again.pool())
    .await
    .unwrap();
    assert!(n.0 >= 1);
    again.close().await;
    assert_eq!(
        PostgresStore::connect(&url, Some("Bad-Name; DROP"), cipher())
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::InvalidInput
    );
    store.drop_schema().await.unwrap();
}

async fn rotation<S: Store>(
    open: impl AsyncFn(Arc<dyn SecretCipher>) -> S,
    reencrypt: impl AsyncFn(&S, &dyn SecretCipher) -> u64,
) {
    let old_key = KeyMaterial::generate();
    let old: Arc<dyn SecretCipher> = Arc::new(AesGcmCipher::from_key(&old_key));
    let store = open(old.clone()).await;
    let mut c = Credential::new("c1", "u", Secret::new("pw1"));
    c.enable_secret = Some(Secret::new("en1"));
    let c1 = store.create_credential(&c).await.unwrap();
    store
        .create_credential(&Credential::new("c2", "u", Secret::new("pw2")))
        .await
        .unwrap();
    drop(store);
    // Wrong key: flagged unreadable (never tried, never an empty password sent), and key
    // rotation with it refuses to run.
    let wrong = open(cipher()).await;
    let got = wrong.get_credential(c1.id).await.unwrap();
    assert!(got.unreadable && got.password.is_empty());
    drop(wrong);
    // Rotate: the store with the old key re-encrypts everything with the new key.
    let new_key = KeyMaterial::generate();
    let new = AesGcmCipher::from_key(&new_key);
    let store = open(old.clone()).await;
    assert_eq!(reencrypt(&store, &new).await, 2);
    // Running it again (interrupted rotation) is harmless.
    assert_eq!(reencrypt(&store, &new).await, 2);
    drop(store);
    let only_new = open(Arc::new(new)).await;
    let got = only_new.get_credential(c1.id).await.unwrap();
    assert_eq!(got.password.expose(), "pw1");
    assert_eq!(got.enable_secret.unwrap().expose(), "en1");
    assert_eq!(only_new.all_credentials().await.unwrap().len(), 2);
    let old_only = open(old).await;
    assert!(old_only.get_credential(c1.id).await.unwrap().unreadable);
}

#[tokio::test]
async fn sqlite_credentials_encrypted_tamper_moved_row() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("nr.db"), known_cipher())
        .await
        .unwrap();
    let pool = store.pool().clone();
    let pool2 = pool.clone();
    credentials_at_rest(
        &store,
        async |sql: &str| {
            let rows: Vec<(i64, String, Option<String>)> =
                sqlx::query_as(sqlx::AssertSqlSafe(sql.to_string()))
                    .fetch_all(&pool)
                    .await
                    .unwrap();
            rows
        },
        async |sql: &str| {
            sqlx::query(sqlx::AssertSqlSafe(sql.to_string()))
                .execute(&pool2)
                .await
                .unwrap();
        },
    )
    .await;
}

#[tokio::test]
async fn postgres_credentials_encrypted_tamper_moved_row() {
    let Some(store) = pg(known_cipher()).await else {
        return;
    };
    let pool = store.pool().clone();
    let pool2 = pool.clone();
    credentials_at_rest(
        &store,
        async |sql: &str| {
            let rows: Vec<(i64, String, Option<String>)> =
                sqlx::query_as(sqlx::AssertSqlSafe(sql.to_string()))
                    .fetch_all(&pool)
                    .await
                    .unwrap();
            rows
        },
        async |sql: &str| {
            sqlx::query(sqlx::AssertSqlSafe(sql.to_string()))
                .execute(&pool2)
                .await
                .unwrap();
        },
    )
    .await;
    store.drop_schema().await.unwrap();
}

#[tokio::test]
async fn sqlite_key_rotation() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nr.db");
    rotation(
        async |c| SqliteStore::open(&path, c).await.unwrap(),
        async |s: &SqliteStore, n| s.reencrypt_credentials(n).await.unwrap(),
    )
    .await;
}

#[tokio::test]
async fn postgres_key_rotation() {
    let Some(url) = pg_url() else { return };
    let schema = random_schema();
    rotation(
        async |c| {
            PostgresStore::connect(&url, Some(&schema), c)
                .await
                .unwrap()
        },
        async |s: &PostgresStore, n| s.reencrypt_credentials(n).await.unwrap(),
    )
    .await;
    PostgresStore::connect(&url, Some(&schema), cipher())
        .await
        .unwrap()
        .drop_schema()
        .await
        .unwrap();
}

#[tokio::test]
async fn conflicts_and_not_found_map_to_kinds() {
    let store = sqlite_mem(cipher()).await;
    store
        .create_device(&Device::new("r1", "a", "cisco_ios"))
        .await
        .unwrap();
    let err = store
        .create_device(&Device::new("r1", "b", "cisco_ios"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict);
    assert_eq!(
        store.get_device(99).await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
    assert_eq!(
        store.delete_device(99).await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
    let err = store
        .create_device(&Device::new("", "b", "cisco_ios"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    let _ = CDuration::seconds(1);
}
