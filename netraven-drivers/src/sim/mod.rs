//! The device simulator (feature `sim`): an SSH server (russh) emulating the built-in platforms
//! from the same platform data the driver uses.
//!
//! [`SimFleet::start`] serves N devices on consecutive `127.0.0.1` ports (one listener per
//! device), each with its hostname, credentials, enable secret and ed25519 host key, a
//! configuration of configurable size with volatile lines that change on every call and
//! secrets that the platform's rules must redact, `--More--` paging until the paging-off
//! command, and faults on request ([`Faults`]). It only ever binds the loopback address.

mod delay;
mod output;
mod shell;
mod telnet;

pub(crate) use crate::sample as render;
pub use crate::sample::expected_backup;

use crate::platform::{Platform, builtin_platform};
use netraven_core::error::{Error, ErrorKind, Result};
use netraven_core::model::{Credential, Device};
use netraven_core::secret::Secret;
use russh::keys::PrivateKey;
use russh::keys::ssh_key::private::Ed25519Keypair;
use russh::server::{Auth, Msg, Response, Session};
use russh::{Channel, ChannelId, MethodKind, MethodSet};
use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Faults a simulated device can inject. Several can be combined.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Faults {
    /// The inventory password is refused (the device accepts another one).
    pub wrong_password: bool,
    /// The first listed credential is refused; only the second one logs in.
    pub second_credential_only: bool,
    /// Only keyboard-interactive authentication is offered.
    pub keyboard_interactive_only: bool,
    /// Stop sending (but keep the connection open) after this many bytes of session output.
    pub hang_after: Option<usize>,
    /// Drop the connection after this many bytes of session output.
    pub drop_after: Option<usize>,
    /// Send output in chunks of this many bytes with this delay between them.
    pub trickle: Option<(usize, Duration)>,
    /// Simulated network latency (`netraven sim --latency-ms N`, fault `latency=N`): everything
    /// the device sends (SSH protocol messages and shell output alike, telnet too) reaches the
    /// client this much later, while what the client sends arrives at once. Each request/response
    /// exchange the client waits for (key exchange, authentication, channel open, PTY, shell,
    /// every command) thus takes at least this much longer: a round-trip time of this much.
    /// Output sent back to back is delayed once, not once per packet. The TCP handshake is not
    /// delayed.
    pub latency: Option<Duration>,
    /// The configuration changes (a revision line) every K fetches.
    pub change_every: Option<u64>,
    /// The paging-off command is accepted but paging stays on (answer `--More--`).
    pub ignore_paging_off: bool,
    /// The configuration command answers this many bytes without a single newline (then the
    /// prompt) instead of the configuration: a device flooding its client.
    pub flood: Option<u64>,
    /// Stop sending (but keep the connection open) inside the first output line containing
    /// this text: the line is sent up to its end, its line break never comes (e.g.
    /// `secret 9`: a hang right after a secret).
    pub hang_in_line: Option<String>,
    /// With `flood`: the flood is made of 100-byte lines (ending in a line break) instead of one
    /// endless line, so a client hits its limit of output per command rather than of one line.
    pub flood_lines: bool,
    /// The configuration command answers this many bytes of garbage (every byte value: NULs,
    /// stray escape sequences, invalid UTF-8, no prompt), then the connection is dropped: a
    /// device whose session breaks down mid-command.
    pub garbage: Option<u64>,
    /// Exec requests are refused (a device that offers only the interactive shell).
    pub no_exec: bool,
    /// Commands over an exec channel run unprivileged (a platform with an enable step: the
    /// configuration command is refused there, as for an account below privilege 15).
    pub exec_unprivileged: bool,
}

