//! The backends of the core's integration traits and the glue the CLI uses:
//! - [`ReqwestClient`]: [`HttpClient`] over `reqwest` (TLS through the system's OpenSSL, which
//!   the SSH driver links already; redirects are not followed, so a token never travels to a
//!   host it was not configured for);
//! - [`SmtpMailer`]: [`MailTransport`] over `lettre` (STARTTLS, or plain SMTP for a local relay);
//! - [`ImportOptions`] and [`source`]: an inventory source by kind name, as
//!   `netraven import --from KIND SOURCE` names it;
//! - [`notifier`] / [`start_notifier`]: the notifier the `[notify]` settings describe.

use async_trait::async_trait;
use netraven_core::notify::{
    EmailChannel, Mail, MailTransport, Notifier, NotifySettings, WebhookChannel,
};
use netraven_core::sources::http::{HttpClient, HttpRequest, HttpResponse};
use netraven_core::sources::netbox::{NetboxFilter, NetboxSource};
use netraven_core::sources::platforms::PlatformMap;
use netraven_core::sources::routerdb::{RouterDbFormat, RouterDbSource};
use netraven_core::sources::{InventorySource, file_source};
use netraven_core::{Error, ErrorKind, Result, Secret};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// [`HttpClient`] over `reqwest`.
#[derive(Debug, Clone)]
pub struct ReqwestClient {
    inner: reqwest::Client,
}

impl ReqwestClient {
    /// A client with this deadline per request (connect, send and read the whole answer).
    pub fn new(timeout: Duration) -> Result<Self> {
        let inner = reqwest::Client::builder()
            .timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("netraven/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::internal(format!("HTTP client: {e}")))?;
        Ok(ReqwestClient { inner })
    }
}

#[async_trait]
impl HttpClient for ReqwestClient {
    async fn send(&self, request: HttpRequest) -> Result<HttpResponse> {
        let method = reqwest::Method::from_bytes(request.method.as_bytes())
            .map_err(|_| Error::invalid(format!("bad HTTP method '{}'", request.method)))?;
        let mut req = self.inner.request(method, &request.url);
        for (name, value) in &request.headers {
            req = req.header(name, value);
        }
        if let Some(body) = request.body {
            req = req.body(body);
        }
        let kind = |e: &reqwest::Error| {
            if e.is_timeout() {
                ErrorKind::Timeout
            } else if e.is_builder() {
                ErrorKind::InvalidInput
            } else {
                ErrorKind::Connection
            }
        };
        // reqwest's errors name the URL, which may hold a query token: only the kind is kept.
        let resp = req.send().await.map_err(|e| {
            Error::new(
                kind(&e),
                format!("HTTP request to {} failed", host_of(&request.url)),
            )
        })?;
        let status = resp.status().as_u16();
        let headers = resp
            .headers()
            .iter()
            .filter_map(|(n, v)| Some((n.as_str().to_string(), v.to_str().ok()?.to_string())))
            .collect();
        let body = resp
            .bytes()
            .await
            .map_err(|e| Error::new(kind(&e), "reading the HTTP answer failed"))?
            .to_vec();
        Ok(HttpResponse {
            status,
            headers,
            body,
        })
    }
}

/// The host part of a URL, for messages.
fn host_of(url: &str) -> &str {
    let rest = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
    rest.split(['/', '?']).next().unwrap_or(rest)
}

/// How [`SmtpMailer`] talks to its relay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpSecurity {
    /// STARTTLS required (port 587 usually).
    StartTls,
    /// Plain SMTP, for a relay on the same host or network (port 25).
    Plain,
}

/// [`MailTransport`] over `lettre`'s SMTP transport.
#[derive(Clone)]
pub struct SmtpMailer {
    transport: lettre::AsyncSmtpTransport<lettre::Tokio1Executor>,
    relay: String,
}

impl std::fmt::Debug for SmtpMailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpMailer")
            .field("relay", &self.relay)
            .finish()
    }
}

