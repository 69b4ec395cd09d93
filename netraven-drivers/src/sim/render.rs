//! Rendering the simulator's templates: raw device output, and the expected normalised backup.

use super::SimDevice;
use crate::expect::comment_lines;
use crate::platform::Platform;
use netraven_core::normalise::REDACTED_MARKER;
use std::fmt::Write;
use std::sync::atomic::Ordering;

/// How a template is rendered.
pub(crate) enum Mode<'a> {
    /// As the device prints it, with this volatile stamp.
    Raw { stamp: &'a str },
    /// As a correct backup normalises it: volatile lines dropped, secrets redacted.
    Expected,
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
            "v" => {}
            "stamp" => {
                if let Mode::Raw { stamp } = mode {
                    out.push_str(stamp);
                }
            }
            "secret" => {
                let value = format!("S{}x{:x}k{}q", sec.command, ctx.device, sec.next);
                sec.next += 1;
                match mode {
                    Mode::Raw { .. } => out.push_str(&value),
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
    if !out.ends_with('\n') {
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
    };
    let mut fixed = String::new();
    expand(&sim.config.head, &ctx, 0, &mode, &mut sec, &mut fixed);
    expand(&sim.config.tail, &ctx, 0, &mode, &mut sec, &mut fixed);
    let mut block = String::new();
    expand(&sim.config.block, &ctx, 100, &mode, &mut sec, &mut block);
    (size.saturating_sub(fixed.len()) / block.len().max(1)).max(1)
}

fn backup_ctx(dev: &SimDevice) -> Ctx<'_> {
    Ctx {
        hostname: &dev.hostname,
        user: &dev.accepted.username,
        device: dev.index,
        rev: dev.last_rev.load(Ordering::SeqCst),
        blocks: dev.blocks,
    }
}

/// The normalised backup a correct client produces for `dev` (see
/// [`SimDevice::expected_backup`]).
pub fn expected_backup(dev: &SimDevice) -> String {
    let ctx = backup_ctx(dev);
    let mut all = String::new();
    let Some(sim) = dev.platform.spec.sim.as_ref() else {
        return all;
    };
    for (ci, cmd) in dev.platform.spec.backup.iter().enumerate() {
        let Some(tpl) = sim.commands.get(&cmd.command) else {
            continue;
        };
        let text = render_command(&dev.platform, tpl, ci, &ctx, &Mode::Expected, None);
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

/// Every secret value in `dev`'s backup output.
pub(crate) fn secrets_of(dev: &SimDevice) -> Vec<String> {
    let ctx = backup_ctx(dev);
    let mut v = Vec::new();
    if let Some(sim) = dev.platform.spec.sim.as_ref() {
        for (ci, cmd) in dev.platform.spec.backup.iter().enumerate() {
            if let Some(tpl) = sim.commands.get(&cmd.command) {
                render_command(
                    &dev.platform,
                    tpl,
                    ci,
                    &ctx,
                    &Mode::Raw { stamp: "" },
                    Some(&mut v),
                );
            }
        }
    }
    v
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
