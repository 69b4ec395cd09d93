//! The platform catalogue behind `netraven platforms …`: listing the built-in and user
//! platforms, checking a platform file against its own sample, and running a platform over a
//! transcript a user captured from a real device.

use crate::expect::{TermFilter, comment_lines};
use crate::platform::{Platform, builtin_platforms, load_platform_dir};
use crate::sample::{Sample, contains_sample_secret};
use netraven_core::error::{Error, ErrorKind, Result};
use netraven_core::normalise::REDACTED_MARKER;
use regex::Regex;
use std::fmt::Write;
use std::path::{Path, PathBuf};

/// Where a listed platform comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// Built into the binary.
    Builtin,
    /// A user file (which may replace a built-in of the same name).
    User {
        /// The file.
        path: PathBuf,
        /// Whether it replaces a built-in platform.
        overrides: bool,
    },
}

/// Every platform the registry would hold: the built-ins, with user files of `user_dir`
/// replacing built-ins of the same name and adding new ones. Sorted by name.
pub fn all_platforms(user_dir: Option<&Path>) -> Result<Vec<(Platform, Origin)>> {
    let mut out: Vec<(Platform, Origin)> = builtin_platforms()?
        .into_iter()
        .map(|p| (p, Origin::Builtin))
        .collect();
    if let Some(dir) = user_dir {
        for (path, p) in load_platform_dir_with_paths(dir)? {
            let existing = out.iter().position(|(b, _)| b.name() == p.name());
            let origin = Origin::User {
                path,
                overrides: existing.is_some(),
            };
            match existing {
                Some(i) => out[i] = (p, origin),
                None => out.push((p, origin)),
            }
        }
    }
    out.sort_by(|a, b| a.0.name().cmp(b.0.name()));
    Ok(out)
}

fn load_platform_dir_with_paths(dir: &Path) -> Result<Vec<(PathBuf, Platform)>> {
    let platforms = load_platform_dir(dir)?;
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| Error::invalid(format!("cannot read {}", dir.display())).with_source(e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().and_then(|e| e.to_str()) == Some("toml"))
        .collect();
    files.sort();
    Ok(files.into_iter().zip(platforms).collect())
}

/// One line per platform: name, aliases (`-` when none), vendor, description, and where it
/// comes from.
pub fn list_lines(platforms: &[(Platform, Origin)]) -> String {
    let mut out = String::new();
    for (p, origin) in platforms {
        let aliases = if p.spec.aliases.is_empty() {
            "-".to_string()
        } else {
            p.spec.aliases.join(",")
        };
        let vendor = if p.spec.vendor.is_empty() {
            "-"
        } else {
            p.spec.vendor.as_str()
        };
        let from = match origin {
            Origin::Builtin => String::new(),
            Origin::User { path, overrides } => format!(
                "  [{} {}]",
                if *overrides {
                    "user, overrides built-in:"
                } else {
                    "user:"
                },
                path.display()
            ),
        };
        let sim = if p.spec.sim.is_some() {
            ""
        } else {
            "  (no simulator)"
        };
        let _ = writeln!(
            out,
            "{:<24} {:<28} {:<18} {}{sim}{from}",
            p.name(),
            aliases,
            vendor,
            p.spec.description
        );
    }
    out
}

/// How bad a finding of [`check_platform`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// The platform would misbehave (leak a secret, commit on every run, never see a prompt).
    Error,
    /// Worth a look.
    Warning,
}

/// One finding of [`check_platform`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// How bad.
    pub severity: Severity,
    /// What, in one line.
    pub message: String,
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(f, "{s}: {}", self.message)
    }
}

/// Reads and compiles a platform file (regexes, names, backup commands).
pub fn load_platform_file(path: &Path) -> Result<Platform> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::invalid(format!("cannot read {}", path.display())).with_source(e))?;
    Platform::from_toml(&text).map_err(|e| e.context(path.display()))
}