impl Faults {
    /// Parses a comma-separated list of faults, as `netraven sim --fault` takes them:
    /// `wrong-password`, `second-credential-only`, `keyboard-interactive-only`,
    /// `hang-after=BYTES`, `drop-after=BYTES`, `trickle=BYTES/MILLISECONDS`,
    /// `latency=MILLISECONDS`, `change-every=K`, `ignore-paging-off`, `flood=BYTES`,
    /// `flood-lines`, `hang-in-line=TEXT`, `garbage=BYTES`, `no-exec`, `exec-unprivileged`. Added to `self` (so a fleet's
    /// `--changing` can be kept).
    pub fn parse_into(mut self, spec: &str) -> Result<Faults> {
        fn num<T: std::str::FromStr>(name: &str, v: Option<&str>) -> Result<T> {
            v.and_then(|v| v.trim().parse().ok()).ok_or_else(|| {
                Error::invalid(format!("fault '{name}' needs a number (e.g. {name}=1000)"))
            })
        }
        for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (name, value) = match item.split_once('=') {
                Some((n, v)) => (n.trim(), Some(v)),
                None => (item, None),
            };
            match name {
                "wrong-password" => self.wrong_password = true,
                "second-credential-only" => self.second_credential_only = true,
                "keyboard-interactive-only" => self.keyboard_interactive_only = true,
                "ignore-paging-off" => self.ignore_paging_off = true,
                "flood-lines" => self.flood_lines = true,
                "no-exec" => self.no_exec = true,
                "exec-unprivileged" => self.exec_unprivileged = true,
                "hang-after" => self.hang_after = Some(num(name, value)?),
                "drop-after" => self.drop_after = Some(num(name, value)?),
                "flood" => self.flood = Some(num(name, value)?),
                "garbage" => self.garbage = Some(num(name, value)?),
                "change-every" => self.change_every = Some(num::<u64>(name, value)?.max(1)),
                "latency" => {
                    self.latency = Some(Duration::from_millis(num(name, value)?));
                }
                "trickle" => {
                    let (bytes, ms) = value.and_then(|v| v.split_once('/')).ok_or_else(|| {
                        Error::invalid(
                            "fault 'trickle' needs BYTES/MILLISECONDS (e.g. trickle=64/100)",
                        )
                    })?;
                    let bytes: usize = num(name, Some(bytes))?;
                    self.trickle =
                        Some((bytes.max(1), Duration::from_millis(num(name, Some(ms))?)));
                }
                "hang-in-line" => match value.filter(|v| !v.is_empty()) {
                    Some(v) => self.hang_in_line = Some(v.to_string()),
                    None => return Err(Error::invalid("fault 'hang-in-line' needs a text")),
                },
                other => {
                    return Err(Error::invalid(format!(
                        "unknown fault '{other}' (known: wrong-password, second-credential-only, \
                         keyboard-interactive-only, hang-after, drop-after, trickle, latency, \
                         change-every, ignore-paging-off, flood, flood-lines, hang-in-line, garbage, \
                         no-exec, exec-unprivileged)"
                    )));
                }
            }
        }
        Ok(self)
    }
}

/// Parses `[FIRST[-LAST]:]FAULTS` (device indexes, inclusive; none: every device) as
/// `netraven sim --fault` takes it, e.g. `0:garbage=4096`, `2-41:hang-after=3000` or
/// `trickle=256/100`. Returns the index range (`None`: every device) and the faults text.
pub fn parse_fault_target(arg: &str) -> Result<(Option<(usize, usize)>, &str)> {
    let Some((range, faults)) = arg.split_once(':') else {
        return Ok((None, arg));
    };
    // `hang-in-line=TEXT` may hold a colon: only a leading range of digits is a target.
    if range.is_empty() || !range.chars().all(|c| c.is_ascii_digit() || c == '-') {
        return Ok((None, arg));
    }
    let bad = || Error::invalid(format!("device range '{range}' must be N or FIRST-LAST"));
    let (a, b) = match range.split_once('-') {
        Some((a, b)) => (a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?),
        None => {
            let a = range.parse().map_err(|_| bad())?;
            (a, a)
        }
    };
    if a > b {
        return Err(bad());
    }
    Ok((Some((a, b)), faults))
}

