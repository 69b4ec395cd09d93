//! Configuration of a NetRaven process (feature `config`): a TOML file plus `NETRAVEN_*`
//! environment overrides ([`ENV_VARS`]), and the [`Builder`] it describes
//! ([`Config::builder`]). Every setting has a default; with no file at all a process runs
//! embedded (SQLite, the in-process queue, a git repository and a key file under
//! `./netraven-data`, the API on 127.0.0.1:8000).

use crate::{Builder, Netraven};
use netraven_core::engine::EngineConfig;
use netraven_core::logging::LogFormat;
use netraven_core::maintenance::MaintenanceConfig;
use netraven_core::netpolicy::AddressPolicy;
use netraven_core::prelude::{Error, Result};
use netraven_core::zones::ZoneWatchConfig;
use netraven_drivers::SshOptions;
use netraven_store::git::GitWriterConfig;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Errors reading configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML for this schema.
    #[error("invalid configuration in {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// An environment override has a bad value.
    #[error("invalid value for {var}: {message}")]
    Env {
        /// The variable.
        var: String,
        /// What is wrong.
        message: String,
    },
}

/// The whole configuration.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Directory for the embedded database, git repository, key files. Default `./netraven-data`.
    pub data_dir: PathBuf,
    /// REST API.
    pub api: ApiConfig,
    /// Store.
    pub database: DatabaseConfig,
    /// Queue.
    pub queue: QueueConfig,
    /// Git snapshot repository.
    pub git: GitConfig,
    /// Workers.
    pub worker: WorkerConfig,
    /// Scheduler.
    pub scheduler: SchedulerSettings,
    /// Secrets at rest.
    pub security: SecurityConfig,
    /// Extra platform files (`*.toml`), overriding built-ins by name.
    pub platforms_dir: Option<PathBuf>,
    /// Logging: format and retention (`[log]` or `[logs]`).
    #[serde(alias = "log")]
    pub logs: LogConfig,
    /// Notifications: webhooks and e-mail (`[notify]`, used with the feature `integrations`).
    pub notify: netraven_core::notify::NotifySettings,
    /// The syslog listener (`[syslog]`): configuration changes reported by devices queue a
    /// backup of them. Off unless `listen` is set.
    pub syslog: netraven_core::triggers::SyslogSettings,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from("./netraven-data"),
            api: ApiConfig::default(),
            database: DatabaseConfig::default(),
            queue: QueueConfig::default(),
            git: GitConfig::default(),
            worker: WorkerConfig::default(),
            scheduler: SchedulerSettings::default(),
            security: SecurityConfig::default(),
            platforms_dir: None,
            logs: LogConfig::default(),
            notify: Default::default(),
            syslog: Default::default(),
        }
    }
}

/// REST API settings.
#[derive(Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ApiConfig {
    /// Listen address. Default `127.0.0.1:8000`.
    pub listen: String,
    /// JWT signing secret; default: generated once into `<data_dir>/jwt.secret` (mode 0600).
    pub jwt_secret: Option<String>,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            listen: "127.0.0.1:8000".into(),
            jwt_secret: None,
        }
    }
}

/// Store settings.
#[derive(Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseConfig {
    /// `postgres://…` for PostgreSQL; unset for SQLite at `<data_dir>/netraven.db`.
    pub url: Option<String>,
    /// PostgreSQL schema NetRaven's tables live in. Default `netraven`.
    pub schema: String,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        DatabaseConfig {
            url: None,
            schema: "netraven".into(),
        }
    }
}

/// Queue settings.
#[derive(Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct QueueConfig {
    /// `redis://…` for the Redis queue; unset for the in-process queue (single process only).
    pub redis_url: Option<String>,
    /// Key prefix of this deployment in Redis. Default `netraven`.
    pub prefix: String,
    /// Hours dead (poison) tasks are kept, for inspection, before maintenance removes them.
    /// Default 168 (7 days).
    pub dead_retention_hours: u64,
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig {
            redis_url: None,
            prefix: "netraven".into(),
            dead_retention_hours: 168,
        }
    }
}