/// Checks a compiled platform against itself: its prompt and pager regexes against the
/// sample's prompts and pager, and, when it has a `[sim]` sample, that two fetches differing
/// only in volatile and re-encrypted values normalise equal, that the result equals the sample's
/// expected backup, that no planted secret survives, and that no output line looks like a
/// prompt, a pager or a command error.
pub fn check_platform(p: &Platform) -> Vec<Finding> {
    let mut f = Vec::new();
    let err = |f: &mut Vec<Finding>, m: String| {
        f.push(Finding {
            severity: Severity::Error,
            message: m,
        })
    };
    let warn = |f: &mut Vec<Finding>, m: String| {
        f.push(Finding {
            severity: Severity::Warning,
            message: m,
        })
    };
    if p.spec.paging_off.is_empty() && p.pager.is_none() {
        warn(
            &mut f,
            "neither paging_off commands nor a pager regex: long output may stall".into(),
        );
    }
    if p.spec.vendor.is_empty() {
        warn(&mut f, "no vendor".into());
    }
    if p.spec.secrets.is_empty() {
        warn(&mut f, "no secret rules".into());
    }
    let Some(sim) = p.spec.sim.as_ref() else {
        warn(
            &mut f,
            "no [sim] sample: the file cannot be checked against output".into(),
        );
        return f;
    };
    for b in &p.spec.backup {
        if !sim.commands.contains_key(&b.command) {
            let m = format!("sample has no output for backup command '{}'", b.command);
            if b.optional {
                warn(&mut f, m);
            } else {
                err(&mut f, m);
            }
        }
    }
    let host = "sample-rtr01.dc-1";
    let sample = Sample::new(p, host);
    // Prompts: both modes must be recognised, enable must tell them apart, and a later prompt
    // (after commands, in the other mode) must still match the first one's base.
    let plain = |t: &str| {
        let mut out = Vec::new();
        TermFilter::new().push(t.as_bytes(), &mut out);
        String::from_utf8_lossy(&out).into_owned()
    };
    let first = plain(&sample.prompt(sim.unprivileged.is_none(), 1));
    let priv_later = plain(&sample.prompt(true, 7));
    for prompt in [&first, &priv_later] {
        if !(p.prompt.is_match(prompt) || p.prompt.is_match(prompt.trim_end())) {
            err(
                &mut f,
                format!("prompt regex does not match the sample prompt {prompt:?}"),
            );
        }
    }
    // A prompt that does not match (a configured one) is learned, and must end in a terminator.
    for prompt in [&first, &priv_later] {
        let t = prompt.trim_end();
        if !p
            .spec
            .prompt_terminators
            .iter()
            .any(|x| !x.is_empty() && t.ends_with(x.as_str()))
        {
            err(
                &mut f,
                format!(
                    "the sample prompt {prompt:?} ends in none of prompt_terminators {:?}",
                    p.spec.prompt_terminators
                ),
            );
        }
    }
    let base = p.base_of(&first);
    let later_ok = match &p.prompt_base {
        Some(r) => r
            .captures(priv_later.trim_end())
            .and_then(|c| c.get(1))
            .is_some_and(|m| m.as_str() == base),
        None => priv_later.trim_end().starts_with(&base),
    };
    if !later_ok {
        err(
            &mut f,
            format!(
                "prompt {priv_later:?} does not keep the base {base:?} of {first:?} (set prompt_base)"
            ),
        );
    }
    if let (Some(unpriv), Some(_)) = (&p.unprivileged_prompt, &sim.unprivileged) {
        if !unpriv.is_match(first.trim_end()) && !unpriv.is_match(&first) {
            err(
                &mut f,
                format!("enable.unprivileged_prompt does not match {first:?}"),
            );
        }
        if unpriv.is_match(priv_later.trim_end()) || unpriv.is_match(&priv_later) {
            err(
                &mut f,
                format!("enable.unprivileged_prompt also matches the privileged {priv_later:?}"),
            );
        }
    }
    if sim.unprivileged.is_some() && p.spec.enable.is_none() {
        err(
            &mut f,
            "the sample starts unprivileged but the platform has no [enable]".into(),
        );
    }
    if let Some(pager) = &p.pager {
        let mut text = Vec::new();
        TermFilter::new().push(sim.more.as_bytes(), &mut text);
        let more = String::from_utf8_lossy(&text);
        if !pager.is_match(&more) {
            err(
                &mut f,
                format!("pager regex does not match the sample pager {:?}", sim.more),
            );
        }
    } else if p.spec.paging_off.is_empty() && sim.page_lines > 0 {
        err(
            &mut f,
            "the simulator pages until a paging_off command, and there is neither".into(),
        );
    }
    for (i, step) in sim.login.iter().enumerate() {
        let prompt = step
            .prompt
            .replace("{user}", sample.user)
            .replace("{hostname}", sample.hostname);
        let last = plain(&prompt);
        let last = last.rsplit('\n').next().unwrap_or("");
        if !p.login.iter().any(|r| r.is_match(last)) {
            err(
                &mut f,
                format!("no login step's expect matches sample login step {i} {last:?}"),
            );
        }
    }
    if !sim.invalid.lines().any(|l| p.is_command_error(l).is_some()) {
        warn(
            &mut f,
            "the sample's reply to an unknown command matches no command_errors regex".into(),
        );
    }
    // Output lines must not end a command early or fail it.
    let mut raw_all = String::new();
    for b in &p.spec.backup {
        if let Some(out) = sample.raw(&b.command, "10:00:00") {
            for line in out.lines() {
                let t = line.trim_end();
                if !t.is_empty() && (p.prompt.is_match(t) || p.prompt.is_match(line)) {
                    let lookalike = match &p.prompt_base {
                        Some(r) => r
                            .captures(t)
                            .and_then(|c| c.get(1))
                            .is_some_and(|m| m.as_str() == base),
                        None => t.starts_with(&base),
                    };
                    if lookalike {
                        err(
                            &mut f,
                            format!("output line {t:?} of '{}' looks like the prompt", b.command),
                        );
                    }
                }
                if p.pager.as_ref().is_some_and(|r| r.is_match(line)) {
                    err(
                        &mut f,
                        format!("output line {t:?} of '{}' looks like the pager", b.command),
                    );
                }
                if p.command_errors.iter().any(|r| r.is_match(line)) {
                    err(
                        &mut f,
                        format!(
                            "output line {t:?} of '{}' matches a command_errors regex",
                            b.command
                        ),
                    );
                }
            }
            raw_all.push_str(&out);
        }
    }
    let fetch = |s: &Sample, stamp: &str| -> String {
        let mut all = String::new();
        for b in &p.spec.backup {
            if b.discard {
                continue;
            }
            if let Some(out) = s.raw(&b.command, stamp) {
                match &b.comment {
                    Some(c) => all.push_str(&comment_lines(&out, c)),
                    None => all.push_str(&out),
                }
            }
        }
        all
    };
    let a = p.rules.normalise(&fetch(&sample, "10:00:00.001 UTC 1"));
    let b = p.rules.normalise(&fetch(&sample, "23:59:58.999 UTC 98765"));
    match (a, b) {
        (Ok(a), Ok(b)) => {
            if a != b {
                let line = first_difference(&a, &b);
                err(
                    &mut f,
                    format!(
                        "two fetches differing only in volatile values normalise differently: {line}"
                    ),
                );
            }
            let want = sample.expected_backup();
            if a != want {
                let line = first_difference(&want, &a);
                err(
                    &mut f,
                    format!(
                        "normalised sample differs from its expected backup (a volatile line not marked {{stamp}}/{{v}}, or a secret not marked {{secret}}?): {line}"
                    ),
                );
            }
            if let Some(line) = a.lines().find(|l| contains_sample_secret(l)) {
                err(&mut f, format!("secret survives normalisation: {line:?}"));
            }
            if !a.contains(REDACTED_MARKER) && !p.spec.secrets.is_empty() {
                warn(&mut f, "the sample holds no secret".into());
            }
            let mut changed = sample.clone();
            changed.rev = 4242;
            match p.rules.normalise(&fetch(&changed, "10:00:00.001 UTC 1")) {
                Ok(c) if c == a => warn(
                    &mut f,
                    "the sample has no {rev} line: a real change cannot be shown".into(),
                ),
                _ => {}
            }
        }
        (Err(e), _) | (_, Err(e)) => err(&mut f, format!("sample does not normalise: {e}")),
    }
    if !raw_all.is_empty() && !contains_sample_secret(&raw_all) && !p.spec.secrets.is_empty() {
        warn(&mut f, "the sample prints no {secret}".into());
    }
    f
}

