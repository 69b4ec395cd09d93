//! The CSV inventory of `netraven backup` and `netraven sim --inventory`:
//! `hostname,address,port,platform,username,password,enable_secret,tags` (tags separated by `;`),
//! and optionally a `legacy_ssh` column (`true` for devices that only offer SHA-1 key exchange).

use netraven_core::prelude::*;
use serde::Deserialize;
use std::path::Path;

/// One inventory row.
#[derive(Debug, Clone, Deserialize)]
pub struct InventoryRow {
    /// Device hostname.
    pub hostname: String,
    /// Address to connect to.
    pub address: String,
    /// SSH port.
    pub port: u16,
    /// netmiko device_type.
    pub platform: String,
    /// Login user.
    pub username: String,
    /// Login password.
    pub password: Secret,
    /// Enable secret (may be empty).
    #[serde(default)]
    pub enable_secret: Secret,
    /// Tags separated by `;` or `|`.
    #[serde(default)]
    pub tags: String,
    /// Optional column: allow legacy SSH algorithms (SHA-1 key exchange, ssh-rsa, CBC) for
    /// devices that offer nothing newer.
    #[serde(default)]
    pub legacy_ssh: bool,
}

impl InventoryRow {
    /// The device of this row.
    pub fn device(&self) -> Device {
        let mut d = Device::new(&self.hostname, &self.address, &self.platform).with_port(self.port);
        d.legacy_ssh = self.legacy_ssh;
        d.tags = self
            .tags
            .split([';', '|'])
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_string)
            .collect();
        d
    }

    /// The credential of this row, named after the device.
    pub fn credential(&self) -> Credential {
        let mut c = Credential::new(
            format!("inventory-{}", self.hostname),
            &self.username,
            self.password.clone(),
        );
        if !self.enable_secret.is_empty() {
            c.enable_secret = Some(self.enable_secret.clone());
        }
        c
    }
}

/// Reads an inventory file; errors name the line.
pub fn read(path: &Path) -> Result<Vec<InventoryRow>> {
    let mut rdr = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_path(path)
        .map_err(|e| Error::invalid(format!("cannot read inventory {}: {e}", path.display())))?;
    let mut rows = Vec::new();
    for (i, r) in rdr.deserialize::<InventoryRow>().enumerate() {
        let row = r.map_err(|e| {
            Error::invalid(format!("inventory {} row {}: {e}", path.display(), i + 2))
        })?;
        row.device()
            .validate()
            .map_err(|e| e.context(format!("inventory {} row {}", path.display(), i + 2)))?;
        rows.push(row);
    }
    Ok(rows)
}
