//! Records the git commit the binary is built from as `NETRAVEN_GIT_COMMIT` (shown by
//! `netraven --version` and `/api/health`). Set `NETRAVEN_GIT_COMMIT` to override it, e.g. when
//! building from a source archive; without git or a repository it is `unknown`.

use std::path::Path;
use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    let s = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (out.status.success() && !s.is_empty()).then_some(s)
}

fn main() {
    println!("cargo:rerun-if-env-changed=NETRAVEN_GIT_COMMIT");
    let commit = std::env::var("NETRAVEN_GIT_COMMIT")
        .ok()
        .filter(|s| !s.trim().is_empty())
        .or_else(|| git(&["rev-parse", "--short=12", "HEAD"]))
        .unwrap_or_else(|| "unknown".into());
    // Build again when HEAD moves: HEAD changes on a checkout, its reflog on every commit.
    if let Some(dir) = git(&["rev-parse", "--absolute-git-dir"]) {
        for f in ["HEAD", "logs/HEAD"] {
            let p = Path::new(&dir).join(f);
            if p.exists() {
                println!("cargo:rerun-if-changed={}", p.display());
            }
        }
    }
    println!("cargo:rustc-env=NETRAVEN_GIT_COMMIT={commit}");
}
