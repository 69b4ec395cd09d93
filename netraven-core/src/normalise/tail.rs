//! Secret patterns whose one capture group can be read off a match without a capture engine.
//!
//! Most secret rules are `(prefix )\S+` with `${1}{marker}`: keep what leads to the secret,
//! replace the secret. When the group never matches an empty string and every match of it ends
//! with whitespace, and the pattern is that group followed by `\S+` with only zero-width parts
//! (`^`, `$`, `\b`) around, every match splits in one way only: group 1 is the match up to its
//! last run of non-whitespace. So finding the match (a DFA search) is enough, and the capture
//! engine that would run after it on every redacted line is not needed.

use regex_syntax::hir::{Class, Hir, HirKind};
use std::sync::LazyLock;

/// `\S` as the parser gives it, to compare a pattern's tail with (parsed once).
static NOT_SPACE: LazyLock<Option<Hir>> =
    LazyLock::new(|| regex_syntax::Parser::new().parse(r"\S").ok());

/// Whether `pattern` has the shape above (parsed with the same defaults as
/// [`regex::Regex::new`]); `false` whenever it cannot tell.
pub(super) fn group_before_tail(pattern: &str) -> bool {
    let Ok(hir) = regex_syntax::Parser::new().parse(pattern) else {
        return false;
    };
    if hir.properties().explicit_captures_len() != 1 {
        return false;
    }
    let HirKind::Concat(subs) = hir.kind() else {
        return false;
    };
    let zero_width = |h: &Hir| h.properties().maximum_len() == Some(0);
    let Some(at) = subs.iter().position(|h| !zero_width(h)) else {
        return false;
    };
    let group = match subs[at].kind() {
        HirKind::Capture(c) if c.index == 1 => &c.sub,
        _ => return false,
    };
    let tail_is_not_space_run = subs.get(at + 1).is_some_and(|h| match h.kind() {
        HirKind::Repetition(r) => {
            r.min == 1 && r.max.is_none() && r.greedy && Some(&*r.sub) == NOT_SPACE.as_ref()
        }
        _ => false,
    });
    let (can_be_empty, ends_with_space) = ending(group);
    tail_is_not_space_run
        && !can_be_empty
        && ends_with_space
        && subs[at + 2..].iter().all(zero_width)
}

/// Where group 1 ends in `matched` (a whole match of a pattern for which
/// [`group_before_tail`] holds): before its last run of non-whitespace. `char::is_whitespace`
/// is Unicode's White_Space, the same set as the regex `\s`.
pub(super) fn group_end(matched: &str) -> usize {
    matched.trim_end_matches(|c: char| !c.is_whitespace()).len()
}

/// (whether `h` can match the empty string, whether every non-empty match of `h` ends with
/// whitespace); the second errs towards `false`.
fn ending(h: &Hir) -> (bool, bool) {
    match h.kind() {
        HirKind::Empty | HirKind::Look(_) => (true, true),
        HirKind::Literal(l) => {
            let last = std::str::from_utf8(&l.0)
                .ok()
                .and_then(|s| s.chars().last());
            (false, last.is_some_and(char::is_whitespace))
        }
        HirKind::Class(Class::Unicode(c)) => {
            let all_space = c.ranges().iter().all(|r| {
                // White_Space is a handful of small ranges; a wide range cannot be all of it.
                (r.end() as u32) - (r.start() as u32) < 64
                    && (r.start()..=r.end()).all(char::is_whitespace)
            });
            (false, all_space)
        }
        HirKind::Class(Class::Bytes(_)) => (false, false),
        HirKind::Repetition(r) => {
            let (empty, space) = ending(&r.sub);
            (r.min == 0 || empty, space)
        }
        HirKind::Capture(c) => ending(&c.sub),
        HirKind::Alternation(alts) => {
            let each: Vec<_> = alts.iter().map(ending).collect();
            (each.iter().any(|e| e.0), each.iter().all(|e| e.1))
        }
        HirKind::Concat(subs) => {
            let each: Vec<_> = subs.iter().map(ending).collect();
            // A non-empty match ends where its last part that matched something non-empty
            // ends: check parts from the end until one that cannot be empty.
            let mut space = true;
            for &(empty, ends) in each.iter().rev() {
                if !ends {
                    space = false;
                    break;
                }
                if !empty {
                    break;
                }
            }
            (each.iter().all(|e| e.0), space)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_usual_secret_shapes_are_recognised() {
        for p in [
            r"^(enable (?:secret|password)(?: level \d+)?(?: \d+)? )\S+",
            r"^(username \S+ .*?(?:secret|password)(?: \d+)? )\S+",
            r"((?:^|\s)password (?:[0-9] )?)\S+",
            r"(\skey [067] )\S+",
            r"^(\s*standby(?: \d+)? authentication (?:text )?)\S+$",
            r"(?i)^(set psksecret )\S+",
            r"\b(key\s)\S+",
        ] {
            assert!(group_before_tail(p), "{p}");
        }
    }

    #[test]
    fn other_shapes_are_left_to_the_capture_engine() {
        for p in [
            // Group does not end with whitespace.
            r"(key)\S+",
            r"(key ?)\S+",
            // Group can be empty.
            r"((?:key )?)\S+",
            // Something with width before the group.
            r"x(key )\S+",
            // Not a greedy unbounded non-whitespace run after it.
            r"(key )\S+?",
            r"(key )\S{2}",
            r"(key )\w+",
            r"(key )\S*",
            // Something with width after it.
            r"(key )\S+ x",
            // Two groups, none, or a named group's index check.
            r"(key )\S+( priv )\S+",
            r"key \S+",
            r"^(\s*key )(?:[^\s\d]\S*|\d\S*[^\d\s]\S*)$",
            // Not a regex.
            r"(key ",
        ] {
            assert!(!group_before_tail(p), "{p}");
        }
    }

    #[test]
    fn the_group_is_the_match_before_its_last_run_of_non_whitespace() {
        assert_eq!(group_end("key 7 abc"), 6);
        // `\u{a0}` (no-break space) is two bytes.
        assert_eq!(group_end(" password\u{a0}s3cr\u{e9}t"), 11);
    }
}
