//! Notifications: telling people when configurations change and devices fail.
//!
//! A [`Notifier`] listens to the engine's [`Event`]s and derives four kinds of
//! [`Notification`] ([`EventKind`]): a device's configuration changed (with the unified diff of
//! the two snapshots — snapshots are redacted when taken, so the diff carries no secret), a
//! device failed `failing_after` backups in a row, a failing device recovered, and a run finished
//! with failures. Each goes to every [`Channel`] whose [`Filter`] accepts it, with retries and
//! exponential backoff, and every delivery is recorded in the [`DeliveryLog`].
//!
//! Channels: [`WebhookChannel`] (generic JSON signed with HMAC-SHA256, or Slack, Mattermost and
//! Teams incoming-webhook formats) over an [`HttpClient`], and [`EmailChannel`] over a
//! [`MailTransport`]; the facade crate implements both transports (`reqwest`, `lettre`).
//!
//! Failure streaks and recoveries are read from the store's results, so they are right whoever
//! worked on the earlier runs; the events themselves come from this process's engine, so run
//! a notifier in every process that runs a worker.

use crate::error::{Error, ErrorKind, Result};
use crate::events::Event;
use crate::model::*;
use crate::secret::Secret;
use crate::snapshot::SnapshotSink;
use crate::sources::http::{HttpClient, HttpRequest};
use crate::store::{LogStore, Store};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::collections::VecDeque;
use std::fmt::Debug;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

/// What a notification is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// A device's configuration changed.
    ConfigChanged,
    /// A device failed `failing_after` backups in a row.
    DeviceFailing,
    /// A device that was failing succeeded again.
    DeviceRecovered,
    /// A run finished with failed devices (or failed as a whole).
    RunFailed,
}

impl EventKind {
    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::ConfigChanged => "config_changed",
            EventKind::DeviceFailing => "device_failing",
            EventKind::DeviceRecovered => "device_recovered",
            EventKind::RunFailed => "run_failed",
        }
    }

    /// Parses a snake_case name.
    pub fn parse(s: &str) -> Option<Self> {
        [
            EventKind::ConfigChanged,
            EventKind::DeviceFailing,
            EventKind::DeviceRecovered,
            EventKind::RunFailed,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }
}

/// One notification, whatever the channel.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Notification {
    /// What it is about.
    pub kind: EventKind,
    /// When it was made.
    pub at: DateTime<Utc>,
    /// One line.
    pub title: String,
    /// The text for people (the diff included for a change).
    pub text: String,
    /// The device's hostname (device events).
    pub device: Option<String>,
    /// The device's id (device events).
    pub device_id: Option<DeviceId>,
    /// The device's tags (device events).
    pub tags: Vec<String>,
    /// The run.
    pub run_id: Option<RunId>,
    /// The unified diff (configuration changes), redacted.
    pub diff: Option<String>,
}

/// Which notifications a channel takes: kinds (none = all) and device tags (none = all); see
/// [`Filter::accepts`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Filter {
    /// Kinds taken; empty takes all.
    #[serde(default)]
    pub events: Vec<EventKind>,
    /// Device tags of which one must match; empty takes all devices.
    #[serde(default)]
    pub tags: Vec<String>,
}

impl Filter {
    /// Whether `n` passes: its kind is listed (or none are), and for device events one of its
    /// tags is listed (or none are). Run events pass any tag filter: a run spans many tags.
    pub fn accepts(&self, n: &Notification) -> bool {
        let kind = self.events.is_empty() || self.events.contains(&n.kind);
        let tags = self.tags.is_empty()
            || n.device.is_none()
            || n.tags.iter().any(|t| self.tags.contains(t));
        kind && tags
    }
}

/// A destination for notifications. One call is one attempt; the [`Notifier`] retries errors
/// whose kind is retryable.
#[async_trait]
pub trait Channel: Send + Sync + Debug {
    /// Name in the delivery log.
    fn name(&self) -> &str;
    /// Delivers once.
    async fn deliver(&self, n: &Notification) -> Result<()>;
}

