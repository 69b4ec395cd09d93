// The store implementation shared by both SQL backends. This file is not a module: it is
// `include!`d by `sqlite.rs` and `postgres.rs`, each of which defines first:
//
// - `Db`, `DbRow`, `DbConn` (the sqlx database, row and connection types) and `Backend` (the
//   store type, with fields `pool: sqlx::Pool<Db>` and `cipher: Arc<dyn SecretCipher>`);
// - `TsT`, `ts(DateTime<Utc>) -> TsT`, `from_ts(TsT) -> Result<DateTime<Utc>>` (timestamps);
// - `CI_LIKE` (the case-insensitive LIKE operator);
// - `in_list(expr, placeholder) -> String` (membership in a bound id/text list);
// - `bind_arg(query, Arg) -> query`;
// - `Backend::begin_write(&self)` (a transaction that holds the write lock from the start).

use crate::sql::{
    Arg, DEFAULT_PRUNE_BATCH, Where, contains_pattern, db_err, enum_name, from_json,
    level_from_num, level_num, parse_enum, to_i, to_json, to_u,
};
use chrono::{DateTime, Utc};
use netraven_core::error::{Error, Result};
use netraven_core::model::*;
use netraven_core::secret::Secret;
use netraven_core::store::*;
use sqlx::{AssertSqlSafe, Row};
use std::collections::HashMap;

type Q = sqlx::query::Query<'static, Db, <Db as sqlx::Database>::Arguments>;

/// A query from assembled SQL text (fixed fragments and `$n` placeholders only) and its values.
fn dyn_query(sql: String, args: Vec<Arg>) -> Q {
    let mut q = sqlx::query(AssertSqlSafe(sql));
    for a in args {
        q = bind_arg(q, a);
    }
    q
}

fn g<'r, T>(row: &'r DbRow, col: &str) -> Result<T>
where
    T: sqlx::Decode<'r, Db> + sqlx::Type<Db>,
{
    row.try_get(col).map_err(db_err)
}

fn g_ts(row: &DbRow, col: &str) -> Result<DateTime<Utc>> {
    from_ts(g::<TsT>(row, col)?)
}

fn g_ots(row: &DbRow, col: &str) -> Result<Option<DateTime<Utc>>> {
    g::<Option<TsT>>(row, col)?.map(from_ts).transpose()
}

/// `value` unless it is the epoch placeholder the model uses for "unset".
fn or_now(value: DateTime<Utc>, now: DateTime<Utc>) -> DateTime<Utc> {
    if value == DateTime::<Utc>::UNIX_EPOCH {
        now
    } else {
        value
    }
}

fn page_args(w: &mut Where, page: Page) -> String {
    let limit = w.arg(Arg::I64(i64::from(page.size.max(1))));
    let offset = w.arg(Arg::I64(i64::try_from(page.offset()).unwrap_or(i64::MAX)));
    format!(" LIMIT {limit} OFFSET {offset}")
}

fn dedup(items: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(items.len());
    for i in items {
        if !out.contains(i) {
            out.push(i.clone());
        }
    }
    out
}

/// Which join table a tag list belongs to.
#[derive(Clone, Copy)]
enum Tagged {
    Device,
    Credential,
}

impl Tagged {
    fn table(self) -> &'static str {
        match self {
            Tagged::Device => "device_tags",
            Tagged::Credential => "credential_tags",
        }
    }
    fn owner(self) -> &'static str {
        match self {
            Tagged::Device => "device_id",
            Tagged::Credential => "credential_id",
        }
    }
}

/// Replaces the tags of a device or credential, creating unknown tags.
async fn set_tags(conn: &mut DbConn, kind: Tagged, owner: i64, tags: &[String]) -> Result<()> {
    let (table, col) = (kind.table(), kind.owner());
    dyn_query(
        format!("DELETE FROM {table} WHERE {col} = $1"),
        vec![Arg::I64(owner)],
    )
    .execute(&mut *conn)
    .await
    .map_err(db_err)?;
    for (pos, name) in dedup(tags).into_iter().enumerate() {
        validate_name("tag", &name)?;
        sqlx::query("INSERT INTO tags (name) VALUES ($1) ON CONFLICT (name) DO NOTHING")
            .bind(name.clone())
            .execute(&mut *conn)
            .await
            .map_err(db_err)?;
        dyn_query(
            format!(
                "INSERT INTO {table} ({col}, tag_id, position) \
                 SELECT $1, id, $3 FROM tags WHERE name = $2"
            ),
            vec![Arg::I64(owner), Arg::Text(name), Arg::I64(pos as i64)],
        )
        .execute(&mut *conn)
        .await
        .map_err(db_err)?;
    }
    Ok(())
}

/// Tag names of several devices or credentials, in their stored order.
async fn load_tags(
    pool: &sqlx::Pool<Db>,
    kind: Tagged,
    owners: &[i64],
) -> Result<HashMap<i64, Vec<String>>> {
    let mut out: HashMap<i64, Vec<String>> = HashMap::new();
    if owners.is_empty() {
        return Ok(out);
    }
    let (table, col) = (kind.table(), kind.owner());
    let sql = format!(
        "SELECT x.{col} AS owner, t.name AS name FROM {table} x JOIN tags t ON t.id = x.tag_id \
         WHERE {} ORDER BY x.{col}, x.position",
        in_list(&format!("x.{col}"), "$1")
    );
    let rows = dyn_query(sql, vec![Arg::Ids(owners.to_vec())])
        .fetch_all(pool)
        .await
        .map_err(db_err)?;
    for r in &rows {
        out.entry(g::<i64>(r, "owner")?)
            .or_default()
            .push(g::<String>(r, "name")?);
    }
    Ok(out)
}

async fn count(pool: &sqlx::Pool<Db>, sql: String, args: Vec<Arg>) -> Result<u64> {
    let row = dyn_query(sql, args).fetch_one(pool).await.map_err(db_err)?;
    to_u("count", g::<i64>(&row, "n")?)
}

// ---------------------------------------------------------------------------------------------
// Devices

const DEVICE_COLS: &str = "id, hostname, address, port, platform, description, serial, model, \
    credential_id, host_key_policy, legacy_ssh, enabled, created_at, updated_at";

fn device_row(r: &DbRow) -> Result<Device> {
    let policy: String = g(r, "host_key_policy")?;
    Ok(Device {
        id: g(r, "id")?,
        hostname: g(r, "hostname")?,
        address: g(r, "address")?,
        port: to_u("port", g::<i64>(r, "port")?)?,
        platform: g(r, "platform")?,
        tags: Vec::new(),
        description: g(r, "description")?,
        serial: g(r, "serial")?,
        model: g(r, "model")?,
        credential_id: g(r, "credential_id")?,
        host_key_policy: HostKeyPolicy::parse(&policy)
            .ok_or_else(|| Error::internal(format!("unknown host key policy {policy:?}")))?,
        legacy_ssh: g(r, "legacy_ssh")?,
        enabled: g(r, "enabled")?,
        created_at: g_ts(r, "created_at")?,
        updated_at: g_ts(r, "updated_at")?,
    })
}

impl Backend {
    async fn devices_with_tags(&self, rows: Vec<DbRow>) -> Result<Vec<Device>> {
        let mut devices = rows.iter().map(device_row).collect::<Result<Vec<_>>>()?;
        let ids: Vec<i64> = devices.iter().map(|d| d.id).collect();
        let mut tags = load_tags(&self.pool, Tagged::Device, &ids).await?;
        for d in &mut devices {
            d.tags = tags.remove(&d.id).unwrap_or_default();
        }
        Ok(devices)
    }
}

#[async_trait::async_trait]
impl DeviceStore for Backend {
    async fn create_device(&self, device: &Device) -> Result<Device> {
        device.validate()?;
        let now = Utc::now();
        let created = or_now(device.created_at, now);
        let updated = or_now(device.updated_at, created);
        let mut tx = self.begin_write().await?;
        let row = sqlx::query(
            "INSERT INTO devices (hostname, address, port, platform, description, serial, model, \
             credential_id, host_key_policy, legacy_ssh, enabled, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) RETURNING id",
        )
        .bind(device.hostname.clone())
        .bind(device.address.clone())
        .bind(i64::from(device.port))
        .bind(device.platform.clone())
        .bind(device.description.clone())
        .bind(device.serial.clone())
        .bind(device.model.clone())
        .bind(device.credential_id)
        .bind(device.host_key_policy.as_str())
        .bind(device.legacy_ssh)
        .bind(device.enabled)
        .bind(ts(created))
        .bind(ts(updated))
        .fetch_one(&mut *tx)
        .await
        .map_err(db_err)?;
        let id: i64 = g(&row, "id")?;
        set_tags(&mut tx, Tagged::Device, id, &device.tags).await?;
        tx.commit().await.map_err(db_err)?;
        self.get_device(id).await
    }