/// What to simulate.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Number of devices.
    pub devices: usize,
    /// Platform (or alias) of every device, unless `platforms` is set.
    pub platform: String,
    /// Per-device platforms, cycled over the devices (overrides `platform`).
    pub platforms: Vec<String>,
    /// Extra platforms (e.g. loaded from user files) that `platform`/`platforms` may name;
    /// they win over built-ins of the same name.
    pub custom_platforms: Vec<Platform>,
    /// First port; `None` picks a free range of consecutive ports.
    pub port_base: Option<u16>,
    /// Configuration size in bytes (default: the platform's, about 30 KB for cisco_ios).
    pub config_size: Option<usize>,
    /// Hostnames are `{prefix}{index:04}`; default `sim-`.
    pub hostname_prefix: String,
    /// Login user name of every device.
    pub username: String,
    /// Faults of every device.
    pub faults: Faults,
    /// Faults of single devices (by index), replacing `faults` for them.
    pub device_faults: HashMap<usize, Faults>,
    /// Offer only `diffie-hellman-group14-sha1` key exchange (what many real IOS devices
    /// offer); clients need `legacy_ssh`.
    pub legacy_kex_only: bool,
    /// Seed of the host keys (device index and rotation are mixed in).
    pub key_seed: u64,
    /// Delay before a rejected login is answered.
    pub auth_rejection_time: Duration,
    /// A prompt template replacing the platform's `[sim] prompt` (`{hostname}`, `{user}`,
    /// `{mode}`, `{count}` as there): a device with a configured prompt (IOS/EOS `prompt`,
    /// a Linux `PS1`, Junos without `user@`), which the platform's pattern may not match.
    pub prompt: Option<String>,
    /// Serve telnet instead of SSH (`netraven sim --telnet`): the same personalities behind a
    /// telnet login (`Username:`/`login:`, `Password:`); the inventory says `transport=telnet`.
    pub telnet: bool,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            devices: 1,
            platform: "cisco_ios".into(),
            platforms: Vec::new(),
            custom_platforms: Vec::new(),
            port_base: None,
            config_size: None,
            hostname_prefix: "sim-".into(),
            username: "netraven".into(),
            faults: Faults::default(),
            device_faults: HashMap::new(),
            legacy_kex_only: false,
            key_seed: 0x5eed,
            auth_rejection_time: Duration::from_millis(5),
            prompt: None,
            telnet: false,
        }
    }
}

/// One login credential of a simulated device.
#[derive(Debug, Clone, PartialEq)]
pub struct SimCredential {
    /// User name.
    pub username: String,
    /// Password.
    pub password: Secret,
    /// Enable secret.
    pub enable_secret: Secret,
}

impl SimCredential {
    /// As a core credential named `name`.
    pub fn to_credential(&self, name: &str) -> Credential {
        let mut c = Credential::new(name, self.username.clone(), self.password.clone());
        c.enable_secret = Some(self.enable_secret.clone());
        c
    }
}

/// One simulated device. Counters are safe to read while the fleet runs.
#[derive(Debug)]
pub struct SimDevice {
    pub(crate) index: usize,
    pub(crate) hostname: String,
    pub(crate) port: u16,
    pub(crate) platform: Arc<Platform>,
    pub(crate) credentials: Vec<SimCredential>,
    pub(crate) accepted: SimCredential,
    pub(crate) faults: Mutex<Faults>,
    pub(crate) blocks: usize,
    pub(crate) legacy_kex_only: bool,
    pub(crate) key_seed: u64,
    pub(crate) auth_rejection_time: Duration,
    pub(crate) prompt: Option<String>,
    pub(crate) telnet: bool,
    pub(crate) key_generation: AtomicU64,
    pub(crate) ssh_config: RwLock<Arc<russh::server::Config>>,
    pub(crate) passwords_received: AtomicUsize,
    pub(crate) logins: AtomicUsize,
    pub(crate) fetches: AtomicU64,
    pub(crate) calls: AtomicU64,
    pub(crate) last_rev: AtomicU64,
    pub(crate) shells: AtomicUsize,
    pub(crate) execs: AtomicUsize,
    /// Command output rendered once per command and configuration revision (filled in per
    /// call): command -> (revision, output).
    pub(crate) rendered: Mutex<HashMap<String, (u64, Arc<output::Rendered>)>>,
}

