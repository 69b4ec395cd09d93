//! A file-based source given as text (what the API receives in a request body): the same
//! parsers as the file sources, without touching the server's file system.

use super::platforms::PlatformMap;
use super::routerdb::RouterDbFormat;
use super::{InventorySource, SourceDevice, ansible, nornir, routerdb};
use crate::error::{Error, Result};
use async_trait::async_trait;

/// An inventory's text by kind.
#[derive(Debug, Clone, Default)]
pub struct TextInventory {
    /// `nornir`, `oxidized`, `rancid` or `ansible`.
    pub kind: String,
    /// The file: `hosts.yaml` (Nornir), `router.db`, or the Ansible inventory.
    pub content: String,
    /// Nornir `groups.yaml`.
    pub groups: String,
    /// Nornir `defaults.yaml`.
    pub defaults: String,
    /// Oxidized delimiter (a regular expression; default `:`).
    pub delimiter: Option<String>,
    /// Oxidized field map (default `name=0,model=1`).
    pub fields: Option<String>,
    /// Ansible: the content is YAML (else INI).
    pub yaml: bool,
    /// RANCID group (a tag).
    pub group: Option<String>,
    /// Platform names.
    pub map: PlatformMap,
}

#[async_trait]
impl InventorySource for TextInventory {
    fn kind(&self) -> &'static str {
        match self.kind.as_str() {
            "nornir" => "nornir",
            "oxidized" => "oxidized",
            "rancid" => "rancid",
            "ansible" => "ansible",
            _ => "unknown",
        }
    }

    async fn devices(&self) -> Result<Vec<SourceDevice>> {
        match self.kind.as_str() {
            "nornir" => nornir::parse(&self.content, &self.groups, &self.defaults, &self.map),
            "oxidized" => {
                let f = RouterDbFormat::oxidized(
                    self.delimiter.as_deref().unwrap_or(":"),
                    self.fields.as_deref().unwrap_or("name=0,model=1"),
                )?;
                Ok(routerdb::parse(&self.content, &f, None, &self.map))
            }
            "rancid" => Ok(routerdb::parse(
                &self.content,
                &RouterDbFormat::Rancid,
                self.group.as_deref(),
                &self.map,
            )),
            "ansible" => ansible::parse(&self.content, self.yaml, &self.map),
            other => Err(Error::invalid(format!(
                "unknown source '{other}' (nornir, oxidized, rancid, ansible, netbox)"
            ))),
        }
    }
}
