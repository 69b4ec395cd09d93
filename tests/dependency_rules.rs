//! The workspace's dependency rules, checked on the manifests: core imports no backend; drivers
//! and store never import each other; no library imports the binary crate. A crate that gains a
//! forbidden dependency (normal, dev or build) fails this test.

use std::collections::BTreeSet;
use std::path::Path;

/// Crates that are backends: networks, databases, git, HTTP servers, cryptography at rest.
const BACKENDS: &[&str] = &[
    "sqlx",
    "git2",
    "ssh2",
    "russh",
    "deadpool-redis",
    "redis",
    "axum",
    "tower-http",
    "reqwest",
    "aes-gcm",
    "argon2",
    "jsonwebtoken",
];

/// (crate, dependencies it must never have).
fn rules() -> Vec<(&'static str, Vec<&'static str>)> {
    let mut core = vec![
        "netraven",
        "netraven-drivers",
        "netraven-store",
        "netraven-bin",
    ];
    core.extend(BACKENDS);
    vec![
        ("netraven-core", core),
        (
            "netraven-drivers",
            vec![
                "netraven",
                "netraven-store",
                "netraven-bin",
                "sqlx",
                "git2",
                "deadpool-redis",
                "axum",
            ],
        ),
        (
            "netraven-store",
            vec![
                "netraven",
                "netraven-drivers",
                "netraven-bin",
                "ssh2",
                "russh",
                "axum",
            ],
        ),
        ("netraven", vec!["netraven-bin", "axum"]),
    ]
}

/// Every dependency name of a manifest, in every dependency section (also per target).
fn dependencies(manifest: &toml::Table) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut add = |t: &toml::Table| {
        for section in ["dependencies", "dev-dependencies", "build-dependencies"] {
            if let Some(deps) = t.get(section).and_then(|d| d.as_table()) {
                for (name, spec) in deps {
                    // `foo = { package = "bar" }` depends on bar.
                    let real = spec.get("package").and_then(|p| p.as_str()).unwrap_or(name);
                    out.insert(real.to_string());
                }
            }
        }
    };
    add(manifest);
    if let Some(targets) = manifest.get("target").and_then(|t| t.as_table()) {
        for t in targets.values().filter_map(|t| t.as_table()) {
            add(t);
        }
    }
    out
}

/// The rule violations of one crate's manifest.
fn violations(krate: &str, manifest: &toml::Table, forbidden: &[&str]) -> Vec<String> {
    dependencies(manifest)
        .into_iter()
        .filter(|d| forbidden.contains(&d.as_str()))
        .map(|d| format!("{krate} must not depend on {d}"))
        .collect()
}

fn manifest(path: &Path) -> toml::Table {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.parse::<toml::Table>()
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn crates_keep_the_dependency_rules() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut broken = Vec::new();
    for (krate, forbidden) in rules() {
        let path = if krate == "netraven" {
            root.join("Cargo.toml")
        } else {
            root.join(krate).join("Cargo.toml")
        };
        let m = manifest(&path);
        let name = m
            .get("package")
            .and_then(|p| p.get("name"))
            .and_then(|n| n.as_str());
        assert_eq!(name, Some(krate), "{} is not {krate}", path.display());
        broken.extend(violations(krate, &m, &forbidden));
    }
    assert!(
        broken.is_empty(),
        "dependency rules broken:\n{}",
        broken.join("\n")
    );
}

#[test]
fn the_check_catches_a_forbidden_dependency() {
    let m: toml::Table = r#"
        [package]
        name = "netraven-core"
        [dependencies]
        tokio = "1"
        [target.'cfg(unix)'.dev-dependencies]
        db = { package = "sqlx", version = "0.9" }
    "#
    .parse()
    .unwrap();
    let forbidden = rules().remove(0).1;
    assert_eq!(
        violations("netraven-core", &m, &forbidden),
        vec!["netraven-core must not depend on sqlx".to_string()]
    );
}