    async fn get_device(&self, id: DeviceId) -> Result<Device> {
        let row = dyn_query(
            format!("SELECT {DEVICE_COLS} FROM devices WHERE id = $1"),
            vec![Arg::I64(id)],
        )
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?
        .ok_or_else(|| Error::not_found(format!("device {id}")))?;
        self.devices_with_tags(vec![row])
            .await?
            .pop()
            .ok_or_else(|| Error::not_found(format!("device {id}")))
    }

    async fn update_device(&self, device: &Device) -> Result<Device> {
        device.validate()?;
        let updated = or_now(device.updated_at, Utc::now());
        let mut tx = self.begin_write().await?;
        let res = sqlx::query(
            "UPDATE devices SET hostname = $2, address = $3, port = $4, platform = $5, \
             description = $6, serial = $7, model = $8, credential_id = $9, host_key_policy = $10, \
             legacy_ssh = $11, enabled = $12, updated_at = $13 WHERE id = $1",
        )
        .bind(device.id)
        .bind(device.hostname.clone())
        .bind(device.address.clone())
        .bind(i64::from(device.port))
        .bind(device.platform.clone())
        .bind(device.description.clone())
        .bind(device.serial.clone())
        .bind(device.model.clone())
        .bind(device.credential_id)
        .bind(device.host_key_policy.as_str())
        .bind(device.legacy_ssh)
        .bind(device.enabled)
        .bind(ts(updated))
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        if res.rows_affected() == 0 {
            return Err(Error::not_found(format!("device {}", device.id)));
        }
        set_tags(&mut tx, Tagged::Device, device.id, &device.tags).await?;
        tx.commit().await.map_err(db_err)?;
        self.get_device(device.id).await
    }

    async fn delete_device(&self, id: DeviceId) -> Result<()> {
        let res = sqlx::query("DELETE FROM devices WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        if res.rows_affected() == 0 {
            return Err(Error::not_found(format!("device {id}")));
        }
        Ok(())
    }

    async fn list_devices(&self, filter: &DeviceFilter, page: Page) -> Result<Paged<Device>> {
        let mut w = Where::default();
        if let Some(h) = &filter.hostname {
            let p = w.arg(Arg::Text(contains_pattern(h)));
            w.cond(format!("hostname {CI_LIKE} {p} ESCAPE '\\'"));
        }
        if let Some(a) = &filter.address {
            let p = w.arg(Arg::Text(contains_pattern(a)));
            w.cond(format!("address {CI_LIKE} {p} ESCAPE '\\'"));
        }
        if let Some(pl) = &filter.platform {
            let p = w.arg(Arg::Text(pl.clone()));
            w.cond(format!("platform = {p}"));
        }
        if let Some(t) = &filter.tag {
            let p = w.arg(Arg::Text(t.clone()));
            w.cond(format!(
                "EXISTS (SELECT 1 FROM device_tags dt JOIN tags t ON t.id = dt.tag_id \
                 WHERE dt.device_id = devices.id AND t.name = {p})"
            ));
        }
        let total = count(
            &self.pool,
            format!("SELECT COUNT(*) AS n FROM devices{}", w.sql()),
            w.args.clone(),
        )
        .await?;
        let mut sql = format!(
            "SELECT {DEVICE_COLS} FROM devices{} ORDER BY hostname, id",
            w.sql()
        );
        sql.push_str(&page_args(&mut w, page));
        let rows = dyn_query(sql, w.args)
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(Paged::new(self.devices_with_tags(rows).await?, total, page))
    }

    async fn devices_by_ids(&self, ids: &[DeviceId]) -> Result<Vec<Device>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let rows = dyn_query(
            format!(
                "SELECT {DEVICE_COLS} FROM devices WHERE {} ORDER BY id",
                in_list("id", "$1")
            ),
            vec![Arg::Ids(ids.to_vec())],
        )
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        self.devices_with_tags(rows).await
    }

    async fn device_ids_with_tags(&self, tags: &[String]) -> Result<Vec<DeviceId>> {
        if tags.is_empty() {
            return Ok(Vec::new());
        }
        let rows = dyn_query(
            format!(
                "SELECT DISTINCT dt.device_id AS id FROM device_tags dt \
                 JOIN tags t ON t.id = dt.tag_id WHERE {} ORDER BY dt.device_id",
                in_list("t.name", "$1")
            ),
            vec![Arg::Texts(tags.to_vec())],
        )
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        rows.iter().map(|r| g::<i64>(r, "id")).collect()
    }
}

// ---------------------------------------------------------------------------------------------
// Tags

fn tag_row(r: &DbRow) -> Result<Tag> {
    Ok(Tag {
        id: g(r, "id")?,
        name: g(r, "name")?,
        description: g(r, "description")?,
    })
}

#[async_trait::async_trait]
impl TagStore for Backend {
    async fn create_tag(&self, tag: &Tag) -> Result<Tag> {
        validate_name("tag", &tag.name)?;
        let row = sqlx::query(
            "INSERT INTO tags (name, description) VALUES ($1, $2) RETURNING id, name, description",
        )
        .bind(tag.name.clone())
        .bind(tag.description.clone())
        .fetch_one(&self.pool)
        .await
        .map_err(db_err)?;
        tag_row(&row)
    }

    async fn get_tag(&self, id: TagId) -> Result<Tag> {
        let row = sqlx::query("SELECT id, name, description FROM tags WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?
            .ok_or_else(|| Error::not_found(format!("tag {id}")))?;
        tag_row(&row)
    }

    async fn update_tag(&self, tag: &Tag) -> Result<Tag> {
        validate_name("tag", &tag.name)?;
        let row = sqlx::query(
            "UPDATE tags SET name = $2, description = $3 WHERE id = $1 \
             RETURNING id, name, description",
        )
        .bind(tag.id)
        .bind(tag.name.clone())
        .bind(tag.description.clone())
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?
        .ok_or_else(|| Error::not_found(format!("tag {}", tag.id)))?;
        tag_row(&row)
    }

    async fn delete_tag(&self, id: TagId) -> Result<()> {
        let res = sqlx::query("DELETE FROM tags WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        if res.rows_affected() == 0 {
            return Err(Error::not_found(format!("tag {id}")));
        }
        Ok(())
    }

    async fn list_tags(&self, page: Page) -> Result<Paged<Tag>> {
        let total = count(&self.pool, "SELECT COUNT(*) AS n FROM tags".into(), vec![]).await?;
        let mut w = Where::default();
        let sql = format!(
            "SELECT id, name, description FROM tags ORDER BY name, id{}",
            page_args(&mut w, page)
        );
        let rows = dyn_query(sql, w.args)
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)?;
        let items = rows.iter().map(tag_row).collect::<Result<Vec<_>>>()?;
        Ok(Paged::new(items, total, page))
    }
}

// ---------------------------------------------------------------------------------------------
// Credentials

const CRED_COLS: &str = "id, name, username, password_enc, enable_secret_enc, priority, \
    description, success_count, failure_count, last_used, created_at";

fn password_aad(id: i64) -> String {
    format!("credential:{id}:password")
}

fn enable_aad(id: i64) -> String {
    format!("credential:{id}:enable_secret")
}

/// Ciphertexts of a credential's secrets for row `id`.
fn encrypt_secrets(
    cipher: &dyn SecretCipher,
    id: i64,
    password: &Secret,
    enable: Option<&Secret>,
) -> Result<(String, Option<String>)> {
    let p = cipher.encrypt(password, password_aad(id).as_bytes())?;
    let e = enable
        .map(|s| cipher.encrypt(s, enable_aad(id).as_bytes()))
        .transpose()?;
    Ok((p, e))
}