impl SimDevice {
    /// Index in the fleet.
    pub fn index(&self) -> usize {
        self.index
    }
    /// Hostname (shown in the prompt and the configuration).
    pub fn hostname(&self) -> &str {
        &self.hostname
    }
    /// TCP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }
    /// The platform it emulates.
    pub fn platform(&self) -> &Platform {
        &self.platform
    }
    /// The credentials a client should try, in order (the first is the inventory's).
    pub fn credentials(&self) -> &[SimCredential] {
        &self.credentials
    }
    /// The first credential as a core credential.
    pub fn credential(&self) -> Credential {
        self.credentials[0].to_credential(&format!("{}-cred", self.hostname))
    }
    /// The credential the device accepts.
    pub fn accepted_credential(&self) -> &SimCredential {
        &self.accepted
    }
    /// The device as a core [`Device`] (127.0.0.1, its port, its platform; `legacy_ssh` when
    /// the fleet offers only legacy key exchange).
    pub fn core_device(&self) -> Device {
        let mut d =
            Device::new(&self.hostname, "127.0.0.1", self.platform.name()).with_port(self.port);
        d.tags = vec!["sim".into()];
        d.legacy_ssh = self.legacy_kex_only;
        if self.telnet {
            d.transport = netraven_core::model::Transport::Telnet;
        }
        d
    }
    /// Whether it serves telnet instead of SSH.
    pub fn is_telnet(&self) -> bool {
        self.telnet
    }
    /// Checks a login (counting passwords received and logins), as both transports do.
    fn check_login(&self, user: &str, password: &str) -> bool {
        self.passwords_received.fetch_add(1, Ordering::SeqCst);
        let a = &self.accepted;
        // Terminal options after the user name (MikroTik `admin+ct`) are not part of it.
        let user = match &self.platform.spec.username_suffix {
            Some(suffix) => user.strip_suffix(suffix.as_str()).unwrap_or(user),
            None => user,
        };
        let ok = user == a.username && password == a.password.expose();
        if ok {
            self.logins.fetch_add(1, Ordering::SeqCst);
        }
        ok
    }
    /// Passwords received so far (password and keyboard-interactive attempts).
    pub fn passwords_received(&self) -> usize {
        self.passwords_received.load(Ordering::SeqCst)
    }
    /// Interactive shells opened so far (SSH `shell` requests).
    pub fn shells(&self) -> usize {
        self.shells.load(Ordering::SeqCst)
    }
    /// Exec requests accepted so far (one per command run over an exec channel).
    pub fn execs(&self) -> usize {
        self.execs.load(Ordering::SeqCst)
    }
    /// Successful logins so far.
    pub fn logins(&self) -> usize {
        self.logins.load(Ordering::SeqCst)
    }
    /// Configuration fetches served so far.
    pub fn fetches(&self) -> u64 {
        self.fetches.load(Ordering::SeqCst)
    }
    /// The faults in force.
    pub fn faults(&self) -> Faults {
        self.faults.lock().map(|f| f.clone()).unwrap_or_default()
    }
    /// Replaces the faults (new connections see them).
    pub fn set_faults(&self, faults: Faults) {
        if let Ok(mut f) = self.faults.lock() {
            *f = faults;
        }
        self.rebuild_config();
    }
    /// Presents a new host key from now on.
    pub fn rotate_host_key(&self) {
        self.key_generation.fetch_add(1, Ordering::SeqCst);
        self.rebuild_config();
    }
    /// The configuration revision of the last fetch (changes with `change_every`).
    pub fn revision(&self) -> u64 {
        self.last_rev.load(Ordering::SeqCst)
    }
    /// What a correct backup of this device normalises to: the backup commands' output with
    /// volatile lines removed and secrets replaced by the redaction marker, in the form
    /// [`netraven_core::normalise::Rules::normalise`] produces.
    pub fn expected_backup(&self) -> String {
        expected_backup(self)
    }
    /// Every secret value planted in this device's output.
    pub fn secrets(&self) -> Vec<String> {
        render::secrets_of(self)
    }

