//! Fuzzing of the inventory readers with proptest: the CSV and JSON inventory parsers, the
//! import parser and the other tools' inventory formats (Nornir, Ansible, Oxidized/RANCID
//! router.db, NetBox pages) take any input and answer rows or a typed error (`InvalidInput`;
//! `Protocol` for a NetBox answer that is no device page) —
//! never a panic, never more rows than allowed, never a secret of the input in an error.
//!
//! Cases per property: `NETRAVEN_FUZZ_CASES` (default 256, a few seconds). The long run:
//! `NETRAVEN_FUZZ_CASES=100000 cargo test --release -p netraven-core --test fuzz_inventory`.
//! `tests/fuzz_corpus/inventory/` holds inputs that cover tricky paths; `corpus_replays` feeds
//! each file to every reader, whole and cut at many points.

use netraven_core::ErrorKind;
use netraven_core::import;
use netraven_core::inventory::{self, ParseOptions};
use netraven_core::sources::platforms::PlatformMap;
use netraven_core::sources::routerdb::{self, RouterDbFormat};
use netraven_core::sources::{ansible, netbox, nornir};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

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

fn opts(logins: bool) -> ParseOptions {
    ParseOptions {
        logins,
        max_rows: 50,
    }
}

/// Every reader on `bytes`; a panic fails the test, an error must be `InvalidInput`.
fn all_readers(bytes: &[u8]) -> Result<(), TestCaseError> {
    let text = String::from_utf8_lossy(bytes);
    let typed = |what: &str, e: netraven_core::Error| -> Result<(), TestCaseError> {
        prop_assert_eq!(e.kind(), ErrorKind::InvalidInput, "{}: {}", what, e);
        Ok(())
    };
    for logins in [false, true] {
        match inventory::parse_csv(bytes, opts(logins)) {
            Ok(rows) => prop_assert!(rows.len() <= 50, "{} csv rows", rows.len()),
            Err(e) => typed("csv", e)?,
        }
        match inventory::parse_json(bytes, opts(logins)) {
            Ok(rows) => prop_assert!(rows.len() <= 50, "{} json rows", rows.len()),
            Err(e) => typed("json", e)?,
        }
    }
    if let Err(e) = import::parse_csv(bytes) {
        typed("import csv", e)?;
    }
    let map = PlatformMap::default();
    for yaml in [false, true] {
        if let Err(e) = ansible::parse(&text, yaml, &map) {
            typed("ansible", e)?;
        }
    }
    if let Err(e) = nornir::parse(&text, "", "", &map) {
        typed("nornir hosts", e)?;
    }
    if let Err(e) = nornir::parse(
        "r1:\n  hostname: 192.0.2.1\n  groups: [g]\n",
        &text,
        &text,
        &map,
    ) {
        typed("nornir groups/defaults", e)?;
    }
    let _ = routerdb::parse(&text, &RouterDbFormat::oxidized_default(), Some("g"), &map);
    let short: String = text.chars().take(64).collect();
    for format in [
        RouterDbFormat::oxidized(&short, "name=0,model=1"),
        RouterDbFormat::oxidized(":", &text),
    ] {
        match format {
            Ok(f) => {
                let _ = routerdb::parse("a:b:c:d\n", &f, None, &map);
                let _ = routerdb::parse(&text, &f, None, &map);
            }
            Err(e) => typed("router.db format", e)?,
        }
    }
    // A NetBox answer that is not a device page is the remote's fault: `Protocol`.
    if let Err(e) = netbox::parse_page(bytes, &map) {
        prop_assert_eq!(e.kind(), ErrorKind::Protocol, "netbox page: {}", e);
    }
    let mut m = PlatformMap::default();
    if let Err(e) = m.parse_pairs(&text) {
        typed("platform map", e)?;
    }
    Ok(())
}

/// Text that looks like an inventory: separators, quotes, YAML and JSON punctuation, known
/// column names and values, unicode and control bytes.
fn inventoryish() -> impl Strategy<Value = Vec<u8>> {
    let token = prop_oneof![
        4 => prop::sample::select(&[
            "hostname", "address", "platform", "port", "tags", "username", "password",
            "enable_secret", "description", "enabled", "legacy_ssh", "credential_id",
            "host_key_policy", ",", ";", "|", ":", "\"", "\"\"", "\n", "\r\n", "\r", " ", "\t",
            "[", "]", "{", "}", "- ", "---", "&a", "*a", "<<: *a", "!!binary", "? ", "#",
            "[all]", "[core:children]", "ansible_host=", "ansible_port=", "groups:", "data:",
            "results", "next", "null", "true", "false", "0", "65536", "-1", "1e999",
            "192.0.2.1", "::1", "cisco_ios", "ios", "\u{feff}", "\u{0}", "é", "😀",
        ][..])
        .prop_map(|s| s.as_bytes().to_vec()),
        2 => "[ -~]{0,12}".prop_map(String::into_bytes),
        1 => prop::collection::vec(any::<u8>(), 0..16),
    ];
    prop::collection::vec(token, 0..80).prop_map(|t| t.concat())
}

#[test]
fn readers_take_any_bytes() {
    let mut runner = runner();
    runner
        .run(&prop::collection::vec(any::<u8>(), 0..512), |b| {
            all_readers(&b)
        })
        .unwrap();
}

#[test]
fn readers_take_inventory_shaped_text() {
    let mut runner = runner();
    runner.run(&inventoryish(), |b| all_readers(&b)).unwrap();
}