impl Backend {
    fn credential_row(&self, r: &DbRow) -> Result<Credential> {
        let id: i64 = g(r, "id")?;
        let password_enc: String = g(r, "password_enc")?;
        let enable_enc: Option<String> = g(r, "enable_secret_enc")?;
        let password = self
            .cipher
            .decrypt(&password_enc, password_aad(id).as_bytes())
            .map_err(|e| e.context(format!("credential {id} password")))?;
        let enable_secret = enable_enc
            .map(|c| {
                self.cipher
                    .decrypt(&c, enable_aad(id).as_bytes())
                    .map_err(|e| e.context(format!("credential {id} enable secret")))
            })
            .transpose()?;
        Ok(Credential {
            id,
            name: g(r, "name")?,
            username: g(r, "username")?,
            password,
            enable_secret,
            priority: i32::try_from(g::<i64>(r, "priority")?)
                .map_err(|_| Error::internal("priority out of range"))?,
            tags: Vec::new(),
            description: g(r, "description")?,
            success_count: to_u("success_count", g::<i64>(r, "success_count")?)?,
            failure_count: to_u("failure_count", g::<i64>(r, "failure_count")?)?,
            last_used: g_ots(r, "last_used")?,
            created_at: g_ts(r, "created_at")?,
        })
    }

    async fn credentials_with_tags(&self, rows: Vec<DbRow>) -> Result<Vec<Credential>> {
        let mut creds = rows
            .iter()
            .map(|r| self.credential_row(r))
            .collect::<Result<Vec<_>>>()?;
        let ids: Vec<i64> = creds.iter().map(|c| c.id).collect();
        let mut tags = load_tags(&self.pool, Tagged::Credential, &ids).await?;
        for c in &mut creds {
            c.tags = tags.remove(&c.id).unwrap_or_default();
        }
        Ok(creds)
    }

    /// Re-encrypts every credential secret with `new_cipher` (key rotation), in one
    /// transaction. Values are decrypted with the store's cipher, or with `new_cipher` when they
    /// were already rotated (so an interrupted rotation can be run again). Returns the number of
    /// credentials rewritten. Afterwards, reopen the store with `new_cipher` (or a keyring whose
    /// current key is the new one).
    pub async fn reencrypt_credentials(&self, new_cipher: &dyn SecretCipher) -> Result<u64> {
        let mut tx = self.begin_write().await?;
        let rows =
            sqlx::query("SELECT id, password_enc, enable_secret_enc FROM credentials ORDER BY id")
                .fetch_all(&mut *tx)
                .await
                .map_err(db_err)?;
        let mut n = 0u64;
        for r in &rows {
            let id: i64 = g(r, "id")?;
            let open = |stored: &str, aad: &str| -> Result<Secret> {
                self.cipher
                    .decrypt(stored, aad.as_bytes())
                    .or_else(|first| {
                        new_cipher
                            .decrypt(stored, aad.as_bytes())
                            .map_err(|_| first)
                    })
                    .map_err(|e| e.context(format!("credential {id}")))
            };
            let password = open(&g::<String>(r, "password_enc")?, &password_aad(id))?;
            let enable = g::<Option<String>>(r, "enable_secret_enc")?
                .map(|c| open(&c, &enable_aad(id)))
                .transpose()?;
            let (p, e) = encrypt_secrets(new_cipher, id, &password, enable.as_ref())?;
            sqlx::query(
                "UPDATE credentials SET password_enc = $2, enable_secret_enc = $3 WHERE id = $1",
            )
            .bind(id)
            .bind(p)
            .bind(e)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
            n += 1;
        }
        tx.commit().await.map_err(db_err)?;
        tracing::info!(credentials = n, key_id = %new_cipher.current_key_id(), "re-encrypted credentials");
        Ok(n)
    }
}

#[async_trait::async_trait]
impl CredentialStore for Backend {
    async fn create_credential(&self, cred: &Credential) -> Result<Credential> {
        validate_name("name", &cred.name)?;
        let created = or_now(cred.created_at, Utc::now());
        let mut tx = self.begin_write().await?;
        let row = sqlx::query(
            "INSERT INTO credentials (name, username, password_enc, priority, description, \
             created_at) VALUES ($1, $2, '', $3, $4, $5) RETURNING id",
        )
        .bind(cred.name.clone())
        .bind(cred.username.clone())
        .bind(i64::from(cred.priority))
        .bind(cred.description.clone())
        .bind(ts(created))
        .fetch_one(&mut *tx)
        .await
        .map_err(db_err)?;
        let id: i64 = g(&row, "id")?;
        let (p, e) = encrypt_secrets(
            self.cipher.as_ref(),
            id,
            &cred.password,
            cred.enable_secret.as_ref(),
        )?;
        sqlx::query(
            "UPDATE credentials SET password_enc = $2, enable_secret_enc = $3 WHERE id = $1",
        )
        .bind(id)
        .bind(p)
        .bind(e)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        set_tags(&mut tx, Tagged::Credential, id, &cred.tags).await?;
        tx.commit().await.map_err(db_err)?;
        self.get_credential(id).await
    }

    async fn get_credential(&self, id: CredentialId) -> Result<Credential> {
        let row = dyn_query(
            format!("SELECT {CRED_COLS} FROM credentials WHERE id = $1"),
            vec![Arg::I64(id)],
        )
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?
        .ok_or_else(|| Error::not_found(format!("credential {id}")))?;
        self.credentials_with_tags(vec![row])
            .await?
            .pop()
            .ok_or_else(|| Error::not_found(format!("credential {id}")))
    }

    async fn update_credential(&self, cred: &Credential) -> Result<Credential> {
        validate_name("name", &cred.name)?;
        let (p, e) = encrypt_secrets(
            self.cipher.as_ref(),
            cred.id,
            &cred.password,
            cred.enable_secret.as_ref(),
        )?;
        let mut tx = self.begin_write().await?;
        let res = sqlx::query(
            "UPDATE credentials SET name = $2, username = $3, password_enc = $4, \
             enable_secret_enc = $5, priority = $6, description = $7 WHERE id = $1",
        )
        .bind(cred.id)
        .bind(cred.name.clone())
        .bind(cred.username.clone())
        .bind(p)
        .bind(e)
        .bind(i64::from(cred.priority))
        .bind(cred.description.clone())
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        if res.rows_affected() == 0 {
            return Err(Error::not_found(format!("credential {}", cred.id)));
        }
        set_tags(&mut tx, Tagged::Credential, cred.id, &cred.tags).await?;
        tx.commit().await.map_err(db_err)?;
        self.get_credential(cred.id).await
    }

    async fn delete_credential(&self, id: CredentialId) -> Result<()> {
        let res = sqlx::query("DELETE FROM credentials WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        if res.rows_affected() == 0 {
            return Err(Error::not_found(format!("credential {id}")));
        }
        Ok(())
    }

    async fn list_credentials(&self, page: Page) -> Result<Paged<Credential>> {
        let total = count(
            &self.pool,
            "SELECT COUNT(*) AS n FROM credentials".into(),
            vec![],
        )
        .await?;
        let mut w = Where::default();
        let sql = format!(
            "SELECT {CRED_COLS} FROM credentials ORDER BY priority, name, id{}",
            page_args(&mut w, page)
        );
        let rows = dyn_query(sql, w.args)
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(Paged::new(
            self.credentials_with_tags(rows).await?,
            total,
            page,
        ))
    }

    async fn all_credentials(&self) -> Result<Vec<Credential>> {
        let rows = dyn_query(
            format!("SELECT {CRED_COLS} FROM credentials ORDER BY priority, name, id"),
            vec![],
        )
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        self.credentials_with_tags(rows).await
    }

