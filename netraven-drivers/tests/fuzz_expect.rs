//! Fuzzing of the prompt / pager state machine (`netraven_drivers::expect`) and of the
//! platforms' redaction rules with proptest: adversarial device output, fed in arbitrary
//! chunks, never panics, stays bounded and keeps the reader's invariants.
//!
//! Cases per property: `NETRAVEN_FUZZ_CASES` (default 256, a few seconds). The long run:
//! `NETRAVEN_FUZZ_CASES=100000 cargo test --release -p netraven-drivers --test fuzz_expect`.
//! The corpus in `tests/fuzz_corpus/expect/` (transcripts that once found a problem or cover a
//! tricky path: split escape sequences, pagers erased with cursor moves, endless lines) is
//! replayed by `corpus_replays`, whole and split at every byte.

use netraven_drivers::expect::{
    MATCH_WINDOW, ReaderLimits, ShellReader, Step, TermFilter, clean_output, comment_lines,
    prompt_base,
};
use netraven_drivers::platform::{Platform, builtin_platforms};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use std::sync::OnceLock;

/// Cases per property, from `NETRAVEN_FUZZ_CASES` (or `PROPTEST_CASES`), default 256.
fn cases() -> u32 {
    ["NETRAVEN_FUZZ_CASES", "PROPTEST_CASES"]
        .iter()
        .find_map(|v| std::env::var(v).ok()?.parse().ok())
        .unwrap_or(256)
}

fn runner() -> TestRunner {
    TestRunner::new(Config {
        cases: cases(),
        failure_persistence: None,
        ..Config::default()
    })
}

fn platforms() -> &'static [Platform] {
    static P: OnceLock<Vec<Platform>> = OnceLock::new();
    P.get_or_init(|| builtin_platforms().expect("built-in platforms"))
}

/// Fragments a hostile or broken device sends: prompts, pagers, partial and complete escape
/// sequences, cursor moves, backspaces, carriage returns, invalid UTF-8, password prompts.
const FRAGMENTS: &[&[u8]] = &[
    b"\r",
    b"\n",
    b"\r\n",
    b"\n\r",
    b"\x1b",
    b"\x1b[",
    b"\x1b[0m",
    b"\x1b[16D",
    b"\x1b[4294967295D",
    b"\x1b[99999999999999999999D",
    b"\x1b[D",
    b"\x1b[K",
    b"\x1b]0;title",
    b"\x07",
    b"\x1b\\",
    b"\x1b(B",
    b"\x08",
    b"\x08\x08\x08\x08\x08\x08\x08\x08",
    b"\t",
    b"\x00",
    b"\x7f",
    b"\xff\xfe",
    b"\xe2\x82",
    b"\xe2\x82\xac",
    b"\xf0\x9f\x98",
    b" --More-- ",
    b"--More--",
    b"-- More --",
    b"  ---- More ----",
    b"<--- More --->",
    b"Press any key to continue",
    b"r1#",
    b"r1>",
    b"r1(config)#",
    b"r1# ",
    b"admin@r1> ",
    b"[admin@r1 ~]$ ",
    b"<r1>",
    b"Password:",
    b"Password: ",
    b"Username:",
    b"enable secret 9 $9$abc",
    b"show running-config",
    b"% Invalid input detected at '^' marker.",
    b"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
];

/// One piece of hostile output: a fragment, random bytes, or a long run of one byte.
fn piece() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        6 => prop::sample::select(FRAGMENTS).prop_map(|f| f.to_vec()),
        3 => prop::collection::vec(any::<u8>(), 0..64),
        1 => (any::<u8>(), 0usize..(3 * MATCH_WINDOW)).prop_map(|(b, n)| vec![b; n]),
    ]
}

/// A device's whole output, and where it is cut into chunks.
fn transcript() -> impl Strategy<Value = (Vec<u8>, Vec<usize>)> {
    prop::collection::vec(piece(), 0..48).prop_flat_map(|pieces| {
        let bytes: Vec<u8> = pieces.concat();
        let n = bytes.len();
        (Just(bytes), prop::collection::vec(0..=n, 0..16))
    })
}

/// Splits `bytes` at the given cut points (sorted, deduplicated).
fn chunks(bytes: &[u8], cuts: &[usize]) -> Vec<Vec<u8>> {
    let mut cuts: Vec<usize> = cuts.iter().copied().filter(|c| *c <= bytes.len()).collect();
    cuts.sort_unstable();
    cuts.dedup();
    let mut out = Vec::new();
    let mut at = 0;
    for c in cuts {
        out.push(bytes[at..c].to_vec());
        at = c;
    }
    out.push(bytes[at..].to_vec());
    out
}

