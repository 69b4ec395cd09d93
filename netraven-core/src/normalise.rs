//! Configuration normalisation and redaction.
//!
//! A platform's [`Rules`] say which lines are volatile (timestamps, uptime, counters: removed
//! before hashing and storing, so an unchanged device makes no new snapshot) and which parts of a
//! line are secrets (replaced by a marker). [`Rules::normalise`] fails closed: when it returns an
//! error, nothing may be stored.

use crate::error::{Error, ErrorKind, Result};
use regex::{Regex, RegexSet};

mod literals;
mod tail;

/// The text that replaces a redacted secret when a rule's replacement names `{marker}`.
pub const REDACTED_MARKER: &str = "<removed>";

/// Largest configuration accepted (bytes); anything bigger is refused rather than truncated.
pub const MAX_CONFIG_BYTES: usize = 64 * 1024 * 1024;

/// One secret rule: a regex matched against each line and its replacement (`$1`, `${name}` refer
/// to capture groups; `{marker}` is replaced by [`REDACTED_MARKER`]).
#[derive(Debug, Clone)]
pub struct SecretRule {
    pattern: Regex,
    replace: String,
    /// `replace` parsed once, when it only uses the plain forms (see [`Template::parse`]).
    template: Option<Template>,
    /// Whether group 1 can be read off a match (see [`tail::group_before_tail`]).
    group_before_tail: bool,
}

impl SecretRule {
    fn new(pattern: Regex, replace: &str) -> Self {
        let replace = replace.replace("{marker}", REDACTED_MARKER);
        SecretRule {
            template: Template::parse(&pattern, &replace),
            group_before_tail: tail::group_before_tail(pattern.as_str()),
            pattern,
            replace,
        }
    }

    /// `text` with every match replaced, or `None` when nothing matched.
    fn replace(&self, text: &str) -> Option<String> {
        // `replace_all` borrows the text back when nothing matched.
        let by_regex = || match self.pattern.replace_all(text, self.replace.as_str()) {
            std::borrow::Cow::Owned(s) => Some(s),
            std::borrow::Cow::Borrowed(_) => None,
        };
        let Some(template) = &self.template else {
            return by_regex();
        };
        // `replace_all` builds a `Captures` and parses the replacement for every match; this
        // reads the groups into one set of locations (about half the time per redacted line),
        // or, for a rule whose group 1 is read off the match, only finds the match (one DFA
        // search, no capture engine).
        let mut locs = (!self.group_before_tail).then(|| self.pattern.capture_locations());
        let mut out: Option<String> = None;
        let mut last = 0;
        loop {
            let m = match &mut locs {
                Some(locs) => self.pattern.captures_read_at(locs, text, last),
                None => self.pattern.find_at(text, last),
            };
            let Some(m) = m else { break };
            if m.start() == m.end() {
                // Empty matches follow `replace_all`'s own rules.
                return by_regex();
            }
            let span = |g: usize| match &locs {
                Some(locs) => locs.get(g),
                None => match g {
                    0 => Some((m.start(), m.end())),
                    1 => Some((m.start(), m.start() + tail::group_end(m.as_str()))),
                    // The pattern has no other group.
                    _ => None,
                },
            };
            let o = out.get_or_insert_with(|| String::with_capacity(text.len() + 16));
            o.push_str(&text[last..m.start()]);
            for piece in &template.0 {
                match piece {
                    Piece::Text(t) => o.push_str(t),
                    Piece::Group(g) => {
                        if let Some((s, e)) = span(*g) {
                            o.push_str(&text[s..e]);
                        }
                    }
                }
            }
            last = m.end();
        }
        let mut o = out?;
        o.push_str(&text[last..]);
        Some(o)
    }
}

/// A replacement parsed into text and capture-group references.
#[derive(Debug, Clone)]
struct Template(Vec<Piece>);

#[derive(Debug, Clone)]
enum Piece {
    Text(String),
    Group(usize),
}

impl Template {
    /// Parses `${N}`, `${name}` and `$N` (not followed by a name character) references;
    /// `None` for any other use of `$` (`$$`, `$name`, `$1a`, an unclosed `${`), which is
    /// left to [`Regex::replace_all`] so that its exact rules apply.
    fn parse(re: &Regex, rep: &str) -> Option<Template> {
        let group = |name: &str| -> Option<Piece> {
            match name.parse::<usize>() {
                Ok(i) => Some(Piece::Group(i)),
                Err(_) => {
                    let i = re.capture_names().position(|n| n == Some(name));
                    // A name the pattern lacks expands to nothing, as in `replace_all`.
                    Some(i.map_or(Piece::Text(String::new()), Piece::Group))
                }
            }
        };
        let ident = |c: char| c == '_' || c.is_ascii_alphanumeric();
        let mut pieces = Vec::new();
        let mut rest = rep;
        while let Some(d) = rest.find('$') {
            if d > 0 {
                pieces.push(Piece::Text(rest[..d].to_string()));
            }
            let after = &rest[d + 1..];
            if let Some(braced) = after.strip_prefix('{') {
                let end = braced.find('}')?;
                let name = &braced[..end];
                if name.is_empty() || !name.chars().all(ident) {
                    return None;
                }
                pieces.push(group(name)?);
                rest = &braced[end + 1..];
            } else {
                let len = after.find(|c: char| !ident(c)).unwrap_or(after.len());
                let name = &after[..len];
                if name.is_empty() || !name.chars().all(|c| c.is_ascii_digit()) {
                    return None;
                }
                pieces.push(Piece::Group(name.parse().ok()?));
                rest = &after[len..];
            }
        }
        if !rest.is_empty() {
            pieces.push(Piece::Text(rest.to_string()));
        }
        Some(Template(pieces))
    }
}