/// Arbitrary JSON values (nesting, wrong types, huge numbers) as JSON inventories and NetBox
/// pages.
#[test]
fn readers_take_any_json() {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<u64>().prop_map(serde_json::Value::from),
        any::<f64>().prop_map(|f| serde_json::Number::from_f64(f)
            .map_or(serde_json::Value::Null, serde_json::Value::Number)),
        ".{0,20}".prop_map(serde_json::Value::from),
        prop::sample::select(
            &[
                "hostname",
                "address",
                "platform",
                "cisco_ios",
                "192.0.2.1",
                "tofu",
                "off",
                "strict"
            ][..]
        )
        .prop_map(serde_json::Value::from),
    ];
    let key = prop::sample::select(
        &[
            "hostname",
            "address",
            "platform",
            "port",
            "tags",
            "description",
            "serial",
            "model",
            "credential_id",
            "host_key_policy",
            "legacy_ssh",
            "enabled",
            "username",
            "password",
            "enable_secret",
            "results",
            "next",
            "name",
            "primary_ip",
            "primary_ip4",
            "x",
        ][..],
    );
    let value = leaf.prop_recursive(4, 64, 8, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(serde_json::Value::Array),
            prop::collection::btree_map(key.clone().prop_map(String::from), inner, 0..8)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    });
    let mut runner = runner();
    runner
        .run(&value, |v| all_readers(v.to_string().as_bytes()))
        .unwrap();
}

/// Secrets in their own columns never appear in a row's error or in a row's `Debug`, whatever
/// is wrong with the other columns.
#[test]
fn row_errors_never_show_the_rows_secrets() {
    let field = prop_oneof![
        Just(String::new()),
        "[ -~&&[^,\"\n\r]]{0,10}",
        prop::sample::select(
            &[
                "0",
                "70000",
                "x",
                "true",
                "maybe",
                "22",
                "cisco_ios",
                "a;b|c"
            ][..]
        )
        .prop_map(String::from),
    ];
    let row = (prop::collection::vec(field, 10), any::<u32>(), any::<u32>());
    let mut runner = runner();
    runner
        .run(&prop::collection::vec(row, 1..8), |rows| {
            let mut csv = inventory::COLUMNS.join(",");
            let mut json = Vec::new();
            let mut secrets = Vec::new();
            for (fields, a, b) in &rows {
                let pw = format!("PWCANARY{a:08x}");
                let en = format!("ENCANARY{b:08x}");
                csv.push('\n');
                csv.push_str(&fields.join(","));
                csv.push_str(&format!(",user,{pw},{en}"));
                let mut o = serde_json::Map::new();
                for (k, v) in inventory::COLUMNS.iter().zip(fields) {
                    let v = match *k {
                        "port" => v
                            .parse::<i64>()
                            .map_or(serde_json::json!(v), serde_json::Value::from),
                        "enabled" | "legacy_ssh" => serde_json::json!(v == "true"),
                        "tags" => serde_json::json!(v.split(';').collect::<Vec<_>>()),
                        _ => serde_json::json!(v),
                    };
                    o.insert(k.to_string(), v);
                }
                o.insert("username".into(), "user".into());
                o.insert("password".into(), pw.clone().into());
                o.insert("enable_secret".into(), en.clone().into());
                json.push(serde_json::Value::Object(o));
                secrets.push(pw);
                secrets.push(en);
            }
            let json = serde_json::Value::Array(json).to_string();
            let mut shown = Vec::new();
            for parsed in [
                inventory::parse_csv(csv.as_bytes(), opts(true)),
                inventory::parse_json(json.as_bytes(), opts(true)),
                inventory::parse_json(json.as_bytes(), opts(false)),
            ] {
                match parsed {
                    Ok(rows) => {
                        for r in rows {
                            shown.push(format!("{r:?}"));
                            if let Err(e) = r {
                                shown.push(e.detail);
                            }
                        }
                    }
                    Err(e) => shown.push(format!("{e} {e:?}")),
                }
            }
            match import::parse_csv(csv.as_bytes()) {
                Ok(rows) => shown.extend(rows.iter().map(|r| match r {
                    Ok(r) => format!(
                        "{:?}",
                        r.login.as_ref().map(|l| (&l.password, &l.enable_secret))
                    ),
                    Err(e) => e.clone(),
                })),
                Err(e) => shown.push(e.to_string()),
            }
            for s in &secrets {
                for text in &shown {
                    prop_assert!(
                        !text.contains(s.as_str()),
                        "a secret in {}",
                        text.replace(s.as_str(), "<SECRET>")
                    );
                }
            }
            Ok(())
        })
        .unwrap();
}

/// Inputs over the row limit are refused as a whole, not read row by row into memory.
#[test]
fn row_limits_hold() {
    let mut csv = String::from("hostname,address,platform\n");
    for i in 0..51 {
        csv.push_str(&format!("r{i},192.0.2.1,cisco_ios\n"));
    }
    let e = inventory::parse_csv(csv.as_bytes(), opts(false)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    let json = serde_json::to_string(&vec![
        serde_json::json!({"hostname": "r", "address": "a", "platform": "p"});
        51
    ])
    .unwrap();
    let e = inventory::parse_json(json.as_bytes(), opts(false)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
}

#[test]
fn corpus_replays() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz_corpus/inventory");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("corpus directory")
        .map(|e| e.expect("entry").path())
        .collect();
    files.sort();
    assert!(files.len() >= 8, "corpus too small: {files:?}");
    for f in &files {
        let bytes = std::fs::read(f).expect("read corpus file");
        for cut in (0..=bytes.len())
            .step_by(bytes.len() / 32 + 1)
            .chain([bytes.len()])
        {
            all_readers(&bytes[..cut])
                .unwrap_or_else(|e| panic!("{} cut at {cut}: {e}", f.display()));
        }
    }
}