/// Git settings.
#[derive(Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(default, deny_unknown_fields)]
pub struct GitConfig {
    /// Bare repository path; default `<data_dir>/configs.git`.
    pub repo: Option<PathBuf>,
    /// Remote (URL or name) to push to after each commit, with the `git` command line; unset
    /// (the default) pushes nothing.
    pub push_remote: Option<String>,
}

/// Worker settings.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct WorkerConfig {
    /// Devices worked on at once per worker process. Default 100.
    pub concurrency: usize,
    /// Deadline for one device in seconds. Default 180.
    pub device_timeout_secs: u64,
    /// Deadline for a login in seconds. Default 30.
    pub connect_timeout_secs: u64,
    /// Deadline for one command in seconds. Default 60.
    pub command_timeout_secs: u64,
    /// Attempts for a device failing with a retryable error. Default 2.
    pub attempts: u32,
    /// Seconds before a retry. Default 30.
    pub retry_backoff_secs: u64,
    /// Seconds in-flight devices may finish on shutdown. Default 30.
    pub shutdown_grace_secs: u64,
    /// Queue lease length in seconds: a task whose worker died is delivered again this long
    /// after its last heartbeat (the lease is extended every third of it). Default 60.
    pub lease_secs: u64,
    /// Largest output of one device command in bytes; past it the device fails with
    /// `too_large` and nothing of the output is kept. Default 64 MiB.
    pub max_output_bytes: u64,
    /// Poison tasks: a task that failed (an error, a panic) this many times, or whose workers
    /// died on it this many times, goes to the dead set once and its device is recorded as
    /// failed (its run as failed, for a run's start). Default 5.
    pub max_task_failures: u32,
    /// The zone a `netraven worker` process takes device tasks from (`--zone`); unset: the
    /// default zone. `serve` always works on the default zone. `a-z`, `0-9`, `_`, `-`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
    /// Seconds a named zone may have queued device tasks and no live worker before those
    /// devices fail with `no_worker` (checked by the scheduler's maintenance). Default 300.
    pub zone_timeout_secs: u64,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig {
            concurrency: 100,
            device_timeout_secs: 180,
            connect_timeout_secs: 30,
            command_timeout_secs: 60,
            attempts: 2,
            retry_backoff_secs: 30,
            shutdown_grace_secs: 30,
            lease_secs: 60,
            max_output_bytes: 64 * 1024 * 1024,
            max_task_failures: netraven_core::queue::DEFAULT_MAX_FAILURES,
            zone: None,
            zone_timeout_secs: 300,
        }
    }
}

/// Scheduler settings.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct SchedulerSettings {
    /// Seconds between ticks. Default 5.
    pub tick_secs: u64,
}

impl Default for SchedulerSettings {
    fn default() -> Self {
        SchedulerSettings { tick_secs: 5 }
    }
}

/// Security settings: secrets at rest and the device address policy.
#[derive(Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct SecurityConfig {
    /// Base64 AES-256 key for credential secrets; default: `<data_dir>/secret.key` (generated
    /// once, mode 0600 — only with SQLite and the embedded queue: with PostgreSQL or Redis a
    /// missing key stops the process).
    pub encryption_key: Option<String>,
    /// Key file path instead of the default.
    pub key_file: Option<PathBuf>,
    /// Networks (CIDR) devices may be at; empty (the default): everything but link-local and
    /// cloud metadata addresses (see `netraven_core::netpolicy`), and loopback unless
    /// `allow_loopback`.
    pub allowed_networks: Vec<String>,
    /// Allow devices on the loopback interface (labs, the simulator, SSH tunnels on the host).
    /// Default true: only someone with a shell on the server's host can listen there (see
    /// docs/security.md); production servers without such devices should set it false.
    pub allow_loopback: bool,
    /// Regexes a non-admin's command-job commands must match (each command, one of them);
    /// empty (the default): `^show `, `^display `, `^get `.
    pub allowed_commands: Vec<String>,
}

