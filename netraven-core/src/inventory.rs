//! Device inventories in CSV or JSON: one parser shared by the one-shot backup (a file with
//! logins) and the API import (a request body, devices only).
//!
//! CSV columns (header required, case-insensitive, any order): `hostname`, `address`,
//! `platform` (required), `port` (default 22), `tags` (separated by `;` or `|`), `description`,
//! `serial`, `model`, `enabled` (`true`/`false`, default true), `legacy_ssh` (`true` for devices
//! that only offer SHA-1 key exchange), `timeout_multiplier` (0.1 to 100, every deadline of the
//! device), `transport` (`ssh`, the default, or `telnet`: opt-in; the port then defaults to 23),
//! `jump_host` (the name of a jump host), and — when [`ParseOptions::logins`] allows them —
//! `username`, `password`, `enable_secret` and an ad-hoc jump host per row: `jump_host` is then
//! the bastion's address when `jump_username` is given, with `jump_port` (default 22),
//! `jump_username` and `jump_password`. JSON: an array of objects with the same fields plus
//! `credential_id` and `host_key_policy`; unknown fields are refused.

use crate::error::{Error, Result};
use crate::model::{Credential, CredentialId, Device, HostKeyPolicy, Transport};
use crate::secret::Secret;
use serde::Deserialize;
use std::path::Path;

/// Largest number of rows one inventory may hold.
pub const MAX_ROWS: usize = 100_000;

/// A login given with a device (backup inventories).
#[derive(Debug, Clone, PartialEq)]
pub struct Login {
    /// Login user.
    pub username: String,
    /// Login password.
    pub password: Secret,
    /// Enable secret (may be empty).
    pub enable_secret: Secret,
}

impl Login {
    /// The credential of this login, named `name`.
    pub fn credential(&self, name: impl Into<String>) -> Credential {
        let mut c = Credential::new(name, &self.username, self.password.clone());
        if !self.enable_secret.is_empty() {
            c.enable_secret = Some(self.enable_secret.clone());
        }
        c
    }
}

/// An SSH bastion given with a device (backup inventories: the `jump_*` columns), not by name.
#[derive(Debug, Clone, PartialEq)]
pub struct JumpLogin {
    /// The bastion's address.
    pub address: String,
    /// Its SSH port.
    pub port: u16,
    /// Login user on the bastion.
    pub username: String,
    /// Its password (or a private key in PEM/OpenSSH form).
    pub password: Secret,
}

impl JumpLogin {
    /// A name for this bastion: `user@address:port` (what the one-shot backup registers it as).
    pub fn name(&self) -> String {
        format!("{}@{}:{}", self.username, self.address, self.port)
    }
}

/// One inventory row: a device (not yet validated) and its login, if the inventory gives one.
#[derive(Debug, Clone)]
pub struct InventoryRow {
    /// The device.
    pub device: Device,
    /// Its login.
    pub login: Option<Login>,
    /// The ad-hoc jump host in front of it (then `device.jump_host` is `None`).
    pub jump: Option<JumpLogin>,
}

/// A row that could not be read; rows are numbered from 1, not counting a CSV header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowError {
    /// Row number.
    pub row: usize,
    /// What is wrong.
    pub detail: String,
}

/// What a parse accepts.
#[derive(Debug, Clone, Copy)]
pub struct ParseOptions {
    /// Accept the `username`, `password` and `enable_secret` columns / fields.
    pub logins: bool,
    /// Most rows (more is an error for the whole inventory).
    pub max_rows: usize,
}

impl Default for ParseOptions {
    fn default() -> Self {
        ParseOptions {
            logins: false,
            max_rows: MAX_ROWS,
        }
    }
}

/// Rows in order, each read or refused on its own.
pub type Rows = Vec<std::result::Result<InventoryRow, RowError>>;

/// Every column an inventory CSV may have: the device's fields, then the login's
/// (`username`, `password`, `enable_secret`, and an ad-hoc jump host's `jump_port`,
/// `jump_username`, `jump_password`, accepted where the reader takes logins).
pub const COLUMNS: [&str; 19] = [
    "hostname",
    "address",
    "port",
    "platform",
    "tags",
    "description",
    "serial",
    "model",
    "enabled",
    "legacy_ssh",
    "timeout_multiplier",
    "transport",
    "jump_host",
    "username",
    "password",
    "enable_secret",
    "jump_port",
    "jump_username",
    "jump_password",
];
/// How many of [`COLUMNS`] describe the device (the rest are the login).
const DEVICE_COLUMNS: usize = 13;

