//! The prompt / paging state machine, independent of SSH so that it can be tested with recorded
//! transcripts fed chunk by chunk.
//!
//! [`TermFilter`] turns raw terminal bytes into plain text (ANSI escape sequences removed,
//! backspaces and carriage returns applied). [`ShellReader`] accumulates that text and, after each
//! chunk, looks at the last (unfinished) line only: a pager (`--More--`) means "send a key", the
//! platform's prompt means "the command is done". Nothing is ever read to EOF.

use regex::Regex;
use std::borrow::Cow;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Esc {
    None,
    Start,
    Csi,
    Osc,
    OscEnd,
    Charset,
}

/// Removes ANSI escape sequences and applies backspace and carriage return, streaming: a
/// sequence split over two chunks is handled.
#[derive(Debug, Clone)]
pub struct TermFilter {
    esc: Esc,
    pending_cr: bool,
    /// Numeric parameter of the CSI sequence being read.
    csi_param: u32,
}

impl Default for TermFilter {
    fn default() -> Self {
        TermFilter {
            esc: Esc::None,
            pending_cr: false,
            csi_param: 0,
        }
    }
}

fn line_start(out: &[u8]) -> usize {
    out.iter().rposition(|&b| b == b'\n').map_or(0, |p| p + 1)
}

impl TermFilter {
    /// A filter in its initial state.
    pub fn new() -> Self {
        Self::default()
    }

    /// Filters `input`, appending plain text to `out`. A carriage return not followed by a line
    /// feed returns to the start of the line: the text after it replaces the line.
    pub fn push(&mut self, input: &[u8], out: &mut Vec<u8>) {
        for &b in input {
            match self.esc {
                Esc::Start => {
                    self.esc = match b {
                        b'[' => {
                            self.csi_param = 0;
                            Esc::Csi
                        }
                        b']' => Esc::Osc,
                        b'(' | b')' | b'*' | b'+' => Esc::Charset,
                        _ => Esc::None,
                    };
                    continue;
                }
                Esc::Csi => {
                    if b.is_ascii_digit() {
                        self.csi_param = self
                            .csi_param
                            .saturating_mul(10)
                            .saturating_add(u32::from(b - b'0'));
                    } else if (0x40..=0x7e).contains(&b) {
                        self.esc = Esc::None;
                        // Cursor back (Huawei and Comware erase their pager with `ESC[nD`,
                        // spaces, `ESC[nD`): what follows overwrites, so drop n characters.
                        if b == b'D' {
                            for _ in 0..self.csi_param.clamp(1, 4096) {
                                self.delete_one(out);
                            }
                        }
                    }
                    continue;
                }
                Esc::Osc => {
                    if b == 0x07 {
                        self.esc = Esc::None;
                    } else if b == 0x1b {
                        self.esc = Esc::OscEnd;
                    }
                    continue;
                }
                Esc::OscEnd => {
                    self.esc = if b == b'\\' { Esc::None } else { Esc::Osc };
                    continue;
                }
                Esc::Charset => {
                    self.esc = Esc::None;
                    continue;
                }
                Esc::None => {}
            }
            match b {
                0x1b => self.esc = Esc::Start,
                b'\r' => self.pending_cr = true,
                b'\n' => {
                    self.pending_cr = false;
                    out.push(b'\n');
                }
                0x08 => self.delete_one(out),
                b'\t' => {
                    self.resolve_cr(out);
                    out.push(b'\t');
                }
                0..=0x1f | 0x7f => {}
                _ => {
                    self.resolve_cr(out);
                    out.push(b);
                }
            }
        }
    }

    /// Deletes one character (a whole UTF-8 sequence), never past a line start.
    fn delete_one(&mut self, out: &mut Vec<u8>) {
        self.resolve_cr(out);
        while let Some(&last) = out.last() {
            if last == b'\n' {
                break;
            }
            out.pop();
            if last & 0xc0 != 0x80 {
                break;
            }
        }
    }