/// A secret rule that applies only inside a section: from a line matching `within` until the
/// next non-blank line indented no deeper than that line (FortiOS `config system snmp
/// community` … `end`, where `set name` is the community).
#[derive(Debug, Clone)]
struct ScopedRule {
    within: Regex,
    until: Option<Regex>,
    rule: SecretRule,
}

/// A secret rule limited to a section (see [`Rules::with_scoped_secrets`]).
#[derive(Debug, Clone, Copy)]
pub struct ScopedSecret<'a> {
    /// Regex of the line that opens the section.
    pub within: &'a str,
    /// Regex of the line that closes it; without it, the section ends before the next non-blank
    /// line indented no deeper than the opening line (for flat formats such as RouterOS
    /// `/export`, where every line starts at column 0, give `until`).
    pub until: Option<&'a str>,
    /// The secret pattern.
    pub pattern: &'a str,
    /// Its replacement (`${1}`, `{marker}`).
    pub replace: &'a str,
}

/// Volatile-line and secret rules of a platform.
#[derive(Debug, Clone)]
pub struct Rules {
    volatile: Vec<Regex>,
    volatile_set: RegexSet,
    secrets: Vec<SecretRule>,
    secret_set: RegexSet,
    /// One scan of a whole configuration that tells which rules may match which lines (see
    /// [`Prefilter`]); `None`: every line is checked against every rule.
    prefilter: Option<Prefilter>,
    scoped: Vec<ScopedRule>,
    /// Multi-line secrets (PEM private keys): the lines between a `begin` and an `end` match
    /// become one marker line.
    blocks: Vec<(Regex, Regex)>,
}

fn compile(kind: &str, p: &str) -> Result<Regex> {
    Regex::new(p).map_err(|e| {
        Error::new(ErrorKind::InvalidInput, format!("bad {kind} pattern '{p}'")).with_source(e)
    })
}

/// Finds, in one scan of a whole text, the lines on which any of a list of per-line patterns
/// may match. It only narrows: each line it returns is still checked with the per-line rule, and
/// a line it leaves out is one no per-line pattern matches. That holds because the text scanned
/// is the lines exactly as they are checked (trailing whitespace removed), joined by `\n`, and
/// the patterns run in multi-line mode, so `^`, `$` and `.` behave at each line as they do on the
/// line alone, and a match on a line alone is also a match at the same place in the text; the
/// scan only looks for where the first match ends (a forward search that stops at the earliest
/// match end, no reverse search for its start) and restarts at the line after that end: a line
/// with a match of its own has that match end on it, so the earliest end found from any earlier
/// restart point lies on it or on an earlier line, and none is skipped.
/// Patterns that can tell the text from a line (`\A`, `\z`, a flag turned off with `(?-…`)
/// get no prefilter.
#[derive(Debug, Clone)]
struct LinePrefilter(regex_automata::meta::Regex);

/// Below this many lines a prefilter costs more than it saves.
const PREFILTER_MIN_LINES: usize = 32;

impl LinePrefilter {
    fn new<'a>(patterns: impl IntoIterator<Item = &'a str>) -> Option<Self> {
        let mut joined = Vec::new();
        for p in patterns {
            if p.contains("\\A") || p.contains("\\z") || p.contains("(?-") {
                return None;
            }
            joined.push(format!("(?:{p})"));
        }
        if joined.is_empty() {
            return None;
        }
        regex_automata::meta::Regex::new(&format!("(?m){}", joined.join("|")))
            .ok()
            .map(LinePrefilter)
    }

    /// Marks the lines of `text` (starting at `starts`) on which a pattern may match.
    fn candidates(&self, text: &str, starts: &[usize]) -> Vec<bool> {
        let mut marks = vec![false; starts.len()];
        let mut input = regex_automata::Input::new(text).earliest(true);
        let mut from = 0;
        while from <= text.len() {
            input.set_start(from);
            let Some(end) = self.0.search_half(&input) else {
                break;
            };
            // The line holding the match's end: the last line start at or before it.
            let line = starts
                .partition_point(|&s| s <= end.offset())
                .saturating_sub(1);
            marks[line] = true;
            match starts.get(line + 1) {
                Some(&next) => from = next,
                None => break,
            }
        }
        marks
    }
}

/// The kinds of rule a [`Prefilter`] serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Volatile,
    Secret,
    /// A line opening a section ([`ScopedRule::within`]) or a secret block.
    Open,
}

/// Which rules may match which lines of a configuration, from one multi-literal scan of the
/// whole text: each rule with required literals ([`literals::required`]) is tried only on lines
/// holding one of them; the rules without any are found by a [`LinePrefilter`] scan per kind (or
/// tried on every line when that cannot be built). It only narrows: a rule it does not name for
/// a line cannot match that line.
#[derive(Debug, Clone)]
struct Prefilter {
    /// The literals of every rule's first (best) set, to find the lines holding any (fast).
    any_literal: aho_corasick::AhoCorasick,
    /// The literals of every set of every rule, to find each one in a line (overlapping).
    literals: aho_corasick::AhoCorasick,
    /// Per literal of `literals`: the rules (kind, index) and which of their sets it is in.
    owners: Vec<Vec<(Kind, u32, u8)>>,
    /// Per kind and rule: how many literal sets it has (all must be found on a line).
    sets: [Vec<u8>; 3],
    /// Per kind: the rules without literals.
    rest: [Rest; 3],
}