/// HMAC-SHA256 (RFC 2104) of `msg` under `key`.
pub fn hmac_sha256(key: &[u8], msg: &[u8]) -> [u8; 32] {
    let mut k = [0u8; 64];
    if key.len() > 64 {
        k[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let (mut ipad, mut opad) = ([0x36u8; 64], [0x5cu8; 64]);
    for i in 0..64 {
        ipad[i] ^= k[i];
        opad[i] ^= k[i];
    }
    let inner = Sha256::new()
        .chain_update(ipad)
        .chain_update(msg)
        .finalize();
    Sha256::new()
        .chain_update(opad)
        .chain_update(inner)
        .finalize()
        .into()
}

/// The signature header value of a webhook body: `sha256=<hex>`.
pub fn signature(secret: &Secret, body: &[u8]) -> String {
    format!(
        "sha256={}",
        hex::encode(hmac_sha256(secret.expose().as_bytes(), body))
    )
}

/// The header carrying [`signature`].
pub const SIGNATURE_HEADER: &str = "X-Netraven-Signature";

/// The body shape a webhook speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WebhookFormat {
    /// The [`Notification`] as JSON, signed when a secret is set.
    Generic,
    /// Slack incoming webhook (`{"text": ...}`).
    Slack,
    /// Mattermost incoming webhook (`{"text": ...}`, Markdown).
    Mattermost,
    /// Microsoft Teams incoming webhook (a MessageCard).
    Teams,
}

/// A webhook. `{:?}` shows neither its URL (chat webhooks carry their token in it) nor its
/// signing key.
#[derive(Clone)]
pub struct WebhookChannel {
    name: String,
    url: String,
    format: WebhookFormat,
    secret: Option<Secret>,
    client: Arc<dyn HttpClient>,
}

impl std::fmt::Debug for WebhookChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookChannel")
            .field("name", &self.name)
            .field("url", &"[REDACTED]")
            .field("format", &self.format)
            .field("signed", &self.secret.is_some())
            .finish()
    }
}

impl WebhookChannel {
    /// A webhook at `url` in `format`, signed with `secret` (generic format) when given.
    pub fn new(
        name: impl Into<String>,
        url: impl Into<String>,
        format: WebhookFormat,
        secret: Option<Secret>,
        client: Arc<dyn HttpClient>,
    ) -> Self {
        WebhookChannel {
            name: name.into(),
            url: url.into(),
            format,
            secret,
            client,
        }
    }

    /// The body this channel posts for `n`.
    pub fn body(&self, n: &Notification) -> Value {
        let fenced = |t: &str| match &n.diff {
            Some(d) => format!("{t}\n```diff\n{d}```"),
            None => t.to_string(),
        };
        match self.format {
            WebhookFormat::Generic => serde_json::to_value(n).unwrap_or(Value::Null),
            WebhookFormat::Slack | WebhookFormat::Mattermost => {
                json!({ "text": fenced(&format!("*{}*", n.title)) })
            }
            WebhookFormat::Teams => json!({
                "@type": "MessageCard",
                "@context": "https://schema.org/extensions",
                "summary": n.title,
                "title": n.title,
                "text": match &n.diff {
                    Some(d) => format!("<pre>{}</pre>", html_escape(d)),
                    None => html_escape(&n.text),
                },
            }),
        }
    }
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[async_trait]
impl Channel for WebhookChannel {
    fn name(&self) -> &str {
        &self.name
    }

    async fn deliver(&self, n: &Notification) -> Result<()> {
        let body = serde_json::to_vec(&self.body(n))
            .map_err(|e| Error::internal(format!("webhook body: {e}")))?;
        let mut req = HttpRequest::post(&self.url, body.clone())
            .header("Content-Type", "application/json")
            .header("X-Netraven-Event", n.kind.as_str());
        if let (Some(s), WebhookFormat::Generic) = (&self.secret, self.format) {
            req = req.header(SIGNATURE_HEADER, signature(s, &body));
        }
        let resp = self.client.send(req).await?;
        match resp.status {
            200..=299 => Ok(()),
            s if s == 429 || s >= 500 => Err(Error::new(
                ErrorKind::Unavailable,
                format!("webhook answered {s}"),
            )),
            s => Err(Error::new(
                ErrorKind::Protocol,
                format!("webhook answered {s}"),
            )),
        }
    }
}

/// One e-mail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mail {
    /// Sender address.
    pub from: String,
    /// Recipients.
    pub to: Vec<String>,
    /// Subject.
    pub subject: String,
    /// Plain text body.
    pub body: String,
}