    async fn record_credential_use(
        &self,
        id: CredentialId,
        success: bool,
        at: DateTime<Utc>,
    ) -> Result<()> {
        let res = sqlx::query(
            "UPDATE credentials SET success_count = success_count + $2, \
             failure_count = failure_count + $3, last_used = $4 WHERE id = $1",
        )
        .bind(id)
        .bind(i64::from(success))
        .bind(i64::from(!success))
        .bind(ts(at))
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        if res.rows_affected() == 0 {
            return Err(Error::not_found(format!("credential {id}")));
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Jobs

const JOB_COLS: &str = "id, name, description, kind, targets, schedule, enabled, overlap, missed, \
    system, created_at, updated_at";

fn schedule_type(s: &Schedule) -> &'static str {
    match s {
        Schedule::Manual => "manual",
        Schedule::Interval { .. } => "interval",
        Schedule::Cron { .. } => "cron",
        Schedule::Once { .. } => "once",
    }
}

fn job_row(r: &DbRow) -> Result<Job> {
    Ok(Job {
        id: g(r, "id")?,
        name: g(r, "name")?,
        description: g(r, "description")?,
        kind: from_json("job kind", &g::<String>(r, "kind")?)?,
        targets: from_json("job targets", &g::<String>(r, "targets")?)?,
        schedule: from_json("job schedule", &g::<String>(r, "schedule")?)?,
        enabled: g(r, "enabled")?,
        overlap: parse_enum("overlap policy", &g::<String>(r, "overlap")?)?,
        missed: parse_enum("missed policy", &g::<String>(r, "missed")?)?,
        system: g(r, "system")?,
        created_at: g_ts(r, "created_at")?,
        updated_at: g_ts(r, "updated_at")?,
    })
}

#[async_trait::async_trait]
impl JobStore for Backend {
    async fn create_job(&self, job: &Job) -> Result<Job> {
        job.validate()?;
        let now = Utc::now();
        let created = or_now(job.created_at, now);
        let updated = or_now(job.updated_at, created);
        let row = dyn_query(
            format!(
                "INSERT INTO jobs (name, description, kind, targets, schedule, schedule_type, \
                 enabled, overlap, missed, system, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING {JOB_COLS}"
            ),
            vec![],
        )
        .bind(job.name.clone())
        .bind(job.description.clone())
        .bind(to_json(&job.kind)?)
        .bind(to_json(&job.targets)?)
        .bind(to_json(&job.schedule)?)
        .bind(schedule_type(&job.schedule))
        .bind(job.enabled)
        .bind(enum_name(&job.overlap)?)
        .bind(enum_name(&job.missed)?)
        .bind(job.system)
        .bind(ts(created))
        .bind(ts(updated))
        .fetch_one(&self.pool)
        .await
        .map_err(db_err)?;
        job_row(&row)
    }

    async fn get_job(&self, id: JobId) -> Result<Job> {
        let row = dyn_query(
            format!("SELECT {JOB_COLS} FROM jobs WHERE id = $1"),
            vec![Arg::I64(id)],
        )
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?
        .ok_or_else(|| Error::not_found(format!("job {id}")))?;
        job_row(&row)
    }

    async fn update_job(&self, job: &Job) -> Result<Job> {
        job.validate()?;
        let updated = or_now(job.updated_at, Utc::now());
        let row = dyn_query(
            format!(
                "UPDATE jobs SET name = $2, description = $3, kind = $4, targets = $5, \
                 schedule = $6, schedule_type = $7, enabled = $8, overlap = $9, missed = $10, \
                 system = $11, updated_at = $12 WHERE id = $1 RETURNING {JOB_COLS}"
            ),
            vec![],
        )
        .bind(job.id)
        .bind(job.name.clone())
        .bind(job.description.clone())
        .bind(to_json(&job.kind)?)
        .bind(to_json(&job.targets)?)
        .bind(to_json(&job.schedule)?)
        .bind(schedule_type(&job.schedule))
        .bind(job.enabled)
        .bind(enum_name(&job.overlap)?)
        .bind(enum_name(&job.missed)?)
        .bind(job.system)
        .bind(ts(updated))
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?
        .ok_or_else(|| Error::not_found(format!("job {}", job.id)))?;
        job_row(&row)
    }

    async fn delete_job(&self, id: JobId) -> Result<()> {
        let res = sqlx::query("DELETE FROM jobs WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        if res.rows_affected() == 0 {
            return Err(Error::not_found(format!("job {id}")));
        }
        Ok(())
    }

    async fn list_jobs(&self, filter: &JobFilter, page: Page) -> Result<Paged<Job>> {
        let mut w = Where::default();
        if let Some(n) = &filter.name {
            let p = w.arg(Arg::Text(contains_pattern(n)));
            w.cond(format!("name {CI_LIKE} {p} ESCAPE '\\'"));
        }
        if let Some(e) = filter.enabled {
            let p = w.arg(Arg::Bool(e));
            w.cond(format!("enabled = {p}"));
        }
        let total = count(
            &self.pool,
            format!("SELECT COUNT(*) AS n FROM jobs{}", w.sql()),
            w.args.clone(),
        )
        .await?;
        let mut sql = format!("SELECT {JOB_COLS} FROM jobs{} ORDER BY name, id", w.sql());
        sql.push_str(&page_args(&mut w, page));
        let rows = dyn_query(sql, w.args)
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)?;
        let items = rows.iter().map(job_row).collect::<Result<Vec<_>>>()?;
        Ok(Paged::new(items, total, page))
    }

    async fn scheduled_jobs(&self) -> Result<Vec<Job>> {
        let rows = dyn_query(
            format!(
                "SELECT {JOB_COLS} FROM jobs WHERE enabled = $1 AND schedule_type <> 'manual' \
                 ORDER BY id"
            ),
            vec![Arg::Bool(true)],
        )
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        rows.iter().map(job_row).collect()
    }
}

// ---------------------------------------------------------------------------------------------
// Runs

const RUN_COLS: &str = "id, job_id, trigger_kind, fire_time, status, queued_at, started_at, \
    finished_at, total, succeeded, failed, changed, unchanged, idempotency_key, message";

fn counts_row(r: &DbRow) -> Result<RunCounts> {
    Ok(RunCounts {
        total: to_u("total", g::<i64>(r, "total")?)?,
        succeeded: to_u("succeeded", g::<i64>(r, "succeeded")?)?,
        failed: to_u("failed", g::<i64>(r, "failed")?)?,
        changed: to_u("changed", g::<i64>(r, "changed")?)?,
        unchanged: to_u("unchanged", g::<i64>(r, "unchanged")?)?,
    })
}

fn run_row(r: &DbRow) -> Result<Run> {
    let trigger: String = g(r, "trigger_kind")?;
    let status: String = g(r, "status")?;
    Ok(Run {
        id: g(r, "id")?,
        job_id: g(r, "job_id")?,
        trigger: Trigger::parse(&trigger)
            .ok_or_else(|| Error::internal(format!("unknown trigger {trigger:?}")))?,
        fire_time: g_ots(r, "fire_time")?,
        status: RunStatus::parse(&status)
            .ok_or_else(|| Error::internal(format!("unknown run status {status:?}")))?,
        queued_at: g_ts(r, "queued_at")?,
        started_at: g_ots(r, "started_at")?,
        finished_at: g_ots(r, "finished_at")?,
        counts: counts_row(r)?,
        idempotency_key: g(r, "idempotency_key")?,
        message: g(r, "message")?,
    })
}

#[async_trait::async_trait]
impl RunStore for Backend {
    async fn create_run(&self, run: &NewRun) -> Result<CreatedRun> {
        let finished = if run.status.is_final() {
            Some(ts(run.queued_at))
        } else {
            None
        };
        let inserted = dyn_query(
            format!(
                "INSERT INTO runs (job_id, trigger_kind, fire_time, status, queued_at, \
                 finished_at, idempotency_key, message) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
                 ON CONFLICT DO NOTHING RETURNING {RUN_COLS}"
            ),
            vec![],
        )
        .bind(run.job_id)
        .bind(run.trigger.as_str())
        .bind(run.fire_time.map(ts))
        .bind(run.status.as_str())
        .bind(ts(run.queued_at))
        .bind(finished)
        .bind(run.idempotency_key.clone())
        .bind(run.message.clone())
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?;
        if let Some(row) = inserted {
            return Ok(CreatedRun {
                run: run_row(&row)?,
                created: true,
            });
        }
        let existing = dyn_query(
            format!(
                "SELECT {RUN_COLS} FROM runs WHERE job_id = $1 \
                 AND (fire_time = $2 OR idempotency_key = $3) ORDER BY id LIMIT 1"
            ),
            vec![],
        )
        .bind(run.job_id)
        .bind(run.fire_time.map(ts))
        .bind(run.idempotency_key.clone())
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?
        .ok_or_else(|| Error::conflict("run conflicts with an existing run"))?;
        Ok(CreatedRun {
            run: run_row(&existing)?,
            created: false,
        })
    }

    async fn get_run(&self, id: RunId) -> Result<Run> {
        let row = dyn_query(
            format!("SELECT {RUN_COLS} FROM runs WHERE id = $1"),
            vec![Arg::I64(id)],
        )
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?
        .ok_or_else(|| Error::not_found(format!("run {id}")))?;
        run_row(&row)
    }

