//! Device import: a CSV inventory (the file `netraven sim --inventory` writes and
//! `netraven backup` reads) or rows from elsewhere, into a store, with a report per row.
//!
//! CSV columns (header required, any order, case-insensitive): `hostname`, `address`,
//! `platform` (required); `port`, `tags` (separated by `;` or `|`), `description`, `serial`,
//! `model`, `enabled`, `legacy_ssh`; and the login columns `username`, `password`,
//! `enable_secret`. A row with a login gets a credential pinned to its device: an existing
//! credential with the same user name, password and enable secret is reused, else one is
//! created, with no tags, so it is offered to no other device. Secrets never appear in the
//! report.

use crate::error::{Error, Result};
use crate::inventory;
use crate::model::{Credential, CredentialId, Device};
use crate::secret::Secret;
use crate::store::Store;
use serde::Serialize;
use serde_json::{Value, json};
use std::collections::HashSet;

/// Largest number of rows one import accepts.
pub const MAX_IMPORT_ROWS: usize = 10_000;

/// The columns an import CSV may have (the inventory reader's).
pub use crate::inventory::COLUMNS as CSV_COLUMNS;

/// A login from an import row.
#[derive(Debug, Clone)]
pub struct Login {
    /// User name.
    pub username: String,
    /// Password.
    pub password: Secret,
    /// Enable secret, if the row has one.
    pub enable_secret: Option<Secret>,
}

/// One row to import: the device and, optionally, the login for it.
#[derive(Debug, Clone)]
pub struct ImportRow {
    /// The device (`id` ignored).
    pub device: Device,
    /// Login columns of the row, if any.
    pub login: Option<Login>,
}

/// Outcome of an import (what `POST /api/devices/import` answers).
#[derive(Debug, Default, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ImportReport {
    /// Devices created.
    pub created: usize,
    /// `{row, id, hostname}` of each created device.
    pub items: Vec<Value>,
    /// Rows whose hostname exists already or appears earlier in the input.
    pub duplicates: Vec<Value>,
    /// Rows that could not be read or failed validation.
    pub errors: Vec<Value>,
    /// Credentials from login columns: created and reused, never their secrets.
    pub credentials: CredentialReport,
}

/// The credential part of an [`ImportReport`].
#[derive(Debug, Default, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CredentialReport {
    /// Credentials created by this import.
    pub created: usize,
    /// Credentials that existed with the same user name and secrets and were reused.
    pub reused: usize,
    /// `{id, name, username, devices, created}` per credential the imported devices use.
    pub items: Vec<Value>,
}

/// Parses an import CSV with the inventory parser ([`crate::inventory::parse_csv`], login
/// columns allowed). A bad header (unknown or missing column, a password without a user name)
/// fails the whole input; a bad row becomes an `Err` with the reason, so row numbers stay
/// aligned (the first row after the header is row 1).
pub fn parse_csv(body: &[u8]) -> Result<Vec<std::result::Result<ImportRow, String>>> {
    let header = body.split(|b| *b == b'\n').next().unwrap_or_default();
    let header = String::from_utf8_lossy(header).to_ascii_lowercase();
    let has = |c: &str| header.split(',').any(|h| h.trim() == c);
    if (has("password") || has("enable_secret")) && !has("username") {
        return Err(Error::invalid(
            "a 'password' or 'enable_secret' column needs a 'username' column",
        ));
    }
    let rows = inventory::parse_csv(
        body,
        inventory::ParseOptions {
            logins: true,
            max_rows: MAX_IMPORT_ROWS,
        },
    )?;
    Ok(rows
        .into_iter()
        .map(|r| {
            r.map_err(|e| e.detail).map(|r| ImportRow {
                device: r.device,
                login: r.login.map(|l| Login {
                    username: l.username,
                    enable_secret: (!l.enable_secret.is_empty()).then_some(l.enable_secret),
                    password: l.password,
                }),
            })
        })
        .collect())
}

