//! Ansible inventories, INI or YAML (a file ending in `.yml`/`.yaml` is read as YAML).
//!
//! Variables read: `ansible_host` (address, else the host's name), `ansible_port`,
//! `ansible_network_os` (platform, collection names like `cisco.ios.ios` included),
//! `ansible_user` with `ansible_password` / `ansible_ssh_pass` (a login) and
//! `ansible_become_password` (enable secret). A variable comes from the host, else from its own
//! groups (in file order), else from their parent groups (nearest first), else from `all`. The
//! device's tags are its groups and their parents (`all` and `ungrouped` left out). Host ranges
//! (`r[01:10]`) are not expanded: such a line is left out with a warning.

use super::platforms::PlatformMap;
use super::{InventorySource, SourceDevice, push_tags, read_text};
use crate::error::{Error, Result};
use crate::import::Login;
use crate::model::DeviceSpec;
use crate::secret::Secret;
use async_trait::async_trait;
use serde_yaml::{Mapping, Value};
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

type Vars = BTreeMap<String, String>;

/// Hosts, groups and variables, however the file spelled them.
#[derive(Debug, Default)]
struct Inventory {
    /// Hosts in file order with their own variables.
    hosts: Vec<(String, Vars)>,
    /// Host → groups that list it directly.
    member_of: HashMap<String, Vec<String>>,
    /// Group → its variables.
    group_vars: HashMap<String, Vars>,
    /// Group → groups it is a child of.
    parents: HashMap<String, Vec<String>>,
}

impl Inventory {
    fn host(&mut self, name: &str, vars: Vars, group: &str) {
        match self.hosts.iter_mut().find(|(n, _)| n == name) {
            Some((_, v)) => v.extend(vars),
            None => self.hosts.push((name.to_string(), vars)),
        }
        let groups = self.member_of.entry(name.to_string()).or_default();
        if !groups.iter().any(|g| g == group) {
            groups.push(group.to_string());
        }
    }

    fn child(&mut self, parent: &str, child: &str) {
        let p = self.parents.entry(child.to_string()).or_default();
        if !p.iter().any(|g| g == parent) {
            p.push(parent.to_string());
        }
    }

    /// A host's groups, nearest first (breadth first over parents), each once, ending in `all`.
    fn groups_of(&self, host: &str) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        let mut queue: std::collections::VecDeque<String> =
            self.member_of.get(host).cloned().unwrap_or_default().into();
        while let Some(g) = queue.pop_front() {
            if out.contains(&g) || g == "all" {
                continue;
            }
            if let Some(p) = self.parents.get(&g) {
                queue.extend(p.iter().cloned());
            }
            out.push(g);
        }
        out.push("all".into());
        out
    }

    fn devices(&self, map: &PlatformMap) -> Vec<SourceDevice> {
        let mut out = Vec::new();
        for (name, own) in &self.hosts {
            let groups = self.groups_of(name);
            let var = |key: &str| {
                own.get(key).or_else(|| {
                    groups
                        .iter()
                        .find_map(|g| self.group_vars.get(g).and_then(|v| v.get(key)))
                })
            };
            let mut spec = DeviceSpec::new(
                name.clone(),
                var("ansible_host").cloned().unwrap_or_else(|| name.clone()),
                var("ansible_network_os")
                    .map(|p| map.resolve(p))
                    .unwrap_or_default(),
            );
            if let Some(p) = var("ansible_port") {
                match p.parse() {
                    Ok(p) => spec.port = p,
                    Err(_) => {
                        tracing::warn!(host = %name, port = %p, "bad ansible_port; host left out");
                        continue;
                    }
                }
            }
            push_tags(
                &mut spec.tags,
                groups
                    .iter()
                    .filter(|g| *g != "all" && *g != "ungrouped")
                    .cloned(),
            );
            let password = var("ansible_password").or_else(|| var("ansible_ssh_pass"));
            let login = match (var("ansible_user"), password) {
                (Some(u), Some(p)) => Some(Login {
                    username: u.clone(),
                    password: Secret::new(p.clone()),
                    enable_secret: var("ansible_become_password").map(|s| Secret::new(s.clone())),
                }),
                _ => None,
            };
            out.push(SourceDevice { spec, login });
        }
        out
    }
}