    fn config(&self) -> Arc<russh::server::Config> {
        match self.ssh_config.read() {
            Ok(c) => c.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    fn rebuild_config(&self) {
        let c = Arc::new(build_ssh_config(
            self.key_seed,
            self.index,
            self.key_generation.load(Ordering::SeqCst),
            self.legacy_kex_only,
            &self.faults(),
            self.auth_rejection_time,
        ));
        match self.ssh_config.write() {
            Ok(mut g) => *g = c,
            Err(p) => *p.into_inner() = c,
        }
    }
}

fn host_key(seed: u64, index: usize, generation: u64) -> PrivateKey {
    let mut s = [0u8; 32];
    s[..8].copy_from_slice(&seed.to_le_bytes());
    s[8..16].copy_from_slice(&(index as u64).to_le_bytes());
    s[16..24].copy_from_slice(&generation.to_le_bytes());
    s[24..].copy_from_slice(b"netraven");
    PrivateKey::from(Ed25519Keypair::from_seed(&s))
}

fn build_ssh_config(
    seed: u64,
    index: usize,
    generation: u64,
    legacy: bool,
    faults: &Faults,
    rejection: Duration,
) -> russh::server::Config {
    let methods: &[MethodKind] = if faults.keyboard_interactive_only {
        &[MethodKind::KeyboardInteractive]
    } else {
        &[MethodKind::Password, MethodKind::KeyboardInteractive]
    };
    let mut c = russh::server::Config {
        server_id: russh::SshId::Standard("SSH-2.0-Cisco-1.25 netraven-sim".into()),
        methods: MethodSet::from(methods),
        auth_rejection_time: rejection,
        auth_rejection_time_initial: Some(Duration::ZERO),
        keys: vec![host_key(seed, index, generation)],
        inactivity_timeout: Some(Duration::from_secs(120)),
        nodelay: true,
        ..Default::default()
    };
    if legacy {
        c.preferred.kex = std::borrow::Cow::Owned(vec![
            russh::kex::DH_G14_SHA1,
            russh::kex::EXTENSION_SUPPORT_AS_SERVER,
            russh::kex::EXTENSION_OPENSSH_STRICT_KEX_AS_SERVER,
        ]);
    }
    c
}

/// A running fleet of simulated devices. Dropping it stops every listener.
#[derive(Debug)]
pub struct SimFleet {
    devices: Vec<Arc<SimDevice>>,
    tasks: Vec<JoinHandle<()>>,
}

impl SimFleet {
    /// Binds one listener per device on consecutive 127.0.0.1 ports and starts serving. Must
    /// be called within a tokio runtime.
    pub async fn start(cfg: SimConfig) -> Result<SimFleet> {
        if cfg.devices == 0 {
            return Err(Error::invalid("a fleet needs at least one device"));
        }
        let names = if cfg.platforms.is_empty() {
            vec![cfg.platform.clone()]
        } else {
            cfg.platforms.clone()
        };
        let mut platforms = Vec::new();
        for n in &names {
            let p = match cfg.custom_platforms.iter().find(|p| p.answers_to(n)) {
                Some(p) => p.clone(),
                None => builtin_platform(n)?,
            };
            if p.spec.sim.is_none() {
                return Err(Error::invalid(format!(
                    "platform '{n}' has no simulator section"
                )));
            }
            platforms.push(Arc::new(p));
        }
        let listeners = bind_range(cfg.port_base, cfg.devices)?;
        let mut devices = Vec::with_capacity(cfg.devices);
        let mut tasks = Vec::with_capacity(cfg.devices);
        for (i, listener) in listeners.into_iter().enumerate() {
            let platform = platforms[i % platforms.len()].clone();
            let port = listener
                .local_addr()
                .map_err(|e| Error::internal("listener address").with_source(e))?
                .port();
            let faults = cfg
                .device_faults
                .get(&i)
                .cloned()
                .unwrap_or_else(|| cfg.faults.clone());
            let good = SimCredential {
                username: cfg.username.clone(),
                password: Secret::new(format!("pw-{i}-{:x}", cfg.key_seed)),
                enable_secret: Secret::new(format!("en-{i}-{:x}", cfg.key_seed)),
            };
            let bad = SimCredential {
                password: Secret::new(format!("wrong-{i}")),
                ..good.clone()
            };
            let credentials = if faults.second_credential_only {
                vec![bad, good.clone()]
            } else if faults.wrong_password {
                vec![bad]
            } else {
                vec![good.clone()]
            };
            let size = cfg.config_size.unwrap_or_else(|| {
                platform
                    .spec
                    .sim
                    .as_ref()
                    .map_or(30_000, |s| s.config.default_size)
            });
            let hostname = format!("{}{i:04}", cfg.hostname_prefix);
            let blocks = render::blocks_for_size(&platform, &hostname, size);
            let dev = Arc::new(SimDevice {
                index: i,
                hostname,
                port,
                platform,
                credentials,
                accepted: good,
                ssh_config: RwLock::new(Arc::new(build_ssh_config(
                    cfg.key_seed,
                    i,
                    0,
                    cfg.legacy_kex_only,
                    &faults,
                    cfg.auth_rejection_time,
                ))),
                faults: Mutex::new(faults),
                blocks,
                legacy_kex_only: cfg.legacy_kex_only,
                key_seed: cfg.key_seed,
                auth_rejection_time: cfg.auth_rejection_time,
                prompt: cfg.prompt.clone(),
                telnet: cfg.telnet,
                key_generation: AtomicU64::new(0),
                passwords_received: AtomicUsize::new(0),
                logins: AtomicUsize::new(0),
                fetches: AtomicU64::new(0),
                calls: AtomicU64::new(0),
                last_rev: AtomicU64::new(0),
                shells: AtomicUsize::new(0),
                execs: AtomicUsize::new(0),
                rendered: Mutex::new(HashMap::new()),
            });
            let listener = tokio::net::TcpListener::from_std(listener)
                .map_err(|e| Error::internal("registering a listener").with_source(e))?;
            if cfg.telnet {
                tasks.push(tokio::spawn(telnet::serve(listener, dev.clone())));
            } else {
                tasks.push(tokio::spawn(serve(listener, dev.clone())));
            }
            devices.push(dev);
        }
        tracing::info!(
            devices = devices.len(),
            first_port = devices[0].port,
            "simulator listening"
        );
        Ok(SimFleet { devices, tasks })
    }

    /// The devices, by index.
    pub fn devices(&self) -> &[Arc<SimDevice>] {
        &self.devices
    }

    /// One device; panics on an index out of range (test helper).
    pub fn device(&self, i: usize) -> &Arc<SimDevice> {
        &self.devices[i]
    }

    /// The first port.
    pub fn port_base(&self) -> u16 {
        self.devices[0].port
    }

    /// The inventory as CSV (`hostname,address,port,platform,username,password,enable_secret,
    /// tags`; tags separated by `;`), with each device's first credential. A fleet that offers
    /// only legacy key exchange adds a `legacy_ssh` column set to `true`; a telnet fleet a
    /// `transport` column set to `telnet`.
    pub fn inventory_csv(&self) -> String {
        let legacy = self.devices.iter().any(|d| d.legacy_kex_only);
        let telnet = self.devices.iter().any(|d| d.telnet);
        let mut out =
            String::from("hostname,address,port,platform,username,password,enable_secret,tags");
        if legacy {
            out.push_str(",legacy_ssh");
        }
        if telnet {
            out.push_str(",transport");
        }
        out.push('\n');
        for d in &self.devices {
            let c = &d.credentials[0];
            let fields = [
                d.hostname.clone(),
                "127.0.0.1".to_string(),
                d.port.to_string(),
                d.platform.name().to_string(),
                c.username.clone(),
                c.password.expose().to_string(),
                c.enable_secret.expose().to_string(),
                format!("sim;{}", d.platform.name()),
            ];
            let mut line: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
            if legacy {
                line.push(d.legacy_kex_only.to_string());
            }
            if telnet {
                line.push(if d.telnet { "telnet" } else { "ssh" }.to_string());
            }
            out.push_str(&line.join(","));
            out.push('\n');
        }
        out
    }

    /// Writes [`SimFleet::inventory_csv`] to `path`.
    pub fn write_inventory(&self, path: &Path) -> Result<()> {
        std::fs::write(path, self.inventory_csv()).map_err(|e| {
            Error::new(ErrorKind::Internal, format!("writing {}", path.display())).with_source(e)
        })
    }

    /// Stops every listener (open sessions end when their clients leave).
    pub fn shutdown(self) {}
}

impl Drop for SimFleet {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// Binds `n` consecutive loopback ports starting at `base`, or at a free range when `None`.
fn bind_range(base: Option<u16>, n: usize) -> Result<Vec<std::net::TcpListener>> {
    let try_base = |b: u16| -> std::io::Result<Vec<std::net::TcpListener>> {
        let mut v = Vec::with_capacity(n);
        for i in 0..n {
            let port = u16::try_from(b as usize + i).map_err(|_| {
                std::io::Error::new(std::io::ErrorKind::InvalidInput, "port range exceeds 65535")
            })?;
            let l = std::net::TcpListener::bind(("127.0.0.1", port))?;
            l.set_nonblocking(true)?;
            v.push(l);
        }
        Ok(v)
    };
    match base {
        Some(b) => try_base(b).map_err(|e| {
            Error::new(
                ErrorKind::InvalidInput,
                format!("cannot bind 127.0.0.1 ports {b}..{}: {e}", b as usize + n),
            )
        }),
        None => {
            let span = 65_000usize.saturating_sub(20_000).saturating_sub(n).max(1);
            let mut start = 20_000 + (std::process::id() as usize * 7919 + n * 31) % span;
            for _ in 0..50 {
                if let Ok(v) = try_base(start as u16) {
                    return Ok(v);
                }
                start = 20_000 + (start + n + 1013 - 20_000) % span;
            }
            Err(Error::internal(format!(
                "no free range of {n} loopback ports"
            )))
        }
    }
}

/// Accepts connections for one device forever and runs `session` on each in its own task (both
/// transports: SSH here, telnet in [`telnet::serve`]).
pub(crate) async fn accept_loop<F, Fut>(listener: tokio::net::TcpListener, session: F)
where
    F: Fn(tokio::net::TcpStream) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                tracing::debug!(error = %e, "simulator accept failed");
                tokio::time::sleep(Duration::from_millis(5)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(session(stream));
    }
}

async fn serve(listener: tokio::net::TcpListener, dev: Arc<SimDevice>) {
    accept_loop(listener, move |stream| {
        let dev = dev.clone();
        async move {
            let faults = dev.faults();
            let latency = faults.latency.filter(|l| !l.is_zero());
            let handler = Conn {
                faults,
                dev: dev.clone(),
                input: None,
                shell_channel: None,
            };
            match latency {
                Some(l) => {
                    let stream = delay::DelayedStream::new(stream, l);
                    run_ssh(dev.config(), stream, handler).await;
                }
                None => run_ssh(dev.config(), stream, handler).await,
            }
        }
    })
    .await
}

/// Runs one SSH session on `stream` until it ends.
async fn run_ssh<S>(config: Arc<russh::server::Config>, stream: S, handler: Conn)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    match russh::server::run_stream(config, stream, handler).await {
        Ok(running) => {
            let _ = running.await;
        }
        Err(e) => tracing::debug!(error = %e, "simulator session ended during setup"),
    }
}

/// One SSH connection to a simulated device.
struct Conn {
    dev: Arc<SimDevice>,
    faults: Faults,
    input: Option<mpsc::UnboundedSender<Vec<u8>>>,
    /// The channel the interactive shell runs on (exec channels come and go beside it).
    shell_channel: Option<ChannelId>,
}

impl Conn {
    fn check(&self, user: &str, password: &str) -> Auth {
        if self.dev.check_login(user, password) {
            Auth::Accept
        } else {
            Auth::reject()
        }
    }
}

impl russh::server::Handler for Conn {
    type Error = russh::Error;

