//! The domain model: devices, tags, credentials, jobs, runs, device results, log entries,
//! snapshots, host keys, users and API tokens.
//!
//! Identifiers are `i64` so that SQL backends can use their native auto-increment keys and API
//! clients of the Python NetRaven keep integer ids. A value passed to a `create_*` store method
//! has its `id` ignored; the store assigns one.

use crate::error::{Error, ErrorKind, Result};
use crate::secret::Secret;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Device identifier.
pub type DeviceId = i64;
/// Tag identifier.
pub type TagId = i64;
/// Credential identifier.
pub type CredentialId = i64;
/// Job identifier.
pub type JobId = i64;
/// Run identifier.
pub type RunId = i64;
/// Snapshot identifier.
pub type SnapshotId = i64;
/// User identifier.
pub type UserId = i64;

fn epoch() -> DateTime<Utc> {
    DateTime::<Utc>::UNIX_EPOCH
}

/// How the SSH host key of a device is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum HostKeyPolicy {
    /// Trust on first use: pin the key on first contact, refuse a changed key before any
    /// password is sent.
    #[default]
    Tofu,
    /// The key must have been pinned beforehand.
    Strict,
    /// Do not check host keys (labs only).
    Off,
}

impl HostKeyPolicy {
    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            HostKeyPolicy::Tofu => "tofu",
            HostKeyPolicy::Strict => "strict",
            HostKeyPolicy::Off => "off",
        }
    }
    /// Parses a snake_case name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "tofu" => Some(HostKeyPolicy::Tofu),
            "strict" => Some(HostKeyPolicy::Strict),
            "off" => Some(HostKeyPolicy::Off),
            _ => None,
        }
    }
}

/// How a device is reached.
///
/// Telnet sends the login in clear text: it is only ever used for a device that says so
/// (`transport = "telnet"`), never as a fallback after an SSH failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Transport {
    /// SSH (the default).
    #[default]
    Ssh,
    /// Telnet, opted in per device for legacy gear.
    Telnet,
}

impl Transport {
    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Ssh => "ssh",
            Transport::Telnet => "telnet",
        }
    }
    /// Parses a snake_case name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "ssh" => Some(Transport::Ssh),
            "telnet" => Some(Transport::Telnet),
            _ => None,
        }
    }
}

/// The writable fields of a device: what a client sends to create or replace one (the API's
/// device body and an import row are this type) and what [`Device`] carries besides its id and
/// timestamps. One definition, so input and stored device cannot drift apart.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct DeviceSpec {
    /// Unique name of the device (used for the snapshot file name).
    pub hostname: String,
    /// IP address or DNS name to connect to.
    pub address: String,
    /// SSH port.
    #[serde(default = "default_port")]
    pub port: u16,
    /// Platform as a netmiko `device_type` name (`cisco_ios`, `arista_eos`, …).
    pub platform: String,
    /// Tag names; credentials and jobs select devices by tag.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Free text.
    #[serde(default)]
    pub description: Option<String>,
    /// Serial number, if known.
    #[serde(default)]
    pub serial: Option<String>,
    /// Hardware model, if known.
    #[serde(default)]
    pub model: Option<String>,
    /// A credential to try before any tag-matched one.
    #[serde(default)]
    pub credential_id: Option<CredentialId>,
    /// SSH host key checking policy.
    #[serde(default)]
    pub host_key_policy: HostKeyPolicy,
    /// Allow legacy SSH algorithms (group1/group14-sha1 key exchange, ssh-rsa, CBC ciphers).
    #[serde(default)]
    pub legacy_ssh: bool,
    /// Disabled devices are left out of runs.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Multiplies every deadline of this device (connect, each command, the whole device);
    /// replaces its platform's `timeout_multiplier` (0.1 to 100; absent: the platform's, else 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_multiplier: Option<f64>,
    /// How the device is reached: `ssh` (default) or `telnet` (opt-in, never a fallback).
    #[serde(default)]
    pub transport: Transport,
    /// Name of the jump host (SSH bastion, see [`JumpHost`]) the device is reached through.
    #[serde(default)]
    pub jump_host: Option<String>,
    /// The zone (remote poller site) whose workers back this device up; absent: the zone of
    /// its first tag that has one, else the default zone. See [`crate::zones`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
}

impl DeviceSpec {
    /// A spec with defaults for everything but its name, address and platform.
    pub fn new(
        hostname: impl Into<String>,
        address: impl Into<String>,
        platform: impl Into<String>,
    ) -> Self {
        DeviceSpec {
            hostname: hostname.into(),
            address: address.into(),
            port: 22,
            platform: platform.into(),
            tags: Vec::new(),
            description: None,
            serial: None,
            model: None,
            credential_id: None,
            host_key_policy: HostKeyPolicy::Tofu,
            legacy_ssh: false,
            enabled: true,
            timeout_multiplier: None,
            transport: Transport::Ssh,
            jump_host: None,
            zone: None,
        }
    }

