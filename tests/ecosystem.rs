//! The ecosystem against real counterparts on 127.0.0.1: NetBox's device API replayed by a local
//! HTTP server (recorded pages shaped like NetBox's OpenAPI answers, paging by `next`, a rate
//! limit, token auth), and a configuration change on a simulated device delivered as one signed
//! webhook to a local HTTP receiver and one e-mail to a local SMTP sink, each with the redacted
//! diff.

#![cfg(all(feature = "integrations", feature = "sim"))]

use netraven::Netraven;
use netraven::core::notify::{
    EmailChannel, Filter, Notifier, SIGNATURE_HEADER, WebhookChannel, WebhookFormat,
};
use netraven::core::prelude::*;
use netraven::core::sources::netbox::{NetboxFilter, NetboxSource};
use netraven::core::sources::sync::{SyncOptions, sync};
use netraven::drivers::sim::{Faults, SimConfig, SimFleet};
use netraven::integrations::{ReqwestClient, SmtpMailer, SmtpSecurity};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

/// One HTTP request as the receiver saw it.
#[derive(Debug, Clone)]
struct Seen {
    target: String,
    headers: HashMap<String, String>,
    body: Vec<u8>,
}

type Answer = Arc<dyn Fn(&Seen, usize) -> (u16, Vec<(String, String)>, String) + Send + Sync>;

/// A tiny HTTP/1.1 server on 127.0.0.1: one request per connection, answered by `answer`
/// (given the request and how many came before it).
async fn http_server(answer: Answer) -> (String, Arc<Mutex<Vec<Seen>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
    let log = seen.clone();
    tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            let (log, answer) = (log.clone(), answer.clone());
            tokio::spawn(async move {
                let mut r = BufReader::new(sock);
                let mut line = String::new();
                if r.read_line(&mut line).await.unwrap_or(0) == 0 {
                    return;
                }
                let target = line.split_whitespace().nth(1).unwrap_or("").to_string();
                let mut headers = HashMap::new();
                loop {
                    let mut h = String::new();
                    if r.read_line(&mut h).await.unwrap_or(0) == 0 || h.trim().is_empty() {
                        break;
                    }
                    if let Some((k, v)) = h.split_once(':') {
                        headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
                    }
                }
                let len: usize = headers
                    .get("content-length")
                    .and_then(|l| l.parse().ok())
                    .unwrap_or(0);
                let mut body = vec![0; len];
                r.read_exact(&mut body).await.ok();
                let req = Seen {
                    target,
                    headers,
                    body,
                };
                let n = {
                    let mut l = log.lock().unwrap();
                    l.push(req.clone());
                    l.len() - 1
                };
                let (status, extra, text) = answer(&req, n);
                let mut resp = format!(
                    "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
                    text.len()
                );
                for (k, v) in extra {
                    resp.push_str(&format!("{k}: {v}\r\n"));
                }
                resp.push_str("\r\n");
                resp.push_str(&text);
                let mut sock = r.into_inner();
                sock.write_all(resp.as_bytes()).await.ok();
                sock.shutdown().await.ok();
            });
        }
    });
    (format!("http://{addr}"), seen)
}

/// A tiny SMTP sink on 127.0.0.1 keeping each message's DATA.
async fn smtp_sink() -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let mails: Arc<Mutex<Vec<String>>> = Arc::default();
    let store = mails.clone();
    tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            let store = store.clone();
            tokio::spawn(async move {
                let (rd, mut wr) = sock.into_split();
                let mut rd = BufReader::new(rd);
                wr.write_all(b"220 sink ESMTP\r\n").await.ok();
                let mut line = String::new();
                loop {
                    line.clear();
                    if rd.read_line(&mut line).await.unwrap_or(0) == 0 {
                        return;
                    }
                    let cmd = line.trim_end().to_ascii_uppercase();
                    let reply: &[u8] = if cmd.starts_with("EHLO") {
                        b"250-sink\r\n250 8BITMIME\r\n"
                    } else if cmd.starts_with("DATA") {
                        wr.write_all(b"354 go on\r\n").await.ok();
                        let mut data = String::new();
                        loop {
                            let mut l = String::new();
                            if rd.read_line(&mut l).await.unwrap_or(0) == 0 {
                                return;
                            }
                            if l == ".\r\n" {
                                break;
                            }
                            data.push_str(&l);
                        }
                        store.lock().unwrap().push(data);
                        b"250 queued\r\n"
                    } else if cmd.starts_with("QUIT") {
                        wr.write_all(b"221 bye\r\n").await.ok();
                        return;
                    } else {
                        b"250 ok\r\n"
                    };
                    wr.write_all(reply).await.ok();
                }
            });
        }
    });
    (port, mails)
}