fn first_difference(a: &str, b: &str) -> String {
    for (i, (x, y)) in a.lines().zip(b.lines()).enumerate() {
        if x != y {
            return format!("line {}: {x:?} vs {y:?}", i + 1);
        }
    }
    format!(
        "lengths {} vs {} lines",
        a.lines().count(),
        b.lines().count()
    )
}

/// What [`test_transcript`] found.
#[derive(Debug, Clone)]
pub struct TranscriptReport {
    /// The prompt the commands were typed at.
    pub prompt: String,
    /// Every command typed in the transcript, in order.
    pub commands: Vec<String>,
    /// Backup commands found, with their output size in lines.
    pub found: Vec<(String, usize)>,
    /// Required backup commands the transcript lacks.
    pub missing: Vec<String>,
    /// Optional backup commands left out (absent or rejected).
    pub left_out: Vec<String>,
    /// Volatile lines dropped.
    pub volatile_dropped: usize,
    /// Lines with a redacted secret.
    pub redacted_lines: usize,
    /// The configuration as it would be stored, or why it would not be.
    pub config: std::result::Result<String, String>,
}

impl TranscriptReport {
    /// Whether the platform backs the transcript's device up.
    pub fn ok(&self) -> bool {
        self.missing.is_empty() && self.config.is_ok()
    }

