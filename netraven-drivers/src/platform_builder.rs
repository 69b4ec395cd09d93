//! [`PlatformBuilder`]: a data-only platform from code, with the fields of a platform file, for
//! embedders without files.
//!
//! ```
//! use netraven_drivers::platform::Platform;
//!
//! # fn main() -> netraven_core::Result<()> {
//! let p = Platform::builder("acme_os", r"^[\w.-]+[>#]\s?$")
//!     .vendor("Acme")
//!     .alias("acme")
//!     .pager(r"--More--\s*$")
//!     .paging_off("terminal length 0")
//!     .command_error(r"^% Invalid")
//!     .enable("enable", r"(?i)password:\s*$", r">\s?$")
//!     .backup("show running-config")
//!     .backup_comment("show version", "! ")
//!     .volatile(r"uptime is ")
//!     .secret(r"^(snmp-server community) \S+", "$1 {marker}")
//!     .build()?;
//! assert_eq!(p.name(), "acme_os");
//! assert!(p.answers_to("acme"));
//! assert_eq!(p.rules.len(), (1, 1));
//! # Ok(()) }
//! ```
//!
//! Register it with [`crate::register_platform`], or wrap `SshDriver::new(platform, host_keys)`
//! and hand it to the facade's builder (`.driver(..)`).

use crate::platform::{
    BackupCommand, EnableSpec, LoginStep, Platform, PlatformSpec, SecretBlock, SecretSpec,
};
use netraven_core::error::Result;

/// Builds a [`Platform`] field by field; [`PlatformBuilder::build`] checks and compiles it like a
/// platform file ([`Platform::compile`]).
#[derive(Debug, Clone)]
pub struct PlatformBuilder {
    spec: PlatformSpec,
}

impl Platform {
    /// A platform named `name` (netmiko `device_type`) whose prompt matches `prompt` (a regex of
    /// the last output line); add at least one backup command.
    pub fn builder(name: impl Into<String>, prompt: impl Into<String>) -> PlatformBuilder {
        PlatformBuilder {
            spec: PlatformSpec {
                name: name.into(),
                aliases: Vec::new(),
                description: String::new(),
                vendor: String::new(),
                os_versions: String::new(),
                prompt: prompt.into(),
                prompt_base: None,
                prompt_terminators: crate::platform::default_terminators(),
                timeout_multiplier: None,
                config_change: Vec::new(),
                change_author: Vec::new(),
                username_suffix: None,
                login: Vec::new(),
                pager: None,
                pager_reply: " ".into(),
                paging_off: Vec::new(),
                command_errors: Vec::new(),
                exit_command: "exit".into(),
                enable: None,
                exec_channel: false,
                exec_suffix: String::new(),
                backup: Vec::new(),
                volatile: Vec::new(),
                secrets: Vec::new(),
                no_secrets: false,
                secret_blocks: Vec::new(),
                sim: None,
            },
        }
    }
}

impl PlatformBuilder {
    /// Starts from a parsed platform (a built-in's `spec`, to change a few fields).
    pub fn from_spec(spec: PlatformSpec) -> Self {
        PlatformBuilder { spec }
    }

    /// The spec as built so far.
    pub fn spec(&self) -> &PlatformSpec {
        &self.spec
    }

    /// Another name for the platform.
    pub fn alias(mut self, alias: impl Into<String>) -> Self {
        self.spec.aliases.push(alias.into());
        self
    }

    /// Free text.
    pub fn description(mut self, text: impl Into<String>) -> Self {
        self.spec.description = text.into();
        self
    }

    /// The vendor.
    pub fn vendor(mut self, vendor: impl Into<String>) -> Self {
        self.spec.vendor = vendor.into();
        self
    }

    /// Regex whose first group is the stable part of a changing prompt.
    pub fn prompt_base(mut self, regex: impl Into<String>) -> Self {
        self.spec.prompt_base = Some(regex.into());
        self
    }

    /// The characters this platform's prompts end with, for learning a prompt the pattern does
    /// not match (default `>`, `#`, `$`, `%`).
    pub fn prompt_terminators<I, S>(mut self, terminators: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.spec.prompt_terminators = terminators.into_iter().map(Into::into).collect();
        self
    }

    /// A regex of a syslog message reporting a configuration change (a named group `user`
    /// captures who made it).
    pub fn config_change(mut self, regex: impl Into<String>) -> Self {
        self.spec.config_change.push(regex.into());
        self
    }

    /// Fetches the backup commands over SSH exec channels instead of the interactive shell
    /// (see [`PlatformSpec::exec_channel`]).
    pub fn exec_channel(mut self, on: bool) -> Self {
        self.spec.exec_channel = on;
        self
    }

    /// Multiplies every deadline of a session with this platform (default 1).
    pub fn timeout_multiplier(mut self, factor: f64) -> Self {
        self.spec.timeout_multiplier = Some(factor);
        self
    }

