//! Platforms as data: one TOML file per platform (netmiko `device_type` names).
//!
//! A [`PlatformSpec`] is what a platform file holds; [`Platform`] is the compiled form (regexes
//! and normalisation [`Rules`]) that the SSH driver and the simulator use. The built-in files
//! live in `netraven-drivers/platforms/` and are embedded in the binary; users can add or
//! override platforms with files of the same form (see [`load_platform_dir`]).

use crate::expect::prompt_base;
use netraven_core::error::{Error, ErrorKind, Result};
use netraven_core::normalise::{Rules, ScopedSecret};
use regex::Regex;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;

/// The built-in platform files: (file name, contents).
pub const BUILTIN_PLATFORM_FILES: &[(&str, &str)] = &[
    (
        "allied_telesis_awplus.toml",
        include_str!("../platforms/allied_telesis_awplus.toml"),
    ),
    (
        "arista_eos.toml",
        include_str!("../platforms/arista_eos.toml"),
    ),
    (
        "aruba_aoscx.toml",
        include_str!("../platforms/aruba_aoscx.toml"),
    ),
    ("aruba_os.toml", include_str!("../platforms/aruba_os.toml")),
    (
        "checkpoint_gaia.toml",
        include_str!("../platforms/checkpoint_gaia.toml"),
    ),
    (
        "ciena_saos.toml",
        include_str!("../platforms/ciena_saos.toml"),
    ),
    (
        "cisco_asa.toml",
        include_str!("../platforms/cisco_asa.toml"),
    ),
    (
        "cisco_ftd.toml",
        include_str!("../platforms/cisco_ftd.toml"),
    ),
    (
        "cisco_ios.toml",
        include_str!("../platforms/cisco_ios.toml"),
    ),
    (
        "cisco_nxos.toml",
        include_str!("../platforms/cisco_nxos.toml"),
    ),
    (
        "cisco_s300.toml",
        include_str!("../platforms/cisco_s300.toml"),
    ),
    (
        "cisco_wlc.toml",
        include_str!("../platforms/cisco_wlc.toml"),
    ),
    ("cisco_xr.toml", include_str!("../platforms/cisco_xr.toml")),
    (
        "cumulus_linux.toml",
        include_str!("../platforms/cumulus_linux.toml"),
    ),
    (
        "dell_os10.toml",
        include_str!("../platforms/dell_os10.toml"),
    ),
    ("dell_os6.toml", include_str!("../platforms/dell_os6.toml")),
    ("dell_os9.toml", include_str!("../platforms/dell_os9.toml")),
    ("dlink_ds.toml", include_str!("../platforms/dlink_ds.toml")),
    (
        "ericsson_ipos.toml",
        include_str!("../platforms/ericsson_ipos.toml"),
    ),
    (
        "extreme_exos.toml",
        include_str!("../platforms/extreme_exos.toml"),
    ),
    (
        "extreme_vsp.toml",
        include_str!("../platforms/extreme_vsp.toml"),
    ),
    ("f5_tmsh.toml", include_str!("../platforms/f5_tmsh.toml")),
    ("fortinet.toml", include_str!("../platforms/fortinet.toml")),
    (
        "hp_comware.toml",
        include_str!("../platforms/hp_comware.toml"),
    ),
    (
        "hp_procurve.toml",
        include_str!("../platforms/hp_procurve.toml"),
    ),
    ("huawei.toml", include_str!("../platforms/huawei.toml")),
    (
        "huawei_smartax.toml",
        include_str!("../platforms/huawei_smartax.toml"),
    ),
    (
        "juniper_junos.toml",
        include_str!("../platforms/juniper_junos.toml"),
    ),
    (
        "juniper_screenos.toml",
        include_str!("../platforms/juniper_screenos.toml"),
    ),
    ("linux.toml", include_str!("../platforms/linux.toml")),
    (
        "mikrotik_routeros.toml",
        include_str!("../platforms/mikrotik_routeros.toml"),
    ),
    (
        "nokia_sros.toml",
        include_str!("../platforms/nokia_sros.toml"),
    ),
    ("opengear.toml", include_str!("../platforms/opengear.toml")),
    ("opnsense.toml", include_str!("../platforms/opnsense.toml")),
    (
        "paloalto_panos.toml",
        include_str!("../platforms/paloalto_panos.toml"),
    ),
    ("pfsense.toml", include_str!("../platforms/pfsense.toml")),
    (
        "ruckus_fastiron.toml",
        include_str!("../platforms/ruckus_fastiron.toml"),
    ),
    (
        "sophos_sfos.toml",
        include_str!("../platforms/sophos_sfos.toml"),
    ),
    (
        "ubiquiti_edgerouter.toml",
        include_str!("../platforms/ubiquiti_edgerouter.toml"),
    ),
    (
        "ubiquiti_edgeswitch.toml",
        include_str!("../platforms/ubiquiti_edgeswitch.toml"),
    ),
    ("vyos.toml", include_str!("../platforms/vyos.toml")),
    (
        "watchguard_fireware.toml",
        include_str!("../platforms/watchguard_fireware.toml"),
    ),
    ("zyxel_os.toml", include_str!("../platforms/zyxel_os.toml")),
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
    /// The vendor, e.g. `Cisco` (shown by `netraven platforms list`).
    #[serde(default)]
    pub vendor: String,
    /// The OS releases the file follows, e.g. `IOS 15.x, IOS-XE 16.x-17.x` (documentation).
    #[serde(default)]
    pub os_versions: String,
    /// Regex matched against the last line of the output (ANSI codes removed): when it matches,
    /// the device is waiting for a command.
    pub prompt: String,
    /// Regex whose first capture group is the stable part of a prompt, for prompts that change
    /// while the session runs (an EXOS command counter, an unsaved-changes `*`). Without it, the
    /// base is the first prompt without its mode characters and later prompts must start with it.
    #[serde(default)]
    pub prompt_base: Option<String>,
    /// The characters a prompt of this platform ends with (`>`, `#`, `$`, `%` by default). When
    /// the `prompt` pattern does not match after login, the prompt is learned from the session
    /// (see [`crate::expect::PromptLearner`]) and must end in one of these.
    #[serde(default = "default_terminators")]
    pub prompt_terminators: Vec<String>,
    /// Multiplies every deadline of a session with a device of this platform (connect, login,
    /// each command, the whole device): slow exports (MikroTik `/export`) and huge
    /// configurations. A device's own `timeout_multiplier` replaces it. Default 1.
    #[serde(default)]
    pub timeout_multiplier: Option<f64>,
    /// Regexes of the syslog messages in which a device of this platform reports a
    /// configuration change (IOS `%SYS-5-CONFIG_I`, Junos `UI_COMMIT`); a named group `user`
    /// captures who made it. The syslog listener queues a backup of the device that sent one.
    #[serde(default)]
    pub config_change: Vec<String>,
    /// Regexes of the line of the raw backup that says who last changed the configuration
    /// (IOS `! Last configuration change at … by USER`); a named group `user` captures the
    /// name. Read before volatile lines are dropped; recorded with the snapshot and used as the
    /// git commit's author.
    #[serde(default)]
    pub change_author: Vec<String>,
    /// Appended to the login user name for the SSH authentication only (MikroTik reads terminal
    /// options from it: `+ct` turns colours and terminal detection off).
    #[serde(default)]
    pub username_suffix: Option<String>,
    /// Dialogue answered after login and before the first prompt (menus, "press any key",
    /// an in-shell `User:` prompt), in any order, each at most a few times.
    #[serde(default)]
    pub login: Vec<LoginStep>,
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
    /// Fetch the backup commands over SSH exec channels (`ssh host command`: one `exec`
    /// request per command, no PTY, no prompt matching, no paging commands) instead of the
    /// interactive shell, for devices that run a command given that way (Linux, Junos, EOS,
    /// NX-OS). A device that refuses the exec request is backed up over the shell instead
    /// (for that session, logged). Not with an in-shell `login` dialogue or `discard`
    /// commands (each exec runs in a fresh context). Telnet devices always use the shell.
    #[serde(default)]
    pub exec_channel: bool,
    /// Appended to every command sent over an exec channel (Junos ` | no-more`).
    #[serde(default)]
    pub exec_suffix: String,
    /// The commands whose output makes a backup, in order.
    pub backup: Vec<BackupCommand>,
    /// Regexes of volatile lines (dropped before hashing and storing).
    #[serde(default)]
    pub volatile: Vec<String>,
    /// Secret rules: a regex and its replacement (`${1}`, `{marker}`). A file must have at
    /// least one (or a `[[secret_blocks]]`), or say `secrets = "none"` explicitly: a platform
    /// that forgot its rules would store every password it is shown.
    #[serde(default)]
    pub secrets: Vec<SecretSpec>,
    /// Set by `secrets = "none"` in the file: the platform's output holds no secrets.
    #[serde(skip)]
    pub no_secrets: bool,
    /// Multi-line secrets (PEM private keys): every line between a `begin` and an `end` match
    /// becomes one marker line.
    #[serde(default)]
    pub secret_blocks: Vec<SecretBlock>,
    /// How the device simulator emulates this platform.
    #[serde(default)]
    pub sim: Option<SimSpec>,
}