/// Sends e-mail (the facade's `SmtpMailer` over `lettre`).
#[async_trait]
pub trait MailTransport: Send + Sync + Debug {
    /// Sends one mail; a temporary failure has a retryable kind.
    async fn send(&self, mail: &Mail) -> Result<()>;
}

/// E-mail to fixed recipients.
#[derive(Debug, Clone)]
pub struct EmailChannel {
    name: String,
    from: String,
    to: Vec<String>,
    transport: Arc<dyn MailTransport>,
}

impl EmailChannel {
    /// Mail from `from` to `to` through `transport`.
    pub fn new(
        name: impl Into<String>,
        from: impl Into<String>,
        to: Vec<String>,
        transport: Arc<dyn MailTransport>,
    ) -> Self {
        EmailChannel {
            name: name.into(),
            from: from.into(),
            to,
            transport,
        }
    }
}

#[async_trait]
impl Channel for EmailChannel {
    fn name(&self) -> &str {
        &self.name
    }

    async fn deliver(&self, n: &Notification) -> Result<()> {
        let mut body = n.text.clone();
        if let Some(d) = &n.diff {
            body.push_str("\n\n");
            body.push_str(d);
        }
        self.transport
            .send(&Mail {
                from: self.from.clone(),
                to: self.to.clone(),
                subject: format!("[NetRaven] {}", n.title),
                body,
            })
            .await
    }
}

/// One delivery (all attempts of one notification to one channel).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Delivery {
    /// When it ended.
    pub at: DateTime<Utc>,
    /// Channel name.
    pub channel: String,
    /// Notification kind.
    pub kind: EventKind,
    /// Device, if any.
    pub device: Option<String>,
    /// Run, if any.
    pub run_id: Option<RunId>,
    /// Attempts made.
    pub attempts: u32,
    /// Whether it was delivered.
    pub delivered: bool,
    /// The last error.
    pub error: Option<String>,
}

/// The latest deliveries, newest last (bounded, in memory; the API shows it).
#[derive(Debug, Clone)]
pub struct DeliveryLog {
    entries: Arc<Mutex<VecDeque<Delivery>>>,
    capacity: usize,
}

impl Default for DeliveryLog {
    fn default() -> Self {
        DeliveryLog::new(1000)
    }
}

impl DeliveryLog {
    /// A log keeping the last `capacity` deliveries.
    pub fn new(capacity: usize) -> Self {
        DeliveryLog {
            entries: Arc::default(),
            capacity: capacity.max(1),
        }
    }

    fn push(&self, d: Delivery) {
        let mut e = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if e.len() == self.capacity {
            e.pop_front();
        }
        e.push_back(d);
    }

    /// The deliveries kept, oldest first.
    pub fn entries(&self) -> Vec<Delivery> {
        let e = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        e.iter().cloned().collect()
    }
}

/// Retries of one delivery.
#[derive(Debug, Clone, Copy)]
pub struct Retry {
    /// Attempts in all (at least 1).
    pub attempts: u32,
    /// Wait before the second attempt; doubled for each further one.
    pub backoff: Duration,
}

impl Default for Retry {
    fn default() -> Self {
        Retry {
            attempts: 4,
            backoff: Duration::from_secs(2),
        }
    }
}