    async fn list_runs(&self, filter: &RunFilter, page: Page) -> Result<Paged<Run>> {
        let mut w = Where::default();
        if let Some(j) = filter.job_id {
            let p = w.arg(Arg::I64(j));
            w.cond(format!("job_id = {p}"));
        }
        if !filter.statuses.is_empty() {
            let ps: Vec<String> = filter
                .statuses
                .iter()
                .map(|s| w.arg(Arg::Text(s.as_str().to_string())))
                .collect();
            w.cond(format!("status IN ({})", ps.join(", ")));
        }
        if let Some(s) = filter.since {
            let p = w.arg(Arg::Ts(s));
            w.cond(format!("queued_at >= {p}"));
        }
        if let Some(u) = filter.until {
            let p = w.arg(Arg::Ts(u));
            w.cond(format!("queued_at < {p}"));
        }
        let total = count(
            &self.pool,
            format!("SELECT COUNT(*) AS n FROM runs{}", w.sql()),
            w.args.clone(),
        )
        .await?;
        let mut sql = format!(
            "SELECT {RUN_COLS} FROM runs{} ORDER BY queued_at DESC, id DESC",
            w.sql()
        );
        sql.push_str(&page_args(&mut w, page));
        let rows = dyn_query(sql, w.args)
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)?;
        let items = rows.iter().map(run_row).collect::<Result<Vec<_>>>()?;
        Ok(Paged::new(items, total, page))
    }