/// Imports rows into `store`: devices are created in order, duplicates (in the store or earlier
/// in the input) and invalid rows reported and skipped. Fails only when the store fails.
pub async fn import(
    store: &dyn Store,
    rows: Vec<std::result::Result<ImportRow, String>>,
) -> Result<ImportReport> {
    let mut report = ImportReport::default();
    let mut seen = HashSet::new();
    let mut creds = Credentials::default();
    let now = chrono::Utc::now();
    for (i, row) in rows.into_iter().enumerate() {
        let n = i + 1;
        let ImportRow { mut device, login } = match row {
            Ok(r) => r,
            Err(detail) => {
                report.errors.push(json!({ "row": n, "detail": detail }));
                continue;
            }
        };
        let host = device.hostname.clone();
        if let Err(e) = check(store, &device).await? {
            report
                .errors
                .push(json!({ "row": n, "hostname": host, "detail": e }));
            continue;
        }
        if !seen.insert(host.clone()) {
            report
                .duplicates
                .push(json!({ "row": n, "hostname": host, "detail": "repeated in this import" }));
            continue;
        }
        if let Some(login) = &login {
            device.credential_id = Some(creds.resolve(store, login, &host).await?);
        }
        device.created_at = now;
        device.updated_at = now;
        match store.create_device(&device).await {
            Ok(c) => {
                report.created += 1;
                report
                    .items
                    .push(json!({ "row": n, "id": c.id, "hostname": c.hostname }));
                if let Some(id) = c.credential_id {
                    creds.used_by_device(id);
                }
            }
            // The store's own wording may name tables and constraints: say it in the API's.
            Err(e) if e.kind() == crate::ErrorKind::Conflict => report.duplicates.push(json!({
                "row": n, "hostname": host,
                "detail": format!("hostname: a device with hostname '{host}' already exists"),
            })),
            Err(e) if e.kind() == crate::ErrorKind::InvalidInput => report
                .errors
                .push(json!({ "row": n, "hostname": host, "detail": e.message() })),
            Err(e) => return Err(e),
        }
    }
    report.credentials = creds.report(store).await?;
    Ok(report)
}

/// Validates a device; `Ok(Err(reason))` for a bad row, `Err` when the store fails.
async fn check(store: &dyn Store, d: &Device) -> Result<std::result::Result<(), String>> {
    if let Err(e) = d.validate() {
        return Ok(Err(e.message().to_string()));
    }
    if let Some(cid) = d.credential_id {
        match store.get_credential(cid).await {
            Ok(_) => {}
            Err(e) if e.kind() == crate::ErrorKind::NotFound => {
                return Ok(Err(format!("credential {cid} does not exist")));
            }
            Err(e) => return Err(e),
        }
    }
    Ok(Ok(()))
}

/// The credentials one import uses, found or created once each.
#[derive(Default)]
pub(crate) struct Credentials {
    known: Option<Vec<Credential>>,
    /// (credential, created by this import, devices using it)
    used: Vec<(Credential, bool, usize)>,
}

fn same_login(c: &Credential, l: &Login) -> bool {
    fn secret(s: Option<&Secret>) -> Option<&str> {
        s.map(Secret::expose).filter(|s| !s.is_empty())
    }
    c.username == l.username
        && c.password.expose() == l.password.expose()
        && secret(c.enable_secret.as_ref()) == secret(l.enable_secret.as_ref())
}

impl Credentials {
    /// The id of a credential for `login`: one seen in this import, an existing one with the
    /// same user name and secrets, or a new one named after the first device using it.
    pub(crate) async fn resolve(
        &mut self,
        store: &dyn Store,
        login: &Login,
        host: &str,
    ) -> Result<CredentialId> {
        if let Some((c, ..)) = self.used.iter().find(|(c, ..)| same_login(c, login)) {
            return Ok(c.id);
        }
        if self.known.is_none() {
            self.known = Some(store.all_credentials().await?);
        }
        let known = self.known.as_deref().unwrap_or_default();
        if let Some(c) = known.iter().find(|c| same_login(c, login)) {
            self.used.push((c.clone(), false, 0));
            return Ok(c.id);
        }
        let mut name = format!("import-{host}");
        let mut k = 1;
        while known.iter().any(|c| c.name == name) || self.used.iter().any(|(c, ..)| c.name == name)
        {
            k += 1;
            name = format!("import-{host}-{k}");
        }
        let mut c = Credential::new(name, &login.username, login.password.clone());
        c.enable_secret = login.enable_secret.clone();
        c.description = Some(format!("from the device import of {host}"));
        c.created_at = chrono::Utc::now();
        let c = store.create_credential(&c).await?;
        let id = c.id;
        self.used.push((c, true, 0));
        Ok(id)
    }

    pub(crate) fn used_by_device(&mut self, id: CredentialId) {
        if let Some(u) = self.used.iter_mut().find(|(c, ..)| c.id == id) {
            u.2 += 1;
        }
    }

