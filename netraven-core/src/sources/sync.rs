//! Keeping a store in step with an [`InventorySource`]: new devices are added, changed ones
//! updated, and — when the source owns its devices through a tag — devices it no longer lists
//! are disabled. Nothing is ever deleted, so every device keeps its history. A dry run computes
//! the same report and writes nothing.
//!
//! What an update touches: address, port, platform, description, serial, model (those the
//! source gives) and `enabled`; tags from the source are added, tags given in NetRaven are kept.
//! A login from the source becomes a credential pinned to the device when the device is added.

use super::{InventorySource, SourceDevice};
use crate::error::{ErrorKind, Result};
use crate::import::Credentials;
use crate::model::{Device, DeviceFilter, DeviceSpec, Page};
use crate::store::Store;
use serde::Serialize;
use std::collections::{BTreeMap, HashSet};

/// How a sync treats the store.
#[derive(Debug, Clone, Default)]
pub struct SyncOptions {
    /// A tag every device of this source gets (e.g. `netbox`). Devices carrying it that the
    /// source no longer lists are disabled (never deleted). Without it nothing is disabled.
    pub owner_tag: Option<String>,
}

/// One updated device: its name and the fields that changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    /// Hostname.
    pub hostname: String,
    /// Changed field names (`address`, `port`, `platform`, `tags`, ...).
    pub fields: Vec<String>,
}

/// A source entry that could not be used.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// Hostname as the source gave it.
    pub hostname: String,
    /// Why it was left out.
    pub detail: String,
}

/// What a sync did (or, in a dry run, would do).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SyncReport {
    /// The source kind.
    pub source: String,
    /// True when nothing was written.
    pub dry_run: bool,
    /// Devices added (hostnames, in source order).
    pub added: Vec<String>,
    /// Devices updated, with the fields that changed.
    pub updated: Vec<Change>,
    /// Devices disabled because the source that owns them no longer lists them.
    pub disabled: Vec<String>,
    /// Devices already in step.
    pub unchanged: usize,
    /// Entries left out, with the reason.
    pub errors: Vec<Problem>,
    /// Credentials created from the source's logins.
    pub credentials_created: usize,
}

impl SyncReport {
    /// Number of devices added, updated or disabled.
    pub fn changes(&self) -> usize {
        self.added.len() + self.updated.len() + self.disabled.len()
    }

    /// The summary line, then one line per change (`+` added, `~` updated, `-` disabled) and
    /// per error (`!`).
    pub fn render(&self) -> String {
        let mut out = format!("{}\n", self.summary());
        for h in &self.added {
            out.push_str(&format!("  + {h}\n"));
        }
        for c in &self.updated {
            out.push_str(&format!("  ~ {} ({})\n", c.hostname, c.fields.join(", ")));
        }
        for h in &self.disabled {
            out.push_str(&format!("  - {h} (disabled)\n"));
        }
        for p in &self.errors {
            out.push_str(&format!("  ! {}: {}\n", p.hostname, p.detail));
        }
        out
    }

    /// One line for people, e.g. `nornir: 5 added, 0 updated, 0 disabled, 0 unchanged, 0 errors`.
    pub fn summary(&self) -> String {
        format!(
            "{}{}: {} added, {} updated, {} disabled, {} unchanged, {} errors",
            self.source,
            if self.dry_run { " (dry run)" } else { "" },
            self.added.len(),
            self.updated.len(),
            self.disabled.len(),
            self.unchanged,
            self.errors.len()
        )
    }
}

/// Reads `source` and brings `store` in step with it (see the module docs); `dry_run` writes
/// nothing.
pub async fn sync(
    store: &dyn Store,
    source: &dyn InventorySource,
    opts: &SyncOptions,
    dry_run: bool,
) -> Result<SyncReport> {
    let devices = source.devices().await?;
    sync_devices(store, source.kind(), devices, opts, dry_run).await
}

