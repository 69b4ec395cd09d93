//! The syslog listener: configuration-change messages from devices start a backup of the
//! device that sent them.
//!
//! It listens on UDP and/or TCP (RFC 6587 framing: octet counting or one message per line),
//! parses RFC 3164 and RFC 5424 messages with `syslog_loose`, finds the device by the packet's
//! source address (a message from an address no device has is dropped; when several devices
//! share the address, the message's HOSTNAME picks one), and matches the text against the
//! `config_change` patterns of *that device's* platform file (IOS `%SYS-5-CONFIG_I`, NX-OS
//! `%VSHD-5-VSHD_SYSLOG_CONFIG_I`, Junos `UI_COMMIT`, EOS `%SYS-5-CONFIG_E`/`CONFIG_I`,
//! FortiOS and PAN-OS change logs, …). A match goes to a
//! [`netraven_core::triggers::Debouncer`], which queues one backup per device and window with
//! trigger `syslog`, naming the user the message names.
//!
//! The sender is untrusted: messages are bounded ([`MAX_MESSAGE`]), TCP connections are bounded
//! in number and idle time, only the source address (never the message's own HOSTNAME) decides
//! which devices are candidates, and nothing of a message but a user name that looks like one
//! is kept.

use crate::platform::Platform;
use netraven_core::error::{Error, ErrorKind, Result};
use netraven_core::model::{Device, DeviceFilter, Page};
use netraven_core::store::DeviceStore;
use netraven_core::triggers::{ChangeNotice, Debouncer};
use regex::Regex;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::AsyncReadExt;
use tokio_util::sync::CancellationToken;

/// Longest message read (bytes); longer ones are cut (UDP) or end the connection (TCP).
pub const MAX_MESSAGE: usize = 16 * 1024;
/// TCP connections served at once; more wait in the accept queue.
pub const MAX_TCP_CONNECTIONS: usize = 256;
/// A TCP connection silent this long is closed.
pub const TCP_IDLE: Duration = Duration::from_secs(300);
/// How long a source address's devices are cached.
const DEVICE_CACHE_TTL: Duration = Duration::from_secs(30);
const DEVICE_CACHE_MAX: usize = 10_000;

/// The `config_change` patterns of every platform, by platform name and alias.
#[derive(Debug, Clone, Default)]
pub struct ChangeRules {
    by_platform: HashMap<String, Arc<Vec<Regex>>>,
}

/// What a configuration-change message said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeMatch {
    /// The message's tag (`%SYS-5-CONFIG_I`, `UI_COMMIT`) or the start of the matched text.
    pub what: String,
    /// Who made the change, when the message names a user.
    pub user: Option<String>,
}

impl ChangeRules {
    /// The rules of these platforms (later ones replace earlier ones of the same name).
    pub fn new<'a>(platforms: impl IntoIterator<Item = &'a Platform>) -> Self {
        let mut by_platform = HashMap::new();
        for p in platforms {
            let rules = Arc::new(p.config_change.clone());
            by_platform.insert(p.name().to_string(), rules.clone());
            for a in &p.spec.aliases {
                by_platform.insert(a.clone(), rules.clone());
            }
        }
        ChangeRules { by_platform }
    }

    /// Whether a platform has any pattern.
    pub fn knows(&self, platform: &str) -> bool {
        self.by_platform
            .get(platform)
            .is_some_and(|r| !r.is_empty())
    }

    /// Matches the texts of a message (its MSG part, then the whole line) against the
    /// platform's patterns.
    pub fn check(&self, platform: &str, texts: &[&str]) -> Option<ChangeMatch> {
        let rules = self.by_platform.get(platform)?;
        for t in texts {
            for r in rules.iter() {
                if let Some(c) = r.captures(t) {
                    let m = c.get(0).map_or("", |m| m.as_str());
                    let user = c
                        .name("user")
                        .map(|u| u.as_str())
                        .filter(|u| looks_like_user(u))
                        .map(str::to_string);
                    return Some(ChangeMatch {
                        what: tag_of(m),
                        user,
                    });
                }
            }
        }
        None
    }
}

/// A user name worth recording (see [`crate::platform::valid_user_name`]).
pub fn looks_like_user(u: &str) -> bool {
    crate::platform::valid_user_name(u)
}