/// A user name a device reported worth recording: 1 to 64 characters, letters, digits and
/// `._@+-\$` only (device text is untrusted).
pub fn valid_user_name(u: &str) -> bool {
    !u.is_empty()
        && u.len() <= 64
        && u.chars()
            .all(|c| c.is_alphanumeric() || "._@+-\\$".contains(c))
}

/// The prompt terminators of a platform file that names none.
pub fn default_terminators() -> Vec<String> {
    [">", "#", "$", "%"].iter().map(|s| s.to_string()).collect()
}

fn default_pager_reply() -> String {
    " ".to_string()
}
fn default_exit() -> String {
    "exit".to_string()
}

/// One step of the login dialogue.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginStep {
    /// Regex matched against the last line.
    pub expect: String,
    /// What to send (a newline is appended): literal text, `{username}` or `{password}`.
    pub send: String,
}

/// The enable step.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnableSpec {
    /// The command, e.g. `enable`.
    pub command: String,
    /// Regex matched against the last line when the device asks for a user name first
    /// (ProCurve with local manager accounts); the login user name is sent.
    #[serde(default)]
    pub username_prompt: Option<String>,
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
    /// Run for its effect only (e.g. FortiOS `config global` before the global `get`
    /// commands): its output is not part of the backup.
    #[serde(default)]
    pub discard: bool,
}

