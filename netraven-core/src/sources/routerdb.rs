//! `router.db` files: Oxidized's CSV source and RANCID's device list.
//!
//! Oxidized reads one device per line, split by a delimiter (a regular expression, `:` by
//! default) with a field map naming the column of each attribute (`name=0,model=1` by default;
//! also `ip`, `group`, `port`, `username`, `password`, `enable`). The group becomes a tag, the
//! model a platform through the [`PlatformMap`], the address is `ip` or else the name.
//!
//! RANCID (≥ 3) writes `name;type;state[;comment]` (older releases used `:`); `state` `up`
//! means enabled, anything else disabled; the comment becomes the description, the RANCID group
//! (the directory holding `router.db`) a tag. Lines starting with `#` and blank lines are skipped
//! by both.

use super::platforms::PlatformMap;
use super::{InventorySource, SourceDevice, push_tags, read_text};
use crate::error::{Error, Result};
use crate::import::Login;
use crate::model::DeviceSpec;
use crate::secret::Secret;
use async_trait::async_trait;
use regex::Regex;
use std::path::PathBuf;

/// The column of each attribute in an Oxidized `router.db` line (0-based).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldMap {
    /// Device name (required).
    pub name: usize,
    /// Oxidized model (required).
    pub model: usize,
    /// Address.
    pub ip: Option<usize>,
    /// Oxidized group (a tag).
    pub group: Option<usize>,
    /// SSH port.
    pub port: Option<usize>,
    /// Login user name.
    pub username: Option<usize>,
    /// Login password.
    pub password: Option<usize>,
    /// Enable secret.
    pub enable: Option<usize>,
}

impl Default for FieldMap {
    fn default() -> Self {
        FieldMap {
            name: 0,
            model: 1,
            ip: None,
            group: None,
            port: None,
            username: None,
            password: None,
            enable: None,
        }
    }
}

impl FieldMap {
    /// Parses `name=0,model=1,ip=2` (Oxidized's `map` and `vars_map` in one list).
    pub fn parse(text: &str) -> Result<Self> {
        let mut m = FieldMap::default();
        for pair in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (k, v) = pair
                .split_once('=')
                .ok_or_else(|| Error::invalid(format!("field map entry '{pair}' is not name=N")))?;
            let n: usize = v
                .trim()
                .parse()
                .map_err(|_| Error::invalid(format!("field map entry '{pair}': N is a column")))?;
            match k.trim() {
                "name" => m.name = n,
                "model" => m.model = n,
                "ip" => m.ip = Some(n),
                "group" => m.group = Some(n),
                "port" | "ssh_port" => m.port = Some(n),
                "username" => m.username = Some(n),
                "password" => m.password = Some(n),
                "enable" => m.enable = Some(n),
                other => return Err(Error::invalid(format!("unknown field '{other}'"))),
            }
        }
        Ok(m)
    }
}

/// Which `router.db` dialect a file is.
#[derive(Debug, Clone)]
pub enum RouterDbFormat {
    /// Oxidized's CSV source.
    Oxidized {
        /// Field separator (a regular expression).
        delimiter: Regex,
        /// Columns.
        map: FieldMap,
    },
    /// RANCID's `router.db`.
    Rancid,
}

impl RouterDbFormat {
    /// Oxidized's defaults: delimiter `:`, `name=0,model=1`.
    pub fn oxidized_default() -> Self {
        RouterDbFormat::Oxidized {
            delimiter: Regex::new(":").unwrap_or_else(|_| unreachable!("a literal colon")),
            map: FieldMap::default(),
        }
    }

    /// Oxidized with a delimiter (regular expression) and a field map (`name=0,model=1,...`).
    pub fn oxidized(delimiter: &str, map: &str) -> Result<Self> {
        Ok(RouterDbFormat::Oxidized {
            delimiter: Regex::new(delimiter)
                .map_err(|e| Error::invalid(format!("delimiter: {e}")))?,
            map: FieldMap::parse(map)?,
        })
    }
}

/// Parses a `router.db`; `group` is the RANCID group tag (ignored for Oxidized). A line with
/// too few columns, or a bad port, is left out with a warning.
///
/// ```
/// use netraven_core::sources::{platforms::PlatformMap, routerdb::*};
/// let f = RouterDbFormat::oxidized("\\|", "name=0,ip=1,model=2,group=3").unwrap();
/// let d = parse("sw1|192.0.2.7|procurve|access\n", &f, None, &PlatformMap::default());
/// assert_eq!((d[0].spec.address.as_str(), d[0].spec.platform.as_str()), ("192.0.2.7", "hp_procurve"));
/// assert_eq!(d[0].spec.tags, vec!["access"]);
/// ```
pub fn parse(
    text: &str,
    format: &RouterDbFormat,
    group: Option<&str>,
    map: &PlatformMap,
) -> Vec<SourceDevice> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let parsed = match format {
            RouterDbFormat::Oxidized { delimiter, map: f } => {
                oxidized_line(line, delimiter, f, map)
            }
            RouterDbFormat::Rancid => rancid_line(line, group, map),
        };
        match parsed {
            Ok(d) => out.push(d),
            Err(e) => tracing::warn!(line = i + 1, error = %e, "router.db line left out"),
        }
    }
    out
}

