//! Rendering a platform's sample templates (its `[sim]` section): raw device output as the
//! simulator prints it, and the backup a correct client stores. Used by the simulator, by
//! `platforms check` and by the fixture tests.

use crate::expect::comment_lines;
use crate::platform::Platform;
#[cfg(feature = "sim")]
use crate::sim::SimDevice;
use netraven_core::normalise::REDACTED_MARKER;
use std::fmt::Write;
#[cfg(feature = "sim")]
use std::sync::atomic::Ordering;

/// How a template is rendered.
pub(crate) enum Mode<'a> {
    /// As the device prints it, with this volatile stamp (also mixed into re-encrypted
    /// secrets, `{enc}`, so they differ on every call).
    Raw { stamp: &'a str },
    /// As a correct backup normalises it: volatile lines dropped, secrets redacted.
    Expected,
    /// As the device prints it, with [`STAMP_HOLE`] where the stamp goes and [`SALT_HOLE`]
    /// where a re-encrypted secret's per-call salt goes: rendered once, filled in per call
    /// (the simulator's cache of its output).
    #[cfg(feature = "sim")]
    Holes,
}

/// Where [`Mode::Holes`] leaves the volatile stamp.
#[cfg(feature = "sim")]
pub(crate) const STAMP_HOLE: char = '\u{1}';
/// Where [`Mode::Holes`] leaves the salt of a re-encrypted secret (`{enc}`).
#[cfg(feature = "sim")]
pub(crate) const SALT_HOLE: char = '\u{2}';

/// The salt mixed into re-encrypted secrets (`{enc}`) rendered with `stamp`.
pub(crate) fn enc_salt(stamp: &str) -> u64 {
    stamp.bytes().fold(1469598103934665603u64, |h, b| {
        (h ^ b as u64).wrapping_mul(1099511628211)
    })
}

pub(crate) struct Ctx<'a> {
    pub hostname: &'a str,
    pub user: &'a str,
    pub device: usize,
    pub rev: u64,
    pub blocks: usize,
}

struct Secrets<'a> {
    command: usize,
    next: usize,
    collect: Option<&'a mut Vec<String>>,
    /// The last expected line was the marker of a `{pem}` run.
    in_pem: bool,
}

fn expand_line(
    line: &str,
    ctx: &Ctx,
    block: usize,
    mode: &Mode,
    sec: &mut Secrets,
    out: &mut String,
) {
    let mut rest = line;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let Some(close) = after.find('}') else {
            out.push_str(&rest[open..]);
            return;
        };
        let name = &after[..close];
        match name {
            "hostname" => out.push_str(ctx.hostname),
            "user" => out.push_str(ctx.user),
            "i" => {
                let _ = write!(out, "{block}");
            }
            "i_hi" => {
                let _ = write!(out, "{}", (block / 256) % 256);
            }
            "i_lo" => {
                let _ = write!(out, "{}", block % 256);
            }
            "rev" => {
                let _ = write!(out, "{}", ctx.rev);
            }
            "v" | "pem" => {}
            "stamp" => match mode {
                Mode::Raw { stamp } => out.push_str(stamp),
                #[cfg(feature = "sim")]
                Mode::Holes => out.push(STAMP_HOLE),
                Mode::Expected => {}
            },
            "secret" | "enc" => {
                let mut value = format!("S{}x{:x}k{}q", sec.command, ctx.device, sec.next);
                if name == "enc" {
                    // Re-encrypted on every show: same secret, new ciphertext each call.
                    match mode {
                        Mode::Raw { stamp } => {
                            let salt = enc_salt(stamp);
                            value =
                                format!("E{}x{:x}k{}r{salt:x}q", sec.command, ctx.device, sec.next);
                        }
                        #[cfg(feature = "sim")]
                        Mode::Holes => {
                            value = format!(
                                "E{}x{:x}k{}r{SALT_HOLE}q",
                                sec.command, ctx.device, sec.next
                            );
                        }
                        Mode::Expected => {}
                    }
                }
                sec.next += 1;
                match mode {
                    Mode::Raw { .. } => out.push_str(&value),
                    #[cfg(feature = "sim")]
                    Mode::Holes => out.push_str(&value),
                    Mode::Expected => out.push_str(REDACTED_MARKER),
                }
                if let Some(c) = sec.collect.as_deref_mut() {
                    c.push(value);
                }
            }
            _ => {
                out.push('{');
                out.push_str(name);
                out.push('}');
            }
        }
        rest = &after[close + 1..];
    }
    out.push_str(rest);
}