/// One secret rule.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretSpec {
    /// Regex matched against each line.
    pub pattern: String,
    /// Replacement; `${1}` names a capture group, `{marker}` the redaction marker.
    pub replace: String,
    /// When set, the rule applies only inside sections starting at a line matching this regex
    /// (up to the next line indented no deeper), e.g. FortiOS `config system snmp community`.
    #[serde(default)]
    pub within: Option<String>,
    /// With `within`: the regex of the line that ends the section (default: the next line
    /// indented no deeper than the opening one).
    #[serde(default)]
    pub until: Option<String>,
}

/// A multi-line secret.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretBlock {
    /// Regex of the line that opens the block (kept).
    pub begin: String,
    /// Regex of the line that closes it (kept).
    pub end: String,
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
    /// Whether enable asks for a secret (SmartAX and others switch mode without one).
    #[serde(default = "default_true")]
    pub enable_password: bool,
    /// Text the enable command prints first to ask for a user name (ProCurve).
    #[serde(default)]
    pub enable_username_prompt: Option<String>,
    /// In-shell login dialogue, after the banner and before the first prompt.
    #[serde(default)]
    pub login: Vec<SimLoginStep>,
    /// Shown after login before the first prompt.
    #[serde(default)]
    pub banner: String,
    /// Pager text.
    #[serde(default = "default_more")]
    pub more: String,
    /// Text that erases the pager after a key press.
    #[serde(default = "default_more_erase")]
    pub more_erase: String,
    /// Lines per page while paging is on (0: the device never pages).
    #[serde(default = "default_page_lines")]
    pub page_lines: usize,
    /// Reply to an unknown command.
    pub invalid: String,
    /// Output templates by command; `{config}` expands to the generated configuration.
    pub commands: BTreeMap<String, String>,
    /// The configuration generator.
    pub config: SimConfigSpec,
}