    /// Checks the fields a store relies on.
    pub fn validate(&self) -> Result<()> {
        validate_name("hostname", &self.hostname)?;
        if self.address.trim().is_empty() || self.address.len() > 255 {
            return Err(Error::invalid("address must be 1 to 255 characters"));
        }
        if self.port == 0 {
            return Err(Error::invalid("port must be 1 to 65535"));
        }
        validate_name("platform", &self.platform)?;
        for t in &self.tags {
            validate_name("tag", t)?;
        }
        if let Some(m) = self.timeout_multiplier
            && !(m.is_finite() && (0.1..=100.0).contains(&m))
        {
            return Err(Error::invalid(
                "timeout_multiplier must be between 0.1 and 100",
            ));
        }
        if let Some(j) = &self.jump_host {
            validate_name("jump_host", j)?;
        }
        if let Some(z) = &self.zone {
            validate_zone(z)?;
        }
        Ok(())
    }
}

/// A network device to back up: its [`DeviceSpec`] plus the store-assigned id and timestamps.
/// It dereferences to its spec, so `device.hostname` reads (and writes) the spec's field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Device {
    /// Store-assigned id.
    #[serde(default)]
    pub id: DeviceId,
    /// The writable fields (flattened into the same JSON object).
    #[serde(flatten)]
    pub spec: DeviceSpec,
    /// When the device was created.
    #[serde(default = "epoch")]
    pub created_at: DateTime<Utc>,
    /// When the device was last changed.
    #[serde(default = "epoch")]
    pub updated_at: DateTime<Utc>,
}

impl std::ops::Deref for Device {
    type Target = DeviceSpec;
    fn deref(&self) -> &DeviceSpec {
        &self.spec
    }
}

impl std::ops::DerefMut for Device {
    fn deref_mut(&mut self) -> &mut DeviceSpec {
        &mut self.spec
    }
}

fn default_port() -> u16 {
    22
}
fn default_true() -> bool {
    true
}

impl Device {
    /// A device with defaults for everything but its name, address and platform.
    pub fn new(
        hostname: impl Into<String>,
        address: impl Into<String>,
        platform: impl Into<String>,
    ) -> Self {
        Device::from_spec(DeviceSpec::new(hostname, address, platform))
    }

    /// A device (id 0, timestamps at the epoch) with these writable fields.
    pub fn from_spec(spec: DeviceSpec) -> Self {
        Device {
            id: 0,
            spec,
            created_at: epoch(),
            updated_at: epoch(),
        }
    }

    /// Builder-style: sets the port.
    pub fn with_port(mut self, port: u16) -> Self {
        self.spec.port = port;
        self
    }

    /// Builder-style: sets the tags.
    pub fn with_tags<I, S>(mut self, tags: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.spec.tags = tags.into_iter().map(Into::into).collect();
        self
    }
}

/// Checks that a device address is an IP address (v4 or v6) or a valid DNS name: at most 253
/// characters, dot-separated labels of 1 to 63 letters, digits and hyphens that neither start nor
/// end with a hyphen (one trailing dot allowed). Address policies build on this check.
pub fn validate_address(address: &str) -> Result<()> {
    if address.parse::<std::net::IpAddr>().is_ok() {
        return Ok(());
    }
    let name = address.strip_suffix('.').unwrap_or(address);
    let label_ok = |l: &str| {
        (1..=63).contains(&l.len())
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    // An all-numeric dotted name would be a mistyped IPv4 address, not a host name.
    let numeric = name
        .split('.')
        .all(|l| l.bytes().all(|b| b.is_ascii_digit()));
    if name.is_empty() || name.len() > 253 || numeric || !name.split('.').all(label_ok) {
        return Err(Error::invalid(format!(
            "address: '{address}' is neither an IP address nor a valid DNS name"
        )));
    }
    Ok(())
}

/// Validates a short identifier-like name (hostname, tag, job name): 1 to 128 characters, no
/// control characters, no path separators.
pub fn validate_name(field: &str, value: &str) -> Result<()> {
    if value.trim().is_empty() || value.len() > 128 {
        return Err(Error::invalid(format!(
            "{field} must be 1 to 128 characters"
        )));
    }
    if value
        .chars()
        .any(|c| c.is_control() || c == '/' || c == '\\')
    {
        return Err(Error::invalid(format!(
            "{field} must not contain control characters or path separators"
        )));
    }
    Ok(())
}

/// Checks a zone name: 1 to 63 characters of `a-z`, `0-9`, `_` and `-` (it becomes part of
/// queue keys and worker options).
pub fn validate_zone(zone: &str) -> Result<()> {
    if zone.is_empty()
        || zone.len() > 63
        || !zone
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
    {
        return Err(Error::invalid(format!(
            "zone must be 1 to 63 characters of a-z, 0-9, '_' and '-' (got {zone:?})"
        )));
    }
    Ok(())
}

/// A tag: a label that groups devices and credentials.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Tag {
    /// Store-assigned id.
    #[serde(default)]
    pub id: TagId,
    /// Unique name.
    pub name: String,
    /// Free text.
    #[serde(default)]
    pub description: Option<String>,
    /// The zone of the tag's devices that name none themselves (their first tag with a zone
    /// decides). See [`crate::zones`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
}