/// Splits `a=1 b="two words"` into pairs (quotes removed).
fn key_values(text: &str) -> Vars {
    let mut out = Vars::new();
    let mut rest = text.trim();
    while !rest.is_empty() {
        let Some((key, after)) = rest.split_once('=') else {
            break;
        };
        let after = after.trim_start();
        let (value, next) = match after.chars().next() {
            Some(q @ ('"' | '\'')) => {
                let body = &after[1..];
                match body.find(q) {
                    Some(end) => (&body[..end], &body[end + 1..]),
                    None => (body, ""),
                }
            }
            _ => match after.find(char::is_whitespace) {
                Some(end) => (&after[..end], &after[end..]),
                None => (after, ""),
            },
        };
        out.insert(key.trim().to_string(), value.to_string());
        rest = next.trim_start();
    }
    out
}

fn parse_ini(text: &str) -> Inventory {
    let mut inv = Inventory::default();
    let mut section = ("ungrouped".to_string(), "hosts");
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = match name.split_once(':') {
                Some((g, "vars")) => (g.to_string(), "vars"),
                Some((g, "children")) => (g.to_string(), "children"),
                _ => (name.to_string(), "hosts"),
            };
            continue;
        }
        let (group, kind) = (&section.0, section.1);
        match kind {
            "vars" => {
                inv.group_vars
                    .entry(group.clone())
                    .or_default()
                    .extend(key_values(line));
            }
            "children" => inv.child(group, line),
            _ => {
                let (name, vars) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
                if name.contains('[') {
                    tracing::warn!(line = i + 1, "host ranges are not expanded; line left out");
                    continue;
                }
                inv.host(name, key_values(vars), group);
            }
        }
    }
    inv
}

fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn vars_of(v: Option<&Value>) -> Vars {
    v.and_then(Value::as_mapping)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.as_str()?.to_string(), scalar(v)?)))
                .collect()
        })
        .unwrap_or_default()
}

fn walk_yaml(inv: &mut Inventory, group: &str, node: &Mapping, depth: usize) -> Result<()> {
    if depth > 32 {
        return Err(Error::invalid("groups nested deeper than 32 levels"));
    }
    inv.group_vars
        .entry(group.to_string())
        .or_default()
        .extend(vars_of(node.get("vars")));
    if let Some(hosts) = node.get("hosts").and_then(Value::as_mapping) {
        for (name, vars) in hosts {
            if let Some(name) = scalar(name) {
                inv.host(&name, vars_of(Some(vars)), group);
            }
        }
    }
    if let Some(children) = node.get("children").and_then(Value::as_mapping) {
        for (name, child) in children {
            let Some(name) = scalar(name) else { continue };
            inv.child(group, &name);
            let empty = Mapping::new();
            walk_yaml(inv, &name, child.as_mapping().unwrap_or(&empty), depth + 1)?;
        }
    }
    Ok(())
}

fn parse_yaml(text: &str) -> Result<Inventory> {
    let top: Mapping = serde_yaml::from_str(text)
        .map_err(|e| Error::invalid(format!("not a YAML inventory: {e}")))?;
    let mut inv = Inventory::default();
    for (name, node) in &top {
        let Some(name) = scalar(name) else { continue };
        let empty = Mapping::new();
        walk_yaml(&mut inv, &name, node.as_mapping().unwrap_or(&empty), 0)?;
    }
    Ok(inv)
}

