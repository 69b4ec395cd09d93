//! Platforms as data: one TOML file per platform (netmiko `device_type` names).
//!
//! A [`PlatformSpec`] is what a platform file holds; [`Platform`] is the compiled form (regexes
//! and normalisation [`Rules`]) that the SSH driver and the simulator use. The built-in files
//! live in `netraven-drivers/platforms/` and are embedded in the binary; users can add or
//! override platforms with files of the same form (see [`load_platform_dir`]).

use netraven_core::error::{Error, ErrorKind, Result};
use netraven_core::normalise::Rules;
use regex::Regex;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;

/// The built-in platform files: (file name, contents).
pub const BUILTIN_PLATFORM_FILES: &[(&str, &str)] = &[
    (
        "cisco_ios.toml",
        include_str!("../platforms/cisco_ios.toml"),
    ),
    (
        "arista_eos.toml",
        include_str!("../platforms/arista_eos.toml"),
    ),
    (
        "juniper_junos.toml",
        include_str!("../platforms/juniper_junos.toml"),
    ),
    ("linux.toml", include_str!("../platforms/linux.toml")),
];

/// A platform file, as written in TOML.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlatformSpec {
    /// netmiko `device_type` name, e.g. `cisco_ios`.
    pub name: String,
    /// Other names for the same platform, e.g. `cisco_xe`.
    #[serde(default)]
    pub aliases: Vec<String>,
    /// Free text.
    #[serde(default)]
    pub description: String,
    /// Regex matched against the last line of the output (ANSI codes removed): when it matches,
    /// the device is waiting for a command.
    pub prompt: String,
    /// Regex matched against the last line: a pager (`--More--`) waiting for a key.
    #[serde(default)]
    pub pager: Option<String>,
    /// What to send to a pager (default: a space).
    #[serde(default = "default_pager_reply")]
    pub pager_reply: String,
    /// Commands that turn paging off, sent after login (and enable).
    #[serde(default)]
    pub paging_off: Vec<String>,
    /// Regexes matched against each output line; a match means the device rejected the command.
    #[serde(default)]
    pub command_errors: Vec<String>,
    /// Command that ends the session.
    #[serde(default = "default_exit")]
    pub exit_command: String,
    /// Enable (privileged mode) step, for platforms that have one.
    #[serde(default)]
    pub enable: Option<EnableSpec>,
    /// The commands whose output makes a backup, in order.
    pub backup: Vec<BackupCommand>,
    /// Regexes of volatile lines (dropped before hashing and storing).
    #[serde(default)]
    pub volatile: Vec<String>,
    /// Secret rules: a regex and its replacement (`${1}`, `{marker}`).
    #[serde(default)]
    pub secrets: Vec<SecretSpec>,
    /// How the device simulator emulates this platform.
    #[serde(default)]
    pub sim: Option<SimSpec>,
}

fn default_pager_reply() -> String {
    " ".to_string()
}
fn default_exit() -> String {
    "exit".to_string()
}

/// The enable step.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnableSpec {
    /// The command, e.g. `enable`.
    pub command: String,
    /// Regex matched against the last line when the device asks for the enable secret.
    pub password_prompt: String,
    /// Regex matched against the prompt: when it matches, the session is not yet privileged.
    pub unprivileged_prompt: String,
}

/// One backup command.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackupCommand {
    /// The command.
    pub command: String,
    /// When set, every output line is prefixed with this (e.g. `! `), so the output becomes a
    /// comment header of the configuration.
    #[serde(default)]
    pub comment: Option<String>,
    /// When the device rejects this command (one of the platform's `command_errors`), leave its
    /// output out instead of failing the backup (e.g. `iptables-save` without root).
    #[serde(default)]
    pub optional: bool,
}

/// One secret rule.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretSpec {
    /// Regex matched against each line.
    pub pattern: String,
    /// Replacement; `${1}` names a capture group, `{marker}` the redaction marker.
    pub replace: String,
}