/// Login credentials for devices. Never serialised: see [`CredentialInfo`] for the public view.
#[derive(Debug, Clone, PartialEq)]
pub struct Credential {
    /// Store-assigned id.
    pub id: CredentialId,
    /// Unique name.
    pub name: String,
    /// Login user name.
    pub username: String,
    /// Login password.
    pub password: Secret,
    /// Enable secret, for platforms that need one.
    pub enable_secret: Option<Secret>,
    /// Lower numbers are tried first.
    pub priority: i32,
    /// Tags: the credential is a candidate for every device that shares one.
    pub tags: Vec<String>,
    /// Free text.
    pub description: Option<String>,
    /// Successful logins.
    pub success_count: u64,
    /// Rejected logins.
    pub failure_count: u64,
    /// When it was last tried.
    pub last_used: Option<DateTime<Utc>>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// The store could not decrypt its secrets (a lost or wrong key, a damaged row): `password`
    /// and `enable_secret` are empty, it is never tried on a device, and an update keeps its
    /// stored secrets unless this flag is cleared together with new ones.
    pub unreadable: bool,
}

impl Credential {
    /// A credential with defaults for everything but its name and secrets.
    pub fn new(name: impl Into<String>, username: impl Into<String>, password: Secret) -> Self {
        Credential {
            id: 0,
            name: name.into(),
            username: username.into(),
            password,
            enable_secret: None,
            priority: 100,
            tags: Vec::new(),
            description: None,
            success_count: 0,
            failure_count: 0,
            last_used: None,
            created_at: epoch(),
            unreadable: false,
        }
    }

    /// Fraction of logins that succeeded; 0.5 when it was never tried (neutral).
    pub fn success_rate(&self) -> f64 {
        let n = self.success_count + self.failure_count;
        if n == 0 {
            0.5
        } else {
            self.success_count as f64 / n as f64
        }
    }

    /// The view of this credential that may be shown to a user: no secrets.
    pub fn info(&self) -> CredentialInfo {
        CredentialInfo {
            id: self.id,
            name: self.name.clone(),
            username: self.username.clone(),
            has_enable_secret: self.enable_secret.is_some(),
            priority: self.priority,
            tags: self.tags.clone(),
            description: self.description.clone(),
            success_count: self.success_count,
            failure_count: self.failure_count,
            success_rate: self.success_rate(),
            last_used: self.last_used,
            created_at: self.created_at,
            unreadable: self.unreadable,
        }
    }
}

/// The public view of a [`Credential`]: everything but the secrets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CredentialInfo {
    /// Id.
    pub id: CredentialId,
    /// Name.
    pub name: String,
    /// Login user name.
    pub username: String,
    /// Whether an enable secret is set (its value is never shown).
    pub has_enable_secret: bool,
    /// Lower numbers are tried first.
    pub priority: i32,
    /// Tags.
    pub tags: Vec<String>,
    /// Free text.
    pub description: Option<String>,
    /// Successful logins.
    pub success_count: u64,
    /// Rejected logins.
    pub failure_count: u64,
    /// success / (success + failure).
    pub success_rate: f64,
    /// When it was last tried.
    pub last_used: Option<DateTime<Utc>>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// Its secrets cannot be decrypted with the store's key: it is skipped for connections
    /// until an admin sets new secrets.
    #[serde(default)]
    pub unreadable: bool,
}

/// Jump host identifier.
pub type JumpHostId = i64;

/// A named SSH bastion that devices (`DeviceSpec::jump_host`) are reached through: the driver
/// logs in to it, checks its host key first, and opens a `direct-tcpip` channel to the device.
/// `via` names the jump host in front of this one (chains of bastions). Never serialised: see
/// [`JumpHostInfo`] for the public view.
#[derive(Debug, Clone, PartialEq)]
pub struct JumpHost {
    /// Store-assigned id.
    pub id: JumpHostId,
    /// Unique name devices refer to.
    pub name: String,
    /// IP address or DNS name of the bastion.
    pub address: String,
    /// Its SSH port.
    pub port: u16,
    /// Login user on the bastion.
    pub username: String,
    /// Its password, or a private key (PEM/OpenSSH, `-----BEGIN`). Stored encrypted.
    pub password: Secret,
    /// How the bastion's host key is checked (pinned in the host-key store like a device's).
    pub host_key_policy: HostKeyPolicy,
    /// A fingerprint (`SHA256:…`) the bastion's key must have, set by an admin; a different key
    /// is refused before any password is sent, whatever the policy.
    pub host_key: Option<String>,
    /// The jump host in front of this one, if any.
    pub via: Option<String>,
    /// Free text.
    pub description: Option<String>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it was last changed.
    pub updated_at: DateTime<Utc>,
}

/// Longest chain of jump hosts in front of one device.
pub const MAX_JUMP_CHAIN: usize = 8;

impl JumpHost {
    /// A jump host with defaults (port 22, trust on first use) for everything but these.
    pub fn new(
        name: impl Into<String>,
        address: impl Into<String>,
        username: impl Into<String>,
        password: Secret,
    ) -> Self {
        JumpHost {
            id: 0,
            name: name.into(),
            address: address.into(),
            port: 22,
            username: username.into(),
            password,
            host_key_policy: HostKeyPolicy::Tofu,
            host_key: None,
            via: None,
            description: None,
            created_at: epoch(),
            updated_at: epoch(),
        }
    }