/// The rules of one kind that have no required literals.
#[derive(Debug, Clone, Default)]
struct Rest {
    ids: Vec<u32>,
    /// The lines they may match; `None` with `ids` not empty: every line.
    scan: Option<LinePrefilter>,
}

impl Prefilter {
    /// `None` when it would not narrow anything (no rule has literals).
    fn new(rules: [Vec<&str>; 3]) -> Option<Self> {
        let mut index: std::collections::HashMap<Vec<u8>, usize> = Default::default();
        let mut owners: Vec<Vec<(Kind, u32, u8)>> = Vec::new();
        let mut primary: Vec<Vec<u8>> = Vec::new();
        let mut sets: [Vec<u8>; 3] = Default::default();
        let mut rest: [Rest; 3] = Default::default();
        for (k, patterns) in rules.iter().enumerate() {
            let kind = [Kind::Volatile, Kind::Secret, Kind::Open][k];
            let mut without = Vec::new();
            for (id, p) in patterns.iter().enumerate() {
                let id = id as u32;
                let Some(required) = literals::required(p) else {
                    sets[k].push(0);
                    rest[k].ids.push(id);
                    without.push(*p);
                    continue;
                };
                sets[k].push(required.len() as u8);
                for (si, set) in required.into_iter().enumerate() {
                    for lit in set {
                        if si == 0 {
                            primary.push(lit.clone());
                        }
                        let n = index.len();
                        let at = *index.entry(lit).or_insert(n);
                        if at == owners.len() {
                            owners.push(Vec::new());
                        }
                        owners[at].push((kind, id, si as u8));
                    }
                }
            }
            rest[k].scan = LinePrefilter::new(without);
        }
        if index.is_empty() {
            return None;
        }
        let mut lits: Vec<(Vec<u8>, usize)> = index.into_iter().collect();
        lits.sort_by_key(|(_, at)| *at);
        primary.sort();
        primary.dedup();
        // Leftmost-first runs on the vectorised (Teddy) prefilter; the standard kind, which can
        // report overlapping matches, does not.
        let any_literal = aho_corasick::AhoCorasick::builder()
            .match_kind(aho_corasick::MatchKind::LeftmostFirst)
            .build(&primary)
            .ok()?;
        // A full DFA: a line holding a literal is walked once more, byte by byte.
        let literals = aho_corasick::AhoCorasick::builder()
            .kind(Some(aho_corasick::AhoCorasickKind::DFA))
            .build(lits.iter().map(|(l, _)| l))
            .ok()?;
        Some(Prefilter {
            any_literal,
            literals,
            owners,
            sets,
            rest,
        })
    }
}

/// One configuration under a [`Prefilter`]: walks its lines in order, naming for each the rules
/// that may match it.
struct Scan<'a> {
    pre: &'a Prefilter,
    /// The raw configuration: a literal found in a line's trailing whitespace (which the rules
    /// never see) only makes the line a candidate for nothing.
    raw: &'a str,
    /// Where each line starts in `raw`.
    starts: &'a [usize],
    /// The next line holding any literal at all, from where the search got to.
    next: Option<usize>,
    /// Per kind: the lines the rules without literals may match (`None`: every line, or there
    /// are no such rules).
    rest: [Option<Vec<bool>>; 3],
}

impl<'a> Scan<'a> {
    /// `lines`: the lines as the rules see them (trailing whitespace removed).
    fn new(pre: &'a Prefilter, raw: &'a str, starts: &'a [usize], lines: &[&str]) -> Self {
        let rest = if pre.rest.iter().any(|r| r.scan.is_some()) {
            // The rules without literals scan the lines exactly as they are checked.
            let mut text = String::with_capacity(raw.len());
            let mut at = Vec::with_capacity(lines.len());
            for (i, line) in lines.iter().enumerate() {
                if i > 0 {
                    text.push('\n');
                }
                at.push(text.len());
                text.push_str(line);
            }
            [0, 1, 2].map(|k| {
                let r = &pre.rest[k];
                r.scan.as_ref().map(|s| s.candidates(&text, &at))
            })
        } else {
            [None, None, None]
        };
        let mut scan = Scan {
            pre,
            raw,
            starts,
            next: None,
            rest,
        };
        scan.next = scan.find_from(0);
        scan
    }

    /// The first line at or after byte `from` of `raw` holding any literal.
    fn find_from(&self, from: usize) -> Option<usize> {
        let input = aho_corasick::Input::new(self.raw).span(from..self.raw.len());
        let m = self.pre.any_literal.find(input)?;
        Some(self.starts.partition_point(|&s| s <= m.start()) - 1)
    }