/// The recognised message's name for the run's message: the text up to its first `:` or
/// space, printable ASCII only, at most 48 characters.
fn tag_of(matched: &str) -> String {
    let t = matched.trim_start_matches([',', ' ', '\t']);
    let end = t.find([':', ' ', ',']).unwrap_or(t.len());
    let tag: String = t[..end]
        .chars()
        .filter(|c| c.is_ascii_graphic())
        .take(48)
        .collect();
    if tag.is_empty() {
        "configuration change".into()
    } else {
        tag
    }
}

/// Where and how to listen.
#[derive(Debug, Clone)]
pub struct SyslogOptions {
    /// UDP address (e.g. `0.0.0.0:514`), if any.
    pub udp: Option<SocketAddr>,
    /// TCP address, if any.
    pub tcp: Option<SocketAddr>,
}

/// A parsed message: the source's HOSTNAME field and the texts to match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed {
    /// HOSTNAME of the header, if any.
    pub hostname: Option<String>,
    /// The MSG part (after the header), as text.
    pub msg: String,
    /// The whole message, as text.
    pub line: String,
}

/// Parses one RFC 3164 or RFC 5424 message (leniently, with `syslog_loose`).
pub fn parse(raw: &[u8]) -> Parsed {
    let line = String::from_utf8_lossy(raw)
        .trim_end_matches(['\r', '\n', '\0'])
        .to_string();
    let m = syslog_loose::parse_message(&line, syslog_loose::Variant::Either);
    let hostname = m.hostname.map(str::to_string);
    let mut msg = String::new();
    if let Some(a) = m.appname {
        msg.push_str(a);
        msg.push_str(": ");
    }
    if let Some(id) = m.msgid {
        msg.push_str(id);
        msg.push_str(": ");
    }
    msg.push_str(m.msg);
    Parsed {
        hostname,
        msg,
        line,
    }
}

/// Devices by sender address, with when they were looked up.
type AddressCache = Mutex<HashMap<IpAddr, (Instant, Vec<Device>)>>;

/// The listener. Cheap to clone.
#[derive(Debug, Clone)]
pub struct SyslogListener {
    devices: Arc<dyn DeviceStore>,
    rules: Arc<ChangeRules>,
    debouncer: Arc<Debouncer>,
    cache: Arc<AddressCache>,
}