fn default_true() -> bool {
    true
}

/// One step of the simulator's in-shell login dialogue: print `prompt`, read a line.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimLoginStep {
    /// What the device prints.
    pub prompt: String,
    /// The line it accepts: literal text, `{user}` or `{password}`; absent: any line
    /// (a key press).
    #[serde(default)]
    pub answer: Option<String>,
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
    pub prompt: SharedRegex,
    /// Pager regex.
    pub pager: Option<SharedRegex>,
    /// Enable password prompt regex.
    pub enable_password_prompt: Option<SharedRegex>,
    /// Unprivileged prompt regex.
    pub unprivileged_prompt: Option<SharedRegex>,
    /// Command error regexes.
    pub command_errors: Vec<Regex>,
    /// All of `command_errors` in one multi-line pattern, so a command's output is scanned
    /// once instead of once per line and pattern; a line it finds is confirmed line by line.
    /// `None`: the per-line scan only.
    pub command_errors_any: Option<Regex>,
    /// Stable-part regex of the prompt.
    pub prompt_base: Option<SharedRegex>,
    /// Login dialogue regexes, in the order of `spec.login`.
    pub login: Vec<SharedRegex>,
    /// Enable user-name prompt regex.
    pub enable_username_prompt: Option<SharedRegex>,
    /// Normalisation rules.
    pub rules: Rules,
    /// Configuration-change syslog message regexes, in the order of `spec.config_change`.
    pub config_change: Vec<Regex>,
    /// Change-author line regexes, in the order of `spec.change_author`.
    pub change_author: Vec<Regex>,
}

/// One multi-line pattern matching where any of `patterns` matches a line (`None` when there
/// are none or the joined pattern does not compile: callers then scan line by line).
fn any_line_of(patterns: &[String]) -> Option<Regex> {
    if patterns.is_empty() {
        return None;
    }
    let joined: Vec<String> = patterns.iter().map(|p| format!("(?:{p})")).collect();
    build_regex(&format!("(?mR){}", joined.join("|"))).ok()
}

/// Room for the lazy DFA of a platform pattern. A prompt pattern such as
/// `^[\w.@()/:+-]{1,80}[>#]\s?$` (a Unicode class repeated 80 times) compiles to an automaton too
/// big for the default (2 MB), and every match then runs a backtracker that clears a bitset the
/// size of the automaton: 1–1.7 µs per line instead of ~15 ns. 4 MB is enough for every built-in
/// prompt and pager pattern (each checked at ~10 ns per non-matching line with 8 MB); the limit
/// also bounds how far a device's output can grow a cache (per pattern and thread), which only
/// grows as the text seen needs states (~0.5 MB per thread for that prompt on ASCII output).
const PLATFORM_DFA_LIMIT: usize = 8 << 20;

/// Compiles a platform pattern (see [`PLATFORM_DFA_LIMIT`]).
pub(crate) fn build_regex(p: &str) -> std::result::Result<Regex, regex::Error> {
    regex::RegexBuilder::new(p)
        .dfa_size_limit(PLATFORM_DFA_LIMIT)
        .build()
}

/// A compiled pattern shared by every session of a platform. Cloning a [`Regex`] gives the
/// clone a cache pool of its own, so a session holding clones would build fresh matching caches
/// (hundreds of KB for a prompt pattern) on every login; sessions share these through an `Arc`.
pub type SharedRegex = std::sync::Arc<Regex>;

fn shared(r: Regex) -> SharedRegex {
    std::sync::Arc::new(r)
}

fn re(what: &str, platform: &str, p: &str) -> Result<Regex> {
    build_regex(p).map_err(|e| {
        Error::new(
            ErrorKind::InvalidInput,
            format!("platform '{platform}': bad {what} regex '{p}'"),
        )
        .with_source(e)
    })
}