    /// Fills `out` with the rules that may match line `i` (`line`, trailing whitespace removed);
    /// lines are visited in order.
    fn line(&mut self, i: usize, line: &str, out: &mut LineRules) {
        out.volatile.clear();
        out.secret.clear();
        out.open = false;
        if self.next == Some(i) {
            // Every occurrence of every literal in the line: one may start inside another.
            out.found.clear();
            for m in self.pre.literals.find_overlapping_iter(line) {
                out.found
                    .extend_from_slice(&self.pre.owners[m.pattern().as_usize()]);
            }
            out.found.sort_unstable();
            out.found.dedup();
            // A rule is named when a literal of each of its sets is on the line.
            for group in out.found.chunk_by(|a, b| (a.0, a.1) == (b.0, b.1)) {
                let (kind, id, _) = group[0];
                if group.len() < usize::from(self.pre.sets[kind as usize][id as usize]) {
                    continue;
                }
                match kind {
                    Kind::Volatile => out.volatile.push(id),
                    Kind::Secret => out.secret.push(id),
                    Kind::Open => out.open = true,
                }
            }
            self.next = match self.starts.get(i + 1) {
                Some(&from) => self.find_from(from),
                None => None,
            };
        }
        let marked = |k: usize| self.rest[k].as_ref().is_none_or(|m| m[i]);
        let rest = &self.pre.rest;
        if !rest[0].ids.is_empty() && marked(0) {
            out.volatile.extend_from_slice(&rest[0].ids);
        }
        if !rest[1].ids.is_empty() && marked(1) {
            out.secret.extend_from_slice(&rest[1].ids);
        }
        if !rest[2].ids.is_empty() && marked(2) {
            out.open = true;
        }
        // Secret rules apply in their order.
        out.secret.sort_unstable();
        out.secret.dedup();
    }
}

/// The rules a [`Prefilter`] names for one line.
#[derive(Default)]
struct LineRules {
    volatile: Vec<u32>,
    secret: Vec<u32>,
    open: bool,
    /// Scratch: (kind, rule, set) of each literal found on the line.
    found: Vec<(Kind, u32, u8)>,
}

fn set<'a>(patterns: impl IntoIterator<Item = &'a str>) -> Result<RegexSet> {
    RegexSet::new(patterns)
        .map_err(|e| Error::new(ErrorKind::InvalidInput, "bad pattern set").with_source(e))
}

impl Rules {
    /// Rules that drop nothing and redact nothing.
    pub fn empty() -> Self {
        Rules {
            volatile: Vec::new(),
            volatile_set: RegexSet::empty(),
            secrets: Vec::new(),
            secret_set: RegexSet::empty(),
            prefilter: None,
            scoped: Vec::new(),
            blocks: Vec::new(),
        }
    }

    /// Compiles rules. `secrets` pairs a pattern with its replacement. An invalid pattern is an
    /// InvalidInput error, so a platform with a broken rule never loads (and never stores an
    /// unredacted configuration).
    pub fn new<V, S, R>(volatile: &[V], secrets: &[(S, R)]) -> Result<Self>
    where
        V: AsRef<str>,
        S: AsRef<str>,
        R: AsRef<str>,
    {
        let volatile_re = volatile
            .iter()
            .map(|p| compile("volatile", p.as_ref()))
            .collect::<Result<Vec<_>>>()?;
        let secret_rules = secrets
            .iter()
            .map(|(p, r)| Ok(SecretRule::new(compile("secret", p.as_ref())?, r.as_ref())))
            .collect::<Result<Vec<_>>>()?;
        let mut rules = Rules {
            volatile_set: set(volatile_re.iter().map(|r| r.as_str()))?,
            volatile: volatile_re,
            secret_set: set(secret_rules.iter().map(|r| r.pattern.as_str()))?,
            secrets: secret_rules,
            prefilter: None,
            scoped: Vec::new(),
            blocks: Vec::new(),
        };
        rules.refresh_prefilter();
        Ok(rules)
    }