    fn resolve_cr(&mut self, out: &mut Vec<u8>) {
        if self.pending_cr {
            self.pending_cr = false;
            let start = line_start(out);
            out.truncate(start);
        }
    }
}

/// What the reader saw at the end of the text after a chunk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Nothing conclusive yet: read more.
    More,
    /// A pager waits for a key; its text was removed from the output.
    Pager,
    /// The prompt (returned without trailing whitespace): the device waits for a command.
    Prompt(String),
    /// One of the extra patterns (e.g. a password prompt) matched; its index.
    Extra(usize),
}

/// Accumulates a shell's output and recognises prompts and pagers at its end.
#[derive(Debug, Clone)]
pub struct ShellReader {
    filter: TermFilter,
    text: Vec<u8>,
    prompt: Regex,
    pager: Option<Regex>,
    extra: Vec<Regex>,
    base: Option<String>,
    base_pattern: Option<Regex>,
}

impl ShellReader {
    /// A reader for a platform's prompt and pager patterns.
    pub fn new(prompt: Regex, pager: Option<Regex>) -> Self {
        ShellReader {
            filter: TermFilter::new(),
            text: Vec::with_capacity(8 * 1024),
            prompt,
            pager,
            extra: Vec::new(),
            base: None,
            base_pattern: None,
        }
    }

    /// Sets the extra patterns checked after the prompt (e.g. an enable password prompt).
    pub fn set_extra(&mut self, extra: Vec<Regex>) {
        self.extra = extra;
    }

    /// Once the real prompt is known, only prompts starting with this base (the prompt without
    /// its mode character) count, so that banner or output lines that merely look like a prompt
    /// are not taken for one.
    pub fn set_base(&mut self, base: Option<String>) {
        self.base = base;
    }

    /// Sets the regex whose first capture group is a prompt's stable part: with it, a prompt
    /// counts when its capture equals the base (instead of starting with it), for prompts that
    /// change as the session runs (a command counter, an unsaved-changes marker).
    pub fn set_base_pattern(&mut self, pattern: Option<Regex>) {
        self.base_pattern = pattern;
    }

    /// The base in force.
    pub fn base(&self) -> Option<&str> {
        self.base.as_deref()
    }

    /// The text of the last, unfinished line.
    pub fn last_line(&self) -> Cow<'_, str> {
        String::from_utf8_lossy(&self.text[line_start(&self.text)..])
    }

    /// Feeds a chunk of raw bytes and says what the end of the text looks like now.
    pub fn feed(&mut self, chunk: &[u8]) -> Step {
        self.filter.push(chunk, &mut self.text);
        self.check()
    }

    /// Looks at the last line.
    pub fn check(&mut self) -> Step {
        let start = line_start(&self.text);
        let line = String::from_utf8_lossy(&self.text[start..]);
        if line.is_empty() {
            return Step::More;
        }
        if self.pager.as_ref().is_some_and(|p| p.is_match(&line)) {
            self.text.truncate(start);
            return Step::Pager;
        }
        let trimmed = line.trim_end();
        if self.prompt.is_match(&line) || self.prompt.is_match(trimmed) {
            let ok = match (&self.base, &self.base_pattern) {
                (Some(b), Some(re)) => re
                    .captures(trimmed)
                    .and_then(|c| c.get(1))
                    .is_some_and(|m| m.as_str() == b),
                (Some(b), None) => trimmed.starts_with(b.as_str()),
                (None, _) => true,
            };
            if ok {
                return Step::Prompt(trimmed.to_string());
            }
        }
        for (i, r) in self.extra.iter().enumerate() {
            if r.is_match(&line) {
                return Step::Extra(i);
            }
        }
        Step::More
    }

    /// Takes the text accumulated so far (prompt included) and starts afresh.
    pub fn take(&mut self) -> String {
        let s = String::from_utf8_lossy(&self.text).into_owned();
        self.text.clear();
        s
    }

    /// Discards the accumulated text.
    pub fn clear(&mut self) {
        self.text.clear();
    }
}