    /// The report; a credential this import created but no device took (its device turned out
    /// to exist) is deleted again.
    pub(crate) async fn report(self, store: &dyn Store) -> Result<CredentialReport> {
        let mut r = CredentialReport::default();
        for (c, created, devices) in self.used {
            if created && devices == 0 {
                store.delete_credential(c.id).await?;
                continue;
            }
            if created {
                r.created += 1;
            } else {
                r.reused += 1;
            }
            r.items.push(json!({
                "id": c.id, "name": c.name, "username": c.username,
                "devices": devices, "created": created,
            }));
        }
        Ok(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::MemoryStore;
    use crate::store::{CredentialStore, DeviceStore};

    const SIM: &str = "hostname,address,port,platform,username,password,enable_secret,tags\n\
        r1,127.0.0.1,21001,cisco_ios,admin,pw-one,en-one,sim;cisco_ios\n\
        r2,127.0.0.1,21002,cisco_ios,admin,pw-one,en-one,sim;cisco_ios\n\
        r3,127.0.0.1,21003,arista_eos,ops,pw-three,,sim\n\
        r4,127.0.0.1,21004,cisco_ios,admin,,,sim\n";

    #[tokio::test]
    async fn login_columns_make_pinned_credentials_reused_by_identical_secrets() {
        let store = MemoryStore::new();
        // An existing credential with r3's login is reused, not duplicated.
        let mut old = Credential::new("ops-login", "ops", Secret::new("pw-three"));
        old.tags = vec!["core".into()];
        let old = store.create_credential(&old).await.unwrap();
        let report = import(&store, parse_csv(SIM.as_bytes()).unwrap())
            .await
            .unwrap();
        assert_eq!(report.created, 3, "{report:?}");
        assert_eq!(report.errors.len(), 1, "{report:?}");
        assert_eq!(report.errors[0]["row"], 4);
        assert_eq!(report.credentials.created, 1);
        assert_eq!(report.credentials.reused, 1);
        let text = serde_json::to_string(&report).unwrap();
        for secret in ["pw-one", "en-one", "pw-three"] {
            assert!(!text.contains(secret), "{text}");
        }
        let all = store.all_credentials().await.unwrap();
        assert_eq!(all.len(), 2, "{all:?}");
        let new = all.iter().find(|c| c.id != old.id).unwrap();
        assert_eq!(new.username, "admin");
        assert_eq!(new.password.expose(), "pw-one");
        assert_eq!(
            new.enable_secret.as_ref().map(Secret::expose),
            Some("en-one")
        );
        assert!(
            new.tags.is_empty(),
            "scoped by pinning, offered to no other device"
        );
        let devs = store
            .list_devices(&Default::default(), crate::model::Page::first(10))
            .await
            .unwrap()
            .items;
        let cred_of = |h: &str| devs.iter().find(|d| d.hostname == h).unwrap().credential_id;
        assert_eq!(cred_of("r1"), Some(new.id));
        assert_eq!(cred_of("r2"), Some(new.id));
        assert_eq!(cred_of("r3"), Some(old.id));
        assert_eq!(
            devs[0].tags,
            vec!["sim".to_string(), "cisco_ios".to_string()]
        );
        assert_eq!(devs[0].port, 21001);
        // Importing the same file again: every device a duplicate, no new credential.
        let again = import(&store, parse_csv(SIM.as_bytes()).unwrap())
            .await
            .unwrap();
        assert_eq!(again.created, 0);
        assert_eq!(again.duplicates.len(), 3);
        assert_eq!(store.all_credentials().await.unwrap().len(), 2);
    }

    #[test]
    fn headers_and_rows_are_checked() {
        assert!(parse_csv(b"hostname,address,platform,bogus\na,b,c,d\n").is_err());
        assert!(parse_csv(b"hostname,address,password\na,b,c\n").is_err());
        assert!(parse_csv(b"hostname,address,platform,password\na,b,c,d\n").is_err());
        let rows = parse_csv(
            b"hostname,address,platform,port,legacy_ssh,enabled\n\
              a,b,cisco_ios,22,true,no\n\
              a,b,cisco_ios,0,,\n\
              a,b,cisco_ios,22,maybe,\n\
              a,b\n",
        )
        .unwrap();
        let first = rows[0].as_ref().unwrap();
        assert!(first.device.legacy_ssh && !first.device.enabled);
        assert!(first.login.is_none());
        assert!(rows[1..].iter().all(|r| r.is_err()), "{rows:?}");
    }
}