/// Splits a tag list on `;` or `|`, trimming and dropping empty names.
pub fn split_tags(s: &str) -> Vec<String> {
    s.split([';', '|'])
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(String::from)
        .collect()
}

fn parse_bool(col: &str, v: &str) -> std::result::Result<bool, String> {
    match v.to_ascii_lowercase().as_str() {
        "true" | "yes" | "1" => Ok(true),
        "false" | "no" | "0" => Ok(false),
        _ => Err(format!("{col} must be true or false")),
    }
}

/// Parses a CSV inventory. The whole inventory is refused (an `InvalidInput` error) for a bad
/// header or too many rows; a bad row is refused on its own.
pub fn parse_csv(body: &[u8], opts: ParseOptions) -> Result<Rows> {
    let mut rdr = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .flexible(true)
        .from_reader(body);
    let headers: Vec<String> = rdr
        .headers()
        .map_err(|e| Error::invalid(format!("cannot read the CSV header: {e}")))?
        .iter()
        .map(|h| h.to_ascii_lowercase())
        .collect();
    let known = if opts.logins {
        &COLUMNS[..]
    } else {
        &COLUMNS[..DEVICE_COLUMNS]
    };
    for h in &headers {
        if !known.contains(&h.as_str()) {
            return Err(Error::invalid(format!(
                "unknown CSV column '{h}'; known columns: {}",
                known.join(",")
            )));
        }
    }
    for req in ["hostname", "address", "platform"] {
        if !headers.iter().any(|h| h == req) {
            return Err(Error::invalid(format!(
                "the CSV header needs a '{req}' column"
            )));
        }
    }
    let mut rows = Vec::new();
    for (i, rec) in rdr.records().enumerate() {
        if rows.len() >= opts.max_rows {
            return Err(Error::invalid(format!(
                "at most {} rows per inventory",
                opts.max_rows
            )));
        }
        let row = i + 1;
        let parsed = match rec {
            Err(e) => Err(format!("unreadable row: {e}")),
            Ok(rec) if rec.len() != headers.len() => Err(format!(
                "expected {} fields, found {}",
                headers.len(),
                rec.len()
            )),
            Ok(rec) => csv_row(&headers, &rec),
        };
        rows.push(parsed.map_err(|detail| RowError { row, detail }));
    }
    Ok(rows)
}

fn csv_row(
    headers: &[String],
    rec: &csv::StringRecord,
) -> std::result::Result<InventoryRow, String> {
    let get = |name: &str| -> Option<&str> {
        headers
            .iter()
            .position(|h| h == name)
            .and_then(|i| rec.get(i))
            .filter(|v| !v.is_empty())
    };
    let mut d = Device::new(
        get("hostname").unwrap_or_default(),
        get("address").unwrap_or_default(),
        get("platform").unwrap_or_default(),
    );
    if let Some(t) = get("transport") {
        d.transport = parse_transport(t)?;
        if d.transport == Transport::Telnet {
            d.port = 23;
        }
    }
    if let Some(p) = get("port") {
        d.port = p
            .parse::<u16>()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| "port must be a number from 1 to 65535".to_string())?;
    }
    d.tags = get("tags").map(split_tags).unwrap_or_default();
    d.description = get("description").map(String::from);
    d.serial = get("serial").map(String::from);
    d.model = get("model").map(String::from);
    if let Some(v) = get("enabled") {
        d.enabled = parse_bool("enabled", v)?;
    }
    if let Some(v) = get("legacy_ssh") {
        d.legacy_ssh = parse_bool("legacy_ssh", v)?;
    }
    if let Some(v) = get("timeout_multiplier") {
        d.timeout_multiplier = Some(
            v.trim()
                .parse::<f64>()
                .ok()
                .filter(|m| m.is_finite() && (0.1..=100.0).contains(m))
                .ok_or_else(|| "timeout_multiplier must be a number from 0.1 to 100".to_string())?,
        );
    }
    let login = match (get("username"), get("password")) {
        (None, None) if get("enable_secret").is_none() => None,
        (Some(u), Some(p)) => Some(Login {
            username: u.to_string(),
            password: Secret::new(p),
            enable_secret: Secret::new(get("enable_secret").unwrap_or_default()),
        }),
        _ => return Err("username and password go together".to_string()),
    };
    let jump = match (get("jump_username"), get("jump_password")) {
        (None, None) if get("jump_port").is_none() => {
            d.jump_host = get("jump_host").map(String::from);
            None
        }
        (Some(u), Some(p)) => {
            let address = get("jump_host").ok_or_else(|| {
                "jump_username needs jump_host (the bastion's address)".to_string()
            })?;
            let port = match get("jump_port") {
                None => 22,
                Some(v) => v
                    .parse::<u16>()
                    .ok()
                    .filter(|p| *p > 0)
                    .ok_or_else(|| "jump_port must be a number from 1 to 65535".to_string())?,
            };
            Some(JumpLogin {
                address: address.to_string(),
                port,
                username: u.to_string(),
                password: Secret::new(p),
            })
        }
        _ => return Err("jump_username and jump_password go together".to_string()),
    };
    Ok(InventoryRow {
        device: d,
        login,
        jump,
    })
}