    async fn start_run(&self, id: RunId, devices: &[DeviceId], at: DateTime<Utc>) -> Result<Run> {
        let mut ids = devices.to_vec();
        ids.sort_unstable();
        ids.dedup();
        let mut tx = self.begin_write().await?;
        let res = sqlx::query(
            "UPDATE runs SET status = 'RUNNING', started_at = $2, total = $3 \
             WHERE id = $1 AND status = 'QUEUED'",
        )
        .bind(id)
        .bind(ts(at))
        .bind(ids.len() as i64)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        if res.rows_affected() == 1 {
            for chunk in ids.chunks(500) {
                let mut sql = String::from("INSERT INTO run_devices (run_id, device_id) VALUES ");
                let mut args = vec![Arg::I64(id)];
                for (i, d) in chunk.iter().enumerate() {
                    if i > 0 {
                        sql.push_str(", ");
                    }
                    args.push(Arg::I64(*d));
                    sql.push_str(&format!("($1, ${})", args.len()));
                }
                sql.push_str(" ON CONFLICT DO NOTHING");
                dyn_query(sql, args)
                    .execute(&mut *tx)
                    .await
                    .map_err(db_err)?;
            }
        }
        let row = dyn_query(
            format!("SELECT {RUN_COLS} FROM runs WHERE id = $1"),
            vec![Arg::I64(id)],
        )
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_err)?
        .ok_or_else(|| Error::not_found(format!("run {id}")))?;
        let run = run_row(&row)?;
        tx.commit().await.map_err(db_err)?;
        Ok(run)
    }

    async fn run_device_ids(&self, id: RunId) -> Result<Vec<DeviceId>> {
        let rows =
            sqlx::query("SELECT device_id FROM run_devices WHERE run_id = $1 ORDER BY device_id")
                .bind(id)
                .fetch_all(&self.pool)
                .await
                .map_err(db_err)?;
        rows.iter().map(|r| g::<i64>(r, "device_id")).collect()
    }

    async fn pending_device_ids(&self, id: RunId) -> Result<Vec<DeviceId>> {
        let rows = sqlx::query(
            "SELECT rd.device_id AS device_id FROM run_devices rd WHERE rd.run_id = $1 \
             AND NOT EXISTS (SELECT 1 FROM device_results r \
                             WHERE r.run_id = rd.run_id AND r.device_id = rd.device_id) \
             ORDER BY rd.device_id",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        rows.iter().map(|r| g::<i64>(r, "device_id")).collect()
    }

    async fn finish_run(
        &self,
        id: RunId,
        status: RunStatus,
        at: DateTime<Utc>,
        message: Option<&str>,
    ) -> Result<bool> {
        if !status.is_final() {
            return Err(Error::invalid(format!(
                "{} is not a final run status",
                status.as_str()
            )));
        }
        let res = sqlx::query(
            "UPDATE runs SET status = $2, finished_at = $3, message = COALESCE($4, message) \
             WHERE id = $1 AND status IN ('QUEUED', 'RUNNING')",
        )
        .bind(id)
        .bind(status.as_str())
        .bind(ts(at))
        .bind(message.map(str::to_string))
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        if res.rows_affected() > 0 {
            return Ok(true);
        }
        self.get_run(id).await.map(|_| false)
    }

    async fn active_runs(&self) -> Result<Vec<Run>> {
        let rows = dyn_query(
            format!(
                "SELECT {RUN_COLS} FROM runs WHERE status IN ('QUEUED', 'RUNNING') ORDER BY id"
            ),
            vec![],
        )
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        rows.iter().map(run_row).collect()
    }

    async fn job_has_active_run(&self, job_id: JobId) -> Result<bool> {
        let row = sqlx::query(
            "SELECT id FROM runs WHERE job_id = $1 AND status IN ('QUEUED', 'RUNNING') LIMIT 1",
        )
        .bind(job_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(row.is_some())
    }

    async fn last_fire_time(&self, job_id: JobId) -> Result<Option<DateTime<Utc>>> {
        let row = sqlx::query(
            "SELECT fire_time FROM runs WHERE job_id = $1 AND fire_time IS NOT NULL \
             ORDER BY fire_time DESC LIMIT 1",
        )
        .bind(job_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?;
        match row {
            Some(r) => g_ots(&r, "fire_time"),
            None => Ok(None),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Device results

const RESULT_COLS: &str = "id, run_id, job_id, device_id, status, error_kind, message, \
    duration_ms, credential_id, snapshot_id, changed, output, attempt, started_at, finished_at";

fn result_row(r: &DbRow) -> Result<DeviceResult> {
    let status: String = g(r, "status")?;
    let kind: Option<String> = g(r, "error_kind")?;
    Ok(DeviceResult {
        id: g(r, "id")?,
        run_id: g(r, "run_id")?,
        job_id: g(r, "job_id")?,
        device_id: g(r, "device_id")?,
        status: DeviceStatus::parse(&status)
            .ok_or_else(|| Error::internal(format!("unknown device status {status:?}")))?,
        error_kind: kind
            .map(|k| {
                netraven_core::ErrorKind::parse(&k)
                    .ok_or_else(|| Error::internal(format!("unknown error kind {k:?}")))
            })
            .transpose()?,
        message: g(r, "message")?,
        duration_ms: to_u("duration_ms", g::<i64>(r, "duration_ms")?)?,
        credential_id: g(r, "credential_id")?,
        snapshot_id: g(r, "snapshot_id")?,
        changed: g(r, "changed")?,
        output: g(r, "output")?,
        attempt: to_u("attempt", g::<i64>(r, "attempt")?)?,
        started_at: g_ts(r, "started_at")?,
        finished_at: g_ts(r, "finished_at")?,
    })
}

#[async_trait::async_trait]
impl ResultStore for Backend {
    async fn record_result(&self, result: &DeviceResult) -> Result<RecordOutcome> {
        let mut delta = RunCounts::default();
        delta.add(result);
        let mut tx = self.begin_write().await?;
        let inserted = sqlx::query(
            "INSERT INTO device_results (run_id, job_id, device_id, status, error_kind, message, \
             duration_ms, credential_id, snapshot_id, changed, output, attempt, started_at, \
             finished_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) \
             ON CONFLICT (run_id, device_id) DO NOTHING RETURNING id",
        )
        .bind(result.run_id)
        .bind(result.job_id)
        .bind(result.device_id)
        .bind(result.status.as_str())
        .bind(result.error_kind.map(|k| k.as_str()))
        .bind(result.message.clone())
        .bind(to_i("duration_ms", result.duration_ms)?)
        .bind(result.credential_id)
        .bind(result.snapshot_id)
        .bind(result.changed)
        .bind(result.output.clone())
        .bind(i64::from(result.attempt))
        .bind(ts(result.started_at))
        .bind(ts(result.finished_at))
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_err)?
        .is_some();
        let row = if inserted {
            sqlx::query(
                "UPDATE runs SET succeeded = succeeded + $2, failed = failed + $3, \
                 changed = changed + $4, unchanged = unchanged + $5 WHERE id = $1 \
                 RETURNING total, succeeded, failed, changed, unchanged",
            )
            .bind(result.run_id)
            .bind(i64::from(delta.succeeded))
            .bind(i64::from(delta.failed))
            .bind(i64::from(delta.changed))
            .bind(i64::from(delta.unchanged))
            .fetch_optional(&mut *tx)
            .await
            .map_err(db_err)?
        } else {
            sqlx::query(
                "SELECT total, succeeded, failed, changed, unchanged FROM runs WHERE id = $1",
            )
            .bind(result.run_id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db_err)?
        };
        // A missing run rolls the insert back (the transaction is dropped uncommitted).
        let row = row.ok_or_else(|| Error::not_found(format!("run {}", result.run_id)))?;
        let counts = counts_row(&row)?;
        tx.commit().await.map_err(db_err)?;
        Ok(RecordOutcome { inserted, counts })
    }

    async fn get_result(&self, run: RunId, device: DeviceId) -> Result<Option<DeviceResult>> {
        let row = dyn_query(
            format!(
                "SELECT {RESULT_COLS} FROM device_results WHERE run_id = $1 AND device_id = $2"
            ),
            vec![Arg::I64(run), Arg::I64(device)],
        )
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?;
        row.as_ref().map(result_row).transpose()
    }

    async fn list_results(&self, filter: &ResultFilter, page: Page) -> Result<Paged<DeviceResult>> {
        let mut w = Where::default();
        if let Some(v) = filter.run_id {
            let p = w.arg(Arg::I64(v));
            w.cond(format!("run_id = {p}"));
        }
        if let Some(v) = filter.job_id {
            let p = w.arg(Arg::I64(v));
            w.cond(format!("job_id = {p}"));
        }
        if let Some(v) = filter.device_id {
            let p = w.arg(Arg::I64(v));
            w.cond(format!("device_id = {p}"));
        }
        if let Some(v) = filter.status {
            let p = w.arg(Arg::Text(v.as_str().to_string()));
            w.cond(format!("status = {p}"));
        }
        if let Some(v) = filter.since {
            let p = w.arg(Arg::Ts(v));
            w.cond(format!("finished_at >= {p}"));
        }
        if let Some(v) = filter.until {
            let p = w.arg(Arg::Ts(v));
            w.cond(format!("finished_at < {p}"));
        }
        let total = count(
            &self.pool,
            format!("SELECT COUNT(*) AS n FROM device_results{}", w.sql()),
            w.args.clone(),
        )
        .await?;
        let mut sql = format!(
            "SELECT {RESULT_COLS} FROM device_results{} ORDER BY finished_at DESC, id DESC",
            w.sql()
        );
        sql.push_str(&page_args(&mut w, page));
        let rows = dyn_query(sql, w.args)
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)?;
        let items = rows.iter().map(result_row).collect::<Result<Vec<_>>>()?;
        Ok(Paged::new(items, total, page))
    }
}

// ---------------------------------------------------------------------------------------------
// Logs

const LOG_COLS: &str = "id, time, level, kind, run_id, job_id, device_id, source, message, fields";

fn log_row(r: &DbRow) -> Result<LogEntry> {
    let kind: String = g(r, "kind")?;
    let fields: Option<String> = g(r, "fields")?;
    Ok(LogEntry {
        id: g(r, "id")?,
        time: g_ts(r, "time")?,
        level: level_from_num(g::<i64>(r, "level")?)?,
        kind: LogKind::parse(&kind)
            .ok_or_else(|| Error::internal(format!("unknown log kind {kind:?}")))?,
        run_id: g(r, "run_id")?,
        job_id: g(r, "job_id")?,
        device_id: g(r, "device_id")?,
        source: g(r, "source")?,
        message: g(r, "message")?,
        fields: match fields {
            Some(f) => from_json("log fields", &f)?,
            None => serde_json::Value::Null,
        },
    })
}

/// Rows per multi-row INSERT when appending logs.
const LOG_INSERT_CHUNK: usize = 500;

#[async_trait::async_trait]
impl LogStore for Backend {
    async fn append_logs(&self, entries: &[LogEntry]) -> Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let mut tx = self.begin_write().await?;
        for chunk in entries.chunks(LOG_INSERT_CHUNK) {
            let mut sql = String::from(
                "INSERT INTO logs (time, level, kind, run_id, job_id, device_id, source, message, \
                 fields) VALUES ",
            );
            let mut args = Vec::with_capacity(chunk.len() * 9);
            for (i, e) in chunk.iter().enumerate() {
                if i > 0 {
                    sql.push_str(", ");
                }
                let base = args.len();
                sql.push('(');
                for k in 1..=9 {
                    if k > 1 {
                        sql.push_str(", ");
                    }
                    sql.push_str(&format!("${}", base + k));
                }
                sql.push(')');
                args.push(Arg::Ts(e.time));
                args.push(Arg::I64(level_num(e.level)));
                args.push(Arg::Text(e.kind.as_str().to_string()));
                args.push(Arg::OptI64(e.run_id));
                args.push(Arg::OptI64(e.job_id));
                args.push(Arg::OptI64(e.device_id));
                args.push(Arg::Text(e.source.clone()));
                args.push(Arg::Text(e.message.clone()));
                args.push(Arg::OptText(if e.fields.is_null() {
                    None
                } else {
                    Some(to_json(&e.fields)?)
                }));
            }
            dyn_query(sql, args)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
        }
        tx.commit().await.map_err(db_err)?;
        Ok(())
    }

    async fn list_logs(&self, filter: &LogFilter, page: Page) -> Result<Paged<LogEntry>> {
        let mut w = Where::default();
        if let Some(v) = filter.run_id {
            let p = w.arg(Arg::I64(v));
            w.cond(format!("run_id = {p}"));
        }
        if let Some(v) = filter.job_id {
            let p = w.arg(Arg::I64(v));
            w.cond(format!("job_id = {p}"));
        }
        if let Some(v) = filter.device_id {
            let p = w.arg(Arg::I64(v));
            w.cond(format!("device_id = {p}"));
        }
        if let Some(v) = filter.min_level {
            let p = w.arg(Arg::I64(level_num(v)));
            w.cond(format!("level >= {p}"));
        }
        if let Some(v) = filter.kind {
            let p = w.arg(Arg::Text(v.as_str().to_string()));
            w.cond(format!("kind = {p}"));
        }
        if let Some(v) = &filter.source {
            let p = w.arg(Arg::Text(v.clone()));
            w.cond(format!("source = {p}"));
        }
        if let Some(v) = filter.since {
            let p = w.arg(Arg::Ts(v));
            w.cond(format!("time >= {p}"));
        }
        if let Some(v) = filter.until {
            let p = w.arg(Arg::Ts(v));
            w.cond(format!("time < {p}"));
        }
        if let Some(v) = &filter.search {
            let p = w.arg(Arg::Text(contains_pattern(v)));
            w.cond(format!("message {CI_LIKE} {p} ESCAPE '\\'"));
        }
        if let Some(v) = filter.after_id {
            let p = w.arg(Arg::I64(v));
            w.cond(format!("id > {p}"));
        }
        let total = count(
            &self.pool,
            format!("SELECT COUNT(*) AS n FROM logs{}", w.sql()),
            w.args.clone(),
        )
        .await?;
        let dir = match filter.order {
            Order::Asc => "ASC",
            Order::Desc => "DESC",
        };
        let mut sql = format!(
            "SELECT {LOG_COLS} FROM logs{} ORDER BY time {dir}, id {dir}",
            w.sql()
        );
        sql.push_str(&page_args(&mut w, page));
        let rows = dyn_query(sql, w.args)
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)?;
        let items = rows.iter().map(log_row).collect::<Result<Vec<_>>>()?;
        Ok(Paged::new(items, total, page))
    }

    async fn prune_logs(&self, before: DateTime<Utc>, batch: u32) -> Result<u64> {
        let batch = if batch == 0 {
            DEFAULT_PRUNE_BATCH
        } else {
            batch
        };
        let mut deleted = 0u64;
        loop {
            let res = sqlx::query(
                "DELETE FROM logs WHERE id IN \
                 (SELECT id FROM logs WHERE time < $1 ORDER BY time, id LIMIT $2)",
            )
            .bind(ts(before))
            .bind(i64::from(batch))
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
            deleted += res.rows_affected();
            if res.rows_affected() < u64::from(batch) {
                break;
            }
        }
        if deleted > 0 {
            tracing::info!(deleted, before = %before, "pruned old log entries");
        }
        Ok(deleted)
    }
}

// ---------------------------------------------------------------------------------------------
// Snapshots

const SNAP_COLS: &str = "s.id AS id, s.device_id AS device_id, s.hostname AS hostname, s.run_id AS run_id, \
     s.hash AS hash, s.size AS size, s.created_at AS created_at, s.commit_id AS commit_id";

/// The latest-snapshot index entry, read from `snapshot_latest l` without a join.
const LATEST_COLS: &str = "l.snapshot_id AS id, l.device_id AS device_id, l.hostname AS hostname, \
     l.run_id AS run_id, l.hash AS hash, l.size AS size, l.created_at AS created_at, \
     l.commit_id AS commit_id";

fn snap_meta_row(r: &DbRow) -> Result<SnapshotMeta> {
    Ok(SnapshotMeta {
        id: g(r, "id")?,
        device_id: g(r, "device_id")?,
        hostname: g(r, "hostname")?,
        run_id: g(r, "run_id")?,
        hash: g(r, "hash")?,
        size: to_u("size", g::<i64>(r, "size")?)?,
        created_at: g_ts(r, "created_at")?,
        commit_id: g(r, "commit_id")?,
    })
}

fn snap_row(r: &DbRow) -> Result<Snapshot> {
    Ok(Snapshot {
        meta: snap_meta_row(r)?,
        content: g(r, "content")?,
    })
}

#[async_trait::async_trait]
impl SnapshotStore for Backend {
    async fn insert_snapshot(&self, snapshot: &Snapshot) -> Result<SnapshotMeta> {
        let m = &snapshot.meta;
        let hash = if m.hash.is_empty() {
            content_hash(&snapshot.content)
        } else {
            m.hash.clone()
        };
        let created = or_now(m.created_at, Utc::now());
        let mut tx = self.begin_write().await?;
        let row = sqlx::query(
            "INSERT INTO snapshots (device_id, hostname, run_id, hash, size, created_at, commit_id) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
        )
        .bind(m.device_id)
        .bind(m.hostname.clone())
        .bind(m.run_id)
        .bind(hash.clone())
        .bind(snapshot.content.len() as i64)
        .bind(ts(created))
        .bind(m.commit_id.clone())
        .fetch_one(&mut *tx)
        .await
        .map_err(db_err)?;
        let id: i64 = g(&row, "id")?;
        sqlx::query("INSERT INTO snapshot_contents (snapshot_id, content) VALUES ($1, $2)")
            .bind(id)
            .bind(snapshot.content.clone())
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        sqlx::query(
            "INSERT INTO snapshot_latest (device_id, snapshot_id, created_at, hostname, run_id, \
             hash, size, commit_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
             ON CONFLICT (device_id) DO UPDATE SET snapshot_id = excluded.snapshot_id, \
             created_at = excluded.created_at, hostname = excluded.hostname, \
             run_id = excluded.run_id, hash = excluded.hash, size = excluded.size, \
             commit_id = excluded.commit_id \
             WHERE excluded.created_at > snapshot_latest.created_at \
                OR (excluded.created_at = snapshot_latest.created_at \
                    AND excluded.snapshot_id > snapshot_latest.snapshot_id)",
        )
        .bind(m.device_id)
        .bind(id)
        .bind(ts(created))
        .bind(m.hostname.clone())
        .bind(m.run_id)
        .bind(hash)
        .bind(snapshot.content.len() as i64)
        .bind(m.commit_id.clone())
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        let row = dyn_query(
            format!("SELECT {SNAP_COLS} FROM snapshots s WHERE s.id = $1"),
            vec![Arg::I64(id)],
        )
        .fetch_one(&mut *tx)
        .await
        .map_err(db_err)?;
        let meta = snap_meta_row(&row)?;
        tx.commit().await.map_err(db_err)?;
        Ok(meta)
    }

    async fn latest_snapshot(&self, device: DeviceId) -> Result<Option<SnapshotMeta>> {
        let row = dyn_query(
            format!("SELECT {LATEST_COLS} FROM snapshot_latest l WHERE l.device_id = $1"),
            vec![Arg::I64(device)],
        )
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?;
        row.as_ref().map(snap_meta_row).transpose()
    }

    async fn get_snapshot(&self, id: SnapshotId) -> Result<Snapshot> {
        let row = dyn_query(
            format!(
                "SELECT {SNAP_COLS}, c.content AS content FROM snapshots s \
                 JOIN snapshot_contents c ON c.snapshot_id = s.id WHERE s.id = $1"
            ),
            vec![Arg::I64(id)],
        )
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?
        .ok_or_else(|| Error::not_found(format!("snapshot {id}")))?;
        snap_row(&row)
    }

    async fn list_snapshots(&self, device: DeviceId, page: Page) -> Result<Paged<SnapshotMeta>> {
        let total = count(
            &self.pool,
            "SELECT COUNT(*) AS n FROM snapshots WHERE device_id = $1".into(),
            vec![Arg::I64(device)],
        )
        .await?;
        let mut w = Where::default();
        w.arg(Arg::I64(device));
        let sql = format!(
            "SELECT {SNAP_COLS} FROM snapshots s WHERE s.device_id = $1 \
             ORDER BY s.created_at DESC, s.id DESC{}",
            page_args(&mut w, page)
        );
        let rows = dyn_query(sql, w.args)
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)?;
        let items = rows.iter().map(snap_meta_row).collect::<Result<Vec<_>>>()?;
        Ok(Paged::new(items, total, page))
    }

    async fn latest_snapshots(&self, devices: &[DeviceId]) -> Result<Vec<SnapshotMeta>> {
        if devices.is_empty() {
            return Ok(Vec::new());
        }
        let rows = dyn_query(
            format!(
                "SELECT {LATEST_COLS} FROM snapshot_latest l WHERE {} ORDER BY l.device_id",
                in_list("l.device_id", "$1")
            ),
            vec![Arg::Ids(devices.to_vec())],
        )
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        rows.iter().map(snap_meta_row).collect()
    }

    async fn uncommitted_snapshots(&self, limit: u32) -> Result<Vec<Snapshot>> {
        let rows = dyn_query(
            format!(
                "SELECT {SNAP_COLS}, c.content AS content FROM snapshots s \
                 JOIN snapshot_contents c ON c.snapshot_id = s.id \
                 WHERE s.commit_id IS NULL ORDER BY s.id LIMIT $1"
            ),
            vec![Arg::I64(i64::from(limit))],
        )
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        rows.iter().map(snap_row).collect()
    }

    async fn mark_committed(&self, ids: &[SnapshotId], commit_id: &str) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let mut tx = self.begin_write().await?;
        for table_col in [("snapshots", "id"), ("snapshot_latest", "snapshot_id")] {
            dyn_query(
                format!(
                    "UPDATE {} SET commit_id = $1 WHERE {}",
                    table_col.0,
                    in_list(table_col.1, "$2")
                ),
                vec![Arg::Text(commit_id.to_string()), Arg::Ids(ids.to_vec())],
            )
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        }
        tx.commit().await.map_err(db_err)?;
        Ok(())
    }

    async fn search_latest(&self, needle: &str, page: Page) -> Result<Paged<SnapshotMeta>> {
        let from = format!(
            " FROM snapshot_latest l JOIN snapshot_contents c ON c.snapshot_id = l.snapshot_id \
             WHERE c.content {CI_LIKE} $1 ESCAPE '\\'"
        );
        let pattern = contains_pattern(needle);
        let total = count(
            &self.pool,
            format!("SELECT COUNT(*) AS n{from}"),
            vec![Arg::Text(pattern.clone())],
        )
        .await?;
        let mut w = Where::default();
        w.arg(Arg::Text(pattern));
        let sql = format!(
            "SELECT {LATEST_COLS}{from} ORDER BY l.hostname, l.snapshot_id{}",
            page_args(&mut w, page)
        );
        let rows = dyn_query(sql, w.args)
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)?;
        let items = rows.iter().map(snap_meta_row).collect::<Result<Vec<_>>>()?;
        Ok(Paged::new(items, total, page))
    }
}

