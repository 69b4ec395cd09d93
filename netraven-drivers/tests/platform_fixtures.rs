//! Golden fixtures per platform (`tests/fixtures/<platform>/<kind>.toml`), four kinds each:
//!
//! - `prompt`: login banner and MOTD with lines that look like prompts, ANSI colour and cursor
//!   codes, a 63-character hostname with dots and dashes, the login dialogue, the enable
//!   dialogue and the paging-off commands; the session must end on the real prompt;
//! - `config`: every backup command's output with pager prompts mid-output (as the device sends
//!   them), the stored configuration must equal `<kind>.out` exactly;
//! - `secrets`: a configuration whose planted secrets must all be gone (`must_not_contain`) while
//!   the redacted lines stay (`must_contain`);
//! - `change`: two fetches differing only in volatile lines and re-encrypted secrets must store
//!   the same text; a fetch with a real change must not.
//!
//! Each transcript is fed to the prompt/pager state machine in random chunk sizes from the
//! fixture's fixed seed. `UPDATE_GOLDEN=1` rewrites the `.out` files;
//! `cargo test -p netraven-drivers --test platform_fixtures -- --ignored generate` regenerates
//! the transcripts from the platform files' samples (review the diff before committing).

use netraven_drivers::expect::{ShellReader, Step, clean_output, comment_lines};
use netraven_drivers::platform::{Platform, load_platform_dir};
use netraven_drivers::sample::Sample;
use serde::{Deserialize, Serialize};
use std::fmt::Write;
use std::path::{Path, PathBuf};

/// One thing the client sent and what the device answered (raw bytes as text).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Exchange {
    /// `login`, `newline`, `enable`, `secret`, `username`, `dialogue` or `command`.
    stage: String,
    /// What the client sent (for `command`: the command).
    #[serde(default)]
    send: String,
    /// What the device sent back.
    receive: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Fixture {
    platform: String,
    kind: String,
    seed: u64,
    hostname: String,
    /// The prompt the session must end on (`prompt` kind).
    #[serde(default)]
    expect_prompt: String,
    #[serde(default)]
    must_contain: Vec<String>,
    #[serde(default)]
    must_not_contain: Vec<String>,
    /// The session (login, then commands).
    exchange: Vec<Exchange>,
    /// `change`: a second fetch of the same configuration (new volatile values, new ciphertexts).
    #[serde(default)]
    second: Vec<Exchange>,
    /// `change`: a fetch after a real change.
    #[serde(default)]
    changed: Vec<Exchange>,
}

/// A small fixed-seed generator for chunk sizes (xorshift64*).
struct Chunks(u64);

impl Chunks {
    fn next(&mut self, max: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 33) as usize % max + 1
    }
}

fn platforms() -> Vec<Platform> {
    load_platform_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("platforms")).unwrap()
}

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// Plays a session against the state machine the way the SSH driver does. Returns the step
/// log, the last prompt and the stored (normalised) configuration, if commands were run.
struct Played {
    log: String,
    prompt: String,
    config: Option<Result<String, String>>,
}