fn parse_transport(v: &str) -> std::result::Result<Transport, String> {
    Transport::parse(&v.to_ascii_lowercase())
        .ok_or_else(|| format!("transport must be ssh or telnet, not '{v}'"))
}

/// One JSON inventory row.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonRow {
    hostname: String,
    address: String,
    #[serde(default)]
    port: Option<u16>,
    platform: String,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    serial: Option<String>,
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    credential_id: Option<CredentialId>,
    #[serde(default)]
    host_key_policy: HostKeyPolicy,
    #[serde(default)]
    legacy_ssh: bool,
    #[serde(default)]
    timeout_multiplier: Option<f64>,
    #[serde(default)]
    transport: Transport,
    #[serde(default)]
    jump_host: Option<String>,
    #[serde(default)]
    jump_port: Option<u16>,
    #[serde(default)]
    jump_username: Option<String>,
    #[serde(default)]
    jump_password: Option<Secret>,
    #[serde(default)]
    enabled: Option<bool>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<Secret>,
    #[serde(default)]
    enable_secret: Option<Secret>,
}

/// Parses a JSON inventory (an array of device objects). A body that is not an array, or is
/// longer than `max_rows`, is refused as a whole; a bad row on its own.
pub fn parse_json(body: &[u8], opts: ParseOptions) -> Result<Rows> {
    let v: Vec<serde_json::Value> = serde_json::from_slice(body)
        .map_err(|e| Error::invalid(format!("expected a JSON array of devices: {e}")))?;
    if v.len() > opts.max_rows {
        return Err(Error::invalid(format!(
            "at most {} rows per inventory",
            opts.max_rows
        )));
    }
    Ok(v.into_iter()
        .enumerate()
        .map(|(i, value)| json_row(value, opts).map_err(|detail| RowError { row: i + 1, detail }))
        .collect())
}

fn json_row(
    value: serde_json::Value,
    opts: ParseOptions,
) -> std::result::Result<InventoryRow, String> {
    let r: JsonRow = serde_json::from_value(value).map_err(|e| e.to_string())?;
    let has_login = r.username.is_some()
        || r.password.is_some()
        || r.enable_secret.is_some()
        || r.jump_port.is_some()
        || r.jump_username.is_some()
        || r.jump_password.is_some();
    if has_login && !opts.logins {
        return Err("login fields are not accepted here; create a credential instead".into());
    }
    let mut d = Device::new(r.hostname, r.address, r.platform).with_tags(r.tags);
    d.transport = r.transport;
    let default_port = if r.transport == Transport::Telnet {
        23
    } else {
        22
    };
    d.port = r.port.unwrap_or(default_port);
    d.description = r.description;
    d.serial = r.serial;
    d.model = r.model;
    d.credential_id = r.credential_id;
    d.host_key_policy = r.host_key_policy;
    d.legacy_ssh = r.legacy_ssh;
    d.timeout_multiplier = r.timeout_multiplier;
    d.enabled = r.enabled.unwrap_or(true);
    let login = match (r.username, r.password) {
        (None, None) => None,
        (Some(username), Some(password)) => Some(Login {
            username,
            password,
            enable_secret: r.enable_secret.unwrap_or_default(),
        }),
        _ => return Err("username and password go together".to_string()),
    };
    let jump = match (r.jump_username, r.jump_password) {
        (None, None) => {
            d.jump_host = r.jump_host;
            None
        }
        (Some(username), Some(password)) => Some(JumpLogin {
            address: r.jump_host.ok_or_else(|| {
                "jump_username needs jump_host (the bastion's address)".to_string()
            })?,
            port: r.jump_port.unwrap_or(22),
            username,
            password,
        }),
        _ => return Err("jump_username and jump_password go together".to_string()),
    };
    Ok(InventoryRow {
        device: d,
        login,
        jump,
    })
}