    /// Human-readable report.
    pub fn render(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "prompt: {:?}", self.prompt);
        let _ = writeln!(s, "commands typed: {}", self.commands.join(" | "));
        for (c, n) in &self.found {
            let _ = writeln!(s, "backup command '{c}': {n} lines");
        }
        for c in &self.left_out {
            let _ = writeln!(s, "optional backup command '{c}': left out");
        }
        for c in &self.missing {
            let _ = writeln!(
                s,
                "MISSING backup command '{c}' (not in the transcript or rejected)"
            );
        }
        let _ = writeln!(
            s,
            "volatile lines dropped: {}; lines with a redacted secret: {}",
            self.volatile_dropped, self.redacted_lines
        );
        match &self.config {
            Ok(c) => {
                let _ = write!(s, "--- stored configuration ---\n{c}");
            }
            Err(e) => {
                let _ = writeln!(s, "NOT STORED: {e}");
            }
        }
        s
    }
}

/// Runs a platform over a transcript of a session captured from a real device (terminal log:
/// banner, prompts with the commands typed at them, their output; ANSI codes, pagers and
/// backspaces as the device sent them): finds the prompt, splits the transcript at it, takes
/// each backup command's output as the driver would, and normalises the result.
pub fn test_transcript(p: &Platform, transcript: &[u8]) -> Result<TranscriptReport> {
    let mut text = Vec::with_capacity(transcript.len());
    TermFilter::new().push(transcript, &mut text);
    let text = String::from_utf8_lossy(&text);
    let lines: Vec<&str> = text.split('\n').collect();
    // The prompt: the last line that is a prompt on its own, else the last line that starts
    // with one.
    let own = lines
        .iter()
        .rev()
        .map(|l| l.trim_end())
        .find(|l| !l.is_empty() && p.prompt.is_match(l));
    let prompt = match own {
        Some(l) => l.to_string(),
        None => lines
            .iter()
            .rev()
            .find_map(|l| prompt_prefix(p, l, None).map(|(pr, _)| pr))
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::InvalidInput,
                    "no line of the transcript matches the platform's prompt regex",
                )
            })?,
    };
    let base = p.base_of(&prompt);
    // Split at prompt lines: (command, output lines).
    let mut segments: Vec<(String, Vec<&str>)> = Vec::new();
    for line in &lines {
        match prompt_prefix(p, line, Some(&base)) {
            Some((_, cmd)) => segments.push((cmd, Vec::new())),
            None => {
                if let Some(last) = segments.last_mut() {
                    let l = strip_pager(p, line);
                    last.1.push(l);
                }
            }
        }
    }
    let commands: Vec<String> = segments
        .iter()
        .map(|(c, _)| c.clone())
        .filter(|c| !c.is_empty())
        .collect();
    let mut report = TranscriptReport {
        prompt: prompt.clone(),
        commands,
        found: Vec::new(),
        missing: Vec::new(),
        left_out: Vec::new(),
        volatile_dropped: 0,
        redacted_lines: 0,
        config: Err(String::new()),
    };
    let mut all = String::new();
    for b in &p.spec.backup {
        let seg = segments.iter().rev().find(|(c, _)| c == b.command.trim());
        let Some((_, out)) = seg else {
            if b.optional {
                report.left_out.push(b.command.clone());
            } else {
                report.missing.push(b.command.clone());
            }
            continue;
        };
        let mut body = String::new();
        for l in out {
            body.push_str(l);
            body.push('\n');
        }
        if let Some(line) = p.is_command_error(&body) {
            if b.optional {
                report.left_out.push(b.command.clone());
            } else {
                report
                    .missing
                    .push(format!("{} (rejected: {line})", b.command));
            }
            continue;
        }
        report.found.push((b.command.clone(), out.len()));
        if b.discard {
            continue;
        }
        match &b.comment {
            Some(c) => all.push_str(&comment_lines(&body, c)),
            None => all.push_str(&body),
        }
    }
    let volatile: Vec<Regex> = p
        .spec
        .volatile
        .iter()
        .filter_map(|v| Regex::new(v).ok())
        .collect();
    report.volatile_dropped = all
        .lines()
        .filter(|l| volatile.iter().any(|r| r.is_match(l.trim_end())))
        .count();
    report.config = p.rules.normalise(&all).map_err(|e| e.to_string());
    if let Ok(c) = &report.config {
        let before = all.matches(REDACTED_MARKER).count();
        report.redacted_lines = c
            .lines()
            .filter(|l| l.contains(REDACTED_MARKER))
            .count()
            .saturating_sub(before);
    }
    Ok(report)
}