/// One webhook in the configuration (`[[notify.webhooks]]`). `{:?}` masks its URL and key.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookSettings {
    /// Name in the delivery log.
    pub name: String,
    /// URL (chat webhook URLs are secrets: `config check` masks them).
    pub url: String,
    /// Body format; default `generic`.
    #[serde(default = "generic")]
    pub format: WebhookFormat,
    /// HMAC-SHA256 key of the signature header (generic format).
    #[serde(default)]
    pub secret: Option<String>,
    /// Kinds and tags taken.
    #[serde(default, flatten)]
    pub filter: Filter,
}

fn generic() -> WebhookFormat {
    WebhookFormat::Generic
}

impl std::fmt::Debug for WebhookSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookSettings")
            .field("name", &self.name)
            .field("url", &"[REDACTED]")
            .field("format", &self.format)
            .field("secret", &self.secret.as_ref().map(|_| "[REDACTED]"))
            .field("filter", &self.filter)
            .finish()
    }
}

/// E-mail in the configuration (`[notify.email]`). `{:?}` masks the password.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailSettings {
    /// SMTP relay host.
    pub relay: String,
    /// Port; default 587.
    #[serde(default = "submission")]
    pub port: u16,
    /// `starttls` (default) or `plain` (a relay on the same host or network only).
    #[serde(default = "starttls")]
    pub security: String,
    /// Login user name, if the relay wants one.
    #[serde(default)]
    pub username: Option<String>,
    /// Login password.
    #[serde(default)]
    pub password: Option<String>,
    /// Sender.
    pub from: String,
    /// Recipients.
    pub to: Vec<String>,
    /// Kinds and tags taken.
    #[serde(default, flatten)]
    pub filter: Filter,
}

impl std::fmt::Debug for EmailSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmailSettings")
            .field("relay", &self.relay)
            .field("port", &self.port)
            .field("security", &self.security)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "[REDACTED]"))
            .field("from", &self.from)
            .field("to", &self.to)
            .field("filter", &self.filter)
            .finish()
    }
}

fn submission() -> u16 {
    587
}
fn starttls() -> String {
    "starttls".into()
}

/// The `[notify]` section of the configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NotifySettings {
    /// Failed backups in a row before `device_failing`; default 3.
    pub failing_after: u32,
    /// Webhooks.
    pub webhooks: Vec<WebhookSettings>,
    /// E-mail.
    pub email: Option<EmailSettings>,
}

impl Default for NotifySettings {
    fn default() -> Self {
        NotifySettings {
            failing_after: 3,
            webhooks: Vec::new(),
            email: None,
        }
    }
}

impl NotifySettings {
    /// Whether any channel is configured.
    pub fn is_empty(&self) -> bool {
        self.webhooks.is_empty() && self.email.is_none()
    }
}

#[derive(Debug, Clone)]
struct Route {
    channel: Arc<dyn Channel>,
    filter: Filter,
}

/// Turns engine events into notifications and delivers them (see the module docs).
#[derive(Debug, Clone)]
pub struct Notifier {
    routes: Vec<Route>,
    log: DeliveryLog,
    record: Option<Arc<dyn LogStore>>,
    failing_after: u32,
    retry: Retry,
}

impl Notifier {
    /// A notifier without channels; a device counts as failing after `failing_after` failed
    /// backups in a row (at least 1).
    pub fn new(failing_after: u32) -> Self {
        Notifier {
            routes: Vec::new(),
            log: DeliveryLog::default(),
            record: None,
            failing_after: failing_after.max(1),
            retry: Retry::default(),
        }
    }

    /// Builder-style: adds a channel with its filter.
    pub fn channel(mut self, channel: Arc<dyn Channel>, filter: Filter) -> Self {
        self.routes.push(Route { channel, filter });
        self
    }

    /// Builder-style: also writes every delivery to `logs` (kind `system`, source `notify`), so
    /// the API's log endpoints show deliveries made by any process.
    pub fn record_in(mut self, logs: Arc<dyn LogStore>) -> Self {
        self.record = Some(logs);
        self
    }

    /// Builder-style: the retry policy.
    pub fn retry(mut self, retry: Retry) -> Self {
        self.retry = retry;
        self
    }

    /// The delivery log (shared: clones see the same entries).
    pub fn log(&self) -> DeliveryLog {
        self.log.clone()
    }