fn play(p: &Platform, exchanges: &[Exchange], rng: &mut Chunks) -> Played {
    let mut reader = ShellReader::new(p.prompt.clone(), p.pager.clone());
    let mut log = String::new();
    let mut prompt = String::new();
    let mut all = String::new();
    let mut ran_commands = false;
    for ex in exchanges {
        reader.clear();
        match ex.stage.as_str() {
            "login" | "dialogue" => reader.set_extra(p.login.clone()),
            "enable" | "username" => {
                let mut extra = p.enable_password_prompt.iter().cloned().collect::<Vec<_>>();
                extra.extend(p.enable_username_prompt.clone());
                reader.set_extra(extra);
            }
            _ => reader.set_extra(Vec::new()),
        }
        let bytes = ex.receive.as_bytes();
        let mut i = 0;
        let mut steps = Vec::new();
        while i < bytes.len() {
            let n = rng.next(48).min(bytes.len() - i);
            match reader.feed(&bytes[i..i + n]) {
                Step::More => {}
                s => steps.push(s),
            }
            i += n;
        }
        let _ = writeln!(log, "{} {:?}: {steps:?}", ex.stage, ex.send);
        if let Some(Step::Prompt(pr)) = steps.last() {
            prompt = pr.clone();
            if ex.stage == "newline" {
                reader.set_base(Some(p.base_of(&prompt)));
                reader.set_base_pattern(p.prompt_base.clone());
            }
        }
        if ex.stage == "command" {
            let text = clean_output(&reader.take(), &ex.send);
            let Some(b) = p.spec.backup.iter().find(|b| b.command == ex.send) else {
                continue;
            };
            ran_commands = true;
            if let Some(line) = p.is_command_error(&text) {
                let _ = writeln!(log, "  rejected: {line}");
                continue;
            }
            if b.discard {
                continue;
            }
            match &b.comment {
                Some(c) => all.push_str(&comment_lines(&text, c)),
                None => all.push_str(&text),
            }
        }
    }
    let config = ran_commands.then(|| p.rules.normalise(&all).map_err(|e| e.to_string()));
    Played {
        log,
        prompt,
        config,
    }
}

fn run(f: &Fixture, p: &Platform) -> Result<String, String> {
    let mut rng = Chunks(f.seed | 1);
    let played = play(p, &f.exchange, &mut rng);
    let mut out = String::new();
    let _ = write!(out, "{}", played.log);
    let _ = writeln!(out, "prompt: {:?}", played.prompt);
    match f.kind.as_str() {
        "prompt" => {
            if played.prompt != f.expect_prompt {
                return Err(format!(
                    "ended on {:?}, want {:?}\n{}",
                    played.prompt, f.expect_prompt, played.log
                ));
            }
        }
        "config" | "secrets" => {
            let config = played
                .config
                .ok_or("no backup command in the transcript")?
                .map_err(|e| format!("not stored: {e}"))?;
            for s in &f.must_not_contain {
                if config.contains(s.as_str()) {
                    return Err(format!("secret {s:?} stored"));
                }
            }
            for s in &f.must_contain {
                if !config.lines().any(|l| l == s) {
                    return Err(format!("line {s:?} missing from the stored configuration"));
                }
            }
            let _ = write!(out, "--- stored ---\n{config}");
        }
        "change" => {
            let first = played
                .config
                .ok_or("no backup command in the transcript")?
                .map_err(|e| format!("not stored: {e}"))?;
            let second = play(p, &f.second, &mut rng)
                .config
                .ok_or("no second fetch")?
                .map_err(|e| format!("second not stored: {e}"))?;
            if first != second {
                return Err(
                    "two fetches differing only in volatile/re-encrypted values differ".into(),
                );
            }
            let changed = play(p, &f.changed, &mut rng)
                .config
                .ok_or("no changed fetch")?
                .map_err(|e| format!("changed not stored: {e}"))?;
            if changed == first {
                return Err("a real change is not seen".into());
            }
            let line = first
                .lines()
                .zip(changed.lines())
                .find(|(a, b)| a != b)
                .map(|(a, b)| format!("{a:?} -> {b:?}"))
                .unwrap_or_else(|| "length".into());
            let _ = writeln!(out, "second fetch: unchanged\nchanged fetch: {line}");
        }
        k => return Err(format!("unknown kind {k}")),
    }
    Ok(out)
}