/// Feeds `chunks` into a reader of `platform` with small limits and checks the invariants
/// after every step. Returns a description of the first broken invariant.
fn drive(platform: &Platform, chunks: &[Vec<u8>], base: bool) -> Result<(), String> {
    let limits = ReaderLimits {
        max_output_bytes: 16 * 1024,
        max_line_bytes: 2 * 1024,
    };
    let mut r = ShellReader::new(platform.prompt.clone(), platform.pager.clone());
    r.set_limits(limits);
    let mut extra = Vec::new();
    if let Some(p) = &platform.enable_password_prompt {
        extra.push(p.clone());
    }
    r.set_extra(extra.clone());
    if base {
        r.set_base(Some("r1".into()));
        r.set_base_pattern(platform.prompt_base.clone());
    }
    let mut received = 0usize;
    let mut too_large_output = false;
    for c in chunks {
        received += c.len();
        let step = r.feed(c);
        let last = r.last_line().into_owned();
        match &step {
            Step::TooLarge(what) => {
                if *what == "output" {
                    too_large_output = true;
                }
                if received <= limits.max_output_bytes && *what == "output" {
                    return Err(format!("too large after only {received} bytes"));
                }
            }
            _ if too_large_output => {
                return Err(format!("{step:?} after the output limit was passed"));
            }
            _ if received > limits.max_output_bytes => {
                return Err(format!("{received} bytes accepted past the limit"));
            }
            Step::Prompt(p) => {
                if p.trim_end() != p {
                    return Err(format!("prompt with trailing space: {p:?}"));
                }
                if !platform.prompt.is_match(p) && !platform.prompt.is_match(&last) {
                    return Err(format!("{p:?} does not match the prompt pattern"));
                }
                if p.len() > 3 * MATCH_WINDOW {
                    return Err(format!("a prompt of {} bytes", p.len()));
                }
                if last.trim_end() != p {
                    return Err(format!("prompt {p:?} is not the last line {last:?}"));
                }
                if base && platform.prompt_base.is_none() && !p.starts_with("r1") {
                    return Err(format!("prompt {p:?} without the base"));
                }
            }
            Step::Pager => {
                if !last.is_empty() {
                    return Err(format!("pager text left in the last line: {last:?}"));
                }
            }
            Step::Extra(i) => {
                if *i >= extra.len() {
                    return Err(format!("extra pattern {i} of {}", extra.len()));
                }
            }
            Step::More => {}
        }
        if !matches!(step, Step::TooLarge(_)) && last.len() > 3 * limits.max_line_bytes {
            return Err(format!("a last line of {} bytes was kept", last.len()));
        }
    }
    let text = r.take();
    // The filter writes at most one byte per byte received (lossy UTF-8 may triple it).
    if text.len() > 3 * received {
        return Err(format!(
            "{} bytes of text from {received} received",
            text.len()
        ));
    }
    let cleaned = clean_output(&text, "show running-config");
    if cleaned.len() > text.len() {
        return Err("clean_output grew the text".into());
    }
    let _ = comment_lines(&cleaned, "! ");
    let _ = prompt_base(&text);
    let _ = platform.base_of(&text);
    // A cleared reader starts afresh with nothing of the old output.
    if !r.last_line().is_empty() || !r.take().is_empty() {
        return Err("text survived take()".into());
    }
    Ok(())
}

#[test]
fn the_reader_never_panics_and_keeps_its_invariants() {
    let ps = platforms();
    let mut runner = runner();
    runner
        .run(
            &(0..ps.len(), transcript(), any::<bool>()),
            |(i, (bytes, cuts), base)| {
                let p = &ps[i];
                drive(p, &chunks(&bytes, &cuts), base)
                    .map_err(|e| TestCaseError::fail(format!("{}: {e}", p.name())))
            },
        )
        .unwrap();
}

/// Terminal filtering does not depend on how the bytes were cut into chunks (escape sequences,
/// carriage returns and UTF-8 sequences split over two reads).
#[test]
fn filtering_is_independent_of_chunking() {
    let mut runner = runner();
    runner
        .run(&transcript(), |(bytes, cuts)| {
            let mut whole = Vec::new();
            TermFilter::new().push(&bytes, &mut whole);
            let mut f = TermFilter::new();
            let mut parts = Vec::new();
            for c in chunks(&bytes, &cuts) {
                f.push(&c, &mut parts);
            }
            prop_assert_eq!(&whole, &parts);
            prop_assert!(whole.len() <= bytes.len());
            prop_assert_eq!(
                f.line_start_in(&parts),
                parts.iter().rposition(|b| *b == b'\n').map_or(0, |p| p + 1)
            );
            Ok(())
        })
        .unwrap();
}