/// How the simulator emulates a platform. Templates may use `{hostname}`, `{user}`, `{i}` (block
/// number), `{i_hi}`/`{i_lo}` (block number split in two bytes), `{stamp}` (marks a volatile
/// line: a value that changes on every call), `{v}` (marks a volatile line, prints nothing), `{secret}` (marks a secret: a per-device value the
/// platform's secret rules must replace), `{rev}` (a revision that changes every K fetches when
/// that fault is set).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimSpec {
    /// The prompt, e.g. `{hostname}{mode}` with `{mode}` the mode suffix.
    pub prompt: String,
    /// Mode suffix before enable (absent: sessions start privileged).
    #[serde(default)]
    pub unprivileged: Option<String>,
    /// Mode suffix once privileged.
    pub privileged: String,
    /// Text the enable command prints before reading the secret.
    #[serde(default = "default_password_prompt")]
    pub password_prompt: String,
    /// Shown after login before the first prompt.
    #[serde(default)]
    pub banner: String,
    /// Pager text.
    #[serde(default = "default_more")]
    pub more: String,
    /// Text that erases the pager after a key press.
    #[serde(default = "default_more_erase")]
    pub more_erase: String,
    /// Lines per page while paging is on.
    #[serde(default = "default_page_lines")]
    pub page_lines: usize,
    /// Reply to an unknown command.
    pub invalid: String,
    /// Output templates by command; `{config}` expands to the generated configuration.
    pub commands: BTreeMap<String, String>,
    /// The configuration generator.
    pub config: SimConfigSpec,
}

fn default_password_prompt() -> String {
    "Password: ".to_string()
}
fn default_more() -> String {
    " --More-- ".to_string()
}
fn default_more_erase() -> String {
    "\u{8}\u{8}\u{8}\u{8}\u{8}\u{8}\u{8}\u{8}\u{8}\u{8}          \u{8}\u{8}\u{8}\u{8}\u{8}\u{8}\u{8}\u{8}\u{8}\u{8}"
        .to_string()
}
fn default_page_lines() -> usize {
    24
}

/// The simulator's configuration generator: `head`, then `block` repeated until the
/// configuration reaches `default_size` bytes (or the size asked for), then `tail`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimConfigSpec {
    /// Text before the blocks.
    pub head: String,
    /// Repeated text.
    pub block: String,
    /// Text after the blocks.
    pub tail: String,
    /// Target size in bytes.
    pub default_size: usize,
}

/// A compiled platform.
#[derive(Debug, Clone)]
pub struct Platform {
    /// The file it came from, as parsed.
    pub spec: PlatformSpec,
    /// Prompt regex.
    pub prompt: Regex,
    /// Pager regex.
    pub pager: Option<Regex>,
    /// Enable password prompt regex.
    pub enable_password_prompt: Option<Regex>,
    /// Unprivileged prompt regex.
    pub unprivileged_prompt: Option<Regex>,
    /// Command error regexes.
    pub command_errors: Vec<Regex>,
    /// Normalisation rules.
    pub rules: Rules,
}

fn re(what: &str, platform: &str, p: &str) -> Result<Regex> {
    Regex::new(p).map_err(|e| {
        Error::new(
            ErrorKind::InvalidInput,
            format!("platform '{platform}': bad {what} regex '{p}'"),
        )
        .with_source(e)
    })
}

impl Platform {
    /// Parses and compiles a platform file.
    pub fn from_toml(text: &str) -> Result<Platform> {
        let spec: PlatformSpec = toml::from_str(text).map_err(|e| {
            Error::new(ErrorKind::InvalidInput, format!("bad platform file: {e}")).with_source(e)
        })?;
        Platform::compile(spec)
    }

    /// Compiles a parsed platform file.
    pub fn compile(spec: PlatformSpec) -> Result<Platform> {
        let n = spec.name.clone();
        netraven_core::model::validate_name("platform", &n)?;
        if spec.backup.is_empty() {
            return Err(Error::invalid(format!(
                "platform '{n}': at least one backup command is required"
            )));
        }
        let secrets: Vec<(&str, &str)> = spec
            .secrets
            .iter()
            .map(|s| (s.pattern.as_str(), s.replace.as_str()))
            .collect();
        let rules = Rules::new(&spec.volatile, &secrets).map_err(|e| e.context(&n))?;
        Ok(Platform {
            prompt: re("prompt", &n, &spec.prompt)?,
            pager: spec
                .pager
                .as_deref()
                .map(|p| re("pager", &n, p))
                .transpose()?,
            enable_password_prompt: spec
                .enable
                .as_ref()
                .map(|e| re("enable password prompt", &n, &e.password_prompt))
                .transpose()?,
            unprivileged_prompt: spec
                .enable
                .as_ref()
                .map(|e| re("unprivileged prompt", &n, &e.unprivileged_prompt))
                .transpose()?,
            command_errors: spec
                .command_errors
                .iter()
                .map(|p| re("command error", &n, p))
                .collect::<Result<_>>()?,
            rules,
            spec,
        })
    }