impl SyslogListener {
    /// A listener that looks devices up in `devices`, matches with `rules` and hands matches
    /// to `debouncer`.
    pub fn new(
        devices: Arc<dyn DeviceStore>,
        rules: ChangeRules,
        debouncer: Arc<Debouncer>,
    ) -> Self {
        SyslogListener {
            devices,
            rules: Arc::new(rules),
            debouncer,
            cache: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// Binds the sockets (errors here are the caller's: a port in use, no permission for port
    /// 514) and serves them until `shutdown`. Returns the bound addresses (UDP, TCP) once bound.
    pub async fn start(
        self,
        options: &SyslogOptions,
        shutdown: CancellationToken,
    ) -> Result<(Option<SocketAddr>, Option<SocketAddr>)> {
        let bind_err = |what: &str, a: SocketAddr, e: std::io::Error| {
            Error::new(
                ErrorKind::Unavailable,
                format!("syslog: cannot listen on {what} {a}: {e}"),
            )
            .with_source(e)
        };
        let mut bound = (None, None);
        if let Some(a) = options.udp {
            let sock = tokio::net::UdpSocket::bind(a)
                .await
                .map_err(|e| bind_err("UDP", a, e))?;
            bound.0 = sock.local_addr().ok();
            tracing::info!(addr = ?bound.0, "syslog listener (UDP)");
            tokio::spawn(self.clone().serve_udp(sock, shutdown.clone()));
        }
        if let Some(a) = options.tcp {
            let l = tokio::net::TcpListener::bind(a)
                .await
                .map_err(|e| bind_err("TCP", a, e))?;
            bound.1 = l.local_addr().ok();
            tracing::info!(addr = ?bound.1, "syslog listener (TCP)");
            tokio::spawn(self.clone().serve_tcp(l, shutdown));
        }
        Ok(bound)
    }

    async fn serve_udp(self, sock: tokio::net::UdpSocket, shutdown: CancellationToken) {
        let mut buf = vec![0u8; MAX_MESSAGE];
        loop {
            let r = tokio::select! {
                _ = shutdown.cancelled() => return,
                r = sock.recv_from(&mut buf) => r,
            };
            match r {
                Ok((n, from)) => self.handle(from.ip(), &buf[..n]).await,
                Err(e) => {
                    tracing::debug!(error = %e, "syslog UDP receive failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        }
    }

    async fn serve_tcp(self, l: tokio::net::TcpListener, shutdown: CancellationToken) {
        let slots = Arc::new(tokio::sync::Semaphore::new(MAX_TCP_CONNECTIONS));
        loop {
            let Ok(permit) = slots.clone().acquire_owned().await else {
                return;
            };
            let r = tokio::select! {
                _ = shutdown.cancelled() => return,
                r = l.accept() => r,
            };
            let (stream, from) = match r {
                Ok(s) => s,
                Err(e) => {
                    tracing::debug!(error = %e, "syslog TCP accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            };
            let me = self.clone();
            let stop = shutdown.clone();
            tokio::spawn(async move {
                tokio::select! {
                    _ = stop.cancelled() => {}
                    _ = me.serve_conn(stream, from.ip()) => {}
                }
                drop(permit);
            });
        }
    }

    /// One TCP connection: RFC 6587 octet counting (`LEN SP MSG`) or newline-terminated
    /// messages.
    async fn serve_conn(&self, mut stream: tokio::net::TcpStream, from: IpAddr) {
        let mut buf: Vec<u8> = Vec::with_capacity(4096);
        let mut chunk = [0u8; 4096];
        loop {
            while let Some((msg, used)) = next_frame(&buf) {
                let msg = msg.to_vec();
                buf.drain(..used);
                self.handle(from, &msg).await;
            }
            if buf.len() > MAX_MESSAGE + 8 {
                tracing::debug!(%from, "syslog TCP message too long; closing");
                return;
            }
            let n = match tokio::time::timeout(TCP_IDLE, stream.read(&mut chunk)).await {
                Ok(Ok(0)) | Err(_) => {
                    // A last unterminated message still counts.
                    if !buf.is_empty() && !starts_with_count(&buf) {
                        self.handle(from, &buf).await;
                    }
                    return;
                }
                Ok(Ok(n)) => n,
                Ok(Err(e)) => {
                    tracing::debug!(%from, error = %e, "syslog TCP read failed");
                    return;
                }
            };
            buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// Handles one message from `from`.
    pub async fn handle(&self, from: IpAddr, raw: &[u8]) {
        let from = from.to_canonical();
        let parsed = parse(raw);
        let devices = match self.devices_at(from).await {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(%from, error = %e, "syslog: device lookup failed");
                return;
            }
        };
        let device = match devices.len() {
            0 => {
                tracing::trace!(%from, "syslog message from an address no device has");
                return;
            }
            1 => &devices[0],
            _ => {
                let Some(h) = parsed.hostname.as_deref() else {
                    tracing::debug!(%from, "syslog: several devices share the address and the message names no host");
                    return;
                };
                let short = |s: &str| s.split('.').next().unwrap_or(s).to_ascii_lowercase();
                let mut m = devices.iter().filter(|d| {
                    d.hostname.eq_ignore_ascii_case(h) || short(&d.hostname) == short(h)
                });
                match (m.next(), m.next()) {
                    (Some(d), None) => d,
                    _ => {
                        tracing::debug!(%from, "syslog: the message's host matches none or several of the devices at the address");
                        return;
                    }
                }
            }
        };
        let Some(hit) = self
            .rules
            .check(&device.platform, &[&parsed.msg, &parsed.line])
        else {
            return;
        };
        let opened = self.debouncer.notice(ChangeNotice {
            device: device.id,
            hostname: device.hostname.clone(),
            user: hit.user,
            what: hit.what,
        });
        tracing::info!(device_id = device.id, device = %device.hostname, %from, new_window = opened, "configuration change message");
    }

    /// The enabled devices whose address is `ip` (cached briefly).
    async fn devices_at(&self, ip: IpAddr) -> Result<Vec<Device>> {
        if let Ok(c) = self.cache.lock()
            && let Some((at, d)) = c.get(&ip)
            && at.elapsed() < DEVICE_CACHE_TTL
        {
            return Ok(d.clone());
        }
        let text = ip.to_string();
        let filter = DeviceFilter {
            address: Some(text.clone()),
            ..DeviceFilter::default()
        };
        let mut found = Vec::new();
        let mut page = 1;
        loop {
            let p = self
                .devices
                .list_devices(&filter, Page::new(page, 500))
                .await?;
            let n = p.items.len();
            found.extend(p.items.into_iter().filter(|d| {
                d.enabled
                    && d.address
                        .parse::<IpAddr>()
                        .map(|a| a.to_canonical() == ip)
                        .unwrap_or(false)
            }));
            if n < 500 || page >= 20 {
                break;
            }
            page += 1;
        }
        if let Ok(mut c) = self.cache.lock() {
            if c.len() >= DEVICE_CACHE_MAX {
                c.clear();
            }
            c.insert(ip, (Instant::now(), found.clone()));
        }
        Ok(found)
    }
}

fn starts_with_count(buf: &[u8]) -> bool {
    let digits = buf.iter().take_while(|b| b.is_ascii_digit()).count();
    digits > 0 && buf.get(digits) == Some(&b' ')
}

/// The next complete frame of a TCP stream and the bytes it used: octet counting (`LEN SP
/// MSG`, RFC 6587 3.4.1) when the buffer starts with digits and a space, else up to a newline
/// (3.4.2).
fn next_frame(buf: &[u8]) -> Option<(&[u8], usize)> {
    if buf.is_empty() {
        return None;
    }
    let digits = buf.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits > 0 && digits <= 6 && buf.get(digits) == Some(&b' ') {
        let len: usize = std::str::from_utf8(&buf[..digits]).ok()?.parse().ok()?;
        let start = digits + 1;
        if len > MAX_MESSAGE {
            // Too long to keep: taken as it comes, cut.
            let end = (start + MAX_MESSAGE).min(buf.len());
            return (buf.len() >= start + len).then(|| (&buf[start..end], start + len));
        }
        return (buf.len() >= start + len).then(|| (&buf[start..start + len], start + len));
    }
    let nl = buf.iter().position(|&b| b == b'\n')?;
    Some((&buf[..nl], nl + 1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::builtin_platform;

    fn rules() -> ChangeRules {
        let names = [
            "cisco_ios",
            "cisco_nxos",
            "cisco_xr",
            "arista_eos",
            "juniper_junos",
            "fortinet",
            "paloalto_panos",
        ];
        let ps: Vec<Platform> = names.iter().map(|n| builtin_platform(n).unwrap()).collect();
        ChangeRules::new(&ps)
    }

    fn check(platform: &str, raw: &str) -> Option<ChangeMatch> {
        let p = parse(raw.as_bytes());
        rules().check(platform, &[&p.msg, &p.line])
    }

    #[test]
    fn vendor_change_messages_are_recognised_with_their_user() {
        let cases = [
            (
                "cisco_ios",
                "<189>123: r1: *Mar  1 00:00:00.000: %SYS-5-CONFIG_I: Configured from console by admin on vty0 (10.0.0.9)",
                "%SYS-5-CONFIG_I",
                Some("admin"),
            ),
            (
                "cisco_xe",
                "<189>Jan  1 10:00:00 r1 123: %SYS-5-CONFIG_I: Configured from memory by console",
                "%SYS-5-CONFIG_I",
                Some("console"),
            ),
            (
                "cisco_nxos",
                "<189>2024 Jan  1 10:00:00 n9k %VSHD-5-VSHD_SYSLOG_CONFIG_I: Configured from vty by netops on 10.0.0.9@pts/0",
                "%VSHD-5-VSHD_SYSLOG_CONFIG_I",
                Some("netops"),
            ),
            (
                "cisco_xr",
                "<190>RP/0/RSP0/CPU0:Jan  1 10:00:00.000 UTC: config[65710]: %MGBL-CONFIG-6-DB_COMMIT : Configuration committed by user 'jdoe'. Use 'show configuration commit changes 1000000001' to view the changes.",
                "%MGBL-CONFIG-6-DB_COMMIT",
                Some("jdoe"),
            ),
            (
                "arista_eos",
                "<189>Jan  1 10:00:00 leaf1 ConfigAgent: %SYS-5-CONFIG_E: Enter configuration mode from console by admin on vty3 (10.0.0.9)",
                "%SYS-5-CONFIG_E",
                Some("admin"),
            ),
            (
                "arista_eos",
                "<189>Jan  1 10:00:00 leaf1 ConfigAgent: %SYS-5-CONFIG_I: Configured from console by admin on vty3 (10.0.0.9)",
                "%SYS-5-CONFIG_I",
                Some("admin"),
            ),
            (
                "juniper_junos",
                "<189>Jan  1 10:00:00 mx1 mgd[1234]: UI_COMMIT: User 'alice' requested 'commit' operation (comment: none)",
                "UI_COMMIT",
                Some("alice"),
            ),
            (
                "juniper_junos",
                "<189>1 2024-01-01T10:00:00.000Z mx1 mgd 1234 UI_COMMIT [junos@2636.1.1.1.2.29 username=\"alice\" command=\"commit\"] User 'alice' requested 'commit' operation (comment: none)",
                "UI_COMMIT",
                Some("alice"),
            ),
            (
                "fortinet",
                "<189>date=2025-04-10 time=05:01:53 devname=\"fw1\" logid=\"0100044547\" type=\"event\" subtype=\"system\" level=\"information\" vd=\"root\" logdesc=\"Object attribute configured\" user=\"admin\" ui=\"GUI(10.0.0.9)\" action=\"Add\" msg=\"Add firewall.policy 8\"",
                "logid=\"0100044547\"",
                Some("admin"),
            ),
            (
                "paloalto_panos",
                "<14>Jan  1 10:00:00 pa1 1,2024/01/01 10:00:00,012345678901,CONFIG,0,0,2024/01/01 10:00:00,10.0.0.9,,set,admin,Web,Succeeded, deviceconfig system,1,0x0",
                "CONFIG",
                Some("admin"),
            ),
        ];
        for (platform, raw, what, user) in cases {
            let m = check(platform, raw).unwrap_or_else(|| panic!("{platform}: {raw}"));
            assert_eq!(m.what, what, "{platform}");
            assert_eq!(m.user.as_deref(), user, "{platform}");
        }
    }

    #[test]
    fn other_messages_and_other_platforms_patterns_do_not_trigger() {
        assert_eq!(
            check(
                "cisco_ios",
                "<189>Jan  1 10:00:00 r1 %LINK-3-UPDOWN: Interface Gi1/0/1, changed state to up"
            ),
            None
        );
        assert_eq!(
            check(
                "juniper_junos",
                "<189>Jan  1 10:00:00 mx1 mgd[1]: UI_CMDLINE_READ_LINE: User 'a', command 'show version'"
            ),
            None
        );
        // An IOS message from a Junos device is not a Junos change.
        assert_eq!(
            check(
                "juniper_junos",
                "<189>Jan  1 10:00:00 r1 %SYS-5-CONFIG_I: Configured from console by admin"
            ),
            None
        );
        assert_eq!(
            check(
                "linux",
                "<189>Jan  1 10:00:00 r1 %SYS-5-CONFIG_I: Configured from console by admin"
            ),
            None
        );
        // A failed PAN-OS change is not one.
        assert_eq!(
            check(
                "paloalto_panos",
                "<14>Jan  1 10:00:00 pa1 1,2024/01/01 10:00:00,012345678901,CONFIG,0,0,2024/01/01 10:00:00,10.0.0.9,,set,admin,Web,Failed, x,1,0x0"
            ),
            None
        );
    }

    #[test]
    fn a_user_name_that_does_not_look_like_one_is_dropped() {
        let m = check("juniper_junos", "<189>Jan  1 10:00:00 mx1 mgd[1]: UI_COMMIT: User 'a b\"c' requested 'commit' operation").unwrap();
        assert_eq!(m.user, None);
        assert!(looks_like_user("DOMAIN\\jdoe") && looks_like_user("a.b@c"));
        assert!(
            !looks_like_user("") && !looks_like_user("x y") && !looks_like_user(&"a".repeat(65))
        );
    }

    #[test]
    fn rfc3164_and_rfc5424_headers_give_the_hostname() {
        assert_eq!(
            parse(b"<189>Jan  1 10:00:00 r1 %SYS-5-CONFIG_I: x")
                .hostname
                .as_deref(),
            Some("r1")
        );
        assert_eq!(
            parse(b"<189>1 2024-01-01T10:00:00Z mx1 mgd 1 UI_COMMIT - User")
                .hostname
                .as_deref(),
            Some("mx1")
        );
    }

    #[test]
    fn tcp_frames_by_octet_count_or_newline() {
        let b = b"5 hello3 abc";
        let (m, used) = next_frame(b).unwrap();
        assert_eq!((m, used), (&b"hello"[..], 7));
        assert_eq!(next_frame(&b[7..]).unwrap().0, b"abc");
        assert_eq!(next_frame(b"10 short"), None);
        let (m, used) = next_frame(b"<13>line one\n<13>two").unwrap();
        assert_eq!((m, used), (&b"<13>line one"[..], 13));
        assert_eq!(next_frame(b"<13>no newline yet"), None);
    }
}
