//! Nornir's `SimpleInventory`: `hosts.yaml`, `groups.yaml` and `defaults.yaml` in one
//! directory (the last two optional).
//!
//! Each attribute (`hostname`, `port`, `platform`, `username`, `password`) is taken from the
//! host, else from its groups in order (a group before the groups it belongs to, depth first),
//! else from the defaults — Nornir's own inheritance. The device's address is `hostname` (the
//! host's name when missing), its tags are its groups (transitively) plus a `tags` list in
//! `data`; `data.description` becomes the description. A login is taken when both `username`
//! and `password` resolve, with the enable secret from `connection_options.netmiko.extras.secret`
//! (inherited the same way).

use super::platforms::PlatformMap;
use super::{InventorySource, SourceDevice, push_tags, read_optional, read_text};
use crate::error::{Error, Result};
use crate::import::Login;
use crate::model::DeviceSpec;
use crate::secret::Secret;
use async_trait::async_trait;
use serde::Deserialize;
use serde_yaml::{Mapping, Value};
use std::collections::HashMap;
use std::path::PathBuf;

/// The fields hosts, groups and defaults share (unknown keys such as `connection_options` are
/// ignored).
#[derive(Debug, Default, Deserialize)]
struct Entry {
    hostname: Option<String>,
    port: Option<u16>,
    username: Option<String>,
    password: Option<String>,
    platform: Option<String>,
    #[serde(default)]
    groups: Vec<String>,
    #[serde(default)]
    data: Mapping,
    #[serde(default)]
    connection_options: Mapping,
}

impl Entry {
    /// `connection_options.netmiko.extras.secret`: where Nornir keeps the enable secret.
    fn enable_secret(&self) -> Option<String> {
        self.connection_options
            .get("netmiko")?
            .get("extras")?
            .get("secret")?
            .as_str()
            .map(str::to_string)
    }
}

/// Parses one of the three files into (name, entry) pairs in file order.
fn entries(text: &str, file: &str) -> Result<Vec<(String, Entry)>> {
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }
    let map: Mapping = serde_yaml::from_str(text)
        .map_err(|e| Error::invalid(format!("{file}: not a YAML mapping: {e}")))?;
    let mut out = Vec::new();
    for (k, v) in map {
        let name = match k {
            Value::String(s) => s,
            Value::Number(n) => n.to_string(),
            other => return Err(Error::invalid(format!("{file}: bad name {other:?}"))),
        };
        let entry = match v {
            Value::Null => Entry::default(),
            v => serde_yaml::from_value(v)
                .map_err(|e| Error::invalid(format!("{file}: {name}: {e}")))?,
        };
        out.push((name, entry));
    }
    Ok(out)
}

/// The groups of `start` and everything they inherit, depth first, each once.
fn lineage<'a>(start: &'a [String], groups: &'a HashMap<String, Entry>) -> Vec<&'a str> {
    let mut out: Vec<&str> = Vec::new();
    let mut stack: Vec<&str> = start.iter().rev().map(String::as_str).collect();
    while let Some(g) = stack.pop() {
        if out.contains(&g) {
            continue; // a cycle or a diamond: each group counts once
        }
        out.push(g);
        if let Some(e) = groups.get(g) {
            stack.extend(e.groups.iter().rev().map(String::as_str));
        }
    }
    out
}