    async fn auth_none(&mut self, _user: &str) -> Result<Auth, Self::Error> {
        Ok(Auth::reject())
    }

    async fn auth_password(&mut self, user: &str, password: &str) -> Result<Auth, Self::Error> {
        if self.faults.keyboard_interactive_only {
            return Ok(Auth::reject());
        }
        Ok(self.check(user, password))
    }

    async fn auth_keyboard_interactive<'a>(
        &'a mut self,
        user: &str,
        _submethods: &str,
        response: Option<Response<'a>>,
    ) -> Result<Auth, Self::Error> {
        match response {
            None => Ok(Auth::Partial {
                name: "".into(),
                instructions: "".into(),
                prompts: vec![("Password: ".into(), false)].into(),
            }),
            Some(mut r) => {
                let pw = r.next().map(|b| String::from_utf8_lossy(&b).into_owned());
                Ok(self.check(user, pw.as_deref().unwrap_or("")))
            }
        }
    }

    async fn channel_open_session(
        &mut self,
        _channel: Channel<Msg>,
        _session: &mut Session,
    ) -> Result<bool, Self::Error> {
        Ok(true)
    }

    async fn pty_request(
        &mut self,
        channel: ChannelId,
        _term: &str,
        _col_width: u32,
        _row_height: u32,
        _pix_width: u32,
        _pix_height: u32,
        _modes: &[(russh::Pty, u32)],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_success(channel)?;
        Ok(())
    }