impl PlatformSpec {
    /// Parses a platform file (TOML) without compiling it. `secrets = "none"` is the explicit
    /// statement that the platform needs no secret rules.
    pub fn from_toml(text: &str) -> Result<PlatformSpec> {
        let bad = |e: toml::de::Error| {
            Error::new(ErrorKind::InvalidInput, format!("bad platform file: {e}")).with_source(e)
        };
        let mut table: toml::Table = toml::from_str(text).map_err(bad)?;
        let no_secrets = match table.get("secrets") {
            Some(toml::Value::String(s)) if s == "none" => {
                table.remove("secrets");
                true
            }
            Some(toml::Value::String(s)) => {
                return Err(Error::invalid(format!(
                    "bad platform file: secrets = \"{s}\": the only text value is \"none\" (else give [[secrets]] tables)"
                )));
            }
            _ => false,
        };
        let mut spec: PlatformSpec = table.try_into().map_err(bad)?;
        spec.no_secrets = no_secrets;
        Ok(spec)
    }
}

impl Platform {
    /// Parses and compiles a platform file.
    pub fn from_toml(text: &str) -> Result<Platform> {
        Platform::compile(PlatformSpec::from_toml(text)?)
    }

    /// Compiles a parsed platform file.
    pub fn compile(spec: PlatformSpec) -> Result<Platform> {
        let n = spec.name.clone();
        netraven_core::model::validate_name("platform", &n)?;
        if let Some(s) = spec
            .secrets
            .iter()
            .find(|s| s.until.is_some() && s.within.is_none())
        {
            return Err(Error::invalid(format!(
                "platform '{n}': secret rule '{}' has `until` without `within`",
                s.pattern
            )));
        }
        for a in &spec.aliases {
            netraven_core::model::validate_name("platform alias", a)?;
        }
        if let Some(b) = &spec.prompt_base {
            let r = re("prompt base", &n, b)?;
            if r.captures_len() < 2 {
                return Err(Error::invalid(format!(
                    "platform '{n}': prompt_base needs a capture group"
                )));
            }
        }
        if spec.prompt_terminators.iter().all(|t| t.trim().is_empty()) {
            return Err(Error::invalid(format!(
                "platform '{n}': prompt_terminators needs at least one non-blank terminator"
            )));
        }
        if let Some(m) = spec.timeout_multiplier
            && !(m.is_finite() && (0.1..=100.0).contains(&m))
        {
            return Err(Error::invalid(format!(
                "platform '{n}': timeout_multiplier must be between 0.1 and 100"
            )));
        }
        if spec.exec_channel && !spec.login.is_empty() {
            return Err(Error::invalid(format!(
                "platform '{n}': exec_channel cannot be used with an in-shell login dialogue"
            )));
        }
        if spec.exec_channel && spec.backup.iter().any(|b| b.discard) {
            return Err(Error::invalid(format!(
                "platform '{n}': exec_channel cannot be used with `discard` commands (each exec \
                 runs in a fresh context)"
            )));
        }
        if spec.backup.iter().all(|b| b.discard) {
            return Err(Error::invalid(format!(
                "platform '{n}': at least one backup command is required"
            )));
        }
        let secrets: Vec<(&str, &str)> = spec
            .secrets
            .iter()
            .filter(|s| s.within.is_none())
            .map(|s| (s.pattern.as_str(), s.replace.as_str()))
            .collect();
        let scoped: Vec<ScopedSecret<'_>> = spec
            .secrets
            .iter()
            .filter_map(|s| {
                s.within.as_deref().map(|w| ScopedSecret {
                    within: w,
                    until: s.until.as_deref(),
                    pattern: s.pattern.as_str(),
                    replace: s.replace.as_str(),
                })
            })
            .collect();
        let blocks: Vec<(&str, &str)> = spec
            .secret_blocks
            .iter()
            .map(|b| (b.begin.as_str(), b.end.as_str()))
            .collect();
        let rules = Rules::new(&spec.volatile, &secrets)
            .and_then(|r| r.with_scoped_secrets(&scoped))
            .and_then(|r| r.with_secret_blocks(&blocks))
            .map_err(|e| e.context(&n))?;
        let platform = Platform {
            prompt: shared(re("prompt", &n, &spec.prompt)?),
            pager: spec
                .pager
                .as_deref()
                .map(|p| re("pager", &n, p).map(shared))
                .transpose()?,
            enable_password_prompt: spec
                .enable
                .as_ref()
                .map(|e| re("enable password prompt", &n, &e.password_prompt).map(shared))
                .transpose()?,
            unprivileged_prompt: spec
                .enable
                .as_ref()
                .map(|e| re("unprivileged prompt", &n, &e.unprivileged_prompt).map(shared))
                .transpose()?,
            command_errors: spec
                .command_errors
                .iter()
                .map(|p| re("command error", &n, p))
                .collect::<Result<_>>()?,
            command_errors_any: any_line_of(&spec.command_errors),
            prompt_base: spec
                .prompt_base
                .as_deref()
                .map(|p| re("prompt base", &n, p).map(shared))
                .transpose()?,
            login: spec
                .login
                .iter()
                .map(|l| re("login", &n, &l.expect).map(shared))
                .collect::<Result<_>>()?,
            enable_username_prompt: spec
                .enable
                .as_ref()
                .and_then(|e| e.username_prompt.as_deref())
                .map(|p| re("enable username prompt", &n, p).map(shared))
                .transpose()?,
            rules,
            config_change: spec
                .config_change
                .iter()
                .map(|p| re("config_change", &n, p))
                .collect::<Result<_>>()?,
            change_author: spec
                .change_author
                .iter()
                .map(|p| re("change_author", &n, p))
                .collect::<Result<_>>()?,
            spec,
        };
        let spec = &platform.spec;
        match (
            spec.secrets.is_empty() && spec.secret_blocks.is_empty(),
            spec.no_secrets,
        ) {
            (true, false) => {
                return Err(Error::invalid(format!(
                    "platform '{n}': no [[secrets]] rules; add the platform's secret forms, or \
                     write `secrets = \"none\"` if its output never holds one"
                )));
            }
            (false, true) => {
                return Err(Error::invalid(format!(
                    "platform '{n}': secrets = \"none\" together with secret rules"
                )));
            }
            _ => {}
        }
        Ok(platform)
    }

