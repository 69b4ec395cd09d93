//! Inventory sources: where devices come from when NetRaven is not their source of truth.
//!
//! Every source implements one trait, [`InventorySource`], answering the devices it holds now
//! as [`SourceDevice`]s; [`sync`] compares them with a store and adds, updates or (for devices
//! the source owned and no longer lists) disables devices — never deleting one, so no history is
//! lost — with a dry run that only reports.
//!
//! | source | module | input |
//! |---|---|---|
//! | Nornir `SimpleInventory` | [`nornir`] | `hosts.yaml`, `groups.yaml`, `defaults.yaml` (inheritance) |
//! | Oxidized `router.db` (CSV source) | [`routerdb`] | delimiter and field map as in Oxidized's `source.csv` |
//! | RANCID `router.db` | [`routerdb`] | `name;type;state[;comment]` |
//! | Ansible inventory | [`ansible`] | INI or YAML, `ansible_host`, `ansible_network_os` |
//! | NetBox | [`netbox`] | `/api/dcim/devices/` pages through an [`http::HttpClient`] |
//!
//! Foreign platform names are mapped with [`platforms::PlatformMap`].

pub mod ansible;
pub mod http;
pub mod netbox;
pub mod nornir;
pub mod platforms;
pub mod routerdb;
pub mod sync;
pub mod text;

use crate::error::{Error, Result};
use crate::import::Login;
use crate::model::DeviceSpec;
use async_trait::async_trait;
use std::fmt::Debug;
use std::path::{Path, PathBuf};

/// One device as a source describes it, with the login the source carries, if any.
#[derive(Debug, Clone)]
pub struct SourceDevice {
    /// The device's fields (hostname, address, port, platform, tags, description...).
    pub spec: DeviceSpec,
    /// A user name and password from the source (Nornir, Ansible, Oxidized's field map). A
    /// login is applied only when a device is added: it becomes a credential pinned to it.
    pub login: Option<Login>,
}

impl SourceDevice {
    /// A device without a login.
    pub fn new(spec: DeviceSpec) -> Self {
        SourceDevice { spec, login: None }
    }
}

/// A place devices are read from.
///
/// ```
/// use netraven_core::sources::{InventorySource, SourceDevice};
/// use netraven_core::model::DeviceSpec;
/// use netraven_core::Result;
///
/// #[derive(Debug)]
/// struct Fixed;
///
/// #[async_trait::async_trait]
/// impl InventorySource for Fixed {
///     fn kind(&self) -> &'static str { "fixed" }
///     async fn devices(&self) -> Result<Vec<SourceDevice>> {
///         Ok(vec![SourceDevice::new(DeviceSpec::new("r1", "192.0.2.1", "cisco_ios"))])
///     }
/// }
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<()> {
/// let src: Box<dyn InventorySource> = Box::new(Fixed);
/// assert_eq!(src.devices().await?.len(), 1);
/// # Ok(()) }
/// ```
#[async_trait]
pub trait InventorySource: Send + Sync + Debug {
    /// Short name of the kind of source (`nornir`, `netbox`...), for reports and logs.
    fn kind(&self) -> &'static str;
    /// The devices the source holds now. Fails when the source cannot be read at all; a single
    /// bad entry is left out with a warning rather than failing the whole source.
    async fn devices(&self) -> Result<Vec<SourceDevice>>;
}

/// Reads a text file of a file-based source, naming it in the error.
pub(crate) async fn read_text(path: &Path) -> Result<String> {
    tokio::fs::read_to_string(path)
        .await
        .map_err(|e| Error::invalid(format!("cannot read {}: {e}", path.display())))
}

/// Reads a text file that may be missing (then empty).
pub(crate) async fn read_optional(path: &Path) -> Result<String> {
    match tokio::fs::try_exists(path).await {
        Ok(true) => read_text(path).await,
        _ => Ok(String::new()),
    }
}

/// The kinds of file- or URL-based sources the CLI and API name with `--from`.
pub const KINDS: &[&str] = &["netbox", "nornir", "oxidized", "rancid", "ansible"];

/// A file-based source by kind name: `nornir` (a directory), `oxidized` / `rancid` (a
/// `router.db`), `ansible` (an INI or YAML file). NetBox needs an HTTP client: see
/// [`netbox::NetboxSource`].
pub fn file_source(
    kind: &str,
    path: PathBuf,
    map: platforms::PlatformMap,
) -> Result<Box<dyn InventorySource>> {
    Ok(match kind {
        "nornir" => Box::new(nornir::NornirSource::new(path, map)),
        "oxidized" => Box::new(routerdb::RouterDbSource::new(
            path,
            routerdb::RouterDbFormat::oxidized_default(),
            map,
        )),
        "rancid" => Box::new(routerdb::RouterDbSource::new(
            path,
            routerdb::RouterDbFormat::Rancid,
            map,
        )),
        "ansible" => Box::new(ansible::AnsibleSource::new(path, map)),
        other => {
            return Err(Error::invalid(format!(
                "unknown file source '{other}' (nornir, oxidized, rancid, ansible)"
            )));
        }
    })
}

/// Turns a tag-like value from a source into a valid tag name (no path separators or control
/// characters), or nothing when empty.
pub(crate) fn tag_name(value: &str) -> Option<String> {
    let t: String = value
        .trim()
        .chars()
        .map(|c| match c {
            '/' | '\\' => '-',
            c if c.is_control() => ' ',
            c => c,
        })
        .collect();
    let t = t.trim().to_string();
    (!t.is_empty() && t.len() <= 128).then_some(t)
}

/// Adds tags keeping the first occurrence's order.
pub(crate) fn push_tags(tags: &mut Vec<String>, more: impl IntoIterator<Item = String>) {
    for t in more {
        if let Some(t) = tag_name(&t)
            && !tags.contains(&t)
        {
            tags.push(t);
        }
    }
}

/// Everything but RFC 3986's unreserved characters is percent-encoded in a query value.
const QUERY_VALUE: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// Percent-encodes a query value (a space is `%20`), for the NetBox source and API clients.
pub fn encode_query_value(v: &str) -> String {
    percent_encoding::utf8_percent_encode(v, QUERY_VALUE).to_string()
}