fn expand(tpl: &str, ctx: &Ctx, block: usize, mode: &Mode, sec: &mut Secrets, out: &mut String) {
    for line in tpl.split_inclusive('\n') {
        if matches!(mode, Mode::Expected) && line.contains("{pem}") {
            // A line inside a multi-line secret (PEM key): the run becomes one marker line.
            let mut sink = String::new();
            expand_line(line, ctx, block, &Mode::Raw { stamp: "" }, sec, &mut sink);
            if !sec.in_pem {
                out.push_str(REDACTED_MARKER);
                out.push('\n');
                sec.in_pem = true;
            }
            continue;
        }
        sec.in_pem = false;
        if matches!(mode, Mode::Expected) && (line.contains("{stamp}") || line.contains("{v}")) {
            // Volatile: still consume its secrets so numbering stays aligned.
            let mut sink = String::new();
            expand_line(line, ctx, block, &Mode::Raw { stamp: "" }, sec, &mut sink);
            continue;
        }
        expand_line(line, ctx, block, mode, sec, out);
    }
}

/// Renders one command's output template (`{config}` expands to the configuration).
pub(crate) fn render_command(
    platform: &Platform,
    tpl: &str,
    command_index: usize,
    ctx: &Ctx,
    mode: &Mode,
    collect: Option<&mut Vec<String>>,
) -> String {
    let mut sec = Secrets {
        command: command_index,
        next: 0,
        collect,
        in_pem: false,
    };
    let mut out = String::with_capacity(if tpl.contains("{config}") {
        40_000
    } else {
        2048
    });
    let Some(sim) = platform.spec.sim.as_ref() else {
        return out;
    };
    for line in tpl.split_inclusive('\n') {
        if line.trim_end() == "{config}" {
            let c = &sim.config;
            expand(&c.head, ctx, 0, mode, &mut sec, &mut out);
            for b in 1..=ctx.blocks {
                expand(&c.block, ctx, b, mode, &mut sec, &mut out);
            }
            expand(&c.tail, ctx, 0, mode, &mut sec, &mut out);
        } else {
            expand(line, ctx, 0, mode, &mut sec, &mut out);
        }
    }
    if !out.is_empty() && !out.ends_with('\n') {
        out.push('\n');
    }
    out
}

/// Number of configuration blocks that bring the configuration to about `size` bytes.
pub(crate) fn blocks_for_size(platform: &Platform, hostname: &str, size: usize) -> usize {
    let Some(sim) = platform.spec.sim.as_ref() else {
        return 1;
    };
    let ctx = Ctx {
        hostname,
        user: "netraven",
        device: 0,
        rev: 0,
        blocks: 0,
    };
    let mode = Mode::Raw { stamp: "00:00:00" };
    let mut sec = Secrets {
        command: 0,
        next: 0,
        collect: None,
        in_pem: false,
    };
    let mut fixed = String::new();
    expand(&sim.config.head, &ctx, 0, &mode, &mut sec, &mut fixed);
    expand(&sim.config.tail, &ctx, 0, &mode, &mut sec, &mut fixed);
    let mut block = String::new();
    expand(&sim.config.block, &ctx, 100, &mode, &mut sec, &mut block);
    (size.saturating_sub(fixed.len()) / block.len().max(1)).max(1)
}

/// One device's worth of a platform's sample: what it prints for each command and what a
/// correct backup of it stores.
#[derive(Debug, Clone)]
pub struct Sample<'a> {
    /// The platform (must have a `[sim]` section for anything to render).
    pub platform: &'a Platform,
    /// Hostname shown in prompts and the configuration.
    pub hostname: &'a str,
    /// Login user name.
    pub user: &'a str,
    /// Device index (mixed into secret values).
    pub device: usize,
    /// Configuration revision (`{rev}`).
    pub rev: u64,
    /// Number of configuration blocks.
    pub blocks: usize,
}

impl<'a> Sample<'a> {
    /// A sample of `platform` for `hostname` with two configuration blocks.
    pub fn new(platform: &'a Platform, hostname: &'a str) -> Self {
        Sample {
            platform,
            hostname,
            user: "netraven",
            device: 0,
            rev: 0,
            blocks: 2,
        }
    }