    /// The platform name.
    pub fn name(&self) -> &str {
        &self.spec.name
    }

    /// Whether `name` is this platform's name or one of its aliases.
    pub fn answers_to(&self, name: &str) -> bool {
        self.spec.name == name || self.spec.aliases.iter().any(|a| a == name)
    }

    /// The stable part of a prompt: the `prompt_base` capture when the platform has one,
    /// else the prompt without trailing mode characters.
    pub fn base_of(&self, prompt: &str) -> String {
        match &self.prompt_base {
            Some(r) => r
                .captures(prompt.trim_end())
                .and_then(|c| c.get(1))
                .map_or_else(|| prompt_base(prompt), |m| m.as_str().to_string()),
            None => prompt_base(prompt),
        }
    }

    /// Who last changed the configuration, as the raw backup text says (the first line a
    /// `change_author` pattern matches, its `user` group); `None` when no line says, or the
    /// name does not look like one (see [`valid_user_name`]).
    pub fn change_author_of(&self, raw: &str) -> Option<String> {
        if self.change_author.is_empty() {
            return None;
        }
        raw.lines().find_map(|line| {
            let line = line.trim_end_matches('\r');
            self.change_author.iter().find_map(|r| {
                r.captures(line)
                    .and_then(|c| c.name("user"))
                    .map(|u| u.as_str())
                    .filter(|u| valid_user_name(u))
                    .map(str::to_string)
            })
        })
    }