/// When `line` starts with a prompt (of `base`, when given), the prompt and the rest (the
/// command typed at it, trimmed).
fn prompt_prefix(p: &Platform, line: &str, base: Option<&str>) -> Option<(String, String)> {
    let line = line.trim_end();
    let mut ends: Vec<usize> = line
        .char_indices()
        .filter(|(_, c)| matches!(c, '>' | '#' | '$' | '%' | ':' | ']' | ')' | ' '))
        .map(|(i, c)| i + c.len_utf8())
        .collect();
    ends.push(line.len());
    for end in ends {
        let cand = &line[..end];
        if !p.prompt.is_match(cand) && !p.prompt.is_match(cand.trim_end()) {
            continue;
        }
        let ok = match base {
            None => true,
            Some(b) => match &p.prompt_base {
                Some(r) => r
                    .captures(cand.trim_end())
                    .and_then(|c| c.get(1))
                    .is_some_and(|m| m.as_str() == b),
                None => cand.starts_with(b),
            },
        };
        if ok {
            return Some((cand.trim_end().to_string(), line[end..].trim().to_string()));
        }
    }
    None
}

/// A pager left in a line (not erased by the device) is removed.
fn strip_pager<'a>(p: &Platform, line: &'a str) -> &'a str {
    match p.pager.as_ref().and_then(|r| r.find(line)) {
        Some(m) if m.end() == line.len() => &line[..m.start()],
        _ => line,
    }
}