    async fn shell_request(
        &mut self,
        channel: ChannelId,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_success(channel)?;
        let (tx, rx) = mpsc::unbounded_channel();
        self.input = Some(tx);
        self.shell_channel = Some(channel);
        self.dev.shells.fetch_add(1, Ordering::SeqCst);
        let term = shell::Terminal::new(
            self.dev.clone(),
            self.faults.clone(),
            shell::Out::Ssh {
                handle: session.handle(),
                channel,
            },
        );
        tokio::spawn(term.run(rx));
        Ok(())
    }

    async fn exec_request(
        &mut self,
        channel: ChannelId,
        data: &[u8],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        if !self.dev.platform.spec.exec_channel || self.faults.no_exec || self.dev.telnet {
            session.channel_failure(channel)?;
            return Ok(());
        }
        session.channel_success(channel)?;
        self.dev.execs.fetch_add(1, Ordering::SeqCst);
        let command = String::from_utf8_lossy(data).into_owned();
        let term = shell::Terminal::new(
            self.dev.clone(),
            self.faults.clone(),
            shell::Out::Ssh {
                handle: session.handle(),
                channel,
            },
        );
        tokio::spawn(term.exec(command));
        Ok(())
    }

    async fn data(
        &mut self,
        channel: ChannelId,
        data: &[u8],
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        if self.shell_channel != Some(channel) {
            return Ok(());
        }
        if let Some(tx) = &self.input {
            let _ = tx.send(data.to_vec());
        }
        Ok(())
    }

