//! Golden transcript tests: recorded device output, fed chunk by chunk into the prompt/paging
//! state machine, must give the prompts, cleaned output and normalised/redacted configuration
//! in `tests/golden/<case>.out`. Run with `UPDATE_GOLDEN=1` to rewrite the expected files.

use netraven_drivers::builtin_platform;
use netraven_drivers::expect::{
    PromptLearner, ShellReader, Step, clean_output, comment_lines, prompt_base,
};
use serde::Deserialize;
use std::fmt::Write;
use std::path::PathBuf;

#[derive(Deserialize)]
struct Case {
    platform: String,
    command: String,
    #[serde(default)]
    comment: Option<String>,
    login: Vec<String>,
    /// Chunks of the answer to the newline that confirms a matched prompt.
    #[serde(default)]
    newline: Vec<String>,
    /// When the platform's pattern matches no prompt: the answers to the newlines a prompt is
    /// learned from (one answer each), as the driver sends them.
    #[serde(default)]
    learn: Vec<String>,
    output: Vec<String>,
}

fn feed(reader: &mut ShellReader, chunks: &[String], log: &mut String) -> Option<String> {
    let mut prompt = None;
    for c in chunks {
        let step = reader.feed(c.as_bytes());
        let _ = write!(log, " {step:?}");
        if let Step::Prompt(p) = step {
            prompt = Some(p);
        }
    }
    log.push('\n');
    prompt
}

fn run(case: &Case) -> String {
    let p = builtin_platform(&case.platform).unwrap();
    let mut r = ShellReader::new(p.prompt.clone(), p.pager.clone());
    let mut out = String::new();
    out.push_str("login:");
    let first = feed(&mut r, &case.login, &mut out);
    let _ = writeln!(out, "first prompt: {first:?}");
    r.clear();
    let (prompt, base) = if case.learn.is_empty() {
        out.push_str("newline:");
        let prompt = feed(&mut r, &case.newline, &mut out).unwrap_or_default();
        let base = prompt_base(&prompt);
        (prompt, base)
    } else {
        // The driver's path when nothing matched: learn the prompt netmiko-style.
        let mut learner = PromptLearner::new(&p.spec.prompt_terminators);
        let mut learned = None;
        out.push_str("learn:");
        for answer in &case.learn {
            r.clear();
            let _ = write!(out, " {:?}", r.feed(answer.as_bytes()));
            if let Some(l) = learner.offer(&r.take()) {
                learned = Some(l);
                break;
            }
        }
        out.push('\n');
        let prompt = learned.unwrap_or_default();
        let (pattern, base) = learner.pattern_for(&prompt);
        let _ = writeln!(out, "learned: {prompt:?}\npattern: {}", pattern.as_str());
        r.set_prompt(pattern);
        (prompt, base)
    };
    let _ = writeln!(out, "prompt: {prompt:?}\nbase: {base:?}");
    r.clear();
    r.set_base(Some(base));
    out.push_str("output:");
    feed(&mut r, &case.output, &mut out);
    let mut text = clean_output(&r.take(), &case.command);
    if let Some(c) = &case.comment {
        text = comment_lines(&text, c);
    }
    let _ = write!(out, "--- cleaned ---\n{text}--- normalised ---\n");
    match p.rules.normalise(&text) {
        Ok(n) => out.push_str(&n),
        Err(e) => {
            let _ = writeln!(out, "error: {e}");
        }
    }
    out
}

#[test]
fn golden_transcripts() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let mut cases: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    cases.sort();
    assert!(cases.len() >= 4, "expected a case per platform");
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    for path in cases {
        let case: Case = toml::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let got = run(&case);
        let out = path.with_extension("out");
        if update {
            std::fs::write(&out, &got).unwrap();
            continue;
        }
        let want = std::fs::read_to_string(&out)
            .unwrap_or_else(|_| panic!("missing {}; run with UPDATE_GOLDEN=1", out.display()));
        assert_eq!(got, want, "golden mismatch for {}", path.display());
    }
}