    /// Whether a line of output says the command was rejected.
    pub fn is_command_error(&self, output: &str) -> Option<String> {
        if self.command_errors.is_empty() {
            return None;
        }
        let per_line = |l: &&str| self.command_errors.iter().any(|r| r.is_match(l));
        let found = match &self.command_errors_any {
            None => output.lines().find(per_line),
            Some(any) => {
                // Candidates from one scan, each confirmed as a line (a match of the joined
                // pattern may start on a line the per-line rule would not flag).
                let mut from = 0;
                let mut hit = None;
                while let Some(m) = any.find_at(output, from) {
                    let start = output[..m.start()].rfind('\n').map_or(0, |i| i + 1);
                    let end = output[m.start()..]
                        .find('\n')
                        .map_or(output.len(), |i| m.start() + i);
                    let line = output[start..end]
                        .strip_suffix('\r')
                        .unwrap_or(&output[start..end]);
                    if per_line(&line) {
                        hit = Some(line);
                        break;
                    }
                    if end >= output.len() {
                        break;
                    }
                    from = end + 1;
                }
                hit
            }
        };
        found.map(|l| l.trim().chars().take(200).collect())
    }
}

/// The built-in platforms, compiled.
pub fn builtin_platforms() -> Result<Vec<Platform>> {
    BUILTIN_PLATFORM_FILES
        .iter()
        .map(|(file, text)| Platform::from_toml(text).map_err(|e| e.context(file)))
        .collect()
}

/// One built-in platform by name or alias (only that one is compiled).
pub fn builtin_platform(name: &str) -> Result<Platform> {
    for (file, text) in BUILTIN_PLATFORM_FILES {
        let spec = PlatformSpec::from_toml(text).map_err(|e| e.context(file))?;
        if spec.name == name || spec.aliases.iter().any(|a| a == name) {
            return Platform::compile(spec).map_err(|e| e.context(file));
        }
    }
    Err(Error::invalid(format!("no built-in platform '{name}'")))
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
    fn command_errors_are_found_by_the_joined_pattern_exactly_as_line_by_line() {
        let ios = builtin_platform("cisco_ios").unwrap();
        assert!(ios.command_errors_any.is_some());
        let mut per_line = ios.clone();
        per_line.command_errors_any = None;
        let cases = [
            "hostname r1\n% Invalid input detected at '^' marker.\nr1#",
            "line one\r\n% Invalid input detected at '^' marker.\r\n",
            "interface Gi1\n description % Invalid input inside a line\n",
            "no error here\n",
            "",
            "% Invalid input detected",
        ];
        for c in cases {
            assert_eq!(
                ios.is_command_error(c),
                per_line.is_command_error(c),
                "{c:?}"
            );
        }
        assert!(ios.is_command_error(cases[0]).is_some());
        // A pattern that could match across lines is confirmed line by line.
        let spec = PlatformSpec {
            command_errors: vec![r"^bad\s+thing$".into()],
            ..ios.spec.clone()
        };
        let p = Platform::compile(spec).unwrap();
        assert_eq!(p.is_command_error("bad\nthing\n"), None);
        assert_eq!(
            p.is_command_error("ok\nbad  thing\n").as_deref(),
            Some("bad  thing")
        );
    }

    #[test]
    fn builtins_load_and_prompts_match() {
        let ps = builtin_platforms().unwrap();
        assert!(ps.len() >= 40, "{} built-in platforms", ps.len());
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
    fn a_platform_without_secret_rules_is_refused_unless_it_says_none() {
        let base = "name = \"bare\"\nprompt = '^x>$'\n[[backup]]\ncommand = \"show\"\n";
        let e = Platform::from_toml(base).unwrap_err();
        assert!(e.message().contains("no [[secrets]]"), "{e}");
        let none = format!("secrets = \"none\"\n{base}");
        let p = Platform::from_toml(&none).unwrap();
        assert!(p.spec.no_secrets);
        assert!(Platform::from_toml(&format!("secrets = \"nope\"\n{base}")).is_err());
        let both = format!("secrets = \"none\"\n{base}[[secret_blocks]]\nbegin = 'a'\nend = 'b'\n");
        assert!(Platform::from_toml(&both).is_err());
        let with =
            format!("{base}[[secrets]]\npattern = '^(pw )\\S+'\nreplace = '${{1}}{{marker}}'\n");
        assert!(Platform::from_toml(&with).is_ok());
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