    /// The notifications an event calls for (reads the store and the sink; sends nothing).
    pub async fn notifications(
        &self,
        store: &dyn Store,
        sink: &dyn SnapshotSink,
        event: &Event,
    ) -> Result<Vec<Notification>> {
        let now = Utc::now();
        match event {
            Event::Result(r) => self.device_notifications(store, sink, r, now).await,
            Event::RunFinished { run_id, status }
                if matches!(
                    status,
                    RunStatus::CompletedPartialFailure
                        | RunStatus::CompletedFailure
                        | RunStatus::FailedError
                ) =>
            {
                let run = store.get_run(*run_id).await?;
                let c = run.counts;
                Ok(vec![Notification {
                    kind: EventKind::RunFailed,
                    at: now,
                    title: format!(
                        "run {run_id} finished with {} of {} devices failed",
                        c.failed, c.total
                    ),
                    text: format!(
                        "Run {run_id} of job {} ended {}: {} succeeded, {} failed, {} changed.{}",
                        run.job_id,
                        status.as_str(),
                        c.succeeded,
                        c.failed,
                        c.changed,
                        run.message.map(|m| format!(" {m}")).unwrap_or_default()
                    ),
                    device: None,
                    device_id: None,
                    tags: Vec::new(),
                    run_id: Some(*run_id),
                    diff: None,
                }])
            }
            _ => Ok(Vec::new()),
        }
    }