impl SmtpMailer {
    /// A mailer sending through `host:port`, with a login when `login` is given.
    pub fn new(
        host: &str,
        port: u16,
        security: SmtpSecurity,
        login: Option<(String, Secret)>,
    ) -> Result<Self> {
        use lettre::transport::smtp::authentication::Credentials;
        let mut b = match security {
            SmtpSecurity::StartTls => {
                lettre::AsyncSmtpTransport::<lettre::Tokio1Executor>::starttls_relay(host)
                    .map_err(|e| Error::invalid(format!("SMTP relay {host}: {e}")))?
            }
            SmtpSecurity::Plain => {
                lettre::AsyncSmtpTransport::<lettre::Tokio1Executor>::builder_dangerous(host)
            }
        }
        .port(port)
        .timeout(Some(Duration::from_secs(30)));
        if let Some((user, pw)) = login {
            b = b.credentials(Credentials::new(user, pw.expose().to_string()));
        }
        Ok(SmtpMailer {
            transport: b.build(),
            relay: format!("{host}:{port}"),
        })
    }
}

#[async_trait]
impl MailTransport for SmtpMailer {
    async fn send(&self, mail: &Mail) -> Result<()> {
        use lettre::AsyncTransport;
        use lettre::message::{Mailbox, header::ContentType};
        let mbox = |a: &str| {
            a.parse::<Mailbox>()
                .map_err(|e| Error::invalid(format!("mail address '{a}': {e}")))
        };
        let mut m = lettre::Message::builder()
            .from(mbox(&mail.from)?)
            .subject(mail.subject.clone());
        for to in &mail.to {
            m = m.to(mbox(to)?);
        }
        let msg = m
            .header(ContentType::TEXT_PLAIN)
            .body(mail.body.clone())
            .map_err(|e| Error::invalid(format!("mail: {e}")))?;
        self.transport.send(msg).await.map_err(|e| {
            let kind = if e.is_permanent() {
                ErrorKind::Command
            } else {
                ErrorKind::Unavailable
            };
            Error::new(
                kind,
                format!("SMTP delivery through {} failed: {e}", self.relay),
            )
        })?;
        Ok(())
    }
}

/// Options of `netraven import` beyond the kind and the source.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ImportOptions {
    /// Report what would change; write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Extra platform names, `theirs=ours,...` (e.g. `ios=cisco_ios`); built-in names are known.
    #[arg(long, default_value = "")]
    pub platform_map: String,
    /// Tag every imported device with this; devices carrying it that the source no longer lists
    /// are disabled (never deleted).
    #[arg(long)]
    pub owner_tag: Option<String>,
    /// Oxidized router.db: field delimiter (a regular expression).
    #[arg(long, default_value = ":")]
    pub delimiter: String,
    /// Oxidized router.db: field map, e.g. `name=0,ip=1,model=2,group=3`.
    #[arg(long, default_value = "name=0,model=1")]
    pub fields: String,
    /// NetBox: API token (better from the environment).
    #[arg(long, env = "NETRAVEN_NETBOX_TOKEN", hide_env_values = true)]
    pub netbox_token: Option<String>,
    /// NetBox: only these sites (slugs, repeatable).
    #[arg(long)]
    pub site: Vec<String>,
    /// NetBox: only these device roles (slugs, repeatable).
    #[arg(long)]
    pub role: Vec<String>,
    /// NetBox: only devices with these tags (slugs, repeatable).
    #[arg(long)]
    pub tag: Vec<String>,
    /// NetBox: device status (`active` by default; empty for any).
    #[arg(long, default_value = "active")]
    pub status: String,
}