// ---------------------------------------------------------------------------------------------
// Host keys

fn host_key_row(r: &DbRow) -> Result<HostKey> {
    Ok(HostKey {
        host: g(r, "host")?,
        port: to_u("port", g::<i64>(r, "port")?)?,
        key_type: g(r, "key_type")?,
        fingerprint: g(r, "fingerprint")?,
        first_seen: g_ts(r, "first_seen")?,
    })
}

#[async_trait::async_trait]
impl HostKeyStore for Backend {
    async fn get_host_key(&self, host: &str, port: u16) -> Result<Option<HostKey>> {
        let row = sqlx::query(
            "SELECT host, port, key_type, fingerprint, first_seen FROM host_keys \
             WHERE host = $1 AND port = $2",
        )
        .bind(host.to_string())
        .bind(i64::from(port))
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?;
        row.as_ref().map(host_key_row).transpose()
    }

    async fn pin_host_key(&self, key: &HostKey) -> Result<HostKey> {
        sqlx::query(
            "INSERT INTO host_keys (host, port, key_type, fingerprint, first_seen) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (host, port) DO NOTHING",
        )
        .bind(key.host.clone())
        .bind(i64::from(key.port))
        .bind(key.key_type.clone())
        .bind(key.fingerprint.clone())
        .bind(ts(or_now(key.first_seen, Utc::now())))
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        self.get_host_key(&key.host, key.port)
            .await?
            .ok_or_else(|| Error::internal("pinned host key vanished"))
    }