/// Parses the three files' texts (empty text for a missing file).
///
/// ```
/// use netraven_core::sources::{nornir, platforms::PlatformMap};
/// let hosts = "r1:\n  hostname: 192.0.2.1\n  groups: [edge]\n";
/// let groups = "edge:\n  platform: ios\n  groups: [site1]\nsite1:\n  port: 2222\n";
/// let devs = nornir::parse(hosts, groups, "username: ops\n", &PlatformMap::default()).unwrap();
/// assert_eq!(devs[0].spec.platform, "cisco_ios");
/// assert_eq!(devs[0].spec.port, 2222);
/// assert_eq!(devs[0].spec.tags, vec!["edge", "site1"]);
/// ```
pub fn parse(
    hosts: &str,
    groups: &str,
    defaults: &str,
    map: &PlatformMap,
) -> Result<Vec<SourceDevice>> {
    let hosts = entries(hosts, "hosts.yaml")?;
    let groups: HashMap<String, Entry> = entries(groups, "groups.yaml")?.into_iter().collect();
    let defaults: Entry = if defaults.trim().is_empty() {
        Entry::default()
    } else {
        serde_yaml::from_str(defaults).map_err(|e| Error::invalid(format!("defaults.yaml: {e}")))?
    };
    let mut out = Vec::with_capacity(hosts.len());
    for (name, host) in &hosts {
        let line = lineage(&host.groups, &groups);
        let chain: Vec<&Entry> = std::iter::once(host)
            .chain(line.iter().filter_map(|g| groups.get(*g)))
            .chain(std::iter::once(&defaults))
            .collect();
        let pick = |f: fn(&Entry) -> Option<&String>| chain.iter().find_map(|e| f(e)).cloned();
        let mut spec = DeviceSpec::new(
            name.clone(),
            pick(|e| e.hostname.as_ref()).unwrap_or_else(|| name.clone()),
            pick(|e| e.platform.as_ref())
                .map(|p| map.resolve(&p))
                .unwrap_or_default(),
        );
        spec.port = chain.iter().find_map(|e| e.port).unwrap_or(22);
        push_tags(&mut spec.tags, line.iter().map(|g| g.to_string()));
        let data = |key: &str| chain.iter().find_map(|e| e.data.get(key));
        if let Some(Value::Sequence(tags)) = data("tags") {
            push_tags(
                &mut spec.tags,
                tags.iter().filter_map(|t| t.as_str().map(str::to_string)),
            );
        }
        spec.description = data("description").and_then(|d| d.as_str().map(str::to_string));
        let login = match (pick(|e| e.username.as_ref()), pick(|e| e.password.as_ref())) {
            (Some(username), Some(password)) => Some(Login {
                username,
                password: Secret::new(password),
                enable_secret: chain
                    .iter()
                    .find_map(|e| e.enable_secret())
                    .map(Secret::new),
            }),
            _ => None,
        };
        out.push(SourceDevice { spec, login });
    }
    Ok(out)
}

/// A Nornir `SimpleInventory` directory.
#[derive(Debug, Clone)]
pub struct NornirSource {
    dir: PathBuf,
    map: PlatformMap,
}

impl NornirSource {
    /// The inventory in `dir` (`hosts.yaml` required), platforms mapped with `map`.
    pub fn new(dir: PathBuf, map: PlatformMap) -> Self {
        NornirSource { dir, map }
    }
}

#[async_trait]
impl InventorySource for NornirSource {
    fn kind(&self) -> &'static str {
        "nornir"
    }

    async fn devices(&self) -> Result<Vec<SourceDevice>> {
        let hosts = read_text(&self.dir.join("hosts.yaml")).await?;
        let groups = read_optional(&self.dir.join("groups.yaml")).await?;
        let defaults = read_optional(&self.dir.join("defaults.yaml")).await?;
        parse(&hosts, &groups, &defaults, &self.map)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_then_groups_depth_first_then_defaults() {
        let hosts = "r1:\n  hostname: 10.0.0.1\n  groups: [a, b]\n  data:\n    tags: [core]\n\
                     r2:\n  groups: [b]\n  platform: eos\n  password: own\n\
                     r3:\n";
        let groups = "a:\n  port: 2001\n  groups: [parent]\n\
                      b:\n  port: 2002\n  platform: junos\n\
                      parent:\n  platform: iosxr\n  groups: [a]\n  data:\n    description: from parent\n";
        let defaults = "platform: ios\nusername: ops\npassword: dflt\nconnection_options:\n  netmiko:\n    extras:\n      secret: en-dflt\n";
        let devs = parse(hosts, groups, defaults, &PlatformMap::default()).unwrap();
        let r1 = &devs[0].spec;
        assert_eq!(r1.address, "10.0.0.1");
        assert_eq!(r1.port, 2001, "a comes before b");
        assert_eq!(r1.platform, "cisco_xr", "a's parent before b");
        assert_eq!(r1.tags, vec!["a", "parent", "b", "core"]);
        assert_eq!(r1.description.as_deref(), Some("from parent"));
        let r2 = &devs[1];
        assert_eq!(
            (r2.spec.port, r2.spec.platform.as_str()),
            (2002, "arista_eos")
        );
        assert_eq!(r2.spec.address, "r2");
        let login = r2.login.as_ref().unwrap();
        assert_eq!(
            (login.username.as_str(), login.password.expose()),
            ("ops", "own")
        );
        assert_eq!(devs[2].spec.platform, "cisco_ios");
        assert_eq!(devs[2].spec.port, 22);
    }

    #[test]
    fn broken_files_fail_with_the_file_name() {
        let e = parse("- a\n- b\n", "", "", &PlatformMap::default()).unwrap_err();
        assert!(e.message().contains("hosts.yaml"), "{e}");
        let e = parse("r1:\n  port: many\n", "", "", &PlatformMap::default()).unwrap_err();
        assert!(e.message().contains("r1"), "{e}");
    }
}