    /// The platform name.
    pub fn name(&self) -> &str {
        &self.spec.name
    }

    /// Whether a line of output says the command was rejected.
    pub fn is_command_error(&self, output: &str) -> Option<String> {
        if self.command_errors.is_empty() {
            return None;
        }
        output
            .lines()
            .find(|l| self.command_errors.iter().any(|r| r.is_match(l)))
            .map(|l| l.trim().chars().take(200).collect())
    }
}

/// The built-in platforms, compiled.
pub fn builtin_platforms() -> Result<Vec<Platform>> {
    BUILTIN_PLATFORM_FILES
        .iter()
        .map(|(file, text)| Platform::from_toml(text).map_err(|e| e.context(file)))
        .collect()
}

/// One built-in platform by name or alias.
pub fn builtin_platform(name: &str) -> Result<Platform> {
    builtin_platforms()?
        .into_iter()
        .find(|p| p.spec.name == name || p.spec.aliases.iter().any(|a| a == name))
        .ok_or_else(|| Error::invalid(format!("no built-in platform '{name}'")))
}

/// Loads every `*.toml` platform file of a directory, sorted by file name.
pub fn load_platform_dir(dir: &Path) -> Result<Vec<Platform>> {
    let rd = std::fs::read_dir(dir).map_err(|e| {
        Error::invalid(format!("cannot read platform directory {}", dir.display())).with_source(e)
    })?;
    let mut files = Vec::new();
    for entry in rd {
        let entry =
            entry.map_err(|e| Error::internal("reading platform directory").with_source(e))?;
        let p = entry.path();
        if p.extension().and_then(|e| e.to_str()) == Some("toml") {
            files.push(p);
        }
    }
    files.sort();
    files
        .iter()
        .map(|p| {
            let text = std::fs::read_to_string(p).map_err(|e| {
                Error::invalid(format!("cannot read {}", p.display())).with_source(e)
            })?;
            Platform::from_toml(&text).map_err(|e| e.context(p.display()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtins_load_and_prompts_match() {
        let ps = builtin_platforms().unwrap();
        assert_eq!(ps.len(), 4);
        let ios = builtin_platform("cisco_xe").unwrap();
        assert_eq!(ios.name(), "cisco_ios");
        assert!(ios.prompt.is_match("core-sw1.dc1#"));
        assert!(ios.prompt.is_match("r1(config-if)#"));
        assert!(!ios.prompt.is_match("# core-sw1# and lab-rtr> are"));
        let junos = builtin_platform("juniper_junos").unwrap();
        assert!(junos.prompt.is_match("admin@mx1> "));
        assert!(junos.pager.as_ref().unwrap().is_match("---(more 45%)---"));
        let linux = builtin_platform("linux").unwrap();
        assert!(linux.prompt.is_match("admin@web-01:~$ "));
        assert!(linux.prompt.is_match("[root@web-01 ~]# "));
    }

    #[test]
    fn ios_secrets_are_redacted() {
        let ios = builtin_platform("cisco_ios").unwrap();
        let raw = "enable secret 9 $9$abc\nusername a privilege 15 secret 9 $9$x\nsnmp-server community pub RO\n key 7 0822\ncrypto isakmp key s3 address 1.2.3.4\n neighbor 1.1.1.1 password 7 0011\n standby 1 authentication md5 key-string 7 AB\n vrrp 2 authentication text vv\n ip ospf message-digest-key 1 md5 7 CC\n pre-shared-key address 1.1.1.1 key kk\n";
        let n = ios.rules.normalise(raw).unwrap();
        for s in [
            "$9$abc", "$9$x", "pub", "0822", "s3", "0011", "AB", "vv", "CC", "kk",
        ] {
            assert!(!n.split_whitespace().any(|w| w == s), "{s} leaked in\n{n}");
        }
        assert!(n.contains("crypto isakmp key <removed> address 1.2.3.4"));
        assert!(n.contains("pre-shared-key address 1.1.1.1 key <removed>"));
    }
}