impl Default for SecurityConfig {
    fn default() -> Self {
        SecurityConfig {
            encryption_key: None,
            key_file: None,
            allowed_networks: Vec::new(),
            allow_loopback: true,
            allowed_commands: Vec::new(),
        }
    }
}

/// Prints `Some("********")` for a set secret, so `{:?}` of a configuration shows which
/// secrets are set but never their values.
fn masked(s: &Option<String>) -> Option<&'static str> {
    s.as_ref().map(|_| "********")
}

fn masked_url(s: &Option<String>) -> Option<String> {
    s.as_deref().map(netraven_core::secret::mask_url)
}

impl std::fmt::Debug for ApiConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiConfig")
            .field("listen", &self.listen)
            .field("jwt_secret", &masked(&self.jwt_secret))
            .finish()
    }
}

impl std::fmt::Debug for DatabaseConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatabaseConfig")
            .field("url", &masked_url(&self.url))
            .field("schema", &self.schema)
            .finish()
    }
}

impl std::fmt::Debug for QueueConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueueConfig")
            .field("redis_url", &masked_url(&self.redis_url))
            .field("prefix", &self.prefix)
            .finish()
    }
}

impl std::fmt::Debug for GitConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GitConfig")
            .field("repo", &self.repo)
            .field("push_remote", &masked_url(&self.push_remote))
            .finish()
    }
}

impl std::fmt::Debug for SecurityConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecurityConfig")
            .field("encryption_key", &masked(&self.encryption_key))
            .field("key_file", &self.key_file)
            .field("allowed_networks", &self.allowed_networks)
            .field("allow_loopback", &self.allow_loopback)
            .field("allowed_commands", &self.allowed_commands)
            .finish()
    }
}

/// Logging settings.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// Logs older than this many days are pruned by the scheduler leader. Default 30.
    pub retention_days: u32,
    /// Process log lines: `text` (default; coloured only on a terminal) or `json` (one object
    /// per line for log shippers).
    pub format: LogFormat,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            retention_days: 30,
            format: LogFormat::Text,
        }
    }
}

/// The environment overrides: each variable and the setting (its path in the file) it sets.
pub const ENV_VARS: &[(&str, &str)] = &[
    ("NETRAVEN_DATA_DIR", "data_dir"),
    ("NETRAVEN_API_LISTEN", "api.listen"),
    ("NETRAVEN_JWT_SECRET", "api.jwt_secret"),
    ("NETRAVEN_DATABASE_URL", "database.url"),
    ("NETRAVEN_DATABASE_SCHEMA", "database.schema"),
    ("NETRAVEN_REDIS_URL", "queue.redis_url"),
    ("NETRAVEN_QUEUE_PREFIX", "queue.prefix"),
    ("NETRAVEN_GIT_REPO", "git.repo"),
    ("NETRAVEN_GIT_PUSH_REMOTE", "git.push_remote"),
    ("NETRAVEN_WORKER_CONCURRENCY", "worker.concurrency"),
    ("NETRAVEN_DEVICE_TIMEOUT_SECS", "worker.device_timeout_secs"),
    ("NETRAVEN_WORKER_LEASE_SECS", "worker.lease_secs"),
    ("NETRAVEN_SCHEDULER_TICK_SECS", "scheduler.tick_secs"),
    ("NETRAVEN_ENCRYPTION_KEY", "security.encryption_key"),
    ("NETRAVEN_KEY_FILE", "security.key_file"),
    ("NETRAVEN_ALLOW_LOOPBACK", "security.allow_loopback"),
    ("NETRAVEN_MAX_OUTPUT_BYTES", "worker.max_output_bytes"),
    ("NETRAVEN_WORKER_ZONE", "worker.zone"),
    ("NETRAVEN_ZONE_TIMEOUT_SECS", "worker.zone_timeout_secs"),
    ("NETRAVEN_PLATFORMS_DIR", "platforms_dir"),
    ("NETRAVEN_LOG_RETENTION_DAYS", "logs.retention_days"),
    ("NETRAVEN_LOG_FORMAT", "logs.format"),
    ("NETRAVEN_SYSLOG_LISTEN", "syslog.listen"),
];