/// Reads an inventory file (JSON if its name ends in `.json`, else CSV) with logins allowed,
/// strictly: the first unreadable or invalid row fails the whole file, naming its line (CSV) or
/// index (JSON).
pub fn read_file(path: &Path) -> Result<Vec<InventoryRow>> {
    let body = std::fs::read(path)
        .map_err(|e| Error::invalid(format!("cannot read inventory {}: {e}", path.display())))?;
    let opts = ParseOptions {
        logins: true,
        ..ParseOptions::default()
    };
    let json = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"));
    let rows = if json {
        parse_json(&body, opts)
    } else {
        parse_csv(&body, opts)
    }
    .map_err(|e| e.context(format!("inventory {}", path.display())))?;
    // CSV rows start on line 2 (after the header).
    let at = |row: usize| {
        if json {
            format!("inventory {} item {row}", path.display())
        } else {
            format!("inventory {} line {}", path.display(), row + 1)
        }
    };
    rows.into_iter()
        .map(|r| {
            let r = r.map_err(|e| Error::invalid(format!("{}: {}", at(e.row), e.detail)))?;
            Ok(r)
        })
        .enumerate()
        .map(|(i, r): (usize, Result<InventoryRow>)| {
            let r = r?;
            r.device.validate().map_err(|e| e.context(at(i + 1)))?;
            Ok(r)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn logins() -> ParseOptions {
        ParseOptions {
            logins: true,
            ..ParseOptions::default()
        }
    }

    #[test]
    fn csv_rows_are_read_or_refused_one_by_one() {
        let csv = "hostname,address,port,platform,tags,enabled\n\
                   sw1,10.0.0.1,22,cisco_ios,core;dc1,\n\
                   sw2,10.0.0.2,,cisco_ios,edge|dc1,false\n\
                   sw3,10.0.0.6,notaport,cisco_ios,,\n\
                   sw4,10.0.0.7\n";
        let rows = parse_csv(csv.as_bytes(), ParseOptions::default()).unwrap();
        assert_eq!(rows.len(), 4);
        let sw1 = rows[0].as_ref().unwrap();
        assert_eq!(sw1.device.tags, vec!["core", "dc1"]);
        assert!(sw1.device.enabled && sw1.login.is_none());
        let sw2 = rows[1].as_ref().unwrap();
        assert_eq!((sw2.device.port, sw2.device.enabled), (22, false));
        assert_eq!(rows[2].as_ref().unwrap_err().row, 3);
        assert!(rows[3].as_ref().unwrap_err().detail.contains("expected 6"));
    }

    #[test]
    fn transport_and_jump_columns() {
        let csv = b"hostname,address,platform,transport,jump_host,username,password,jump_port,jump_username,jump_password\n\
                    r1,10.0.0.1,cisco_ios,telnet,,u,p,,,\n\
                    r2,10.0.0.2,cisco_ios,,bastion-1,u,p,,,\n\
                    r3,10.0.0.3,cisco_ios,ssh,10.0.0.254,u,p,2222,jumper,jpw\n\
                    r4,10.0.0.4,cisco_ios,carrier-pigeon,,u,p,,,\n\
                    r5,10.0.0.5,cisco_ios,,10.0.0.254,u,p,,jumper,\n";
        let rows = parse_csv(csv, logins()).unwrap();
        let r1 = rows[0].as_ref().unwrap();
        assert_eq!(
            (r1.device.transport, r1.device.port),
            (Transport::Telnet, 23)
        );
        let r2 = rows[1].as_ref().unwrap();
        assert_eq!(r2.device.jump_host.as_deref(), Some("bastion-1"));
        assert!(r2.jump.is_none());
        let r3 = rows[2].as_ref().unwrap();
        assert_eq!(r3.device.jump_host, None);
        let j = r3.jump.as_ref().unwrap();
        assert_eq!((j.address.as_str(), j.port), ("10.0.0.254", 2222));
        assert_eq!(
            (j.username.as_str(), j.password.expose()),
            ("jumper", "jpw")
        );
        assert!(rows[3].as_ref().unwrap_err().detail.contains("transport"));
        assert!(rows[4].as_ref().unwrap_err().detail.contains("go together"));
        // The device columns (transport, a named jump host) are accepted without logins; the
        // ad-hoc jump host's are login columns.
        let ok =
            b"hostname,address,platform,transport,jump_host\nr1,10.0.0.1,cisco_ios,telnet,b1\n";
        let rows = parse_csv(ok, ParseOptions::default()).unwrap();
        assert_eq!(
            rows[0].as_ref().unwrap().device.jump_host.as_deref(),
            Some("b1")
        );
        let bad = b"hostname,address,platform,jump_username\nr1,10.0.0.1,cisco_ios,u\n";
        assert!(parse_csv(bad, ParseOptions::default()).is_err());
        let json = br#"[{"hostname":"t","address":"10.0.0.1","platform":"cisco_ios","transport":"telnet"}]"#;
        let rows = parse_json(json, ParseOptions::default()).unwrap();
        assert_eq!(rows[0].as_ref().unwrap().device.port, 23);
    }

    #[test]
    fn login_columns_only_where_allowed() {
        let csv = b"hostname,address,platform,username,password,enable_secret,legacy_ssh\n\
                    r1,10.0.0.1,cisco_ios,admin,pw,en,true\n";
        let err = parse_csv(csv, ParseOptions::default()).unwrap_err();
        assert!(
            err.to_string().contains("unknown CSV column 'username'"),
            "{err}"
        );
        let rows = parse_csv(csv, logins()).unwrap();
        let r = rows[0].as_ref().unwrap();
        assert!(r.device.legacy_ssh);
        let login = r.login.as_ref().unwrap();
        assert_eq!(login.username, "admin");
        assert_eq!(login.password.expose(), "pw");
        let c = login.credential("c1");
        assert_eq!(c.enable_secret.as_ref().map(|s| s.expose()), Some("en"));
    }

    #[test]
    fn json_rows_refuse_unknown_fields_and_logins_where_not_allowed() {
        let body = br#"[{"hostname":"a","address":"1.2.3.4","platform":"linux"},
                        {"hostname":"b","address":"x","platform":"p","bogus":1},
                        {"hostname":"c","address":"x","platform":"p","username":"u","password":"p"}]"#;
        let rows = parse_json(body, ParseOptions::default()).unwrap();
        assert_eq!(rows[0].as_ref().unwrap().device.port, 22);
        assert_eq!(rows[1].as_ref().unwrap_err().row, 2);
        assert!(rows[2].is_err());
        let rows = parse_json(body, logins()).unwrap();
        assert!(rows[2].as_ref().unwrap().login.is_some());
        assert!(parse_json(b"{}", ParseOptions::default()).is_err());
    }

    #[test]
    fn files_are_strict_and_name_the_line() {
        let dir = std::env::temp_dir().join(crate::testkit::unique("inv"));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("inv.csv");
        std::fs::write(
            &path,
            "hostname,address,port,platform,username,password\n\
             r1,10.0.0.1,22,cisco_ios,u,p\n\
             bad/name,10.0.0.2,22,cisco_ios,u,p\n",
        )
        .unwrap();
        let err = read_file(&path).unwrap_err();
        assert!(err.to_string().contains("line 3"), "{err}");
        std::fs::write(
            &path,
            "hostname,address,port,platform\nr1,10.0.0.1,22,cisco_ios\n",
        )
        .unwrap();
        assert_eq!(read_file(&path).unwrap().len(), 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