    /// Adds secret rules that apply only inside a section: it starts at a line matching
    /// `within` and ends at a line matching `until` or, without one, before the next non-blank
    /// line indented no deeper than the opening line.
    pub fn with_scoped_secrets(mut self, scoped: &[ScopedSecret<'_>]) -> Result<Self> {
        for s in scoped {
            self.scoped.push(ScopedRule {
                within: compile("section", s.within)?,
                until: s.until.map(|u| compile("section end", u)).transpose()?,
                rule: SecretRule::new(compile("secret", s.pattern)?, s.replace),
            });
        }
        self.refresh_prefilter();
        Ok(self)
    }

    /// Rebuilds the prefilter after the rules changed.
    fn refresh_prefilter(&mut self) {
        self.prefilter = Prefilter::new([
            self.volatile.iter().map(|r| r.as_str()).collect(),
            self.secrets.iter().map(|r| r.pattern.as_str()).collect(),
            self.scoped
                .iter()
                .map(|s| s.within.as_str())
                .chain(self.blocks.iter().map(|(begin, _)| begin.as_str()))
                .collect(),
        ]);
    }

    /// Adds multi-line secret blocks `(begin, end)`: every line after a `begin` match up to the
    /// next `end` match is replaced by one marker line (to the end of the text when no `end`
    /// follows: failing closed).
    pub fn with_secret_blocks<B, E>(mut self, blocks: &[(B, E)]) -> Result<Self>
    where
        B: AsRef<str>,
        E: AsRef<str>,
    {
        for (b, e) in blocks {
            self.blocks.push((
                compile("block begin", b.as_ref())?,
                compile("block end", e.as_ref())?,
            ));
        }
        self.refresh_prefilter();
        Ok(self)
    }

    /// Adds one volatile-line pattern (a line matching it is dropped before hashing).
    pub fn with_volatile(self, pattern: &str) -> Result<Self> {
        self.merge(&Rules::new(&[pattern], &[] as &[(&str, &str)])?)
    }

    /// Adds one secret rule: `pattern` matched against each line, the match replaced by
    /// `replace` (`${1}` names a capture group, `{marker}` the redaction marker).
    pub fn with_secret(self, pattern: &str, replace: &str) -> Result<Self> {
        self.merge(&Rules::new(&[] as &[&str], &[(pattern, replace)])?)
    }

    /// Adds every rule of `other` to these (volatile lines, secrets, scoped secrets and secret
    /// blocks; these rules' secrets apply first). Errors only when the combined pattern sets
    /// exceed the regex size limit.
    ///
    /// ```
    /// use netraven_core::normalise::Rules;
    /// let mut base = Rules::new(&["^! Last change"], &[("^(snmp-server community) \\S+", "$1 {marker}")])?;
    /// base.extend(&Rules::empty().with_secret("^(tacacs key) \\S+", "$1 {marker}")?)?;
    /// let out = base.normalise("! Last change: now\nsnmp-server community public\ntacacs key k3y\n")?;
    /// assert_eq!(out, "snmp-server community <removed>\ntacacs key <removed>\n");
    /// # Ok::<(), netraven_core::Error>(())
    /// ```
    pub fn extend(&mut self, other: &Rules) -> Result<()> {
        let mut volatile = self.volatile.clone();
        volatile.extend(other.volatile.iter().cloned());
        let mut secrets = self.secrets.clone();
        secrets.extend(other.secrets.iter().cloned());
        let volatile_set = set(volatile.iter().map(|r| r.as_str()))?;
        let secret_set = set(secrets.iter().map(|r| r.pattern.as_str()))?;
        self.volatile = volatile;
        self.volatile_set = volatile_set;
        self.secrets = secrets;
        self.secret_set = secret_set;
        self.scoped.extend(other.scoped.iter().cloned());
        self.blocks.extend(other.blocks.iter().cloned());
        self.refresh_prefilter();
        Ok(())
    }

    /// These rules with every rule of `other` added (see [`Rules::extend`]).
    pub fn merge(mut self, other: &Rules) -> Result<Self> {
        self.extend(other)?;
        Ok(self)
    }

    /// These rules without the whole-text prefilter: every line is checked against every rule.
    /// The output is the same (only slower); tests compare the two.
    #[doc(hidden)]
    pub fn without_prefilter(&self) -> Rules {
        let mut r = self.clone();
        r.prefilter = None;
        r
    }

    /// Number of volatile and secret rules.
    pub fn len(&self) -> (usize, usize) {
        (
            self.volatile.len(),
            self.secrets.len() + self.scoped.len() + self.blocks.len(),
        )
    }

    /// Whether there are no rules at all.
    pub fn is_empty(&self) -> bool {
        self.volatile.is_empty()
            && self.secrets.is_empty()
            && self.scoped.is_empty()
            && self.blocks.is_empty()
    }

    /// Normalises a raw configuration: line endings to `\n`, trailing whitespace removed,
    /// volatile lines dropped, secrets redacted, leading/trailing blank lines removed, one final
    /// newline. Fails closed on empty, binary (NUL) or oversized input.
    pub fn normalise(&self, raw: &str) -> Result<String> {
        if raw.len() > MAX_CONFIG_BYTES {
            return Err(Error::new(
                ErrorKind::Redaction,
                format!("configuration of {} bytes exceeds the limit", raw.len()),
            ));
        }
        if raw.contains('\0') {
            return Err(Error::new(
                ErrorKind::Redaction,
                "configuration contains NUL bytes; refusing to store binary output",
            ));
        }
        let mut starts = Vec::new();
        let lines: Vec<&str> = raw
            .split('\n')
            .map(|line| {
                // Where the line starts in `raw` (a subslice of it).
                starts.push(line.as_ptr() as usize - raw.as_ptr() as usize);
                line.trim_end()
            })
            .collect();
        let mut scan = self
            .prefilter
            .as_ref()
            .filter(|_| lines.len() >= PREFILTER_MIN_LINES)
            .map(|pre| Scan::new(pre, raw, &starts, &lines));
        let mut out = String::with_capacity(raw.len());
        let mut state = LineState::new(self);
        let mut named = LineRules::default();
        for (i, &line) in lines.iter().enumerate() {
            if let Some(scan) = &mut scan {
                scan.line(i, line, &mut named);
            }
            let found = scan.is_some();
            let may_open = !found || named.open;
            match state.step(self, line, may_open) {
                LineAction::Keep => {}
                LineAction::Marker => {
                    out.push_str(REDACTED_MARKER);
                    out.push('\n');
                    continue;
                }
                LineAction::Drop => continue,
            }
            let volatile = if found {
                named
                    .volatile
                    .iter()
                    .any(|&v| self.volatile[v as usize].is_match(line))
            } else {
                !self.volatile.is_empty() && self.volatile_set.is_match(line)
            };
            if volatile {
                continue;
            }
            let hint = if found {
                SecretHint::Rules(&named.secret)
            } else {
                SecretHint::Unknown
            };
            self.redact_line_into(line, &state, hint, &mut out);
            out.push('\n');
        }
        let trimmed = out.trim_matches('\n');
        if trimmed.trim().is_empty() {
            return Err(Error::new(
                ErrorKind::Redaction,
                "configuration is empty after normalisation",
            ));
        }
        let mut s = String::with_capacity(trimmed.len() + 1);
        s.push_str(trimmed);
        s.push('\n');
        Ok(s)
    }

    /// Redacts secrets in any text (command output), line by line, without dropping lines.
    pub fn redact(&self, text: &str) -> String {
        let mut out = String::with_capacity(text.len());
        let mut state = LineState::new(self);
        for (i, line) in text.split('\n').enumerate() {
            if i > 0 {
                out.push('\n');
            }
            match state.step(self, line, true) {
                LineAction::Keep => {
                    self.redact_line_into(line, &state, SecretHint::Unknown, &mut out)
                }
                // Every line of a block is replaced, so line numbers stay as they were.
                LineAction::Marker | LineAction::Drop => out.push_str(REDACTED_MARKER),
            }
        }
        out
    }

    /// `hint`: what the whole-text prefilter said about secret patterns on this line.
    fn redact_line_into(
        &self,
        line: &str,
        state: &LineState,
        hint: SecretHint<'_>,
        out: &mut String,
    ) {
        let scoped = state.scope.iter().any(Option::is_some);
        let may_match = match hint {
            SecretHint::Rules(ids) => !ids.is_empty(),
            SecretHint::Unknown => !self.secrets.is_empty() && self.secret_set.is_match(line),
        };
        if !scoped && !may_match {
            out.push_str(line);
            return;
        }
        let mut cur = std::borrow::Cow::Borrowed(line);
        // Each rule that matches the line as it came applies, in order, to the text so far.
        let apply = |cur: &mut std::borrow::Cow<'_, str>, rule: &SecretRule| {
            if let Some(replaced) = rule.replace(cur) {
                *cur = std::borrow::Cow::Owned(replaced);
            }
        };
        match hint {
            SecretHint::Rules(ids) => {
                for &id in ids {
                    let rule = &self.secrets[id as usize];
                    // While nothing was replaced the text is the line: `replace_all` alone
                    // finds whether the rule matches.
                    if matches!(cur, std::borrow::Cow::Borrowed(_)) || rule.pattern.is_match(line) {
                        apply(&mut cur, rule);
                    }
                }
            }
            SecretHint::Unknown if may_match => {
                for idx in self.secret_set.matches(line).iter() {
                    apply(&mut cur, &self.secrets[idx]);
                }
            }
            SecretHint::Unknown => {}
        }
        for (k, s) in self.scoped.iter().enumerate() {
            if state.scope[k].is_some()
                && let Some(replaced) = s.rule.replace(&cur)
            {
                cur = std::borrow::Cow::Owned(replaced);
            }
        }
        out.push_str(&cur);
    }
}

