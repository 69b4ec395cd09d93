//! What the whole backup path adds per device after the SSH driver, step by step, without any
//! network: a simulated cisco_ios configuration of ~30 KB (the simulator's own rendering, with
//! its volatile lines and planted secrets) through normalisation and redaction, the content
//! hash, the git blob id and the pack writer of the one-shot git sink, each timed over many
//! repetitions on one thread.
//!
//! ```text
//! cargo bench --bench pipeline            # NETRAVEN_BENCH_QUICK=1: fewer repetitions
//! NETRAVEN_BENCH_ONLY=normalise cargo bench --bench pipeline   # the rows so named only
//! ```

use netraven::store::pack::{PackBuilder, blob_id};
use netraven_drivers::builtin_platform;
use netraven_drivers::sample::Sample;
use std::hint::black_box;
use std::time::Instant;

/// Prints the mean wall time of `f` over `n` runs, in µs, as a table row; skipped unless its
/// name contains `NETRAVEN_BENCH_ONLY` (when set: to profile one step alone).
fn row(name: &str, n: usize, mut f: impl FnMut()) {
    if std::env::var("NETRAVEN_BENCH_ONLY").is_ok_and(|only| !name.contains(&only)) {
        return;
    }
    f();
    let started = Instant::now();
    for _ in 0..n {
        f();
    }
    let us = started.elapsed().as_secs_f64() * 1e6 / n as f64;
    println!("| {name} | {us:.1} |");
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let n = if std::env::var("NETRAVEN_BENCH_QUICK").is_ok() {
        200
    } else {
        2_000
    };
    let platform = builtin_platform("cisco_ios").expect("cisco_ios");
    // As many blocks as the simulator puts in a 30 KB configuration.
    let mut blocks = 1;
    let raw = loop {
        let s = Sample {
            blocks,
            ..Sample::new(&platform, "sim-0001")
        };
        let version = s.raw("show version", "1").expect("show version");
        let config = s
            .raw("show running-config", "1")
            .expect("show running-config");
        if config.len() >= 30_000 {
            let mut raw = String::new();
            for line in version.lines() {
                raw.push_str("! ");
                raw.push_str(line);
                raw.push('\n');
            }
            raw.push_str(&config);
            break raw;
        }
        blocks += 1;
    };
    let rules = &platform.rules;
    let normalised = rules.normalise(&raw).expect("normalise");
    println!(
        "cisco_ios sample: {} bytes raw, {} lines, {} bytes normalised; {n} repetitions",
        raw.len(),
        raw.lines().count(),
        normalised.len()
    );
    println!("| step | µs per device |");
    println!("|---|---:|");
    row("normalise (volatile lines, secrets)", n, || {
        black_box(rules.normalise(black_box(&raw)).ok());
    });
    let plain = rules.without_prefilter();
    row(
        "normalise, every rule tried on every line (no prefilter)",
        n,
        || {
            black_box(plain.normalise(black_box(&raw)).ok());
        },
    );
    row("content hash (SHA-256)", n, || {
        black_box(netraven_core::model::content_hash(black_box(&normalised)));
    });
    row("git blob id (SHA-1)", n, || {
        black_box(blob_id(black_box(normalised.as_bytes())));
    });
    row(
        "git blob id, libgit2 (SHA-1 with collision detection)",
        n,
        || {
            black_box(git2::Oid::hash_object(git2::ObjectType::Blob, normalised.as_bytes()).ok());
        },
    );
    let mut i = 0u64;
    for level in [6, 1] {
        let mut pack = PackBuilder::with_level(level);
        pack.add_blob(git2::Oid::zero(), normalised.as_bytes())
            .expect("add");
        let size = pack.bytes();
        row(
            &format!("pack entry, zlib level {level} (deflate + CRC-32; ~{size} bytes)"),
            n,
            || {
                // A distinct id per entry, so none is skipped as a duplicate.
                i += 1;
                let mut id = [0u8; 20];
                id[..8].copy_from_slice(&i.to_be_bytes());
                let oid = git2::Oid::from_bytes(&id).expect("oid");
                if pack.len() >= 256 {
                    pack = PackBuilder::with_level(level);
                }
                pack.add_blob(oid, normalised.as_bytes()).expect("add");
            },
        );
    }
}