impl Config {
    /// Reads `path` (if given) and applies the [`ENV_VARS`] overrides found in `env`.
    pub fn load(
        path: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let mut cfg = match path {
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(|source| ConfigError::Read {
                    path: p.to_path_buf(),
                    source,
                })?;
                toml::from_str(&text).map_err(|e| ConfigError::Parse {
                    path: p.to_path_buf(),
                    message: parse_message(&e, &text),
                })?
            }
            None => Config::default(),
        };
        for (var, value) in env {
            if let Some((_, key)) = ENV_VARS.iter().find(|(v, _)| *v == var) {
                cfg = cfg
                    .with_setting(key, &value)
                    .map_err(|message| ConfigError::Env {
                        var: var.clone(),
                        message,
                    })?;
            }
        }
        Ok(cfg)
    }

    /// This configuration with the setting at `key` (a path such as `worker.concurrency`) set
    /// from text: a number where the setting is a number, else the text itself.
    fn with_setting(&self, key: &str, value: &str) -> Result<Config, String> {
        let mut root = toml::Value::try_from(self).map_err(|e| e.to_string())?;
        let (parents, leaf) = key.rsplit_once('.').unwrap_or(("", key));
        let mut table = &mut root;
        for part in parents.split('.').filter(|p| !p.is_empty()) {
            table = table
                .get_mut(part)
                .ok_or_else(|| format!("no section '{part}'"))?;
        }
        let table = table
            .as_table_mut()
            .ok_or_else(|| format!("'{parents}' is not a section"))?;
        let new = match table.get(leaf) {
            Some(toml::Value::Integer(_)) => value
                .trim()
                .parse()
                .map(toml::Value::Integer)
                .map_err(|_| format!("'{value}' is not a number"))?,
            Some(toml::Value::Boolean(_)) => match value.trim() {
                "true" | "1" | "yes" => toml::Value::Boolean(true),
                "false" | "0" | "no" => toml::Value::Boolean(false),
                _ => return Err(format!("'{value}' is not true or false")),
            },
            _ => toml::Value::String(value.to_string()),
        };
        table.insert(leaf.to_string(), new);
        root.try_into()
            .map_err(|e: toml::de::Error| e.message().to_string())
    }

    /// The git repository path.
    pub fn git_repo(&self) -> PathBuf {
        self.git
            .repo
            .clone()
            .unwrap_or_else(|| self.data_dir.join("configs.git"))
    }

    /// The key file path.
    pub fn key_file(&self) -> PathBuf {
        self.security
            .key_file
            .clone()
            .unwrap_or_else(|| self.data_dir.join("secret.key"))
    }

    /// The device address policy (`security.allowed_networks`, `security.allow_loopback`).
    pub fn address_policy(&self) -> Result<AddressPolicy> {
        Ok(
            AddressPolicy::with_networks(&self.security.allowed_networks)
                .map_err(|e| e.context("security.allowed_networks"))?
                .allow_loopback(self.security.allow_loopback),
        )
    }

    /// Engine settings (zero durations and counts raised to their minimum); fails on a bad
    /// `security.allowed_networks` entry.
    pub fn engine_config(&self) -> Result<EngineConfig> {
        let w = &self.worker;
        let secs = |s: u64| Duration::from_secs(s.max(1));
        if let Some(z) = &w.zone {
            netraven_core::model::validate_zone(z).map_err(|e| e.context("worker.zone"))?;
        }
        Ok(EngineConfig {
            concurrency: w.concurrency.max(1),
            device_timeout: secs(w.device_timeout_secs),
            connect_timeout: secs(w.connect_timeout_secs),
            command_timeout: secs(w.command_timeout_secs),
            device_attempts: w.attempts.max(1),
            retry_backoff: Duration::from_secs(w.retry_backoff_secs),
            shutdown_grace: Duration::from_secs(w.shutdown_grace_secs),
            lease: secs(w.lease_secs),
            max_deliveries: w.max_task_failures.max(1),
            address_policy: self.address_policy()?,
            zone: w.zone.clone(),
            ..EngineConfig::default()
        })
    }

    /// The library builder for this configuration (store, queue, key, git, platforms, engine,
    /// scheduler and maintenance settings), for a process in `role` (named in leases and logs).
    pub fn builder(&self, role: &str) -> Result<Builder> {
        let mut git = GitWriterConfig::new(self.git_repo());
        git.push_remote = self.git.push_remote.clone();
        let mut b = Netraven::builder()
            .data_dir(&self.data_dir)
            .encryption_key(self.security.encryption_key.clone())
            .key_file(self.key_file())
            .git_config(git)
            .platform_dir(self.platforms_dir.clone())
            .engine_config(self.engine_config()?)
            .ssh_options(SshOptions {
                max_output_bytes: usize::try_from(self.worker.max_output_bytes.max(1024))
                    .unwrap_or(usize::MAX),
                ..SshOptions::default()
            })
            .scheduler_tick(Duration::from_secs(self.scheduler.tick_secs.max(1)))
            .maintenance_config(MaintenanceConfig {
                log_retention: Duration::from_secs(u64::from(self.logs.retention_days) * 86_400),
                dead_retention: Duration::from_secs(self.queue.dead_retention_hours * 3600),
                zones: ZoneWatchConfig {
                    zone_timeout: Duration::from_secs(self.worker.zone_timeout_secs.max(1)),
                    ..ZoneWatchConfig::default()
                },
                ..MaintenanceConfig::default()
            })
            .role(role);
        match &self.database.url {
            Some(url) if url.starts_with("postgres") => b = b.postgres(url, &self.database.schema),
            Some(url) => {
                return Err(Error::invalid(format!(
                    "database.url must be a postgres:// URL (got '{}'); leave it unset for SQLite",
                    netraven_core::secret::mask_url(url)
                )));
            }
            None => {}
        }
        if let Some(url) = &self.queue.redis_url {
            b = b.redis(url, &self.queue.prefix);
        }
        Ok(b)
    }

    /// The effective configuration as TOML with every secret masked (`netraven config check`).
    pub fn masked_toml(&self) -> String {
        let mut c = self.clone();
        let mask = |s: &mut Option<String>| {
            if s.is_some() {
                *s = Some("********".into());
            }
        };
        mask(&mut c.api.jwt_secret);
        mask(&mut c.security.encryption_key);
        c.database.url = masked_url(&c.database.url);
        c.queue.redis_url = masked_url(&c.queue.redis_url);
        c.git.push_remote = masked_url(&c.git.push_remote);
        // Chat webhook URLs carry their token in the path: masked whole.
        for w in &mut c.notify.webhooks {
            w.url = "********".into();
            mask(&mut w.secret);
        }
        if let Some(e) = &mut c.notify.email {
            mask(&mut e.password);
        }
        toml::to_string_pretty(&c).unwrap_or_else(|e| format!("# cannot render: {e}\n"))
    }
}