/// What the whole-text prefilter said about a line's secrets.
#[derive(Clone, Copy)]
enum SecretHint<'a> {
    /// Only these secret rules (indexes, ascending) may match it.
    Rules(&'a [u32]),
    /// No prefilter ran.
    Unknown,
}

/// What to do with a line, as far as sections and blocks go.
enum LineAction {
    /// Process it (volatile check, redaction).
    Keep,
    /// The first line inside a secret block: emit one marker instead.
    Marker,
    /// A further line inside a secret block.
    Drop,
}

/// Line-by-line state of the section-scoped rules and the secret blocks.
struct LineState {
    /// Per scoped rule: the indentation of the section header while inside the section.
    scope: Vec<Option<usize>>,
    /// The block being skipped (its end regex index), and whether its marker was emitted.
    block: Option<(usize, bool)>,
}

impl LineState {
    fn new(rules: &Rules) -> Self {
        LineState {
            scope: vec![None; rules.scoped.len()],
            block: None,
        }
    }

    /// `may_open`: false when the prefilter found no section or block opening on this line.
    fn step(&mut self, rules: &Rules, line: &str, may_open: bool) -> LineAction {
        if let Some((b, emitted)) = self.block {
            if rules.blocks[b].1.is_match(line) {
                self.block = None;
            } else {
                self.block = Some((b, true));
                return if emitted {
                    LineAction::Drop
                } else {
                    LineAction::Marker
                };
            }
        }
        if !rules.scoped.is_empty() {
            let indent = line.len() - line.trim_start().len();
            for (k, s) in rules.scoped.iter().enumerate() {
                let ends = match &s.until {
                    Some(u) => self.scope[k].is_some() && u.is_match(line),
                    None => self.scope[k].is_some_and(|i| !line.trim().is_empty() && indent <= i),
                };
                if ends {
                    self.scope[k] = None;
                }
                if may_open && self.scope[k].is_none() && s.within.is_match(line) {
                    self.scope[k] = Some(indent);
                }
            }
        }
        if !may_open {
            return LineAction::Keep;
        }
        if let Some(b) = rules
            .blocks
            .iter()
            .position(|(begin, _)| begin.is_match(line))
        {
            self.block = Some((b, false));
        }
        LineAction::Keep
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ios_like() -> Rules {
        Rules::new(
            &[r"^! Last configuration change", r"^ntp clock-period"],
            &[
                (r"^(enable secret \d+ )\S+", "${1}{marker}"),
                (r"^(snmp-server community )\S+", "${1}{marker}"),
                (r"^(\s*key 7 )\S+", "${1}{marker}"),
            ],
        )
        .unwrap()
    }

    /// The same rules without the whole-text prefilters: every line checked by the per-line
    /// rules, as before the prefilter existed.
    fn per_line_only(r: &Rules) -> Rules {
        r.without_prefilter()
    }

    fn tricky_rules() -> Rules {
        Rules::new(
            &[
                r"^! Last configuration change",
                r"^ntp clock-period",
                r"^\s*$x",
                r"uptime is$",
            ],
            &[
                (r"^(enable secret \d+ )\S+", "${1}{marker}"),
                (r"^(snmp-server community )\S+", "${1}{marker}"),
                (r"^(\s*key 7 )\S+", "${1}{marker}"),
                // Could match across lines in a whole-text scan (`\s` takes `\n`).
                (r"^(password)\s+\S+$", "${1} {marker}"),
                (r"(?i)(secret)[^a-z]*$", "${1} {marker}"),
                (r"\bpsk\b.*", "psk {marker}"),
                // Found by its literal in every case form.
                (r"(?i)^(enable) \S+", "${1} {marker}"),
            ],
        )
        .unwrap()
        .with_scoped_secrets(&[ScopedSecret {
            within: r"^config system snmp",
            until: Some(r"^end"),
            pattern: r"(set name )\S+",
            replace: "${1}{marker}",
        }])
        .unwrap()
        .with_secret_blocks(&[("^-----BEGIN", "^-----END")])
        .unwrap()
    }

    proptest::proptest! {
        #[test]
        fn the_prefilter_changes_no_output(picks in proptest::collection::vec(0usize..27, 0..120)) {
            const LINES: [&str; 27] = [
                "hostname r1", "! Last configuration change at 10:00", "enable secret 5 $1$abc",
                "snmp-server community public RO", " key 7 0822455D0A16", "password", "hunter2",
                "password  hunter2  ", "password hunter2\r", "Secret 123", "SECRET", "x", "",
                "   ", "ntp clock-period 1", "router uptime is", "uptime is  ", "psk abc",
                "apsk no", "config system snmp", "    set name comm1", "end", "-----BEGIN KEY",
                "-----END KEY", "ENABLE s3", "eNaBlE t", "enable secret 5 ENABLE",
            ];
            let text: Vec<&str> = picks.iter().map(|&i| LINES[i]).collect();
            let raw = text.join("\n") + "\nhostname end\n";
            for rules in [tricky_rules(), ios_like()] {
                let plain = per_line_only(&rules);
                let a = rules.normalise(&raw).map_err(|e| e.to_string());
                let b = plain.normalise(&raw).map_err(|e| e.to_string());
                proptest::prop_assert_eq!(a, b);
            }
        }
    }

    /// Patterns whose group 1 is read off the match, and what they are compared on.
    const TAIL_PATTERNS: [&str; 8] = [
        r"^(enable (?:secret|password)(?: level \d+)?(?: \d+)? )\S+",
        r"^(username \S+ .*?(?:secret|password)(?: \d+)? )\S+",
        r"((?:^|\s)password (?:[0-9] )?)\S+",
        r"(\skey [067] )\S+",
        r"^(\s*standby(?: \d+)? authentication (?:text )?)\S+$",
        r"(?i)(key\s+)\S+",
        r"\b(secret\s)\S+$",
        r"(pre-shared-key (?:local |remote )?(?:[0-9] )?)\S+$",
    ];
    const TAIL_WORDS: [&str; 20] = [
        "enable",
        "secret",
        "password",
        "key",
        "KEY",
        "7",
        "0",
        "5",
        "level",
        "standby",
        "authentication",
        "text",
        "username",
        "s3cr\u{e9}t",
        "pre-shared-key",
        "local",
        "x",
        "\u{a0}",
        "\u{2003}",
        "$9$ab",
    ];

    proptest::proptest! {
        #[test]
        fn a_group_read_off_the_match_equals_the_capture_engines(
            words in proptest::collection::vec((0usize..20, 0usize..4), 0..14),
        ) {
            let mut line = String::new();
            for (w, sep) in words {
                line.push_str(TAIL_WORDS[w]);
                line.push_str(["", " ", "  ", "\t"][sep]);
            }
            for p in TAIL_PATTERNS {
                let rule = SecretRule::new(Regex::new(p).unwrap(), "${1}{marker}|$0|${2}");
                proptest::prop_assert!(rule.group_before_tail, "{}", p);
                let expected = match rule.pattern.replace_all(&line, rule.replace.as_str()) {
                    std::borrow::Cow::Owned(s) => Some(s),
                    std::borrow::Cow::Borrowed(_) => None,
                };
                proptest::prop_assert_eq!(rule.replace(&line), expected, "{} on {:?}", p, line);
            }
        }
    }

    #[test]
    fn a_pattern_that_tells_text_from_line_gets_no_prefilter() {
        assert!(LinePrefilter::new([r"\Afoo"]).is_none());
        assert!(LinePrefilter::new([r"foo\z"]).is_none());
        assert!(LinePrefilter::new([r"(?-m)^foo"]).is_none());
        assert!(LinePrefilter::new([r"^foo", r"bar$"]).is_some());
        assert!(tricky_rules().prefilter.is_some());
    }

    #[test]
    fn volatile_lines_are_dropped_and_secrets_redacted() {
        let raw = "! Last configuration change at 10:00\r\nhostname r1\r\nenable secret 5 $1$abc\r\nsnmp-server community public RO\r\nntp clock-period 123\r\n interface x\r\n key 7 0822455D0A16\r\n";
        let n = ios_like().normalise(raw).unwrap();
        assert_eq!(
            n,
            "hostname r1\nenable secret 5 <removed>\nsnmp-server community <removed> RO\n interface x\n key 7 <removed>\n"
        );
        assert!(!n.contains("public"));
    }

    #[test]
    fn same_config_with_other_volatile_lines_normalises_equal() {
        let r = ios_like();
        let a = r
            .normalise("! Last configuration change at 1\nhostname r1\n")
            .unwrap();
        let b = r
            .normalise("! Last configuration change at 2\nhostname r1\n")
            .unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn fails_closed_on_empty_or_binary() {
        let r = ios_like();
        assert_eq!(
            r.normalise("\n\n").unwrap_err().kind(),
            ErrorKind::Redaction
        );
        assert_eq!(
            r.normalise("a\0b").unwrap_err().kind(),
            ErrorKind::Redaction
        );
    }

    #[test]
    fn bad_pattern_is_rejected_at_load() {
        let e = Rules::new(&["("], &[] as &[(&str, &str)]).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
    }

    #[test]
    fn scoped_rules_apply_inside_their_section_only() {
        let r = Rules::empty()
            .with_scoped_secrets(&[ScopedSecret {
                within: r"^\s*config system snmp community$",
                until: None,
                pattern: r"^(\s*set name )\S+",
                replace: "${1}{marker}",
            }])
            .unwrap();
        let raw = "config system snmp community\n    edit 1\n        set name \"s3cret\"\n    next\nend\nconfig system interface\n    edit port1\n        set name \"wan\"\n";
        let n = r.normalise(raw).unwrap();
        assert!(n.contains("        set name <removed>\n"), "{n}");
        assert!(n.contains("set name \"wan\""), "{n}");
        assert!(!n.contains("s3cret"));
        let flat = Rules::empty()
            .with_scoped_secrets(&[ScopedSecret {
                within: "^/snmp community$",
                until: Some("^/"),
                pattern: r"(\sname=)\S+",
                replace: "${1}{marker}",
            }])
            .unwrap();
        assert_eq!(
            flat.normalise("/snmp community\nadd addresses=10.0.0.0/8 name=s3cret\n/interface\nadd name=ether1\n").unwrap(),
            "/snmp community\nadd addresses=10.0.0.0/8 name=<removed>\n/interface\nadd name=ether1\n"
        );
    }

    #[test]
    fn secret_blocks_become_one_marker_and_fail_closed() {
        let r = Rules::empty()
            .with_secret_blocks(&[(
                "BEGIN (?:ENCRYPTED )?PRIVATE KEY",
                "END (?:ENCRYPTED )?PRIVATE KEY",
            )])
            .unwrap();
        let raw = "a\nset private-key \"-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\nBBBB\n-----END ENCRYPTED PRIVATE KEY-----\"\nb\n";
        assert_eq!(
            r.normalise(raw).unwrap(),
            "a\nset private-key \"-----BEGIN ENCRYPTED PRIVATE KEY-----\n<removed>\n-----END ENCRYPTED PRIVATE KEY-----\"\nb\n"
        );
        assert_eq!(
            r.redact(raw),
            "a\nset private-key \"-----BEGIN ENCRYPTED PRIVATE KEY-----\n<removed>\n<removed>\n-----END ENCRYPTED PRIVATE KEY-----\"\nb\n"
        );
        let cut = r
            .normalise("a\n-----BEGIN PRIVATE KEY-----\nAAAA\nBBBB\n")
            .unwrap();
        assert_eq!(cut, "a\n-----BEGIN PRIVATE KEY-----\n<removed>\n");
    }

    #[test]
    fn parsed_replacements_do_what_replace_all_does() {
        let patterns = [
            r"^(a)(?P<n>b)(c)?",
            r"(\d)",
            r"(x*)",
            r"(?P<k>key) (\S+)",
            r"\bpsk\b.*",
        ];
        let templates = [
            "${1}{marker}",
            "$1 {marker}",
            "${n}-$2",
            "${3}",
            "$1a",
            "$$1",
            "${nope}Y",
            "plain {marker}",
            "${1",
            "$",
            "${k}:${2}$1",
            "$2$1",
        ];
        let lines = [
            "abc",
            "ab",
            "xabc",
            "abab",
            "a1b2c3",
            "",
            "xx",
            "key abc key def",
            "psk x",
        ];
        for p in patterns {
            let re = Regex::new(p).unwrap();
            for t in templates {
                let rule = SecretRule::new(re.clone(), t);
                let want_rep = t.replace("{marker}", REDACTED_MARKER);
                for line in lines {
                    let want = re.replace_all(line, want_rep.as_str());
                    let got = rule.replace(line);
                    assert_eq!(
                        got.as_deref().unwrap_or(line),
                        want.as_ref(),
                        "pattern {p}, replacement {t}, line {line:?}"
                    );
                    assert_eq!(got.is_some(), re.is_match(line), "{p} {t} {line:?}");
                }
            }
        }
        // The plain forms are parsed; the others are left to `replace_all`.
        let re = Regex::new(r"(a)").unwrap();
        assert!(Template::parse(&re, "${1}<removed>${2}x").is_some());
        assert!(Template::parse(&re, "$1 <removed>").is_some());
        assert!(Template::parse(&re, "$1a").is_none());
        assert!(Template::parse(&re, "$$").is_none());
    }

    #[test]
    fn redact_keeps_every_line() {
        let r = ios_like();
        assert_eq!(
            r.redact("x\nsnmp-server community s3cr3t RW\ny"),
            "x\nsnmp-server community <removed> RW\ny"
        );
    }
}