    fn ctx(&self) -> Ctx<'a> {
        Ctx {
            hostname: self.hostname,
            user: self.user,
            device: self.device,
            rev: self.rev,
            blocks: self.blocks,
        }
    }

    /// The output of `command` as the device prints it (without echo and prompt, `\n` line
    /// ends), volatile values and re-encrypted secrets derived from `stamp`; `None` when the
    /// sample has no such command.
    pub fn raw(&self, command: &str, stamp: &str) -> Option<String> {
        let tpl = self.platform.spec.sim.as_ref()?.commands.get(command)?;
        Some(render_command(
            self.platform,
            tpl,
            command_index(self.platform, command),
            &self.ctx(),
            &Mode::Raw { stamp },
            None,
        ))
    }

    /// The prompt in the unprivileged (when the platform has one) or privileged mode, after
    /// `count` commands.
    pub fn prompt(&self, privileged: bool, count: u64) -> String {
        let Some(sim) = self.platform.spec.sim.as_ref() else {
            return String::new();
        };
        let mode = if privileged {
            sim.privileged.as_str()
        } else {
            sim.unprivileged.as_deref().unwrap_or(&sim.privileged)
        };
        sim.prompt
            .replace("{hostname}", self.hostname)
            .replace("{user}", self.user)
            .replace("{mode}", mode)
            .replace("{count}", &count.to_string())
    }

    /// What a correct backup normalises to: the backup commands' output with volatile lines
    /// removed and secrets replaced by the redaction marker.
    pub fn expected_backup(&self) -> String {
        let ctx = self.ctx();
        let mut all = String::new();
        let Some(sim) = self.platform.spec.sim.as_ref() else {
            return all;
        };
        for (ci, cmd) in self.platform.spec.backup.iter().enumerate() {
            let Some(tpl) = sim.commands.get(&cmd.command) else {
                continue;
            };
            if cmd.discard {
                continue;
            }
            let text = render_command(self.platform, tpl, ci, &ctx, &Mode::Expected, None);
            match &cmd.comment {
                Some(p) => all.push_str(&comment_lines(&text, p)),
                None => all.push_str(&text),
            }
        }
        let mut out = String::with_capacity(all.len());
        for line in all.lines() {
            out.push_str(line.trim_end());
            out.push('\n');
        }
        let trimmed = out.trim_matches('\n');
        format!("{trimmed}\n")
    }

    /// Every secret value the backup commands print (re-encrypted ones as printed with
    /// `stamp`).
    pub fn secrets(&self, stamp: &str) -> Vec<String> {
        let ctx = self.ctx();
        let mut v = Vec::new();
        if let Some(sim) = self.platform.spec.sim.as_ref() {
            for (ci, cmd) in self.platform.spec.backup.iter().enumerate() {
                if let Some(tpl) = sim.commands.get(&cmd.command) {
                    render_command(
                        self.platform,
                        tpl,
                        ci,
                        &ctx,
                        &Mode::Raw { stamp },
                        Some(&mut v),
                    );
                }
            }
        }
        v
    }
}

/// Whether `text` holds a value the sample planted as a secret (plain `S..q` or re-encrypted
/// `E..r..q` form), whatever device or call printed it.
pub fn contains_sample_secret(text: &str) -> bool {
    text.split(|c: char| !c.is_ascii_alphanumeric()).any(|w| {
        let b = w.as_bytes();
        (b.first() == Some(&b'S') || b.first() == Some(&b'E'))
            && b.last() == Some(&b'q')
            && w.len() >= 6
            && w[1..].contains('x')
            && w[1..].contains('k')
            && w[1..2].bytes().all(|c| c.is_ascii_digit())
    })
}

#[cfg(feature = "sim")]
fn sample_of(dev: &SimDevice) -> Sample<'_> {
    Sample {
        platform: &dev.platform,
        hostname: &dev.hostname,
        user: &dev.accepted.username,
        device: dev.index,
        rev: dev.last_rev.load(Ordering::SeqCst),
        blocks: dev.blocks,
    }
}

#[cfg(feature = "sim")]
/// The normalised backup a correct client produces for `dev` (see
/// [`SimDevice::expected_backup`]).
pub fn expected_backup(dev: &SimDevice) -> String {
    sample_of(dev).expected_backup()
}

#[cfg(feature = "sim")]
/// Every secret value in `dev`'s backup output.
pub(crate) fn secrets_of(dev: &SimDevice) -> Vec<String> {
    sample_of(dev).secrets("")
}

/// The index of a command among the platform's backup commands (secret numbering).
pub(crate) fn command_index(platform: &Platform, command: &str) -> usize {
    platform
        .spec
        .backup
        .iter()
        .position(|b| b.command == command)
        .unwrap_or(usize::MAX / 2)
}