/// Every device of the store, by hostname.
async fn all_devices(store: &dyn Store) -> Result<BTreeMap<String, Device>> {
    let mut out = BTreeMap::new();
    let mut page = 1;
    loop {
        let p = store
            .list_devices(&DeviceFilter::default(), Page::new(page, 1000))
            .await?;
        let pages = p.pages;
        out.extend(p.items.into_iter().map(|d| (d.hostname.clone(), d)));
        if page >= pages {
            return Ok(out);
        }
        page += 1;
    }
}

/// The fields of `current` that differ from `wanted` (by the rules of the module docs), and the
/// spec to write.
fn diff(current: &DeviceSpec, wanted: &DeviceSpec) -> (Vec<String>, DeviceSpec) {
    let mut next = current.clone();
    let mut fields = Vec::new();
    let mut set = |name: &str, differs: bool| {
        if differs {
            fields.push(name.to_string());
        }
    };
    set("address", current.address != wanted.address);
    set("port", current.port != wanted.port);
    set("platform", current.platform != wanted.platform);
    set("enabled", current.enabled != wanted.enabled);
    next.address.clone_from(&wanted.address);
    next.port = wanted.port;
    next.platform.clone_from(&wanted.platform);
    next.enabled = wanted.enabled;
    for (name, cur, want) in [
        ("description", &mut next.description, &wanted.description),
        ("serial", &mut next.serial, &wanted.serial),
        ("model", &mut next.model, &wanted.model),
    ] {
        if want.is_some() && cur != want {
            fields.push(name.to_string());
            cur.clone_from(want);
        }
    }
    let missing: Vec<String> = wanted
        .tags
        .iter()
        .filter(|t| !current.tags.contains(t))
        .cloned()
        .collect();
    if !missing.is_empty() {
        fields.push("tags".into());
        next.tags.extend(missing);
    }
    (fields, next)
}