    /// Checks the fields a store relies on.
    pub fn validate(&self) -> Result<()> {
        validate_name("name", &self.name)?;
        validate_address(&self.address)?;
        if self.port == 0 {
            return Err(Error::invalid("port must be 1 to 65535"));
        }
        if self.username.trim().is_empty() || self.username.len() > 128 {
            return Err(Error::invalid("username must be 1 to 128 characters"));
        }
        if let Some(v) = &self.via {
            validate_name("via", v)?;
            if v == &self.name {
                return Err(Error::invalid(
                    "via: a jump host cannot be its own jump host",
                ));
            }
        }
        if let Some(k) = &self.host_key {
            let b64 = k.strip_prefix("SHA256:").unwrap_or("");
            if b64.len() != 43
                || !b64
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
            {
                return Err(Error::invalid(
                    "host_key must be an OpenSSH SHA256 fingerprint (SHA256: and 43 base64 characters)",
                ));
            }
        }
        Ok(())
    }

    /// The view of this jump host that may be shown to a user: no secret.
    pub fn info(&self) -> JumpHostInfo {
        JumpHostInfo {
            id: self.id,
            name: self.name.clone(),
            address: self.address.clone(),
            port: self.port,
            username: self.username.clone(),
            has_password: !self.password.is_empty(),
            host_key_policy: self.host_key_policy,
            host_key: self.host_key.clone(),
            via: self.via.clone(),
            description: self.description.clone(),
            created_at: self.created_at,
            updated_at: self.updated_at,
        }
    }
}

/// The public view of a [`JumpHost`]: everything but the secret.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct JumpHostInfo {
    /// Id.
    pub id: JumpHostId,
    /// Unique name.
    pub name: String,
    /// Address of the bastion.
    pub address: String,
    /// SSH port.
    pub port: u16,
    /// Login user.
    pub username: String,
    /// Whether a password (or key) is set; its value is never shown.
    pub has_password: bool,
    /// Host key policy.
    pub host_key_policy: HostKeyPolicy,
    /// The pinned fingerprint an admin set, if any.
    pub host_key: Option<String>,
    /// The jump host in front of this one.
    pub via: Option<String>,
    /// Free text.
    pub description: Option<String>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it was last changed.
    pub updated_at: DateTime<Utc>,
}

/// What a job does on each device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum JobKind {
    /// Fetch, normalise, redact and store the configuration.
    Backup,
    /// Check that the device answers on its SSH port.
    Reachability,
    /// Run the given commands and record their (redacted) output.
    Command {
        /// Commands, run in order.
        commands: Vec<String>,
    },
}

impl JobKind {
    /// Short name: `backup`, `reachability` or `command`.
    pub fn name(&self) -> &'static str {
        match self {
            JobKind::Backup => "backup",
            JobKind::Reachability => "reachability",
            JobKind::Command { .. } => "command",
        }
    }
}

/// Which devices a job runs on: the union of the listed ids and every device carrying one of
/// the tags.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Targets {
    /// Device ids.
    #[serde(default)]
    pub device_ids: Vec<DeviceId>,
    /// Tag names.
    #[serde(default)]
    pub tags: Vec<String>,
}

pub use crate::schedule::Schedule;

/// What to do when a fire comes due while a run of the same job is still active.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum OverlapPolicy {
    /// Skip the fire and record that it was skipped.
    #[default]
    Forbid,
    /// Start another run anyway.
    Allow,
    /// Queue the run: it waits (QUEUED) until every older active run of the job has finished,
    /// then starts. At most one run waits: a scheduled fire while one already waits is recorded
    /// as skipped. Manual runs always queue.
    Queue,
}

/// What to do with fires that came due while no scheduler was running.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum MissedPolicy {
    /// Drop missed fires; wait for the next one.
    Skip,
    /// Run once for all the missed fires together.
    #[default]
    RunOnce,
}

/// A job: what to do, on which devices, when.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Job {
    /// Store-assigned id.
    #[serde(default)]
    pub id: JobId,
    /// Unique name.
    pub name: String,
    /// Free text.
    #[serde(default)]
    pub description: Option<String>,
    /// What the job does.
    pub kind: JobKind,
    /// Devices it runs on.
    #[serde(default)]
    pub targets: Targets,
    /// When it fires.
    pub schedule: Schedule,
    /// Disabled jobs do not fire (they can still be run by hand).
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Overlap policy.
    #[serde(default)]
    pub overlap: OverlapPolicy,
    /// Missed-fire policy.
    #[serde(default)]
    pub missed: MissedPolicy,
    /// System jobs are created by NetRaven itself and cannot be deleted through the API.
    #[serde(default)]
    pub system: bool,
    /// When it was created.
    #[serde(default = "epoch")]
    pub created_at: DateTime<Utc>,
    /// When it was last changed; schedules count from here after an edit.
    #[serde(default = "epoch")]
    pub updated_at: DateTime<Utc>,
}

impl Job {
    /// A manual backup job over the given targets.
    pub fn backup(name: impl Into<String>, targets: Targets) -> Self {
        Job {
            id: 0,
            name: name.into(),
            description: None,
            kind: JobKind::Backup,
            targets,
            schedule: Schedule::Manual,
            enabled: true,
            overlap: OverlapPolicy::Forbid,
            missed: MissedPolicy::RunOnce,
            system: false,
            created_at: epoch(),
            updated_at: epoch(),
        }
    }