/// `netraven platforms check FILE [--transcript T]`: the report and whether the file passes
/// (no error finding, and the transcript, when given, backs up).
pub fn check_file_report(path: &Path, transcript: Option<&Path>) -> Result<(String, bool)> {
    let p = load_platform_file(path)?;
    let mut out = String::new();
    let findings = check_platform(&p);
    let errors = findings
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .count();
    for finding in &findings {
        let _ = writeln!(out, "{finding}");
    }
    let builtin = builtin_platforms()?
        .into_iter()
        .any(|b| b.name() == p.name());
    let _ = writeln!(
        out,
        "{}: platform '{}' ({} backup commands, {} volatile, {} secret rules{}): {} errors, {} warnings",
        path.display(),
        p.name(),
        p.spec.backup.len(),
        p.spec.volatile.len(),
        p.spec.secrets.len(),
        if builtin {
            "; overrides the built-in of that name"
        } else {
            ""
        },
        errors,
        findings.len() - errors
    );
    let mut ok = errors == 0;
    if let Some(t) = transcript {
        let (text, tok) = transcript_report(&p, t)?;
        out.push_str(&text);
        ok &= tok;
    }
    Ok((out, ok))
}

/// `netraven platforms test FILE --transcript T`: the transcript report and whether the
/// platform backs it up.
pub fn test_file_report(path: &Path, transcript: &Path) -> Result<(String, bool)> {
    let p = load_platform_file(path)?;
    transcript_report(&p, transcript)
}

fn transcript_report(p: &Platform, transcript: &Path) -> Result<(String, bool)> {
    let bytes = std::fs::read(transcript).map_err(|e| {
        Error::invalid(format!("cannot read {}", transcript.display())).with_source(e)
    })?;
    let r = test_transcript(p, &bytes)?;
    Ok((r.render(), r.ok()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_passes_its_own_check() {
        // Read from disk (the same files the binary embeds) so that editing a platform file
        // does not need a rebuild to re-check it.
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("platforms");
        let mut errors = Vec::new();
        for p in load_platform_dir(&dir).unwrap() {
            for f in check_platform(&p) {
                if f.severity == Severity::Error {
                    errors.push(format!("{}: {f}", p.name()));
                }
            }
        }
        assert!(errors.is_empty(), "{errors:#?}");
    }

    #[test]
    fn transcript_of_ios_is_split_at_its_prompt() {
        let p = crate::builtin_platform("cisco_ios").unwrap();
        let t = b"\r\n# Banner core-sw1# lookalike\r\nr1>enable\r\nPassword: \r\nr1#terminal length 0\r\nr1#show version\r\nCisco IOS XE Software, Version 17.09.04a\r\nr1 uptime is 3 weeks\r\nr1#show running-config\r\nBuilding configuration...\r\n\r\nCurrent configuration : 120 bytes\r\nhostname r1\r\nenable secret 9 $9$abc\r\n --More-- \x08\x08\x08\x08\x08\x08\x08\x08\x08\x08          \x08\x08\x08\x08\x08\x08\x08\x08\x08\x08snmp-server community s3cr3t RO\r\nend\r\nr1#";
        let r = test_transcript(&p, t).unwrap();
        assert!(r.ok(), "{}", r.render());
        assert_eq!(r.prompt, "r1#");
        let c = r.config.unwrap();
        assert_eq!(
            c,
            "! Cisco IOS XE Software, Version 17.09.04a\n\nhostname r1\nenable secret 9 <removed>\nsnmp-server community <removed> RO\nend\n"
        );
        assert_eq!(r.volatile_dropped, 3);
    }

    #[test]
    fn transcript_without_the_backup_command_is_reported() {
        let p = crate::builtin_platform("cisco_ios").unwrap();
        let r = test_transcript(&p, b"r1#show version\r\nCisco IOS\r\nr1#").unwrap();
        assert!(!r.ok());
        assert_eq!(r.missing, vec!["show running-config".to_string()]);
    }
}