/// Parses an inventory's text; `yaml` picks the dialect.
///
/// ```
/// use netraven_core::sources::{ansible, platforms::PlatformMap};
/// let ini = "[edge]\nr1 ansible_host=192.0.2.1\n[edge:vars]\nansible_network_os=cisco.ios.ios\n";
/// let d = ansible::parse(ini, false, &PlatformMap::default()).unwrap();
/// assert_eq!((d[0].spec.address.as_str(), d[0].spec.platform.as_str()), ("192.0.2.1", "cisco_ios"));
/// ```
pub fn parse(text: &str, yaml: bool, map: &PlatformMap) -> Result<Vec<SourceDevice>> {
    let inv = if yaml {
        parse_yaml(text)?
    } else {
        parse_ini(text)
    };
    Ok(inv.devices(map))
}

/// An Ansible inventory file.
#[derive(Debug, Clone)]
pub struct AnsibleSource {
    path: PathBuf,
    map: PlatformMap,
}

impl AnsibleSource {
    /// The inventory at `path`, platforms mapped with `map`.
    pub fn new(path: PathBuf, map: PlatformMap) -> Self {
        AnsibleSource { path, map }
    }
}

#[async_trait]
impl InventorySource for AnsibleSource {
    fn kind(&self) -> &'static str {
        "ansible"
    }

    async fn devices(&self) -> Result<Vec<SourceDevice>> {
        let text = read_text(&self.path).await?;
        let yaml = matches!(
            self.path.extension().and_then(|e| e.to_str()),
            Some("yml" | "yaml")
        );
        parse(&text, yaml, &self.map)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INI: &str = "top ansible_host=192.0.2.9 ansible_network_os=eos\n\
        [core]\n\
        r1 ansible_host=192.0.2.1 ansible_port=2201 ansible_user=ops ansible_password=\"p w\"\n\
        r2 ansible_host=192.0.2.2 ansible_network_os=junipernetworks.junos.junos\n\
        sw[01:10]\n\
        [core:vars]\n\
        ansible_network_os=cisco.ios.ios\n\
        [dc:children]\n\
        core\n\
        [dc:vars]\n\
        ansible_port=2299\n\
        [all:vars]\n\
        ansible_network_os=vyos\n";

    const YAML: &str = "all:\n  vars:\n    ansible_network_os: vyos\n  hosts:\n    top:\n      ansible_host: 192.0.2.9\n      ansible_network_os: eos\n  children:\n    dc:\n      vars:\n        ansible_port: 2299\n      children:\n        core:\n          vars:\n            ansible_network_os: cisco.ios.ios\n          hosts:\n            r1:\n              ansible_host: 192.0.2.1\n              ansible_port: 2201\n              ansible_user: ops\n              ansible_password: p w\n            r2:\n              ansible_host: 192.0.2.2\n              ansible_network_os: junipernetworks.junos.junos\n";

    #[test]
    fn ini_and_yaml_say_the_same() {
        let m = PlatformMap::default();
        for (yaml, text) in [(false, INI), (true, YAML)] {
            let d = parse(text, yaml, &m).unwrap();
            let by = |h: &str| d.iter().find(|x| x.spec.hostname == h).unwrap();
            assert_eq!(d.len(), 3, "yaml={yaml}: {d:?}");
            let r1 = by("r1");
            assert_eq!(
                (r1.spec.port, r1.spec.platform.as_str()),
                (2201, "cisco_ios")
            );
            assert_eq!(r1.spec.tags, vec!["core", "dc"]);
            assert_eq!(r1.login.as_ref().unwrap().password.expose(), "p w");
            let r2 = by("r2");
            assert_eq!(
                (r2.spec.port, r2.spec.platform.as_str()),
                (2299, "juniper_junos")
            );
            let top = by("top");
            assert_eq!(
                (top.spec.address.as_str(), top.spec.platform.as_str()),
                ("192.0.2.9", "arista_eos")
            );
            assert!(top.spec.tags.is_empty(), "{:?}", top.spec.tags);
        }
    }
}