/// The inventory source `kind` reads at `location` (a file, a directory for Nornir, the base
/// URL for NetBox).
pub fn source(
    kind: &str,
    location: &str,
    opts: &ImportOptions,
) -> Result<Box<dyn InventorySource>> {
    let mut map = PlatformMap::default();
    map.parse_pairs(&opts.platform_map)?;
    Ok(match kind {
        "netbox" => {
            let token = opts
                .netbox_token
                .clone()
                .ok_or_else(|| Error::invalid("NetBox needs a token (NETRAVEN_NETBOX_TOKEN)"))?;
            let filter = NetboxFilter {
                sites: opts.site.clone(),
                roles: opts.role.clone(),
                tags: opts.tag.clone(),
                status: opts.status.clone(),
            };
            let client = Arc::new(ReqwestClient::new(Duration::from_secs(60))?);
            Box::new(NetboxSource::new(
                location,
                Secret::new(token),
                filter,
                map,
                client,
            )?)
        }
        "oxidized" => Box::new(RouterDbSource::new(
            PathBuf::from(location),
            RouterDbFormat::oxidized(&opts.delimiter, &opts.fields)?,
            map,
        )),
        other => file_source(other, PathBuf::from(location), map)?,
    })
}

/// `netraven import --from KIND LOCATION`: reads the source and brings `store` in step with it
/// (see [`netraven_core::sources::sync`]); a dry run writes nothing.
pub async fn import(
    store: &dyn netraven_core::store::Store,
    kind: &str,
    location: &str,
    opts: &ImportOptions,
) -> Result<netraven_core::sources::sync::SyncReport> {
    let src = source(kind, location, opts)?;
    let sync = netraven_core::sources::sync::SyncOptions {
        owner_tag: opts.owner_tag.clone(),
    };
    netraven_core::sources::sync::sync(store, src.as_ref(), &sync, opts.dry_run).await
}

/// The notifier `settings` describe (webhooks over [`ReqwestClient`], e-mail over
/// [`SmtpMailer`]), or `None` without channels.
pub fn notifier(settings: &NotifySettings) -> Result<Option<Notifier>> {
    if settings.is_empty() {
        return Ok(None);
    }
    let mut n = Notifier::new(settings.failing_after);
    if !settings.webhooks.is_empty() {
        let http: Arc<dyn HttpClient> = Arc::new(ReqwestClient::new(Duration::from_secs(15))?);
        for w in &settings.webhooks {
            let ch = WebhookChannel::new(
                &w.name,
                &w.url,
                w.format,
                w.secret.clone().map(Secret::new),
                http.clone(),
            );
            n = n.channel(Arc::new(ch), w.filter.clone());
        }
    }
    if let Some(e) = &settings.email {
        let security = match e.security.as_str() {
            "starttls" => SmtpSecurity::StartTls,
            "plain" => SmtpSecurity::Plain,
            other => {
                return Err(Error::invalid(format!(
                    "notify.email.security '{other}' is not starttls or plain"
                )));
            }
        };
        let login = e
            .username
            .clone()
            .map(|u| (u, Secret::new(e.password.clone().unwrap_or_default())));
        let mailer = Arc::new(SmtpMailer::new(&e.relay, e.port, security, login)?);
        let ch = EmailChannel::new("email", &e.from, e.to.clone(), mailer);
        n = n.channel(Arc::new(ch), e.filter.clone());
    }
    Ok(Some(n))
}

/// Starts the notifier of `settings` on `nr`'s events until `shutdown` (nothing without
/// channels); deliveries are also written to the store's logs (source `notify`).
#[cfg(all(feature = "drivers", feature = "store"))]
pub fn start_notifier(
    nr: &crate::Netraven,
    settings: &NotifySettings,
    shutdown: tokio_util::sync::CancellationToken,
) -> Result<()> {
    let Some(n) = notifier(settings)? else {
        return Ok(());
    };
    let n = Arc::new(n.record_in(nr.store().clone()));
    tokio::spawn(n.run(
        nr.engine().events().subscribe(),
        nr.store().clone(),
        nr.sink().clone(),
        shutdown,
    ));
    Ok(())
}