    async fn channel_eof(
        &mut self,
        channel: ChannelId,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        if self.shell_channel == Some(channel) {
            self.input = None;
        }
        Ok(())
    }

    async fn channel_close(
        &mut self,
        channel: ChannelId,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        if self.shell_channel == Some(channel) {
            self.input = None;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fault_specs_parse_with_and_without_a_device_range() {
        let (range, spec) = parse_fault_target("2-41:hang-after=3000,latency=5").expect("parse");
        assert_eq!(range, Some((2, 41)));
        let f = Faults::default().parse_into(spec).expect("faults");
        assert_eq!(f.hang_after, Some(3000));
        assert_eq!(f.latency, Some(Duration::from_millis(5)));
        let (range, spec) = parse_fault_target("trickle=256/100").expect("parse");
        assert_eq!(range, None);
        let f = Faults::default().parse_into(spec).expect("faults");
        assert_eq!(f.trickle, Some((256, Duration::from_millis(100))));
        let (range, spec) = parse_fault_target("hang-in-line=a:b").expect("parse");
        assert_eq!((range, spec), (None, "hang-in-line=a:b"));
        let f = Faults::default()
            .parse_into("flood=1000,flood-lines,garbage=10")
            .expect("faults");
        assert_eq!(
            (f.flood, f.flood_lines, f.garbage),
            (Some(1000), true, Some(10))
        );
    }

    #[test]
    fn bad_fault_specs_are_refused() {
        for bad in [
            "nope",
            "hang-after",
            "hang-after=x",
            "trickle=5",
            "hang-in-line=",
        ] {
            assert!(Faults::default().parse_into(bad).is_err(), "{bad}");
        }
        assert!(parse_fault_target("5-2:latency=1").is_err());
    }
}