/// Replaces the password of a URL with `********` (a URL parser's view; see
/// [`netraven_core::secret::mask_url`]).
pub fn mask_url_password(url: &str) -> String {
    netraven_core::secret::mask_url(url)
}

/// A TOML error without the offending line: the parser's own rendering quotes the line, which
/// may hold a secret (`jwt_secret = "…` with a missing quote). Only the message and the
/// position are kept.
fn parse_message(e: &toml::de::Error, text: &str) -> String {
    match e.span() {
        Some(span) => {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
            format!("{} (line {line}, column {column})", e.message())
        }
        None => e.message().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_file_means_embedded_defaults() {
        let c = Config::load(None, Vec::new()).unwrap();
        assert_eq!(c.api.listen, "127.0.0.1:8000");
        assert!(c.database.url.is_none() && c.queue.redis_url.is_none());
        assert_eq!(c.git_repo(), PathBuf::from("./netraven-data/configs.git"));
    }

    #[test]
    fn env_overrides_and_masking() {
        let env = vec![
            (
                "NETRAVEN_DATABASE_URL".to_string(),
                "postgres://u:hunter2@db/x".to_string(),
            ),
            ("NETRAVEN_WORKER_CONCURRENCY".to_string(), "7".to_string()),
            (
                "NETRAVEN_ENCRYPTION_KEY".to_string(),
                "c2VjcmV0".to_string(),
            ),
        ];
        let c = Config::load(None, env).unwrap();
        assert_eq!(c.worker.concurrency, 7);
        let shown = c.masked_toml();
        assert!(!shown.contains("hunter2") && !shown.contains("c2VjcmV0"));
        assert!(shown.contains("postgres://u:********@db/x"));
        let bad = Config::load(
            None,
            vec![("NETRAVEN_WORKER_CONCURRENCY".into(), "x".into())],
        );
        assert!(bad.is_err());
    }

    #[test]
    fn worker_zone_from_env_and_file() {
        let c = Config::load(
            None,
            vec![
                ("NETRAVEN_WORKER_ZONE".into(), "plant-1".into()),
                ("NETRAVEN_ZONE_TIMEOUT_SECS".into(), "42".into()),
            ],
        )
        .unwrap();
        assert_eq!(c.worker.zone.as_deref(), Some("plant-1"));
        assert_eq!(c.worker.zone_timeout_secs, 42);
        assert_eq!(c.engine_config().unwrap().zone.as_deref(), Some("plant-1"));
        assert_eq!(Config::default().worker.zone_timeout_secs, 300);
        assert_eq!(Config::default().engine_config().unwrap().zone, None);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "[worker]\nzone = \"Bad Zone\"\n").unwrap();
        let bad = Config::load(Some(&path), Vec::<(String, String)>::new()).unwrap();
        let e = bad.engine_config().expect_err("a bad zone name is refused");
        assert!(e.to_string().contains("worker.zone"), "{e}");
    }

    #[test]
    fn debug_prints_no_secret_and_parse_errors_do_not_echo_lines() {
        let mut c = Config::default();
        c.api.jwt_secret = Some("jwt-canary-0123456789abcdef0123456789".into());
        c.security.encryption_key = Some("key-canary".into());
        c.database.url = Some("postgres://u:pg-canary@db/x".into());
        c.queue.redis_url = Some("redis://:redis-canary@cache:6379".into());
        c.git.push_remote = Some("https://bot:git-canary@git.example/r.git".into());
        let shown = format!("{c:?} {c:#?}");
        for canary in [
            "jwt-canary",
            "key-canary",
            "pg-canary",
            "redis-canary",
            "git-canary",
        ] {
            assert!(!shown.contains(canary), "{canary} in {shown}");
        }
        assert!(shown.contains("postgres://u:********@db/x"));
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.toml");
        std::fs::write(&p, "[api]\njwt_secret = \"line-canary-unterminated\n").unwrap();
        let e = Config::load(Some(&p), Vec::new()).unwrap_err().to_string();
        assert!(!e.contains("line-canary"), "{e}");
        assert!(e.contains("line 2"), "{e}");
        std::fs::write(&p, "[api]\njwt_secret = 12\n[api]\nx = \"dup-canary\"\n").unwrap();
        let e = Config::load(Some(&p), Vec::new()).unwrap_err().to_string();
        assert!(!e.contains("dup-canary"), "{e}");
    }

    #[test]
    fn address_policy_from_the_security_section() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.toml");
        std::fs::write(&p, "[security]\nallowed_networks = [\"10.0.0.0/8\"]\n").unwrap();
        let c = Config::load(Some(&p), Vec::new()).unwrap();
        let policy = c.engine_config().unwrap().address_policy;
        assert!(policy.check_ip("10.1.2.3".parse().unwrap()).is_ok());
        assert!(policy.check_ip("192.168.1.1".parse().unwrap()).is_err());
        let d = Config::default().address_policy().unwrap();
        assert!(
            d.check_ip("127.0.0.1".parse().unwrap()).is_ok(),
            "loopback allowed by default"
        );
        assert!(d.check_ip("169.254.169.254".parse().unwrap()).is_err());
        let mut prod = Config::default();
        prod.security.allow_loopback = false;
        assert!(
            prod.address_policy()
                .unwrap()
                .check_ip("127.0.0.1".parse().unwrap())
                .is_err()
        );
        let mut lab = Config::default();
        lab.security.allowed_networks = vec!["10.0.0.0/99".into()];
        assert!(lab.builder("cli").is_err());
        let env = vec![("NETRAVEN_ALLOW_LOOPBACK".to_string(), "false".to_string())];
        assert!(!Config::load(None, env).unwrap().security.allow_loopback);
    }

    #[test]
    fn log_format_from_file_and_env() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.toml");
        std::fs::write(&p, "[log]\nformat = \"json\"\n").unwrap();
        assert_eq!(
            Config::load(Some(&p), Vec::new()).unwrap().logs.format,
            LogFormat::Json
        );
        let env = vec![("NETRAVEN_LOG_FORMAT".to_string(), "text".to_string())];
        assert_eq!(
            Config::load(Some(&p), env).unwrap().logs.format,
            LogFormat::Text
        );
        let bad = vec![("NETRAVEN_LOG_FORMAT".to_string(), "xml".to_string())];
        assert!(Config::load(None, bad).is_err());
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let dir = std::env::temp_dir().join(format!("nrcfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("c.toml");
        std::fs::write(&p, "[api]\nlisten = \"0.0.0.0:1\"\nbogus = 1\n").unwrap();
        assert!(matches!(
            Config::load(Some(&p), Vec::new()),
            Err(ConfigError::Parse { .. })
        ));
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn every_override_names_a_setting() {
        // A path that names no setting fails (unknown fields are refused), so "7" loads for
        // every variable but the format.
        for (var, key) in ENV_VARS {
            let c = Config::load(None, vec![(var.to_string(), "7".to_string())]);
            let text_ok = !matches!(*key, "logs.format" | "security.allow_loopback");
            assert_eq!(c.is_ok(), text_ok, "{var} -> {key}: {c:?}");
        }
        let c = Config::load(
            None,
            vec![
                ("NETRAVEN_JWT_SECRET".into(), "12345".into()),
                ("NETRAVEN_GIT_REPO".into(), "/srv/git".into()),
                ("NETRAVEN_UNRELATED".into(), "x".into()),
            ],
        )
        .unwrap();
        assert_eq!(
            c.api.jwt_secret.as_deref(),
            Some("12345"),
            "digits stay text"
        );
        assert_eq!(c.git_repo(), PathBuf::from("/srv/git"));
    }

    #[test]
    fn the_builder_refuses_a_non_postgres_database_url() {
        let mut c = Config::default();
        assert_eq!(c.engine_config().unwrap().concurrency, 100);
        c.worker.lease_secs = 0;
        assert_eq!(c.engine_config().unwrap().lease, Duration::from_secs(1));
        c.database.url = Some("mysql://u:hunter2@db/x".into());
        let e = c.builder("cli").err().unwrap();
        assert!(e.to_string().contains("postgres://") && !e.to_string().contains("hunter2"));
    }
}