    /// Validates name, kind and schedule (interval ≥ 60 s, cron line and time zone parse).
    pub fn validate(&self) -> Result<()> {
        validate_name("name", &self.name)?;
        if let JobKind::Command { commands } = &self.kind {
            if commands.is_empty() || commands.iter().any(|c| c.trim().is_empty()) {
                return Err(Error::invalid(
                    "a command job needs at least one non-empty command",
                ));
            }
            if commands.iter().any(|c| c.contains(['\n', '\r'])) {
                return Err(Error::invalid("a command must be a single line"));
            }
        }
        for t in &self.targets.tags {
            validate_name("tag", t)?;
        }
        crate::schedule::validate_schedule(&self.schedule)
    }
}

/// What started a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    /// A user, through the API or the command line.
    Manual,
    /// The scheduler.
    Schedule,
    /// A backup of one device asked for through `POST /api/devices/{id}/backup` (another tool
    /// or a user).
    Api,
    /// A configuration-change message the device sent to the syslog listener.
    Syslog,
}

impl Trigger {
    /// snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Manual => "manual",
            Trigger::Schedule => "schedule",
            Trigger::Api => "api",
            Trigger::Syslog => "syslog",
        }
    }
    /// Parses a snake_case name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "manual" => Some(Trigger::Manual),
            "schedule" => Some(Trigger::Schedule),
            "api" => Some(Trigger::Api),
            "syslog" => Some(Trigger::Syslog),
            _ => None,
        }
    }
}

/// The status of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RunStatus {
    /// Waiting for a worker.
    Queued,
    /// Devices are being worked on.
    Running,
    /// Every device succeeded.
    CompletedSuccess,
    /// Some devices succeeded, some failed.
    CompletedPartialFailure,
    /// Every device failed.
    CompletedFailure,
    /// The targets resolved to no device.
    CompletedNoDevices,
    /// No device of the run had any credential.
    CompletedNoCredentials,
    /// The run itself could not be carried out (its job vanished, an internal error).
    FailedError,
    /// The fire was skipped (overlap policy forbid while another run was active).
    Skipped,
}

impl RunStatus {
    /// All statuses.
    pub const ALL: [RunStatus; 9] = [
        RunStatus::Queued,
        RunStatus::Running,
        RunStatus::CompletedSuccess,
        RunStatus::CompletedPartialFailure,
        RunStatus::CompletedFailure,
        RunStatus::CompletedNoDevices,
        RunStatus::CompletedNoCredentials,
        RunStatus::FailedError,
        RunStatus::Skipped,
    ];

    /// Whether the run has ended.
    pub fn is_final(self) -> bool {
        !matches!(self, RunStatus::Queued | RunStatus::Running)
    }

    /// SCREAMING_SNAKE_CASE name as stored and served.
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Queued => "QUEUED",
            RunStatus::Running => "RUNNING",
            RunStatus::CompletedSuccess => "COMPLETED_SUCCESS",
            RunStatus::CompletedPartialFailure => "COMPLETED_PARTIAL_FAILURE",
            RunStatus::CompletedFailure => "COMPLETED_FAILURE",
            RunStatus::CompletedNoDevices => "COMPLETED_NO_DEVICES",
            RunStatus::CompletedNoCredentials => "COMPLETED_NO_CREDENTIALS",
            RunStatus::FailedError => "FAILED_ERROR",
            RunStatus::Skipped => "SKIPPED",
        }
    }

    /// Parses [`RunStatus::as_str`] output.
    pub fn parse(s: &str) -> Option<Self> {
        RunStatus::ALL.into_iter().find(|st| st.as_str() == s)
    }
}

/// Per-run tallies, kept by the store as device results are recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RunCounts {
    /// Devices in the run.
    pub total: u32,
    /// Devices that succeeded.
    pub succeeded: u32,
    /// Devices that failed.
    pub failed: u32,
    /// Successful backups whose configuration changed.
    pub changed: u32,
    /// Successful backups whose configuration did not change.
    pub unchanged: u32,
}

impl RunCounts {
    /// Devices with a recorded result.
    pub fn done(&self) -> u32 {
        self.succeeded + self.failed
    }

    /// Whether every device has a result.
    pub fn is_complete(&self) -> bool {
        self.done() >= self.total
    }

    /// Adds one device result to the tallies.
    pub fn add(&mut self, r: &DeviceResult) {
        match r.status {
            DeviceStatus::Success => {
                self.succeeded += 1;
                match r.changed {
                    Some(true) => self.changed += 1,
                    Some(false) => self.unchanged += 1,
                    None => {}
                }
            }
            DeviceStatus::Failed => self.failed += 1,
        }
    }

    /// The final status of a run whose devices have all finished, by DESIGN.md's rules.
    pub fn final_status(&self) -> RunStatus {
        if self.total == 0 {
            RunStatus::CompletedNoDevices
        } else if self.failed == 0 {
            RunStatus::CompletedSuccess
        } else if self.succeeded == 0 {
            RunStatus::CompletedFailure
        } else {
            RunStatus::CompletedPartialFailure
        }
    }
}