    async fn delete_host_key(&self, host: &str, port: u16) -> Result<()> {
        sqlx::query("DELETE FROM host_keys WHERE host = $1 AND port = $2")
            .bind(host.to_string())
            .bind(i64::from(port))
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Leases

#[async_trait::async_trait]
impl LeaseStore for Backend {
    async fn try_acquire_lease(
        &self,
        name: &str,
        holder: &str,
        ttl: std::time::Duration,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let ttl =
            chrono::Duration::from_std(ttl).map_err(|_| Error::invalid("lease ttl is too long"))?;
        let until = now
            .checked_add_signed(ttl)
            .ok_or_else(|| Error::invalid("lease ttl is too long"))?;
        // Atomic: the upsert only takes over a row that expired or that the holder owns.
        let row = sqlx::query(
            "INSERT INTO leases (name, holder, expires_at) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, \
             expires_at = excluded.expires_at \
             WHERE leases.expires_at <= $4 OR leases.holder = excluded.holder \
             RETURNING holder",
        )
        .bind(name.to_string())
        .bind(holder.to_string())
        .bind(ts(until))
        .bind(ts(now))
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(row.is_some())
    }

    async fn release_lease(&self, name: &str, holder: &str) -> Result<()> {
        sqlx::query("DELETE FROM leases WHERE name = $1 AND holder = $2")
            .bind(name.to_string())
            .bind(holder.to_string())
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Users and tokens

const USER_COLS: &str = "id, username, password_hash, role, active, created_at";
const TOKEN_COLS: &str = "id, user_id, name, token_hash, created_at, last_used, expires_at";

fn user_row(r: &DbRow) -> Result<User> {
    let role: String = g(r, "role")?;
    Ok(User {
        id: g(r, "id")?,
        username: g(r, "username")?,
        password_hash: g(r, "password_hash")?,
        role: Role::parse(&role)
            .ok_or_else(|| Error::internal(format!("unknown role {role:?}")))?,
        active: g(r, "active")?,
        created_at: g_ts(r, "created_at")?,
    })
}

fn token_row(r: &DbRow) -> Result<ApiToken> {
    Ok(ApiToken {
        id: g(r, "id")?,
        user_id: g(r, "user_id")?,
        name: g(r, "name")?,
        token_hash: g(r, "token_hash")?,
        created_at: g_ts(r, "created_at")?,
        last_used: g_ots(r, "last_used")?,
        expires_at: g_ots(r, "expires_at")?,
    })
}

#[async_trait::async_trait]
impl UserStore for Backend {
    async fn create_user(&self, user: &User) -> Result<User> {
        validate_name("username", &user.username)?;
        let row = dyn_query(
            format!(
                "INSERT INTO users (username, password_hash, role, active, created_at) \
                 VALUES ($1, $2, $3, $4, $5) RETURNING {USER_COLS}"
            ),
            vec![],
        )
        .bind(user.username.clone())
        .bind(user.password_hash.clone())
        .bind(user.role.as_str())
        .bind(user.active)
        .bind(ts(or_now(user.created_at, Utc::now())))
        .fetch_one(&self.pool)
        .await
        .map_err(db_err)?;
        user_row(&row)
    }

    async fn get_user(&self, id: UserId) -> Result<User> {
        let row = dyn_query(
            format!("SELECT {USER_COLS} FROM users WHERE id = $1"),
            vec![Arg::I64(id)],
        )
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?
        .ok_or_else(|| Error::not_found(format!("user {id}")))?;
        user_row(&row)
    }

    async fn get_user_by_name(&self, username: &str) -> Result<Option<User>> {
        let row = dyn_query(
            format!("SELECT {USER_COLS} FROM users WHERE username = $1"),
            vec![Arg::Text(username.to_string())],
        )
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?;
        row.as_ref().map(user_row).transpose()
    }

    async fn update_user(&self, user: &User) -> Result<User> {
        validate_name("username", &user.username)?;
        let row = dyn_query(
            format!(
                "UPDATE users SET username = $2, password_hash = $3, role = $4, active = $5 \
                 WHERE id = $1 RETURNING {USER_COLS}"
            ),
            vec![],
        )
        .bind(user.id)
        .bind(user.username.clone())
        .bind(user.password_hash.clone())
        .bind(user.role.as_str())
        .bind(user.active)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?
        .ok_or_else(|| Error::not_found(format!("user {}", user.id)))?;
        user_row(&row)
    }

    async fn delete_user(&self, id: UserId) -> Result<()> {
        let mut tx = self.begin_write().await?;
        sqlx::query("DELETE FROM api_tokens WHERE user_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        let res = sqlx::query("DELETE FROM users WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        if res.rows_affected() == 0 {
            return Err(Error::not_found(format!("user {id}")));
        }
        tx.commit().await.map_err(db_err)?;
        Ok(())
    }

    async fn list_users(&self, page: Page) -> Result<Paged<User>> {
        let total = count(&self.pool, "SELECT COUNT(*) AS n FROM users".into(), vec![]).await?;
        let mut w = Where::default();
        let sql = format!(
            "SELECT {USER_COLS} FROM users ORDER BY username, id{}",
            page_args(&mut w, page)
        );
        let rows = dyn_query(sql, w.args)
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)?;
        let items = rows.iter().map(user_row).collect::<Result<Vec<_>>>()?;
        Ok(Paged::new(items, total, page))
    }

    async fn create_token(&self, token: &ApiToken) -> Result<ApiToken> {
        let row = dyn_query(
            format!(
                "INSERT INTO api_tokens (user_id, name, token_hash, created_at, last_used, \
                 expires_at) VALUES ($1, $2, $3, $4, $5, $6) RETURNING {TOKEN_COLS}"
            ),
            vec![],
        )
        .bind(token.user_id)
        .bind(token.name.clone())
        .bind(token.token_hash.clone())
        .bind(ts(or_now(token.created_at, Utc::now())))
        .bind(token.last_used.map(ts))
        .bind(token.expires_at.map(ts))
        .fetch_one(&self.pool)
        .await
        .map_err(|e| {
            let err = db_err(e);
            if err.kind() == netraven_core::ErrorKind::InvalidInput {
                Error::not_found(format!("user {}", token.user_id))
            } else {
                err
            }
        })?;
        token_row(&row)
    }

    async fn find_token(&self, token_hash: &str) -> Result<Option<ApiToken>> {
        let row = dyn_query(
            format!("SELECT {TOKEN_COLS} FROM api_tokens WHERE token_hash = $1"),
            vec![Arg::Text(token_hash.to_string())],
        )
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?;
        row.as_ref().map(token_row).transpose()
    }

    async fn list_tokens(&self, user_id: UserId) -> Result<Vec<ApiToken>> {
        let rows = dyn_query(
            format!("SELECT {TOKEN_COLS} FROM api_tokens WHERE user_id = $1 ORDER BY id"),
            vec![Arg::I64(user_id)],
        )
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        rows.iter().map(token_row).collect()
    }

    async fn touch_token(&self, id: i64, at: DateTime<Utc>) -> Result<()> {
        let res = sqlx::query("UPDATE api_tokens SET last_used = $2 WHERE id = $1")
            .bind(id)
            .bind(ts(at))
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        if res.rows_affected() == 0 {
            return Err(Error::not_found(format!("token {id}")));
        }
        Ok(())
    }

    async fn delete_token(&self, id: i64) -> Result<()> {
        let res = sqlx::query("DELETE FROM api_tokens WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        if res.rows_affected() == 0 {
            return Err(Error::not_found(format!("token {id}")));
        }
        Ok(())
    }
}