async fn device_rows(store: &dyn Store) -> Vec<(String, String, String, Vec<String>)> {
    store
        .list_devices(&DeviceFilter::default(), Page::first(100))
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|d| {
            (
                d.hostname.clone(),
                d.address.clone(),
                d.platform.clone(),
                d.tags.clone(),
            )
        })
        .collect()
}

#[tokio::test]
async fn netbox_replay_imports_into_a_fresh_server_store() {
    let page1 = include_str!("fixtures/netbox/devices-page1.json").to_string();
    let page2 = include_str!("fixtures/netbox/devices-page2.json").to_string();
    let answer: Answer = Arc::new(move |req, n| {
        if req.headers.get("authorization").map(String::as_str) != Some("Token nb-test-token") {
            return (403, vec![], r#"{"detail":"Invalid token"}"#.into());
        }
        // The first request of the test is rate limited, as NetBox behind a limiter answers.
        if n == 0 {
            return (429, vec![("Retry-After".into(), "0".into())], "{}".into());
        }
        if req.target.contains("offset=2") {
            (200, vec![], page2.clone())
        } else {
            (200, vec![], page1.clone())
        }
    });
    let (url, seen) = http_server(answer).await;
    let dir = tempfile::tempdir().unwrap();
    let store = Netraven::builder()
        .data_dir(dir.path())
        .open_store()
        .await
        .unwrap();
    let client = Arc::new(ReqwestClient::new(Duration::from_secs(10)).unwrap());
    let filter = NetboxFilter {
        sites: vec!["ams1".into(), "fra1".into()],
        ..NetboxFilter::default()
    };
    let src = NetboxSource::new(
        &url,
        Secret::new("nb-test-token"),
        filter,
        Default::default(),
        client.clone(),
    )
    .unwrap()
    .page_size(2);
    let opts = SyncOptions {
        owner_tag: Some("netbox".into()),
    };

    let dry = sync(store.as_ref(), &src, &opts, true).await.unwrap();
    assert_eq!(
        dry.added,
        vec!["ams-core-1", "ams-sw-1", "fra-edge-1"],
        "{dry:?}"
    );
    assert!(
        device_rows(store.as_ref()).await.is_empty(),
        "the dry run wrote nothing"
    );

    let first = sync(store.as_ref(), &src, &opts, false).await.unwrap();
    assert_eq!(first.added, dry.added);
    let tags = |t: &[&str]| t.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(
        device_rows(store.as_ref()).await,
        vec![
            (
                "ams-core-1".into(),
                "192.0.2.71".into(),
                "cisco_ios".into(),
                tags(&["backbone", "site:ams1", "role:core", "netbox"])
            ),
            (
                "ams-sw-1".into(),
                "192.0.2.72".into(),
                "arista_eos".into(),
                tags(&["site:ams1", "role:access", "netbox"])
            ),
            (
                "fra-edge-1".into(),
                "2001:db8::13".into(),
                "juniper_junos".into(),
                tags(&["backbone", "peering", "site:fra1", "role:edge", "netbox"])
            ),
        ]
    );
    let again = sync(store.as_ref(), &src, &opts, false).await.unwrap();
    assert_eq!((again.changes(), again.unchanged), (0, 3), "{again:?}");

    let seen = seen.lock().unwrap().clone();
    assert_eq!(
        seen[1].target,
        "/api/dcim/devices/?limit=2&status=active&site=ams1&site=fra1"
    );
    // The `next` link named another host: it was followed on the configured one.
    assert_eq!(
        seen[2].target,
        "/api/dcim/devices/?limit=2&offset=2&status=active"
    );

    let wrong = NetboxSource::new(
        &url,
        Secret::new("bad"),
        NetboxFilter::default(),
        Default::default(),
        client,
    )
    .unwrap();
    let e = sync(store.as_ref(), &wrong, &opts, false)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Auth);
}