/// The prompt without trailing whitespace and mode characters (`>`, `#`, `$`, `%`), used as the
/// base that later prompts must start with.
pub fn prompt_base(prompt: &str) -> String {
    let p = prompt.trim_end();
    let p = p.trim_end_matches(['>', '#', '$', '%']);
    // IOS configuration modes: `r1(config-if)#` has the base `r1`.
    let p = match p.find('(') {
        Some(i) if p.ends_with(')') && i > 0 => &p[..i],
        _ => p,
    };
    p.to_string()
}

/// Cleans one command's output: drops the echoed command (first line, when it ends with the
/// command) and the trailing prompt (last line). Returns the remaining lines, each ending with a
/// newline.
pub fn clean_output(text: &str, command: &str) -> String {
    let mut body = text;
    // Trailing prompt: everything after the last newline.
    match body.rfind('\n') {
        Some(i) => body = &body[..i + 1],
        None => return String::new(),
    }
    let cmd = command.trim();
    if let Some(i) = body.find('\n') {
        let first = body[..i].trim_end();
        if !cmd.is_empty() && first.ends_with(cmd) {
            body = &body[i + 1..];
        }
    }
    body.to_string()
}

/// Prefixes every line with `prefix` (an empty line gets the prefix without trailing spaces).
pub fn comment_lines(text: &str, prefix: &str) -> String {
    let bare = prefix.trim_end();
    let mut out = String::with_capacity(text.len() + text.len() / 20 * prefix.len());
    for line in text.lines() {
        if line.trim().is_empty() {
            out.push_str(bare);
        } else {
            out.push_str(prefix);
            out.push_str(line);
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filt(chunks: &[&[u8]]) -> String {
        let mut f = TermFilter::new();
        let mut out = Vec::new();
        for c in chunks {
            f.push(c, &mut out);
        }
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn ansi_and_controls_are_removed_across_chunks() {
        assert_eq!(
            filt(&[b"\x1b[01;3", b"2mgreen\x1b[0", b"m\r\nx\x1b]0;title\x07y"]),
            "green\nxy"
        );
    }

    #[test]
    fn backspaces_and_carriage_returns_apply() {
        assert_eq!(filt(&[b"abc\x08\x08d\r\n"]), "ad\n");
        assert_eq!(
            filt(&[b" --More-- ", b"\r          \r", b"next\r\n"]),
            "next\n"
        );
        assert_eq!(filt(&[b"line\r", b"\n"]), "line\n");
    }

    #[test]
    fn cursor_back_overwrites_like_backspace() {
        assert_eq!(
            filt(&[
                b"a\r\n  ---- More ----\x1b[16D    ",
                b"            \x1b[16Dnext\r\n"
            ]),
            "a\nnext\n"
        );
        assert_eq!(filt(&[b"abc\x1b[Dd\n"]), "abd\n");
    }

    #[test]
    fn pager_then_prompt() {
        let mut r = ShellReader::new(
            Regex::new(r"^[\w.-]+[>#]\s?$").unwrap(),
            Some(Regex::new(r"-+\s*More\s*-+\s*$").unwrap()),
        );
        assert_eq!(r.feed(b"show x\r\nline1\r\n --More-- "), Step::Pager);
        assert_eq!(r.feed(b"\x08\x08\x08\x08\x08\x08\x08\x08\x08\x08          \x08\x08\x08\x08\x08\x08\x08\x08\x08\x08line2\r\nr1#"), Step::Prompt("r1#".into()));
        assert_eq!(clean_output(&r.take(), "show x"), "line1\nline2\n");
    }

    #[test]
    fn base_filters_lookalike_lines() {
        let mut r = ShellReader::new(Regex::new(r"^[\w.-]+[>#]\s?$").unwrap(), None);
        r.set_base(Some("r1".into()));
        assert_eq!(r.feed(b"core>"), Step::More);
        assert_eq!(r.feed(b"\r\nr1>"), Step::Prompt("r1>".into()));
        assert_eq!(prompt_base("r1(config-if)#"), "r1");
        assert_eq!(prompt_base("admin@r1> "), "admin@r1");
    }
}