/// A run: one execution of a job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Run {
    /// Store-assigned id.
    pub id: RunId,
    /// The job.
    pub job_id: JobId,
    /// What started it.
    pub trigger: Trigger,
    /// The scheduled fire time; (job, fire time) is unique.
    pub fire_time: Option<DateTime<Utc>>,
    /// Status.
    pub status: RunStatus,
    /// When it was created.
    pub queued_at: DateTime<Utc>,
    /// When a worker started it.
    pub started_at: Option<DateTime<Utc>>,
    /// When it reached a final status.
    pub finished_at: Option<DateTime<Utc>>,
    /// Tallies.
    pub counts: RunCounts,
    /// Client-supplied key that makes a retried "run now" return the same run.
    pub idempotency_key: Option<String>,
    /// Why it failed or was skipped.
    pub message: Option<String>,
}

/// Input for creating a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRun {
    /// The job.
    pub job_id: JobId,
    /// What started it.
    pub trigger: Trigger,
    /// The fire it belongs to, for scheduled runs.
    pub fire_time: Option<DateTime<Utc>>,
    /// Idempotency key for manual runs.
    pub idempotency_key: Option<String>,
    /// Initial status: `Queued`, or `Skipped` for a recorded skip.
    pub status: RunStatus,
    /// A message (the reason for a skip).
    pub message: Option<String>,
    /// Creation time.
    pub queued_at: DateTime<Utc>,
}

/// The outcome for one device in one run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum DeviceStatus {
    /// It worked.
    Success,
    /// It failed; see the error kind.
    Failed,
}

impl DeviceStatus {
    /// Stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            DeviceStatus::Success => "SUCCESS",
            DeviceStatus::Failed => "FAILED",
        }
    }
    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "SUCCESS" => Some(DeviceStatus::Success),
            "FAILED" => Some(DeviceStatus::Failed),
            _ => None,
        }
    }
}

/// The one recorded result of a (run, device) pair.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DeviceResult {
    /// Store-assigned id.
    pub id: i64,
    /// The run.
    pub run_id: RunId,
    /// The run's job.
    pub job_id: JobId,
    /// The device.
    pub device_id: DeviceId,
    /// Success or failure.
    pub status: DeviceStatus,
    /// Why it failed.
    pub error_kind: Option<ErrorKind>,
    /// Human-readable outcome.
    pub message: Option<String>,
    /// Time spent on the device, all attempts of the final delivery.
    pub duration_ms: u64,
    /// The credential that logged in.
    pub credential_id: Option<CredentialId>,
    /// The snapshot that holds the configuration (backup jobs).
    pub snapshot_id: Option<SnapshotId>,
    /// Whether the configuration changed since the previous snapshot (backup jobs).
    pub changed: Option<bool>,
    /// Redacted command output (command jobs).
    pub output: Option<String>,
    /// Delivery attempt that produced it.
    pub attempt: u32,
    /// When the device was started.
    pub started_at: DateTime<Utc>,
    /// When the result was recorded.
    pub finished_at: DateTime<Utc>,
}

/// A device's newest result and its newest successful one, as
/// [`crate::store::ResultStore::latest_results`] reads them for a page of devices. "Newest" is the
/// order of [`crate::store::ResultStore::list_results`]: latest `finished_at`, then highest id.
#[derive(Debug, Clone, PartialEq)]
pub struct LatestResults {
    /// The newest result, whatever its status.
    pub latest: DeviceResult,
    /// The newest successful result: `latest` itself when it succeeded, an earlier one when it
    /// failed, none when the device never succeeded.
    pub latest_success: Option<DeviceResult>,
}

/// Result of [`crate::store::ResultStore::record_result`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordOutcome {
    /// False when a result for the (run, device) pair already existed; nothing was changed.
    pub inserted: bool,
    /// The run's tallies after the write.
    pub counts: RunCounts,
}

/// Severity of a log entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum LogLevel {
    /// Detail.
    Debug,
    /// Normal progress.
    Info,
    /// Something worth a look.
    Warning,
    /// A failure.
    Error,
}

impl LogLevel {
    /// Stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Warning => "warning",
            LogLevel::Error => "error",
        }
    }
    /// Parses a stored name (also accepts `warn`).
    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "debug" => Some(LogLevel::Debug),
            "info" => Some(LogLevel::Info),
            "warning" | "warn" => Some(LogLevel::Warning),
            "error" => Some(LogLevel::Error),
            _ => None,
        }
    }
}

/// What a log entry is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum LogKind {
    /// Run lifecycle (start, devices resolved, summary).
    Job,
    /// Connecting and logging in to a device.
    Connection,
    /// Commands on an open session.
    Session,
    /// Snapshot stored / unchanged.
    Snapshot,
    /// Scheduler decisions (fires, skips).
    Scheduler,
    /// Everything else.
    System,
}

impl LogKind {
    /// Stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            LogKind::Job => "job",
            LogKind::Connection => "connection",
            LogKind::Session => "session",
            LogKind::Snapshot => "snapshot",
            LogKind::Scheduler => "scheduler",
            LogKind::System => "system",
        }
    }
    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        [
            LogKind::Job,
            LogKind::Connection,
            LogKind::Session,
            LogKind::Snapshot,
            LogKind::Scheduler,
            LogKind::System,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }
}

/// One log entry. Never contains a secret: the engine only logs ids, names and error kinds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LogEntry {
    /// Store-assigned id (increasing; live streams resume after an id).
    pub id: i64,
    /// When it happened.
    pub time: DateTime<Utc>,
    /// Severity.
    pub level: LogLevel,
    /// Subject.
    pub kind: LogKind,
    /// The run, if any.
    pub run_id: Option<RunId>,
    /// The run's job, if any.
    pub job_id: Option<JobId>,
    /// The device, if any.
    pub device_id: Option<DeviceId>,
    /// The component that wrote it (`worker:<id>`, `scheduler`, `api`).
    pub source: String,
    /// Human-readable text.
    pub message: String,
    /// Structured fields.
    pub fields: serde_json::Value,
}