#[tokio::test]
async fn a_config_change_sends_one_signed_webhook_and_one_email_with_the_redacted_diff() {
    let fleet = SimFleet::start(SimConfig {
        devices: 1,
        faults: Faults {
            change_every: Some(1),
            ..Faults::default()
        },
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let ok: Answer = Arc::new(|_, _| (200, vec![], "{}".into()));
    let (hook_url, hooks) = http_server(ok).await;
    let (smtp_port, mails) = smtp_sink().await;

    let nr = Netraven::builder()
        .in_memory()
        .without_git()
        .build()
        .await
        .unwrap();
    let dev = &fleet.devices()[0];
    let cred = nr
        .store()
        .upsert_credential(&dev.credential())
        .await
        .unwrap();
    let mut device = dev.core_device();
    device.credential_id = Some(cred.id);
    device.tags = vec!["core".into()];
    let device = nr.store().upsert_device(&device).await.unwrap();
    let job = nr
        .store()
        .upsert_job(&Job::backup(
            "nightly",
            Targets {
                device_ids: vec![device.id],
                ..Default::default()
            },
        ))
        .await
        .unwrap();

    let http = Arc::new(ReqwestClient::new(Duration::from_secs(10)).unwrap());
    let webhook = WebhookChannel::new(
        "hook",
        format!("{hook_url}/hook"),
        WebhookFormat::Generic,
        Some(Secret::new("hook-key")),
        http,
    );
    let mailer =
        Arc::new(SmtpMailer::new("127.0.0.1", smtp_port, SmtpSecurity::Plain, None).unwrap());
    let email = EmailChannel::new(
        "mail",
        "netraven@example.net",
        vec!["noc@example.net".into()],
        mailer,
    );
    let only_changes = Filter {
        events: vec![netraven::core::notify::EventKind::ConfigChanged],
        tags: vec!["core".into()],
    };
    let notifier = Arc::new(
        Notifier::new(3)
            .channel(Arc::new(webhook), only_changes.clone())
            .channel(Arc::new(email), only_changes),
    );
    let log = notifier.log();
    let stop = netraven::CancellationToken::new();
    let listening = tokio::spawn(notifier.clone().run(
        nr.engine().events().subscribe(),
        nr.store().clone(),
        nr.sink().clone(),
        stop.clone(),
    ));

    // The first backup is a capture, the second a change.
    for _ in 0..2 {
        let run = nr.run_and_wait(job.id).await.unwrap();
        assert_eq!(run.status, RunStatus::CompletedSuccess);
    }
    for _ in 0..600 {
        if log.entries().len() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.cancel();
    listening.await.unwrap();
    let entries = log.entries();
    assert_eq!(entries.len(), 2, "{entries:?}");
    assert!(entries.iter().all(|d| d.delivered), "{entries:?}");

    let secrets = dev.secrets();
    assert!(!secrets.is_empty());
    let hooks = hooks.lock().unwrap().clone();
    assert_eq!(hooks.len(), 1, "one webhook delivery");
    let h = &hooks[0];
    // The receiver checks the signature with its own HMAC implementation.
    use hmac::Mac;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(b"hook-key").unwrap();
    mac.update(&h.body);
    let expected = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    assert_eq!(
        h.headers.get(&SIGNATURE_HEADER.to_ascii_lowercase()),
        Some(&expected)
    );
    let body: serde_json::Value = serde_json::from_slice(&h.body).unwrap();
    assert_eq!(body["kind"], "config_changed");
    assert_eq!(body["device"], dev.hostname());
    let diff = body["diff"].as_str().unwrap();
    assert!(diff.contains("+snmp-server location"), "{diff}");
    assert!(
        diff.contains("<removed>"),
        "secrets near the change are redacted: {diff}"
    );
    let mails = mails.lock().unwrap().clone();
    assert_eq!(mails.len(), 1, "one e-mail");
    let mail = &mails[0];
    assert!(
        mail.contains("Subject: [NetRaven] configuration of"),
        "{mail}"
    );
    assert!(mail.contains("+snmp-server location"), "{mail}");
    for s in &secrets {
        assert!(
            !diff.contains(s.as_str()) && !mail.contains(s.as_str()),
            "secret {s} leaked"
        );
    }
    nr.shutdown().await.unwrap();
}
