//! Each file-based inventory source imports its sample into a fresh store with the right
//! devices, platforms and tags; a re-import reports no change; a dry run writes nothing.

use netraven_core::memory::MemoryStore;
use netraven_core::prelude::*;
use netraven_core::sources::platforms::PlatformMap;
use netraven_core::sources::sync::{SyncOptions, sync};
use netraven_core::sources::{InventorySource, file_source};
use std::path::PathBuf;

fn fixture(p: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/sources")
        .join(p)
}

async fn devices(store: &MemoryStore) -> Vec<Device> {
    store
        .list_devices(&DeviceFilter::default(), Page::first(100))
        .await
        .unwrap()
        .items
}

/// (hostname, address, port, platform, tags, enabled) of every device, by hostname.
type Row = (String, String, u16, String, Vec<String>, bool);

async fn rows(store: &MemoryStore) -> Vec<Row> {
    devices(store)
        .await
        .into_iter()
        .map(|d| {
            (
                d.hostname.clone(),
                d.address.clone(),
                d.port,
                d.platform.clone(),
                d.tags.clone(),
                d.enabled,
            )
        })
        .collect()
}

fn row(h: &str, a: &str, port: u16, p: &str, tags: &[&str], enabled: bool) -> Row {
    (
        h.into(),
        a.into(),
        port,
        p.into(),
        tags.iter().map(|t| t.to_string()).collect(),
        enabled,
    )
}

/// Dry run, import, re-import; returns the store.
async fn round_trip(src: &dyn InventorySource, expect_added: usize) -> MemoryStore {
    let store = MemoryStore::new();
    let opts = SyncOptions::default();
    let dry = sync(&store, src, &opts, true).await.unwrap();
    assert_eq!(dry.added.len(), expect_added, "{dry:?}");
    assert!(dry.errors.is_empty(), "{dry:?}");
    assert!(
        devices(&store).await.is_empty(),
        "the dry run wrote nothing"
    );
    let first = sync(&store, src, &opts, false).await.unwrap();
    assert_eq!(
        first.added, dry.added,
        "the dry run said what the import did"
    );
    let again = sync(&store, src, &opts, false).await.unwrap();
    assert_eq!(again.changes(), 0, "re-import: {again:?}");
    assert_eq!(again.unchanged, expect_added);
    store
}

#[tokio::test]
async fn nornir_sample() {
    let src = file_source("nornir", fixture("nornir"), PlatformMap::default()).unwrap();
    let store = round_trip(src.as_ref(), 3).await;
    assert_eq!(
        rows(&store).await,
        vec![
            row(
                "core-fra-1",
                "192.0.2.21",
                22,
                "juniper_junos",
                &["core", "network"],
                true
            ),
            row(
                "edge-ams-1",
                "192.0.2.11",
                22,
                "cisco_ios",
                &["edge", "network", "ams", "internet"],
                true
            ),
            row(
                "edge-ams-2",
                "192.0.2.12",
                2222,
                "cisco_ios",
                &["edge", "network", "ams"],
                true
            ),
        ]
    );
    let all = devices(&store).await;
    assert_eq!(all[1].description.as_deref(), Some("managed by nornir"));
    // core-fra-1 carries a password: it got a credential pinned to it; the others did not.
    let creds = store.all_credentials().await.unwrap();
    assert_eq!(creds.len(), 1);
    assert_eq!(creds[0].username, "automation");
    assert_eq!(all[0].credential_id, Some(creds[0].id));
    assert!(all[1].credential_id.is_none());
}

#[tokio::test]
async fn oxidized_router_db_sample() {
    let src = netraven_core::sources::routerdb::RouterDbSource::new(
        fixture("router.db"),
        netraven_core::sources::routerdb::RouterDbFormat::oxidized(
            ":",
            "name=0,ip=1,model=2,group=3",
        )
        .unwrap(),
        PlatformMap::default(),
    );
    let store = round_trip(&src, 3).await;
    assert_eq!(
        rows(&store).await,
        vec![
            row(
                "fw-fra-1",
                "192.0.2.41",
                22,
                "fortinet",
                &["security"],
                true
            ),
            row(
                "sw-ams-1",
                "192.0.2.31",
                22,
                "hp_procurve",
                &["access"],
                true
            ),
            row(
                "sw-ams-2",
                "192.0.2.32",
                22,
                "aruba_aoscx",
                &["access"],
                true
            ),
        ]
    );
}

#[tokio::test]
async fn rancid_router_db_sample() {
    let src = file_source(
        "rancid",
        fixture("rancid/core/router.db"),
        PlatformMap::default(),
    )
    .unwrap();
    let store = round_trip(src.as_ref(), 3).await;
    assert_eq!(
        rows(&store).await,
        vec![
            row(
                "rtr-1.example.net",
                "rtr-1.example.net",
                22,
                "cisco_ios",
                &["core"],
                true
            ),
            row(
                "rtr-2.example.net",
                "rtr-2.example.net",
                22,
                "juniper_junos",
                &["core"],
                true
            ),
            row(
                "rtr-old.example.net",
                "rtr-old.example.net",
                22,
                "cisco_ios",
                &["core"],
                false
            ),
        ]
    );
}

#[tokio::test]
async fn ansible_ini_and_yaml_samples() {
    for file in ["ansible.ini", "ansible.yaml"] {
        let src = file_source("ansible", fixture(file), PlatformMap::default()).unwrap();
        let store = round_trip(src.as_ref(), 3).await;
        assert_eq!(
            rows(&store).await,
            vec![
                row(
                    "r-ams",
                    "192.0.2.51",
                    22,
                    "cisco_ios",
                    &["routers", "network"],
                    true
                ),
                row(
                    "r-fra",
                    "192.0.2.52",
                    2022,
                    "cisco_xr",
                    &["routers", "network"],
                    true
                ),
                row(
                    "s-ams",
                    "192.0.2.61",
                    22,
                    "arista_eos",
                    &["switches", "network"],
                    true
                ),
            ],
            "{file}"
        );
    }
}

#[tokio::test]
async fn a_changed_source_updates_and_an_owned_device_that_left_is_disabled() {
    let dir = tempfile_dir();
    let db = dir.join("router.db");
    std::fs::write(&db, "a:ios\nb:ios\n").unwrap();
    let src = file_source("oxidized", db.clone(), PlatformMap::default()).unwrap();
    let store = MemoryStore::new();
    let opts = SyncOptions {
        owner_tag: Some("oxidized".into()),
    };
    sync(&store, src.as_ref(), &opts, false).await.unwrap();
    std::fs::write(&db, "a:eos\n").unwrap();
    let r = sync(&store, src.as_ref(), &opts, false).await.unwrap();
    assert_eq!(r.updated[0].fields, vec!["platform"]);
    assert_eq!(r.disabled, vec!["b"]);
    let all = rows(&store).await;
    assert_eq!(all[0].3, "arista_eos");
    assert!(!all[1].5, "b disabled, still there with its history");
    std::fs::remove_dir_all(dir).ok();
}

fn tempfile_dir() -> PathBuf {
    let d = std::env::temp_dir().join(format!("netraven-sources-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&d).unwrap();
    d
}