impl LogEntry {
    /// A new entry with no ids or fields set.
    pub fn new(
        time: DateTime<Utc>,
        level: LogLevel,
        kind: LogKind,
        source: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        LogEntry {
            id: 0,
            time,
            level,
            kind,
            run_id: None,
            job_id: None,
            device_id: None,
            source: source.into(),
            message: message.into(),
            fields: serde_json::Value::Null,
        }
    }
}

/// Index entry of one stored configuration snapshot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SnapshotMeta {
    /// Store-assigned id.
    pub id: SnapshotId,
    /// The device.
    pub device_id: DeviceId,
    /// The device's hostname when it was taken (the file name in git).
    pub hostname: String,
    /// The run that took it.
    pub run_id: Option<RunId>,
    /// SHA-256 of the normalised, redacted content, hex.
    pub hash: String,
    /// Content length in bytes.
    pub size: u64,
    /// When it was taken.
    pub created_at: DateTime<Utc>,
    /// The git commit that holds it, once committed.
    pub commit_id: Option<String>,
    /// Who changed the configuration, where the device said so (IOS `! Last configuration
    /// change at … by USER`, Junos `## Last changed: … by USER`) or the syslog message that
    /// triggered the backup named a user; the git commit's author for this change.
    #[serde(default)]
    pub author: Option<String>,
}

/// A snapshot with its content.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Snapshot {
    /// Index entry.
    #[serde(flatten)]
    pub meta: SnapshotMeta,
    /// Normalised, redacted configuration text.
    pub content: String,
}

/// Input to [`crate::snapshot::SnapshotSink::put`].
#[derive(Debug, Clone, PartialEq)]
pub struct NewSnapshot {
    /// The device.
    pub device_id: DeviceId,
    /// Its hostname.
    pub hostname: String,
    /// The run.
    pub run_id: Option<RunId>,
    /// Normalised, redacted content.
    pub content: String,
    /// When it was fetched.
    pub taken_at: DateTime<Utc>,
    /// Who changed the configuration, if known (see [`SnapshotMeta::author`]).
    pub author: Option<String>,
}

/// Result of putting a snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotPut {
    /// The snapshot now holding this content (the previous one when unchanged).
    pub snapshot_id: SnapshotId,
    /// Whether the content differed from the device's latest snapshot.
    pub changed: bool,
    /// Content hash.
    pub hash: String,
}

/// SHA-256 of content, hex-encoded: the identity of a snapshot's content.
pub fn content_hash(content: &str) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(content.as_bytes()))
}

/// A pinned SSH host key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostKey {
    /// Address the key was seen at.
    pub host: String,
    /// Port.
    pub port: u16,
    /// Key algorithm (`ssh-ed25519`, `ssh-rsa`, …).
    pub key_type: String,
    /// `SHA256:` fingerprint (base64, as OpenSSH prints it).
    pub fingerprint: String,
    /// When it was pinned.
    pub first_seen: DateTime<Utc>,
}

/// Roles for API users.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Read only.
    Viewer,
    /// Devices, jobs, runs.
    Operator,
    /// Everything.
    Admin,
}

impl Role {
    /// Stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }
    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "viewer" => Some(Role::Viewer),
            "operator" => Some(Role::Operator),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

/// An API user. The password hash is never serialised.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct User {
    /// Store-assigned id.
    pub id: UserId,
    /// Unique login name.
    pub username: String,
    /// argon2 PHC string.
    #[serde(skip_serializing, default)]
    pub password_hash: String,
    /// Role.
    pub role: Role,
    /// Inactive users cannot log in.
    pub active: bool,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

/// An API token for scripts; only its hash is stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ApiToken {
    /// Store-assigned id.
    pub id: i64,
    /// The user it acts as.
    pub user_id: UserId,
    /// Label.
    pub name: String,
    /// SHA-256 of the token, hex. Never serialised.
    #[serde(skip_serializing, default)]
    pub token_hash: String,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it was last used.
    pub last_used: Option<DateTime<Utc>>,
    /// When it stops working.
    pub expires_at: Option<DateTime<Utc>>,
}

/// A page request: 1-based page number and page size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Page {
    /// 1-based page number.
    pub page: u32,
    /// Items per page.
    pub size: u32,
}

impl Page {
    /// Largest page size the API serves.
    pub const MAX_SIZE: u32 = 100;

    /// A page, clamped to valid values.
    pub fn new(page: u32, size: u32) -> Self {
        Page {
            page: page.max(1),
            size: size.clamp(1, 10_000),
        }
    }

    /// The first page of `size` items.
    pub fn first(size: u32) -> Self {
        Page::new(1, size)
    }

    /// Rows to skip.
    pub fn offset(&self) -> u64 {
        (self.page.max(1) as u64 - 1) * self.size as u64
    }
}

impl Default for Page {
    fn default() -> Self {
        Page { page: 1, size: 50 }
    }
}