    async fn device_notifications(
        &self,
        store: &dyn Store,
        sink: &dyn SnapshotSink,
        r: &DeviceResult,
        now: DateTime<Utc>,
    ) -> Result<Vec<Notification>> {
        let device = match store.get_device(r.device_id).await {
            Ok(d) => d,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let host = device.hostname.clone();
        let make = |kind, title: String, text: String, diff| Notification {
            kind,
            at: now,
            title,
            text,
            device: Some(host.clone()),
            device_id: Some(device.id),
            tags: device.tags.clone(),
            run_id: Some(r.run_id),
            diff,
        };
        let mut out = Vec::new();
        if r.changed == Some(true)
            && let Some(id) = r.snapshot_id
        {
            let to = sink.get(id).await?;
            let history = sink.history(device.id, Page::first(10)).await?.items;
            let prev = history
                .iter()
                .skip_while(|m| m.id != id)
                .nth(1)
                .map(|m| m.id);
            // The first snapshot of a device is a capture, not a change.
            if let Some(prev) = prev {
                let from = sink.get(prev).await?;
                let diff = crate::diff::unified_diff(&from, &to);
                out.push(make(
                    EventKind::ConfigChanged,
                    format!("configuration of {host} changed"),
                    format!(
                        "The configuration of {host} ({}) changed in run {} (snapshot {} → {}).",
                        device.address, r.run_id, from.meta.id, to.meta.id
                    ),
                    Some(diff),
                ));
            }
        }
        let n = self.failing_after as usize;
        let filter = ResultFilter {
            device_id: Some(device.id),
            ..Default::default()
        };
        let recent = store
            .list_results(&filter, Page::first(self.failing_after + 1))
            .await?
            .items;
        let failed = |r: &DeviceResult| r.status == DeviceStatus::Failed;
        match r.status {
            DeviceStatus::Failed => {
                // Exactly at the threshold: once per streak.
                let streak = recent.len() >= n && recent[..n].iter().all(failed);
                let before_ok = recent.get(n).is_none_or(|x| !failed(x));
                if streak && before_ok {
                    out.push(make(
                        EventKind::DeviceFailing,
                        format!("{host} failed {n} backups in a row"),
                        format!(
                            "{host} ({}) failed {n} backups in a row; last error: {}",
                            device.address,
                            r.message.as_deref().unwrap_or("unknown")
                        ),
                        None,
                    ));
                }
            }
            DeviceStatus::Success => {
                if recent.len() > n && recent[1..=n].iter().all(failed) {
                    out.push(make(
                        EventKind::DeviceRecovered,
                        format!("{host} recovered"),
                        format!(
                            "{host} ({}) was backed up again after failing.",
                            device.address
                        ),
                        None,
                    ));
                }
            }
        }
        Ok(out)
    }

    /// Delivers `n` to every channel whose filter takes it, retrying retryable errors, and
    /// records each delivery.
    pub async fn deliver(&self, n: &Notification) {
        for route in self.routes.iter().filter(|r| r.filter.accepts(n)) {
            let mut attempts = 0;
            let mut wait = self.retry.backoff;
            let outcome = loop {
                attempts += 1;
                match route.channel.deliver(n).await {
                    Ok(()) => break None,
                    Err(e) if e.is_retryable() && attempts < self.retry.attempts.max(1) => {
                        tracing::info!(channel = route.channel.name(), error = %e, "notification retried");
                        tokio::time::sleep(wait).await;
                        wait *= 2;
                    }
                    Err(e) => break Some(e.to_string()),
                }
            };
            if let Some(e) = &outcome {
                tracing::warn!(channel = route.channel.name(), kind = n.kind.as_str(), error = %e, "notification not delivered");
            }
            let d = Delivery {
                at: Utc::now(),
                channel: route.channel.name().to_string(),
                kind: n.kind,
                device: n.device.clone(),
                run_id: n.run_id,
                attempts,
                delivered: outcome.is_none(),
                error: outcome,
            };
            if let Some(logs) = &self.record {
                let level = if d.delivered {
                    LogLevel::Info
                } else {
                    LogLevel::Warning
                };
                let verb = if d.delivered {
                    "delivered"
                } else {
                    "not delivered"
                };
                let mut e = LogEntry::new(
                    d.at,
                    level,
                    LogKind::System,
                    "notify",
                    format!(
                        "{} {verb} to {} after {} attempt(s)",
                        d.kind.as_str(),
                        d.channel,
                        d.attempts
                    ),
                );
                e.run_id = d.run_id;
                e.device_id = n.device_id;
                e.fields = serde_json::to_value(&d).unwrap_or(Value::Null);
                if let Err(err) = logs.append_logs(&[e]).await {
                    tracing::warn!(error = %err, "delivery not recorded in the log store");
                }
            }
            self.log.push(d);
        }
    }

    /// Listens to `events` until `shutdown`, delivering what each calls for (each delivery in
    /// its own task, so a slow channel holds up no other).
    pub async fn run(
        self: Arc<Self>,
        mut events: broadcast::Receiver<Event>,
        store: Arc<dyn Store>,
        sink: Arc<dyn SnapshotSink>,
        shutdown: CancellationToken,
    ) {
        loop {
            let event = tokio::select! {
                _ = shutdown.cancelled() => return,
                e = events.recv() => e,
            };
            let event = match event {
                Ok(e) => e,
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!(missed = n, "notifier fell behind; events missed");
                    continue;
                }
                Err(broadcast::error::RecvError::Closed) => return,
            };
            match self
                .notifications(store.as_ref(), sink.as_ref(), &event)
                .await
            {
                Ok(list) => {
                    for n in list {
                        let me = self.clone();
                        tokio::spawn(async move { me.deliver(&n).await });
                    }
                }
                Err(e) => tracing::warn!(error = %e, "notification not prepared"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_rfc_4231_case_2() {
        let mac = hmac_sha256(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(
            hex::encode(mac),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        let long = [0xaau8; 131];
        assert_eq!(
            hex::encode(hmac_sha256(
                &long,
                b"Test Using Larger Than Block-Size Key - Hash Key First"
            )),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }

    fn note(kind: EventKind, tags: &[&str], device: bool) -> Notification {
        Notification {
            kind,
            at: Utc::now(),
            title: "t".into(),
            text: "x".into(),
            device: device.then(|| "r1".into()),
            device_id: None,
            tags: tags.iter().map(|t| t.to_string()).collect(),
            run_id: None,
            diff: Some("-a\n+b\n".into()),
        }
    }

    #[test]
    fn filters_by_kind_and_tag() {
        let f = Filter {
            events: vec![EventKind::ConfigChanged, EventKind::RunFailed],
            tags: vec!["core".into()],
        };
        assert!(f.accepts(&note(EventKind::ConfigChanged, &["core"], true)));
        assert!(!f.accepts(&note(EventKind::ConfigChanged, &["edge"], true)));
        assert!(!f.accepts(&note(EventKind::DeviceFailing, &["core"], true)));
        assert!(f.accepts(&note(EventKind::RunFailed, &[], false)));
        assert_eq!(
            EventKind::parse("device_recovered"),
            Some(EventKind::DeviceRecovered)
        );
    }

    #[derive(Debug)]
    struct Flaky(Mutex<u32>, ErrorKind);

    #[async_trait]
    impl Channel for Flaky {
        fn name(&self) -> &str {
            "flaky"
        }
        async fn deliver(&self, _: &Notification) -> Result<()> {
            let mut n = self.0.lock().unwrap();
            *n += 1;
            if *n < 3 {
                return Err(Error::new(self.1, "not yet"));
            }
            Ok(())
        }
    }

    #[tokio::test]
    async fn retries_retryable_errors_and_logs_each_delivery() {
        let retry = Retry {
            attempts: 5,
            backoff: Duration::from_millis(1),
        };
        let ok = Notifier::new(3).retry(retry).channel(
            Arc::new(Flaky(Mutex::new(0), ErrorKind::Unavailable)),
            Filter::default(),
        );
        ok.deliver(&note(EventKind::ConfigChanged, &[], true)).await;
        let bad = Notifier::new(3).retry(retry).channel(
            Arc::new(Flaky(Mutex::new(0), ErrorKind::Protocol)),
            Filter::default(),
        );
        bad.deliver(&note(EventKind::ConfigChanged, &[], true))
            .await;
        let (a, b) = (ok.log().entries(), bad.log().entries());
        assert_eq!((a[0].attempts, a[0].delivered), (3, true));
        assert_eq!((b[0].attempts, b[0].delivered), (1, false));
    }

    #[tokio::test]
    async fn deliveries_are_recorded_in_the_log_store() {
        use crate::store::LogStore;
        let store = Arc::new(crate::memory::MemoryStore::new());
        let n = Notifier::new(1)
            .retry(Retry {
                attempts: 1,
                backoff: Duration::from_millis(1),
            })
            .record_in(store.clone())
            .channel(
                Arc::new(Flaky(Mutex::new(0), ErrorKind::Protocol)),
                Filter::default(),
            );
        n.deliver(&note(EventKind::DeviceFailing, &[], true)).await;
        let filter = LogFilter {
            source: Some("notify".into()),
            ..Default::default()
        };
        let logs = store
            .list_logs(&filter, Page::first(10))
            .await
            .unwrap()
            .items;
        assert_eq!(logs.len(), 1, "{logs:?}");
        assert_eq!(logs[0].level, LogLevel::Warning);
        assert!(
            logs[0]
                .message
                .contains("device_failing not delivered to flaky"),
            "{}",
            logs[0].message
        );
        assert_eq!(logs[0].fields["attempts"], 1);
    }

    #[test]
    fn chat_formats_carry_the_diff() {
        #[derive(Debug)]
        struct Nop;
        #[async_trait]
        impl HttpClient for Nop {
            async fn send(&self, _: HttpRequest) -> Result<crate::sources::http::HttpResponse> {
                Err(Error::new(ErrorKind::Connection, "nop"))
            }
        }
        let n = note(EventKind::ConfigChanged, &[], true);
        for (f, key) in [
            (WebhookFormat::Slack, "text"),
            (WebhookFormat::Mattermost, "text"),
            (WebhookFormat::Teams, "text"),
            (WebhookFormat::Generic, "diff"),
        ] {
            let w = WebhookChannel::new("w", "http://x", f, None, Arc::new(Nop));
            let body = w.body(&n);
            assert!(body[key].as_str().unwrap().contains("+b"), "{f:?}: {body}");
        }
    }
}
