//! The prompt / paging state machine, independent of SSH so that it can be tested with recorded
//! transcripts fed chunk by chunk.
//!
//! [`TermFilter`] turns raw terminal bytes into plain text (ANSI escape sequences removed,
//! backspaces and carriage returns applied). [`ShellReader`] accumulates that text and, after each
//! chunk, looks at the last (unfinished) line only: a pager (`--More--`) means "send a key", the
//! platform's prompt means "the command is done". Nothing is ever read to EOF.
//!
//! Hostile or broken devices are bounded: a command's output may not exceed
//! [`ReaderLimits::max_output_bytes`] and no line [`ReaderLimits::max_line_bytes`]
//! ([`Step::TooLarge`]), and each chunk costs time in proportion to its own size, never to the
//! text before it: the start of the last line is tracked as bytes arrive, and a last line longer
//! than [`MATCH_WINDOW`] is not matched at all (no prompt or pager is that long), so a device
//! streaming one endless line cannot make every chunk rescan it.

use crate::platform::SharedRegex;
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
    /// Where the last line of the output starts (just after its last newline), tracked as
    /// newlines are written: nothing ever removes a newline, so it only moves forward (or back
    /// to 0 when the caller clears the output; [`TermFilter::line_start_in`] checks it).
    line_start: usize,
}