/// A page of results in the Python NetRaven's shape: `{items, total, page, size, pages}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Paged<T> {
    /// The items of this page.
    pub items: Vec<T>,
    /// Items over all pages.
    pub total: u64,
    /// This page's number.
    pub page: u32,
    /// Page size.
    pub size: u32,
    /// Number of pages.
    pub pages: u32,
}

impl<T> Paged<T> {
    /// Builds a page from its items and the total count.
    pub fn new(items: Vec<T>, total: u64, page: Page) -> Self {
        let size = page.size.max(1);
        Paged {
            items,
            total,
            page: page.page,
            size,
            pages: total.div_ceil(size as u64) as u32,
        }
    }

    /// Maps the items, keeping the page numbers.
    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Paged<U> {
        Paged {
            items: self.items.into_iter().map(f).collect(),
            total: self.total,
            page: self.page,
            size: self.size,
            pages: self.pages,
        }
    }
}

/// Sort order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Order {
    /// Oldest first.
    Asc,
    /// Newest first.
    #[default]
    Desc,
}

/// Device list filters; string filters match as case-insensitive substrings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeviceFilter {
    /// Hostname contains.
    pub hostname: Option<String>,
    /// Address contains.
    pub address: Option<String>,
    /// Platform equals.
    pub platform: Option<String>,
    /// Carries this tag.
    pub tag: Option<String>,
}

/// Run list filters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunFilter {
    /// Runs of this job.
    pub job_id: Option<JobId>,
    /// Runs in one of these statuses.
    pub statuses: Vec<RunStatus>,
    /// Queued at or after.
    pub since: Option<DateTime<Utc>>,
    /// Queued before.
    pub until: Option<DateTime<Utc>>,
}

/// Device result filters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResultFilter {
    /// Of this run.
    pub run_id: Option<RunId>,
    /// Of this job.
    pub job_id: Option<JobId>,
    /// Of this device.
    pub device_id: Option<DeviceId>,
    /// With this status.
    pub status: Option<DeviceStatus>,
    /// Finished at or after.
    pub since: Option<DateTime<Utc>>,
    /// Finished before.
    pub until: Option<DateTime<Utc>>,
}

/// Log filters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogFilter {
    /// Of this run.
    pub run_id: Option<RunId>,
    /// Of this job.
    pub job_id: Option<JobId>,
    /// Of this device.
    pub device_id: Option<DeviceId>,
    /// At this level or above.
    pub min_level: Option<LogLevel>,
    /// Of this kind.
    pub kind: Option<LogKind>,
    /// From this source.
    pub source: Option<String>,
    /// At or after.
    pub since: Option<DateTime<Utc>>,
    /// Before.
    pub until: Option<DateTime<Utc>>,
    /// Message contains (case-insensitive, literal).
    pub search: Option<String>,
    /// Only entries with an id greater than this (live streams).
    pub after_id: Option<i64>,
    /// Sort order by (time, id).
    pub order: Order,
}

/// Job list filters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobFilter {
    /// Name contains.
    pub name: Option<String>,
    /// Enabled or not.
    pub enabled: Option<bool>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_ips_or_dns_names() {
        for ok in [
            "10.0.0.1",
            "::1",
            "fe80::1",
            "router-1",
            "core1.lab.example.com",
            "a.b.",
        ] {
            assert!(validate_address(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "not an address!",
            "-a.b",
            "a-.b",
            "a..b",
            "999.1.1.1",
            "1.2.3",
            "a_b",
            "x/y",
        ] {
            assert!(validate_address(bad).is_err(), "{bad}");
        }
        assert!(validate_address(&"a".repeat(64)).is_err());
    }

    #[test]
    fn final_status_rules() {
        let mut c = RunCounts {
            total: 3,
            ..Default::default()
        };
        c.succeeded = 3;
        assert_eq!(c.final_status(), RunStatus::CompletedSuccess);
        c.succeeded = 1;
        c.failed = 2;
        assert_eq!(c.final_status(), RunStatus::CompletedPartialFailure);
        c.succeeded = 0;
        c.failed = 3;
        assert_eq!(c.final_status(), RunStatus::CompletedFailure);
        assert_eq!(
            RunCounts::default().final_status(),
            RunStatus::CompletedNoDevices
        );
    }

    #[test]
    fn job_json_round_trip_and_unknown_fields_rejected() {
        let j = Job::backup(
            "nightly",
            Targets {
                device_ids: vec![1],
                tags: vec!["core".into()],
            },
        );
        let s = serde_json::to_string(&j).unwrap();
        let back: Job = serde_json::from_str(&s).unwrap();
        assert_eq!(back, j);
        let bad = r#"{"name":"x","kind":{"type":"backup"},"schedule":{"type":"manual"},"bogus":1}"#;
        assert!(serde_json::from_str::<Job>(bad).is_err());
    }

    #[test]
    fn paged_counts_pages() {
        let p: Paged<u8> = Paged::new(vec![], 101, Page::new(1, 50));
        assert_eq!(p.pages, 3);
    }

    #[test]
    fn names_reject_control_and_paths() {
        assert!(validate_name("hostname", "r1").is_ok());
        assert!(validate_name("hostname", "../etc").is_err());
        assert!(validate_name("hostname", "a\nb").is_err());
        assert!(validate_name("hostname", "").is_err());
    }
}
