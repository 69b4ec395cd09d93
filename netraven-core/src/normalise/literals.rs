//! Required literals of a per-line pattern: a small set of strings such that every match of the
//! pattern contains one of them. A line containing none of a rule's literals cannot match the
//! rule, so one multi-literal scan of a whole configuration ([`super::Prefilter`]) tells which
//! rules to try on which lines. Strings are matched exactly (case-insensitive parts of a pattern
//! are spelled out in each case, as far as [`MAX_SET`] allows): an exact multi-literal search
//! runs on a vectorised prefilter, an ASCII-case-insensitive one would not.

use regex_syntax::hir::{Class, Hir, HirKind};

/// Largest set of strings kept for one sub-pattern (a case-insensitive word grows fast).
const MAX_SET: usize = 16;
/// Shortest literal worth a scan: a shorter one would mark most lines.
const MIN_LEN: usize = 3;
/// Largest character class expanded into its members.
const MAX_CLASS: usize = 4;

/// A set of byte strings, sorted, without duplicates.
type Set = Vec<Vec<u8>>;

/// Sets of literals every match of `pattern` contains (one of each set), best first, or `None`
/// when none of at least [`MIN_LEN`] bytes is known (the caller then checks the pattern another
/// way). `^(\s*vrrp \d+ authentication (?:text )?)\S+$` needs both `vrrp ` and
/// ` authentication `: the first set finds candidate lines, the others narrow them. The pattern
/// is parsed with the same defaults as [`regex::Regex::new`].
pub(super) fn required(pattern: &str) -> Option<Vec<Set>> {
    let hir = regex_syntax::Parser::new().parse(pattern).ok()?;
    let mut all = Vec::new();
    conjuncts(&hir, &mut all);
    // A literal holding a line break is never found in a line; refuse rather than reason about it.
    let mut all: Vec<Set> = all
        .into_iter()
        .map(prune)
        .filter(|set| {
            !set.is_empty()
                && set
                    .iter()
                    .all(|l| l.len() >= MIN_LEN && !l.contains(&b'\n'))
        })
        .collect();
    all.sort_by_key(|s| std::cmp::Reverse(score(s)));
    all.dedup();
    all.truncate(MAX_CONJUNCTS);
    (!all.is_empty()).then_some(all)
}

/// At most this many sets per pattern.
const MAX_CONJUNCTS: usize = 4;

/// How good a set is for finding lines: longer shortest literal, then fewer literals.
fn score(s: &Set) -> (usize, std::cmp::Reverse<usize>) {
    let shortest = s.iter().map(Vec::len).min().unwrap_or(0);
    (shortest.min(8), std::cmp::Reverse(s.len()))
}

/// Collects sets each of which every match of `hir` contains one of: every part of a
/// concatenation (and of a group, or a repetition taken at least once) is in every match.
fn conjuncts(hir: &Hir, out: &mut Vec<Set>) {
    match hir.kind() {
        HirKind::Capture(c) => conjuncts(&c.sub, out),
        HirKind::Repetition(r) if r.min >= 1 => conjuncts(&r.sub, out),
        HirKind::Concat(subs) => concat_parts(subs, out, conjuncts),
        _ => out.extend(need(hir)),
    }
}

/// The parts of a concatenation every match contains: each run of neighbours with known exact
/// strings gives one set (their concatenations), and `other` collects what each other part
/// requires.
fn concat_parts(subs: &[Hir], out: &mut Vec<Set>, other: fn(&Hir, &mut Vec<Set>)) {
    let mut run: Option<Set> = None;
    for sub in subs {
        match exact(sub) {
            Some(e) => {
                run = Some(match run.take() {
                    None => e,
                    Some(r) => cross(&r, &e).unwrap_or_else(|| {
                        out.push(r);
                        e
                    }),
                });
            }
            None => {
                out.extend(run.take());
                other(sub, out);
            }
        }
    }
    out.extend(run);
}

fn normal(mut set: Set) -> Set {
    set.sort();
    set.dedup();
    set
}

/// Drops each string that contains another of the set: a line holding it holds the other too.
fn prune(set: Set) -> Set {
    let keep: Vec<bool> = set
        .iter()
        .enumerate()
        .map(|(i, s)| {
            !set.iter().enumerate().any(|(j, t)| {
                j != i && t.len() <= s.len() && (t.len() < s.len() || j < i) && contains(s, t)
            })
        })
        .collect();
    set.into_iter()
        .zip(keep)
        .filter_map(|(s, k)| k.then_some(s))
        .collect()
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || hay.windows(needle.len()).any(|w| w == needle)
}

/// Every string `hir` can match, when there are at most [`MAX_SET`] of them.
fn exact(hir: &Hir) -> Option<Set> {
    match hir.kind() {
        // Zero-width: contributes nothing to the matched text.
        HirKind::Empty | HirKind::Look(_) => Some(vec![Vec::new()]),
        HirKind::Literal(l) => Some(normal(vec![l.0.to_vec()])),
        HirKind::Class(c) => class_members(c),
        HirKind::Capture(c) => exact(&c.sub),
        HirKind::Repetition(r) => match (r.min, r.max) {
            (1, Some(1)) => exact(&r.sub),
            (0, Some(1)) => {
                let mut s = exact(&r.sub)?;
                s.push(Vec::new());
                Some(normal(s))
            }
            _ => None,
        },
        HirKind::Concat(subs) => {
            let mut acc = vec![Vec::new()];
            for sub in subs {
                acc = cross(&acc, &exact(sub)?)?;
            }
            Some(acc)
        }
        HirKind::Alternation(subs) => {
            let mut all = Vec::new();
            for sub in subs {
                all.extend(exact(sub)?);
                if all.len() > MAX_SET * 4 {
                    return None;
                }
            }
            let all = normal(all);
            (all.len() <= MAX_SET).then_some(all)
        }
    }
}