/// A flood (no newline, then endless lines) is refused at the limit, never buffered past it.
#[test]
fn floods_stop_at_the_limits() {
    let mut runner = runner();
    runner
        .run(
            &(any::<u8>(), 1usize..4096, any::<bool>()),
            |(byte, chunk, newlines)| {
                let p = &platforms()[0];
                let mut r = ShellReader::new(p.prompt.clone(), p.pager.clone());
                let limits = ReaderLimits {
                    max_output_bytes: 256 * 1024,
                    max_line_bytes: 8 * 1024,
                };
                r.set_limits(limits);
                let mut data = vec![byte; chunk];
                if newlines {
                    data.push(b'\n');
                }
                let mut fed = 0;
                let step = loop {
                    fed += data.len();
                    match r.feed(&data) {
                        Step::TooLarge(w) => break w,
                        _ => prop_assert!(fed <= limits.max_output_bytes + data.len()),
                    }
                };
                prop_assert!(fed <= limits.max_output_bytes + data.len(), "fed {fed}");
                if step == "line" {
                    prop_assert!(fed > limits.max_line_bytes);
                }
                Ok(())
            },
        )
        .unwrap();
}

/// The platforms' normalisation and redaction take any text: no panic, no error, the same
/// answer twice, and a second pass changes nothing (redacted text stays redacted).
#[test]
fn redaction_takes_any_text() {
    let ps = platforms();
    let line = prop_oneof![
        prop::sample::select(
            &[
                "enable secret 9 $9$abcdefgh",
                "enable password 7 0822455D0A16",
                "username admin privilege 15 secret 5 $1$abc$def",
                "snmp-server community public RO",
                " key-string 7 060506324F41",
                "set system root-authentication encrypted-password \"$6$x\"; ## SECRET-DATA",
                "-----BEGIN OPENSSH PRIVATE KEY-----",
                "-----END OPENSSH PRIVATE KEY-----",
                "root:$6$salt$hash:19000:0:99999:7:::",
                "password=hunter2",
                "! Last configuration change at 10:00:00",
                "ntp clock-period 17179712",
            ][..]
        )
        .prop_map(String::from),
        "[ -~]{0,80}",
        any::<String>(),
    ];
    let mut runner = runner();
    runner
        .run(
            &(0..ps.len(), prop::collection::vec(line, 0..24)),
            |(i, lines)| {
                let rules = &ps[i].rules;
                let text = lines.join("\n");
                let once = match rules.normalise(&text) {
                    Ok(t) => t,
                    // Refusing (e.g. nothing left after normalisation) is a typed error, and
                    // the same error again.
                    Err(e) => {
                        let again = rules.normalise(&text).expect_err("the same refusal");
                        prop_assert_eq!(e.kind(), again.kind());
                        prop_assert_eq!(e.kind(), netraven_core::ErrorKind::Redaction, "{}", e);
                        return Ok(());
                    }
                };
                let again = rules.normalise(&text).expect("second call");
                prop_assert_eq!(&once, &again);
                // A second pass changes nothing but, at most, adds marker lines (an unterminated
                // secret block, e.g. a private key cut short, gets a marker for the blank line
                // the first pass ended it with): it never brings text back.
                let twice = rules.normalise(&once).expect("on its own output");
                let unmarked = |t: &str| -> Vec<String> {
                    t.lines()
                        .filter(|l| l.trim() != netraven_core::normalise::REDACTED_MARKER)
                        .map(String::from)
                        .collect()
                };
                prop_assert_eq!(
                    unmarked(&once),
                    unmarked(&twice),
                    "{} is not idempotent",
                    ps[i].name()
                );
                let _ = rules.redact(&text);
                Ok(())
            },
        )
        .unwrap();
}

/// The corpus: every file is fed whole, byte by byte, and split at every position, into a
/// reader of every built-in platform.
#[test]
fn corpus_replays() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz_corpus/expect");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("corpus directory")
        .map(|e| e.expect("entry").path())
        .collect();
    files.sort();
    assert!(files.len() >= 8, "corpus too small: {files:?}");
    for f in &files {
        let bytes = std::fs::read(f).expect("read corpus file");
        for p in platforms() {
            let whole = [bytes.clone()];
            let ctx = |e: String| format!("{} on {}: {e}", f.display(), p.name());
            drive(p, &whole, false).map_err(ctx).unwrap();
            drive(p, &whole, true).map_err(ctx).unwrap();
            let singles: Vec<Vec<u8>> = bytes.iter().map(|b| vec![*b]).collect();
            drive(p, &singles, false).map_err(ctx).unwrap();
            for cut in (0..=bytes.len()).step_by(bytes.len() / 64 + 1) {
                drive(p, &chunks(&bytes, &[cut]), false)
                    .map_err(ctx)
                    .unwrap();
            }
            let _ = p.rules.normalise(&String::from_utf8_lossy(&bytes));
        }
    }
}