#[test]
fn every_platform_has_four_passing_fixtures() {
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let mut failures = Vec::new();
    let mut counted = 0;
    for p in platforms() {
        let dir = fixture_dir().join(p.name());
        let mut kinds = Vec::new();
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default();
        files.retain(|f| f.extension().is_some_and(|e| e == "toml"));
        files.sort();
        for file in files {
            let f: Fixture = match toml::from_str(&std::fs::read_to_string(&file).unwrap()) {
                Ok(f) => f,
                Err(e) => {
                    failures.push(format!("{}: {e}", file.display()));
                    continue;
                }
            };
            assert_eq!(f.platform, p.name(), "{}", file.display());
            let got = match run(&f, &p) {
                Ok(g) => g,
                Err(e) => {
                    failures.push(format!("{}: {e}", file.display()));
                    continue;
                }
            };
            let out = file.with_extension("out");
            if update {
                std::fs::write(&out, &got).unwrap();
            } else {
                match std::fs::read_to_string(&out) {
                    Ok(want) if want == got => {}
                    Ok(want) => {
                        let line = want
                            .lines()
                            .zip(got.lines())
                            .find(|(a, b)| a != b)
                            .map(|(a, b)| format!("want {a:?}\n got {b:?}"))
                            .unwrap_or_else(|| "length differs".into());
                        failures.push(format!("{}: golden mismatch\n{line}", out.display()));
                        continue;
                    }
                    Err(_) => {
                        failures.push(format!("{}: missing (UPDATE_GOLDEN=1)", out.display()));
                        continue;
                    }
                }
            }
            kinds.push(f.kind.clone());
            counted += 1;
        }
        for k in ["prompt", "config", "secrets", "change"] {
            if !kinds.iter().any(|x| x == k) {
                failures.push(format!("{}: no passing '{k}' fixture", p.name()));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(counted >= 4 * 40, "{counted} fixtures");
}

// ---------------------------------------------------------------------------------------------
// Generating the transcripts from the platform files' samples.

const ODD_HOST: &str = "core-sw01.dc-02.rack-14.eu-west-1.prod.network.example-corp.net";

/// The device's output for one command: echo, output split into pages with the pager and its
/// erase sequence (when paging is on), then the prompt. `\n` becomes `\r\n` as on a terminal.
fn command_bytes(p: &Platform, cmd: &str, out: &str, prompt: &str, paging: bool) -> String {
    let sim = p.spec.sim.as_ref().unwrap();
    let mut s = format!("{cmd}\n");
    let lines: Vec<&str> = out.lines().collect();
    let page = if paging && sim.page_lines > 0 {
        // Short pages, so every fixture shows several pagers mid-output.
        7
    } else {
        usize::MAX
    };
    for (i, l) in lines.iter().enumerate() {
        if i > 0 && i % page == 0 {
            s.push_str(&sim.more);
            s.push_str(&sim.more_erase);
        }
        s.push_str(l);
        s.push('\n');
    }
    s.push_str(prompt);
    s.replace('\n', "\r\n")
}

fn ex(stage: &str, send: &str, receive: String) -> Exchange {
    Exchange {
        stage: stage.into(),
        send: send.into(),
        receive,
    }
}

/// Login, login dialogue, newline, enable and paging-off exchanges; returns them and the
/// privileged prompt. ANSI codes wrap the banner and the first prompt.
fn login_exchanges(p: &Platform, s: &Sample, decoy: bool) -> (Vec<Exchange>, String, u64) {
    let sim = p.spec.sim.as_ref().unwrap();
    let mut count = 1;
    let unpriv = sim.unprivileged.is_some();
    let first = s.prompt(!unpriv, count);
    let expand = |t: &str| {
        t.replace("{hostname}", s.hostname)
            .replace("{user}", s.user)
    };
    let mut banner = String::new();
    if decoy {
        let other = Sample {
            hostname: "decoy-rtr9",
            ..s.clone()
        };
        banner.push_str("\u{1b}[1;33m*** NOTICE ***\u{1b}[0m\n");
        banner.push_str(&other.prompt(!unpriv, 3));
        banner.push('\n');
        banner.push_str(&format!(
            "{} is the old name of this device\n",
            other.prompt(true, 4)
        ));
    }
    banner.push_str(&expand(&sim.banner));
    let mut v = Vec::new();
    let mut login = format!("{banner}\n");
    if let Some(step) = sim.login.first() {
        login.push_str(&expand(&step.prompt));
        v.push(ex("login", "", login.replace('\n', "\r\n")));
        for (i, step) in sim.login.iter().enumerate() {
            let next = match sim.login.get(i + 1) {
                Some(n) => expand(&n.prompt),
                None => format!("\u{1b}[1m{first}\u{1b}[0m"),
            };
            let answer = match step.answer.as_deref() {
                Some("{password}") => "<password>".to_string(),
                Some(a) => expand(a),
                None => String::new(),
            };
            v.push(ex(
                "dialogue",
                &answer,
                format!("\n{next}").replace('\n', "\r\n"),
            ));
        }
    } else {
        login.push_str(&format!("\u{1b}[1m{first}\u{1b}[0m"));
        v.push(ex("login", "", login.replace('\n', "\r\n")));
    }
    v.push(ex(
        "newline",
        "",
        format!("\n{first}").replace('\n', "\r\n"),
    ));
    let mut prompt = first;
    if let (true, Some(en)) = (unpriv, p.spec.enable.as_ref()) {
        let cmd = en.command.clone();
        count += 1;
        let priv_prompt = s.prompt(true, count);
        if !sim.enable_password {
            v.push(ex(
                "enable",
                &cmd,
                format!("{cmd}\n{priv_prompt}").replace('\n', "\r\n"),
            ));
        } else {
            match &sim.enable_username_prompt {
                Some(u) => {
                    v.push(ex(
                        "enable",
                        &cmd,
                        format!("{cmd}\n{u}").replace('\n', "\r\n"),
                    ));
                    v.push(ex(
                        "username",
                        s.user,
                        format!("{}\n{}", s.user, sim.password_prompt).replace('\n', "\r\n"),
                    ));
                }
                None => v.push(ex(
                    "enable",
                    &cmd,
                    format!("{cmd}\n{}", sim.password_prompt).replace('\n', "\r\n"),
                )),
            }
            v.push(ex(
                "secret",
                "<enable secret>",
                format!("\n{priv_prompt}").replace('\n', "\r\n"),
            ));
        }
        prompt = priv_prompt;
    }
    for c in &p.spec.paging_off {
        count += 1;
        let pr = s.prompt(true, count);
        v.push(ex("command", c, format!("{c}\n{pr}").replace('\n', "\r\n")));
        prompt = pr;
    }
    (v, prompt, count)
}

fn fetch_exchanges(
    p: &Platform,
    s: &Sample,
    stamp: &str,
    mut count: u64,
    paging: bool,
) -> Vec<Exchange> {
    let sim = p.spec.sim.as_ref().unwrap();
    let mut v = Vec::new();
    for b in &p.spec.backup {
        count += 1;
        let pr = s.prompt(true, count);
        let out = match s.raw(&b.command, stamp) {
            Some(o) => o,
            None => sim.invalid.clone(),
        };
        v.push(ex(
            "command",
            &b.command,
            command_bytes(p, &b.command, &out, &pr, paging),
        ));
    }
    v
}

#[test]
#[ignore = "regenerates the fixture transcripts; run explicitly"]
fn generate() {
    for p in platforms() {
        if p.spec.sim.is_none() {
            continue;
        }
        let dir = fixture_dir().join(p.name());
        std::fs::create_dir_all(&dir).unwrap();
        let seed = p
            .name()
            .bytes()
            .fold(7u64, |h, b| h.wrapping_mul(31).wrapping_add(b as u64))
            & 0x7fff_ffff;
        let write = |kind: &str, f: &Fixture| {
            std::fs::write(
                dir.join(format!("{kind}.toml")),
                toml::to_string(f).unwrap(),
            )
            .unwrap();
        };
        // prompt: decoy prompts in the banner, ANSI codes, a 63-character hostname.
        let host = &ODD_HOST[..63.min(ODD_HOST.len())];
        let s = Sample {
            device: 1,
            blocks: 1,
            ..Sample::new(&p, host)
        };
        let (ex_login, prompt, _) = login_exchanges(&p, &s, true);
        write(
            "prompt",
            &Fixture {
                platform: p.name().into(),
                kind: "prompt".into(),
                seed,
                hostname: host.into(),
                expect_prompt: {
                    let mut plain = Vec::new();
                    netraven_drivers::expect::TermFilter::new().push(prompt.as_bytes(), &mut plain);
                    String::from_utf8_lossy(&plain).trim_end().to_string()
                },
                must_contain: Vec::new(),
                must_not_contain: Vec::new(),
                exchange: ex_login,
                second: Vec::new(),
                changed: Vec::new(),
            },
        );
        // config: paging on (pagers mid-output), the exact stored file in config.out.
        let s = Sample {
            device: 2,
            blocks: 1,
            ..Sample::new(&p, "rtr-cfg01")
        };
        let (mut v, _, count) = login_exchanges(&p, &s, false);
        v.retain(|e| !(e.stage == "command" && p.spec.paging_off.contains(&e.send)));
        let count = count - p.spec.paging_off.len() as u64;
        v.extend(fetch_exchanges(
            &p,
            &s,
            "09:15:27.123 UTC 4242",
            count,
            true,
        ));
        write(
            "config",
            &Fixture {
                platform: p.name().into(),
                kind: "config".into(),
                seed: seed ^ 1,
                hostname: "rtr-cfg01".into(),
                expect_prompt: String::new(),
                must_contain: Vec::new(),
                must_not_contain: Vec::new(),
                exchange: v,
                second: Vec::new(),
                changed: Vec::new(),
            },
        );
        // secrets: every planted secret must go, the redacted lines stay.
        let s = Sample {
            device: 3,
            blocks: 1,
            ..Sample::new(&p, "fw-sec01")
        };
        let stamp = "11:22:33.444 UTC 7";
        let (mut v, _, count) = login_exchanges(&p, &s, false);
        v.extend(fetch_exchanges(&p, &s, stamp, count, false));
        let must_contain: Vec<String> = s
            .expected_backup()
            .lines()
            .filter(|l| l.contains(netraven_core::normalise::REDACTED_MARKER))
            .map(String::from)
            .collect();
        write(
            "secrets",
            &Fixture {
                platform: p.name().into(),
                kind: "secrets".into(),
                seed: seed ^ 2,
                hostname: "fw-sec01".into(),
                expect_prompt: String::new(),
                must_contain,
                must_not_contain: s.secrets(stamp),
                exchange: v,
                second: Vec::new(),
                changed: Vec::new(),
            },
        );
        // change: same configuration twice (new volatile values and ciphertexts), then a change.
        let s = Sample {
            device: 4,
            blocks: 1,
            ..Sample::new(&p, "sw-chg01")
        };
        let (v0, _, count) = login_exchanges(&p, &s, false);
        let mut first = v0.clone();
        first.extend(fetch_exchanges(&p, &s, "01:02:03.004 UTC 11", count, false));
        let mut second = v0.clone();
        second.extend(fetch_exchanges(
            &p,
            &s,
            "23:58:59.999 UTC 12345",
            count,
            true,
        ));
        let changed_sample = Sample {
            rev: 7,
            ..s.clone()
        };
        let mut changed = v0;
        changed.extend(fetch_exchanges(
            &p,
            &changed_sample,
            "05:06:07.008 UTC 99",
            count,
            false,
        ));
        write(
            "change",
            &Fixture {
                platform: p.name().into(),
                kind: "change".into(),
                seed: seed ^ 3,
                hostname: "sw-chg01".into(),
                expect_prompt: String::new(),
                must_contain: Vec::new(),
                must_not_contain: Vec::new(),
                exchange: first,
                second,
                changed,
            },
        );
    }
}