fn oxidized_line(
    line: &str,
    delim: &Regex,
    f: &FieldMap,
    map: &PlatformMap,
) -> Result<SourceDevice> {
    let cols: Vec<&str> = delim.split(line).map(str::trim).collect();
    let col = |n: usize| cols.get(n).copied().filter(|c| !c.is_empty());
    let opt = |n: Option<usize>| n.and_then(col);
    let name = col(f.name).ok_or_else(|| Error::invalid("no name column"))?;
    let model = col(f.model).ok_or_else(|| Error::invalid("no model column"))?;
    let mut spec = DeviceSpec::new(name, opt(f.ip).unwrap_or(name), map.resolve(model));
    if let Some(p) = opt(f.port) {
        spec.port = p
            .parse()
            .map_err(|_| Error::invalid(format!("bad port '{p}'")))?;
    }
    push_tags(&mut spec.tags, opt(f.group).map(str::to_string));
    let login = match (opt(f.username), opt(f.password)) {
        (Some(u), Some(p)) => Some(Login {
            username: u.to_string(),
            password: Secret::new(p),
            enable_secret: opt(f.enable).map(Secret::new),
        }),
        _ => None,
    };
    Ok(SourceDevice { spec, login })
}

fn rancid_line(line: &str, group: Option<&str>, map: &PlatformMap) -> Result<SourceDevice> {
    let sep = if line.contains(';') { ';' } else { ':' };
    let cols: Vec<&str> = line.splitn(4, sep).map(str::trim).collect();
    let (name, kind) = match cols.as_slice() {
        [name, kind, ..] if !name.is_empty() && !kind.is_empty() => (*name, *kind),
        _ => return Err(Error::invalid("expected name;type;state")),
    };
    let mut spec = DeviceSpec::new(name, name, map.resolve(kind));
    spec.enabled = cols.get(2).is_none_or(|s| s.eq_ignore_ascii_case("up"));
    spec.description = cols.get(3).filter(|c| !c.is_empty()).map(|c| c.to_string());
    push_tags(&mut spec.tags, group.map(str::to_string));
    Ok(SourceDevice::new(spec))
}

/// A `router.db` file of either dialect.
#[derive(Debug, Clone)]
pub struct RouterDbSource {
    path: PathBuf,
    format: RouterDbFormat,
    map: PlatformMap,
}

impl RouterDbSource {
    /// The file at `path` in `format`, platforms mapped with `map`.
    pub fn new(path: PathBuf, format: RouterDbFormat, map: PlatformMap) -> Self {
        RouterDbSource { path, format, map }
    }
}

#[async_trait]
impl InventorySource for RouterDbSource {
    fn kind(&self) -> &'static str {
        match self.format {
            RouterDbFormat::Oxidized { .. } => "oxidized",
            RouterDbFormat::Rancid => "rancid",
        }
    }

    async fn devices(&self) -> Result<Vec<SourceDevice>> {
        let text = read_text(&self.path).await?;
        // RANCID keeps one router.db per group directory.
        let group = self
            .path
            .parent()
            .and_then(|p| p.file_name())
            .and_then(|n| n.to_str());
        Ok(parse(&text, &self.format, group, &self.map))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oxidized_default_and_custom_maps() {
        let m = PlatformMap::default();
        let d = parse(
            "# comment\n\nr1:ios\nr2:junos:extra\nbad\n",
            &RouterDbFormat::oxidized_default(),
            None,
            &m,
        );
        assert_eq!(d.len(), 2);
        assert_eq!(
            (d[0].spec.address.as_str(), d[0].spec.platform.as_str()),
            ("r1", "cisco_ios")
        );
        let f = RouterDbFormat::oxidized(
            ":",
            "name=0,ip=1,model=2,port=3,username=4,password=5,enable=6",
        )
        .unwrap();
        let d = parse(
            "r3:192.0.2.3:eos:2222:ops:pw:en\nr4:192.0.2.4:eos:x\n",
            &f,
            None,
            &m,
        );
        assert_eq!(d.len(), 1, "a bad port leaves the line out");
        assert_eq!(d[0].spec.port, 2222);
        let l = d[0].login.as_ref().unwrap();
        assert_eq!((l.username.as_str(), l.password.expose()), ("ops", "pw"));
        assert_eq!(l.enable_secret.as_ref().map(Secret::expose), Some("en"));
        assert!(FieldMap::parse("name=x").is_err());
        assert!(FieldMap::parse("colour=1").is_err());
        assert!(RouterDbFormat::oxidized("(", "").is_err());
    }

    #[test]
    fn rancid_both_separators_state_and_comment() {
        let m = PlatformMap::default();
        let d = parse(
            "r1;cisco;up;core router\nr2:juniper:down\nr3;arista;up\n;x;up\n",
            &RouterDbFormat::Rancid,
            Some("net"),
            &m,
        );
        assert_eq!(d.len(), 3);
        assert_eq!(d[0].spec.platform, "cisco_ios");
        assert_eq!(d[0].spec.description.as_deref(), Some("core router"));
        assert_eq!(d[0].spec.tags, vec!["net"]);
        assert!(d[0].spec.enabled && !d[1].spec.enabled);
        assert_eq!(d[1].spec.platform, "juniper_junos");
        assert_eq!(d[2].spec.platform, "arista_eos");
    }
}