fn class_members(class: &Class) -> Option<Set> {
    let mut out = Vec::new();
    match class {
        Class::Unicode(c) => {
            for r in c.ranges() {
                for ch in r.start()..=r.end() {
                    if out.len() >= MAX_CLASS {
                        return None;
                    }
                    out.push(ch.to_string().into_bytes());
                }
            }
        }
        Class::Bytes(c) => {
            for r in c.ranges() {
                for b in r.start()..=r.end() {
                    if out.len() >= MAX_CLASS {
                        return None;
                    }
                    out.push(vec![b]);
                }
            }
        }
    }
    Some(normal(out))
}

/// Every concatenation of a string of `a` with one of `b`, or `None` past [`MAX_SET`].
fn cross(a: &Set, b: &Set) -> Option<Set> {
    if a.len() * b.len() > MAX_SET * 4 {
        return None;
    }
    let mut out = Vec::with_capacity(a.len() * b.len());
    for x in a {
        for y in b {
            let mut s = x.clone();
            s.extend_from_slice(y);
            out.push(s);
        }
    }
    let out = normal(out);
    (out.len() <= MAX_SET).then_some(out)
}

/// A set one of whose strings every match of `hir` contains.
fn need(hir: &Hir) -> Option<Set> {
    if let Some(e) = exact(hir)
        && e.iter().all(|s| !s.is_empty())
    {
        return Some(e);
    }
    match hir.kind() {
        HirKind::Capture(c) => need(&c.sub),
        HirKind::Repetition(r) if r.min >= 1 => need(&r.sub),
        HirKind::Concat(subs) => {
            // Every part is required; the best one wins.
            let mut options = Vec::new();
            concat_parts(subs, &mut options, |sub, o| o.extend(need(sub)));
            options
                .into_iter()
                .filter(|s| !s.is_empty() && s.iter().all(|l| !l.is_empty()))
                .max_by_key(score)
        }
        HirKind::Alternation(subs) => {
            let mut all = Vec::new();
            for sub in subs {
                all.extend(need(sub)?);
            }
            let all = normal(all);
            (all.len() <= MAX_SET * 2).then_some(all)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::required;

    /// The first (best) set.
    fn lits(p: &str) -> Option<Vec<String>> {
        all(p).map(|mut sets| sets.remove(0))
    }

    fn all(p: &str) -> Option<Vec<Vec<String>>> {
        required(p).map(|sets| {
            sets.into_iter()
                .map(|s| {
                    s.into_iter()
                        .map(|l| String::from_utf8_lossy(&l).into_owned())
                        .collect()
                })
                .collect()
        })
    }

    #[test]
    fn finds_what_every_match_contains() {
        assert_eq!(
            lits(r"^(snmp-server community )\S+").unwrap(),
            ["snmp-server community "]
        );
        assert_eq!(
            lits(r"((?:^|\s)password (?:[0-9] )?)\S+").unwrap(),
            ["password "]
        );
        assert_eq!(
            lits(r"^(enable (?:secret|password)(?: level \d+)?(?: \d+)? )\S+").unwrap(),
            ["enable password", "enable secret"]
        );
        // Every required part, best first.
        assert_eq!(
            all(r"^(\s*vrrp \d+ authentication (?:text )?)\S+$").unwrap(),
            [vec![" authentication "], vec!["vrrp "]]
        );
        assert_eq!(
            all(r"(message-digest-key \d+ md5 (?:[0-9] )?)\S+").unwrap(),
            [vec!["message-digest-key "], vec![" md5 "]]
        );
        // A string holding another of the set adds nothing.
        assert_eq!(
            lits(r"^(\s*standby(?: \d+)? authentication (?:text )?)\S+$").unwrap(),
            [" authentication "]
        );
        assert_eq!(
            lits(r"^(?:radius|tacacs) server \S+").unwrap(),
            ["radius server ", "tacacs server "]
        );
        assert_eq!(lits(r"uptime is ").unwrap(), ["uptime is "]);
        // Case-insensitive: every case form, with the non-ASCII ones regex also accepts.
        let key = lits(r"(?i)key").unwrap();
        assert_eq!(key.len(), 12, "{key:?}");
        assert!(key.contains(&"kEy".to_string()), "{key:?}");
        assert!(key.contains(&"\u{212a}ey".to_string()), "{key:?}");
    }

    #[test]
    fn gives_up_where_nothing_is_required() {
        assert_eq!(lits(r"^\s*$"), None);
        assert_eq!(lits(r"\S+"), None);
        assert_eq!(lits(r"ab|cd"), None); // too short to be worth a scan
        assert_eq!(lits(r"(?:abc)?\d+"), None);
        assert_eq!(lits(r"abc|\d+"), None);
        assert_eq!(lits(r"("), None);
    }
}