/// [`sync`] over devices already read.
pub async fn sync_devices(
    store: &dyn Store,
    kind: &str,
    devices: Vec<SourceDevice>,
    opts: &SyncOptions,
    dry_run: bool,
) -> Result<SyncReport> {
    let mut report = SyncReport {
        source: kind.to_string(),
        dry_run,
        ..SyncReport::default()
    };
    let existing = all_devices(store).await?;
    let mut seen = HashSet::new();
    let mut creds = Credentials::default();
    let now = chrono::Utc::now();
    for SourceDevice { mut spec, login } in devices {
        let host = spec.hostname.clone();
        if let Some(tag) = &opts.owner_tag
            && !spec.tags.contains(tag)
        {
            spec.tags.push(tag.clone());
        }
        if let Err(e) = spec.validate() {
            report.errors.push(Problem {
                hostname: host,
                detail: e.message().to_string(),
            });
            continue;
        }
        if !seen.insert(host.clone()) {
            report.errors.push(Problem {
                hostname: host,
                detail: "listed twice by the source".into(),
            });
            continue;
        }
        match existing.get(&host) {
            None => {
                if !dry_run {
                    let mut d = Device::from_spec(spec);
                    if let Some(login) = &login {
                        d.credential_id = Some(creds.resolve(store, login, &host).await?);
                    }
                    d.created_at = now;
                    d.updated_at = now;
                    match store.create_device(&d).await {
                        Ok(c) => {
                            if let Some(id) = c.credential_id {
                                creds.used_by_device(id);
                            }
                        }
                        Err(e)
                            if matches!(
                                e.kind(),
                                ErrorKind::Conflict | ErrorKind::InvalidInput
                            ) =>
                        {
                            report.errors.push(Problem {
                                hostname: host,
                                detail: e.message().to_string(),
                            });
                            continue;
                        }
                        Err(e) => return Err(e),
                    }
                }
                report.added.push(host);
            }
            Some(current) => {
                let (fields, next) = diff(&current.spec, &spec);
                if fields.is_empty() {
                    report.unchanged += 1;
                    continue;
                }
                if !dry_run {
                    let mut d = current.clone();
                    d.spec = next;
                    d.updated_at = now;
                    store.update_device(&d).await?;
                }
                report.updated.push(Change {
                    hostname: host,
                    fields,
                });
            }
        }
    }
    if let Some(tag) = &opts.owner_tag {
        for (host, d) in &existing {
            if d.enabled && d.tags.contains(tag) && !seen.contains(host) {
                if !dry_run {
                    let mut d = d.clone();
                    d.enabled = false;
                    d.updated_at = now;
                    store.update_device(&d).await?;
                }
                report.disabled.push(host.clone());
            }
        }
    }
    if !dry_run {
        report.credentials_created = creds.report(store).await?.created;
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::MemoryStore;
    use crate::secret::Secret;
    use crate::store::{CredentialStore, DeviceStore};

    fn dev(host: &str, addr: &str, tags: &[&str]) -> SourceDevice {
        let mut s = DeviceSpec::new(host, addr, "cisco_ios");
        s.tags = tags.iter().map(|t| t.to_string()).collect();
        SourceDevice::new(s)
    }

    async fn hosts(store: &MemoryStore) -> Vec<Device> {
        store
            .list_devices(&DeviceFilter::default(), Page::first(100))
            .await
            .unwrap()
            .items
    }

    #[tokio::test]
    async fn add_update_disable_and_dry_runs_that_write_nothing() {
        let store = MemoryStore::new();
        let opts = SyncOptions {
            owner_tag: Some("nb".into()),
        };
        let mut first = vec![dev("a", "192.0.2.1", &["x"]), dev("b", "192.0.2.2", &[])];
        first[0].login = Some(crate::import::Login {
            username: "ops".into(),
            password: Secret::new("pw-src"),
            enable_secret: None,
        });
        let dry = sync_devices(&store, "t", first.clone(), &opts, true)
            .await
            .unwrap();
        assert_eq!(dry.added, vec!["a", "b"]);
        assert!(hosts(&store).await.is_empty(), "a dry run writes nothing");
        assert!(store.all_credentials().await.unwrap().is_empty());

        let r = sync_devices(&store, "t", first.clone(), &opts, false)
            .await
            .unwrap();
        assert_eq!((r.added.len(), r.credentials_created), (2, 1), "{r:?}");
        let all = hosts(&store).await;
        assert_eq!(all[0].tags, vec!["x", "nb"]);
        assert!(all[0].credential_id.is_some() && all[1].credential_id.is_none());
        let text = serde_json::to_string(&r).unwrap();
        assert!(!text.contains("pw-src"));

        let again = sync_devices(&store, "t", first, &opts, false)
            .await
            .unwrap();
        assert_eq!((again.changes(), again.unchanged), (0, 2), "{again:?}");

        // A local tag survives; a moved address is an update; a vanished device is disabled.
        let mut a = store.get_device(all[0].id).await.unwrap();
        a.tags.push("local".into());
        store.update_device(&a).await.unwrap();
        let second = vec![dev("a", "192.0.2.9", &["x"])];
        let dry = sync_devices(&store, "t", second.clone(), &opts, true)
            .await
            .unwrap();
        let r = sync_devices(&store, "t", second, &opts, false)
            .await
            .unwrap();
        assert_eq!(dry.updated, r.updated);
        assert_eq!(r.updated[0].fields, vec!["address"]);
        assert_eq!(r.disabled, vec!["b"]);
        let all = hosts(&store).await;
        assert_eq!(all[0].address, "192.0.2.9");
        assert!(all[0].tags.contains(&"local".to_string()));
        assert!(!all[1].enabled, "disabled, not deleted");
    }

    #[tokio::test]
    async fn bad_and_repeated_entries_are_reported() {
        let store = MemoryStore::new();
        let r = sync_devices(
            &store,
            "t",
            vec![
                dev("a", "192.0.2.1", &[]),
                dev("a", "192.0.2.2", &[]),
                dev("c/d", "x", &[]),
            ],
            &SyncOptions::default(),
            false,
        )
        .await
        .unwrap();
        assert_eq!(r.added, vec!["a"]);
        assert_eq!(r.errors.len(), 2, "{r:?}");
    }
}