    /// A login dialogue step: when the last line matches `expect`, send `send` (`{username}`,
    /// `{password}` or literal text).
    pub fn login_step(mut self, expect: impl Into<String>, send: impl Into<String>) -> Self {
        self.spec.login.push(LoginStep {
            expect: expect.into(),
            send: send.into(),
        });
        self
    }

    /// Regex of a pager waiting for a key (answered with a space).
    pub fn pager(mut self, regex: impl Into<String>) -> Self {
        self.spec.pager = Some(regex.into());
        self
    }

    /// A command that turns paging off after login.
    pub fn paging_off(mut self, command: impl Into<String>) -> Self {
        self.spec.paging_off.push(command.into());
        self
    }

    /// Regex of an output line meaning the device rejected a command.
    pub fn command_error(mut self, regex: impl Into<String>) -> Self {
        self.spec.command_errors.push(regex.into());
        self
    }

    /// The command that ends the session (default `exit`).
    pub fn exit_command(mut self, command: impl Into<String>) -> Self {
        self.spec.exit_command = command.into();
        self
    }

    /// The enable step: `command`, the regex of its secret prompt, and the regex of a prompt
    /// that is not yet privileged.
    pub fn enable(
        mut self,
        command: impl Into<String>,
        password_prompt: impl Into<String>,
        unprivileged_prompt: impl Into<String>,
    ) -> Self {
        self.spec.enable = Some(EnableSpec {
            command: command.into(),
            username_prompt: None,
            password_prompt: password_prompt.into(),
            unprivileged_prompt: unprivileged_prompt.into(),
        });
        self
    }

    /// A backup command whose output is part of the configuration, in order.
    pub fn backup(mut self, command: impl Into<String>) -> Self {
        self.spec.backup.push(BackupCommand {
            command: command.into(),
            comment: None,
            optional: false,
            discard: false,
        });
        self
    }

    /// A backup command whose output lines are prefixed with `prefix` (a comment header).
    pub fn backup_comment(mut self, command: impl Into<String>, prefix: impl Into<String>) -> Self {
        self.spec.backup.push(BackupCommand {
            command: command.into(),
            comment: Some(prefix.into()),
            optional: false,
            discard: false,
        });
        self
    }

    /// Any backup command (optional, discarded, commented).
    pub fn backup_command(mut self, command: BackupCommand) -> Self {
        self.spec.backup.push(command);
        self
    }

    /// Regex of a volatile line (dropped before hashing).
    pub fn volatile(mut self, regex: impl Into<String>) -> Self {
        self.spec.volatile.push(regex.into());
        self
    }

    /// A secret rule: regex and replacement (`${1}`, `{marker}`).
    pub fn secret(mut self, regex: impl Into<String>, replace: impl Into<String>) -> Self {
        self.spec.secrets.push(SecretSpec {
            pattern: regex.into(),
            replace: replace.into(),
            within: None,
            until: None,
        });
        self
    }

    /// A secret rule that applies only inside sections opened by a line matching `within`.
    pub fn secret_within(
        mut self,
        within: impl Into<String>,
        regex: impl Into<String>,
        replace: impl Into<String>,
    ) -> Self {
        self.spec.secrets.push(SecretSpec {
            pattern: regex.into(),
            replace: replace.into(),
            within: Some(within.into()),
            until: None,
        });
        self
    }

    /// States that the platform's output never holds a secret (`secrets = "none"` in a file):
    /// without it, a platform with no secret rule is refused.
    pub fn no_secrets(mut self) -> Self {
        self.spec.no_secrets = true;
        self
    }

    /// A multi-line secret between a `begin` and an `end` line.
    pub fn secret_block(mut self, begin: impl Into<String>, end: impl Into<String>) -> Self {
        self.spec.secret_blocks.push(SecretBlock {
            begin: begin.into(),
            end: end.into(),
        });
        self
    }

    /// Checks and compiles the platform (InvalidInput on a bad regex, a bad name or no backup
    /// command), like a platform file.
    pub fn build(self) -> Result<Platform> {
        Platform::compile(self.spec)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_platforms_are_checked_like_files() {
        let err = Platform::builder("x", "^>$")
            .build()
            .expect_err("no backup");
        assert!(err.message().contains("backup"), "{err}");
        let err = Platform::builder("x", "^>$")
            .backup("show config")
            .build()
            .expect_err("no secret rules");
        assert!(err.message().contains("secrets"), "{err}");
        Platform::builder("x", "^>$")
            .backup("show config")
            .no_secrets()
            .build()
            .expect("explicitly without secrets");
        let err = Platform::builder("x", "([")
            .backup("show config")
            .build()
            .expect_err("bad prompt");
        assert!(err.message().contains("prompt"), "{err}");
        let from_file = crate::builtin_platform("cisco_ios").expect("cisco_ios");
        let copy = PlatformBuilder::from_spec(from_file.spec.clone())
            .backup("show inventory")
            .build()
            .expect("build");
        assert_eq!(copy.spec.backup.len(), from_file.spec.backup.len() + 1);
        assert_eq!(copy.rules.len(), from_file.rules.len());
    }
}
