//! Configuration normalisation and redaction.
//!
//! A platform's [`Rules`] say which lines are volatile (timestamps, uptime, counters: removed
//! before hashing and storing, so an unchanged device makes no new snapshot) and which parts of a
//! line are secrets (replaced by a marker). [`Rules::normalise`] fails closed: when it returns an
//! error, nothing may be stored.

use crate::error::{Error, ErrorKind, Result};
use regex::{Regex, RegexSet};

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
}

/// Volatile-line and secret rules of a platform.
#[derive(Debug, Clone)]
pub struct Rules {
    volatile: Vec<Regex>,
    volatile_set: RegexSet,
    secrets: Vec<SecretRule>,
    secret_set: RegexSet,
}

fn compile(kind: &str, p: &str) -> Result<Regex> {
    Regex::new(p).map_err(|e| {
        Error::new(ErrorKind::InvalidInput, format!("bad {kind} pattern '{p}'")).with_source(e)
    })
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
            .map(|(p, r)| {
                Ok(SecretRule {
                    pattern: compile("secret", p.as_ref())?,
                    replace: r.as_ref().replace("{marker}", REDACTED_MARKER),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Rules {
            volatile_set: set(volatile_re.iter().map(|r| r.as_str()))?,
            volatile: volatile_re,
            secret_set: set(secret_rules.iter().map(|r| r.pattern.as_str()))?,
            secrets: secret_rules,
        })
    }

    /// Number of volatile and secret rules.
    pub fn len(&self) -> (usize, usize) {
        (self.volatile.len(), self.secrets.len())
    }

    /// Whether there are no rules at all.
    pub fn is_empty(&self) -> bool {
        self.volatile.is_empty() && self.secrets.is_empty()
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
        let mut out = String::with_capacity(raw.len());
        for line in raw.split('\n') {
            let line = line.trim_end();
            if !self.volatile.is_empty() && self.volatile_set.is_match(line) {
                continue;
            }
            self.redact_line_into(line, &mut out);
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
        for (i, line) in text.split('\n').enumerate() {
            if i > 0 {
                out.push('\n');
            }
            self.redact_line_into(line, &mut out);
        }
        out
    }

    fn redact_line_into(&self, line: &str, out: &mut String) {
        if self.secrets.is_empty() || !self.secret_set.is_match(line) {
            out.push_str(line);
            return;
        }
        let mut cur = std::borrow::Cow::Borrowed(line);
        for idx in self.secret_set.matches(line).iter() {
            let rule = &self.secrets[idx];
            let replaced = rule.pattern.replace_all(&cur, rule.replace.as_str());
            cur = std::borrow::Cow::Owned(replaced.into_owned());
        }
        out.push_str(&cur);
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
    fn redact_keeps_every_line() {
        let r = ios_like();
        assert_eq!(
            r.redact("x\nsnmp-server community s3cr3t RW\ny"),
            "x\nsnmp-server community <removed> RW\ny"
        );
    }
}