impl Default for TermFilter {
    fn default() -> Self {
        TermFilter {
            esc: Esc::None,
            pending_cr: false,
            csi_param: 0,
            line_start: 0,
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

    /// Where the last line of `out` starts, in constant time when `out` is the buffer this
    /// filter writes to (a position that cannot be right for `out` is found by a scan).
    pub fn line_start_in(&self, out: &[u8]) -> usize {
        let s = self.line_start;
        if s <= out.len() && (s == 0 || out[s - 1] == b'\n') {
            return s;
        }
        line_start(out)
    }

    /// Says that the caller emptied its output buffer.
    pub fn output_cleared(&mut self) {
        self.line_start = 0;
    }

    /// Filters `input`, appending plain text to `out`. A carriage return not followed by a line
    /// feed returns to the start of the line: the text after it replaces the line.
    pub fn push(&mut self, input: &[u8], out: &mut Vec<u8>) {
        self.line_start = self.line_start_in(out);
        let mut i = 0;
        while i < input.len() {
            // The common case, plain text outside any sequence (line feeds and tabs included):
            // copied as one run, and a CR LF line end taken at once.
            if matches!(self.esc, Esc::None) && !self.pending_cr {
                let rest = &input[i..];
                let run = rest
                    .iter()
                    .position(|&b| (b < 0x20 && b != b'\n' && b != b'\t') || b == 0x7f)
                    .unwrap_or(rest.len());
                if run > 0 {
                    let at = out.len();
                    out.extend_from_slice(&rest[..run]);
                    if let Some(nl) = rest[..run].iter().rposition(|&b| b == b'\n') {
                        self.line_start = at + nl + 1;
                    }
                    i += run;
                }
                if input.get(i) == Some(&b'\r') && input.get(i + 1) == Some(&b'\n') {
                    out.push(b'\n');
                    self.line_start = out.len();
                    i += 2;
                    continue;
                }
                if run > 0 {
                    continue;
                }
            }
            let b = input[i];
            i += 1;
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
                    self.line_start = out.len();
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
            out.truncate(self.line_start.min(out.len()));
        }
    }
}

/// A last line longer than this is not matched against prompt and pager patterns: none is
/// this long, and matching it would cost time in proportion to the line for every chunk.
pub const MATCH_WINDOW: usize = 4096;

/// How much output one command may produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReaderLimits {
    /// Bytes received (before terminal filtering) since the output was last taken or cleared.
    pub max_output_bytes: usize,
    /// Length of one line of filtered output.
    pub max_line_bytes: usize,
}

impl Default for ReaderLimits {
    fn default() -> Self {
        ReaderLimits {
            max_output_bytes: 64 * 1024 * 1024,
            max_line_bytes: 4 * 1024 * 1024,
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
    /// The output passed a limit of [`ReaderLimits`]; the reader should be cleared.
    TooLarge(&'static str),
}

/// Accumulates a shell's output and recognises prompts and pagers at its end.
#[derive(Debug, Clone)]
pub struct ShellReader {
    filter: TermFilter,
    text: Vec<u8>,
    prompt: SharedRegex,
    pager: Option<SharedRegex>,
    extra: Vec<SharedRegex>,
    base: Option<String>,
    base_pattern: Option<SharedRegex>,
    limits: ReaderLimits,
    /// Raw bytes fed since the text was last taken or cleared.
    received: usize,
}

impl ShellReader {
    /// A reader for a platform's prompt and pager patterns, with the default limits.
    pub fn new(prompt: impl Into<SharedRegex>, pager: Option<SharedRegex>) -> Self {
        ShellReader {
            filter: TermFilter::new(),
            text: Vec::with_capacity(8 * 1024),
            prompt: prompt.into(),
            pager,
            extra: Vec::new(),
            base: None,
            base_pattern: None,
            limits: ReaderLimits::default(),
            received: 0,
        }
    }

    /// Replaces the prompt pattern (a prompt learned from the session, see [`PromptLearner`]).
    pub fn set_prompt(&mut self, prompt: impl Into<SharedRegex>) {
        self.prompt = prompt.into();
    }

    /// Replaces the output limits.
    pub fn set_limits(&mut self, limits: ReaderLimits) {
        self.limits = limits;
    }

    /// Sets the extra patterns checked after the prompt (e.g. an enable password prompt).
    pub fn set_extra(&mut self, extra: Vec<SharedRegex>) {
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
    pub fn set_base_pattern(&mut self, pattern: Option<SharedRegex>) {
        self.base_pattern = pattern;
    }

    /// The base in force.
    pub fn base(&self) -> Option<&str> {
        self.base.as_deref()
    }

    /// The text of the last, unfinished line. Device bytes, unredacted: for tests and
    /// diagnostics, never for messages or logs.
    pub fn last_line(&self) -> Cow<'_, str> {
        String::from_utf8_lossy(&self.text[self.filter.line_start_in(&self.text)..])
    }

    /// Feeds a chunk of raw bytes and says what the end of the text looks like now.
    pub fn feed(&mut self, chunk: &[u8]) -> Step {
        self.received = self.received.saturating_add(chunk.len());
        if self.received > self.limits.max_output_bytes {
            return Step::TooLarge("output");
        }
        self.filter.push(chunk, &mut self.text);
        if self.text.len() - self.filter.line_start_in(&self.text) > self.limits.max_line_bytes {
            return Step::TooLarge("line");
        }
        self.check()
    }

    /// Looks at the last line.
    pub fn check(&mut self) -> Step {
        let start = self.filter.line_start_in(&self.text);
        if self.text.len() - start > MATCH_WINDOW {
            return Step::More;
        }
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
        // The buffer itself becomes the string (no copy); its spare capacity is given back, so a
        // session that keeps running holds no buffer sized for its largest output.
        let s = match String::from_utf8(std::mem::take(&mut self.text)) {
            Ok(mut s) => {
                s.shrink_to_fit();
                s
            }
            Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
        };
        self.clear();
        s
    }

    /// Discards the accumulated text.
    pub fn clear(&mut self) {
        self.text.clear();
        if self.text.capacity() > 1024 * 1024 {
            // A huge output's buffer is not kept for the rest of the session.
            self.text = Vec::with_capacity(8 * 1024);
        }
        self.filter.output_cleared();
        self.received = 0;
    }
}

/// The last line of `text` that is not blank, without trailing whitespace.
pub fn last_nonempty_line(text: &str) -> &str {
    text.lines()
        .map(str::trim_end)
        .rfind(|l| !l.trim().is_empty())
        .unwrap_or("")
}

/// The longest prompt a [`PromptLearner`] accepts (a longer "prompt" is output).
pub const MAX_LEARNED_PROMPT: usize = 256;

/// Learns a prompt the platform's pattern does not match, the way netmiko's `find_prompt` and
/// `set_base_prompt` do: the client sends a newline, takes the last non-blank line of the
/// answer, and does it again; when two answers in a row end on the same line and that line ends
/// in one of the platform's prompt terminators (`>`, `#`, `$`, `%` by default), it is the
/// prompt. A banner or MOTD line never repeats after a newline, so it is never taken.
#[derive(Debug, Clone)]
pub struct PromptLearner {
    terminators: Vec<String>,
    previous: Option<String>,
}

impl PromptLearner {
    /// A learner accepting prompts that end in one of `terminators`.
    pub fn new(terminators: &[String]) -> Self {
        PromptLearner {
            terminators: terminators.to_vec(),
            previous: None,
        }
    }

    /// Whether `line` (without trailing whitespace) ends in one of the terminators.
    pub fn ends_in_terminator(&self, line: &str) -> bool {
        self.terminators
            .iter()
            .any(|t| !t.is_empty() && line.ends_with(t.as_str()))
    }

    /// Takes the (filtered) answer to one newline. Returns the prompt once the same last line
    /// came twice in a row and ends in a terminator.
    pub fn offer(&mut self, answer: &str) -> Option<String> {
        let line = last_nonempty_line(answer);
        if line.is_empty() || line.len() > MAX_LEARNED_PROMPT || !self.ends_in_terminator(line) {
            self.previous = None;
            return None;
        }
        if self.previous.as_deref() == Some(line) {
            return Some(line.to_string());
        }
        self.previous = Some(line.to_string());
        None
    }

    /// The pattern that recognises `prompt` (as learned) for the rest of the session, and its
    /// base: the prompt without its terminator. The pattern accepts the base, then an optional
    /// IOS-style mode in parentheses (`(config)`), then any of the terminators, so the prompt
    /// still matches after enable (`host>` → `host#`).
    pub fn pattern_for(&self, prompt: &str) -> (Regex, String) {
        let p = prompt.trim_end();
        let term = self
            .terminators
            .iter()
            .filter(|t| !t.is_empty() && p.ends_with(t.as_str()))
            .max_by_key(|t| t.len())
            .map_or(0, |t| t.len());
        let base = p[..p.len() - term].trim_end().to_string();
        let mut terms: Vec<&String> = self.terminators.iter().filter(|t| !t.is_empty()).collect();
        terms.sort_by_key(|t| std::cmp::Reverse(t.len()));
        let alts: Vec<String> = terms.iter().map(|t| regex::escape(t)).collect();
        let spacer = if p[..p.len() - term].ends_with(char::is_whitespace) {
            r"\s*"
        } else {
            ""
        };
        let pattern = format!(
            r"^{}(?:\([\w./-]{{0,40}}\))?{spacer}(?:{})\s?$",
            regex::escape(&base),
            alts.join("|")
        );
        // Escaped text and fixed syntax: always a valid regex.
        let re = crate::platform::build_regex(&pattern)
            .unwrap_or_else(|_| Regex::new("^$").expect("valid"));
        (re, base)
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
            Some(Regex::new(r"-+\s*More\s*-+\s*$").unwrap().into()),
        );
        assert_eq!(r.feed(b"show x\r\nline1\r\n --More-- "), Step::Pager);
        assert_eq!(r.feed(b"\x08\x08\x08\x08\x08\x08\x08\x08\x08\x08          \x08\x08\x08\x08\x08\x08\x08\x08\x08\x08line2\r\nr1#"), Step::Prompt("r1#".into()));
        assert_eq!(clean_output(&r.take(), "show x"), "line1\nline2\n");
    }

    #[test]
    fn output_and_line_lengths_are_capped() {
        let prompt = Regex::new(r"^[\w.-]+[>#]\s?$").unwrap();
        let mut r = ShellReader::new(prompt.clone(), None);
        r.set_limits(ReaderLimits {
            max_output_bytes: 10_000,
            max_line_bytes: 1_000,
        });
        let line = [b'x'; 100];
        let mut step = Step::More;
        for _ in 0..20 {
            step = r.feed(&line);
            if step != Step::More {
                break;
            }
        }
        assert_eq!(step, Step::TooLarge("line"));
        r.clear();
        let mut step = Step::More;
        for _ in 0..600 {
            step = r.feed(b"0123456789abcdefghi\n");
            if step != Step::More {
                break;
            }
        }
        assert_eq!(step, Step::TooLarge("output"));
        r.clear();
        assert_eq!(r.feed(b"ok\nr1#"), Step::Prompt("r1#".into()));
    }

    #[test]
    fn a_long_line_is_not_rescanned_and_the_prompt_after_it_is_found() {
        let prompt = Regex::new(r"^[\w.-]+[>#]\s?$").unwrap();
        let mut r = ShellReader::new(prompt, Some(Regex::new(r"--More--\s*$").unwrap().into()));
        // A long line ending in something prompt-like is not a prompt (and is not matched).
        let mut long = vec![b'y'; MATCH_WINDOW + 10];
        long.extend_from_slice(b" r1#");
        assert_eq!(r.feed(&long), Step::More);
        // Carriage returns, backspaces and newlines keep the tracked line start right.
        assert_eq!(r.feed(b"\r\nab\x08\x08\r\n"), Step::More);
        assert_eq!(r.feed(b"\rzz\rr1#"), Step::Prompt("r1#".into()));
        let text = r.take();
        assert!(text.ends_with("\n\nr1#"), "{:?}", &text[text.len() - 10..]);
        assert_eq!(r.feed(b"more\n --More-- "), Step::Pager);
        assert_eq!(r.feed(b"r1#"), Step::Prompt("r1#".into()));
        assert_eq!(r.take(), "more\nr1#");
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

    fn terms() -> Vec<String> {
        [">", "#", "$", "%"].iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_prompt_is_learned_only_when_its_line_repeats_and_ends_in_a_terminator() {
        let mut l = PromptLearner::new(&terms());
        // A banner line is never repeated by a newline.
        assert_eq!(l.offer("banner > line\nmx1> "), None);
        assert_eq!(l.offer("\nmx1> "), Some("mx1>".into()));
        let mut l = PromptLearner::new(&terms());
        assert_eq!(l.offer("\nmx1> "), None);
        assert_eq!(l.offer("\n"), None, "an empty answer resets");
        assert_eq!(l.offer("\nmx1> "), None);
        assert_eq!(l.offer("\nmx1> "), Some("mx1>".into()));
        // Repeated but not ending in a terminator: output, not a prompt.
        let mut l = PromptLearner::new(&terms());
        assert_eq!(l.offer("\nPress RETURN"), None);
        assert_eq!(l.offer("\nPress RETURN"), None);
        let long = format!("\n{}>", "x".repeat(MAX_LEARNED_PROMPT + 1));
        let mut l = PromptLearner::new(&terms());
        assert_eq!(l.offer(&long), None);
        assert_eq!(l.offer(&long), None);
    }

    #[test]
    fn the_learned_pattern_follows_the_prompt_through_enable_and_nothing_else() {
        let l = PromptLearner::new(&terms());
        let (re, base) = l.pattern_for("core-sw1 prod>");
        assert_eq!(base, "core-sw1 prod");
        for ok in [
            "core-sw1 prod>",
            "core-sw1 prod#",
            "core-sw1 prod(config)#",
            "core-sw1 prod# ",
        ] {
            assert!(re.is_match(ok), "{ok}");
        }
        for bad in [
            "core-sw1>",
            "xcore-sw1 prod#",
            "core-sw1 prod# x",
            "core-sw1 prodx#",
        ] {
            assert!(!re.is_match(bad), "{bad}");
        }
        let (re, base) = l.pattern_for("$");
        assert_eq!(base, "");
        assert!(re.is_match("$ ") && re.is_match("#") && !re.is_match("a$"));
        let (re, base) = l.pattern_for("bash-5.1$");
        assert_eq!(base, "bash-5.1");
        assert!(re.is_match("bash-5.1$ ") && !re.is_match("bash-5.10$"));
        // A terminator after a space keeps its space optional.
        let (re, _) = l.pattern_for("[admin@mt1] >");
        assert!(re.is_match("[admin@mt1] >") && re.is_match("[admin@mt1] > "));
        // Regex syntax in a prompt is literal.
        let (re, _) = l.pattern_for("a.b*c>");
        assert!(re.is_match("a.b*c>") && !re.is_match("aXbbc>"));
    }

    #[test]
    fn a_learned_pattern_replaces_the_platform_pattern_in_the_reader() {
        let mut r = ShellReader::new(Regex::new(r"^[\w.-]+@[\w.-]+[>#]\s?$").unwrap(), None);
        assert_eq!(r.feed(b"\r\nmx1> "), Step::More);
        let (re, base) = PromptLearner::new(&terms()).pattern_for("mx1>");
        r.set_prompt(re);
        r.set_base(Some(base));
        r.clear();
        assert_eq!(r.feed(b"out\r\nmx1> "), Step::Prompt("mx1>".into()));
    }
}
