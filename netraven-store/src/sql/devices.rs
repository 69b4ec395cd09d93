//! Devices.

use crate::sql::SqlStore;
use crate::sql::dialect::{Dialect, SqlRow};
use crate::sql::query::{Arg, Sql, Where, contains_pattern, or_now};
use crate::sql::tags::{Tagged, load_tags, set_tags};
use chrono::Utc;
use netraven_core::error::{Error, Result};
use netraven_core::model::{
    Device, DeviceFilter, DeviceId, DeviceSpec, HostKeyPolicy, Page, Paged, Transport,
};
use netraven_core::store::{DeviceStore, check};

const DEVICE_COLS: &str = "id, hostname, address, port, platform, description, serial, model, \
    credential_id, host_key_policy, legacy_ssh, enabled, created_at, updated_at, timeout_percent, \
    transport, jump_host, zone";

/// A device with its tags, one row per tag (see `get_device`).
static GET_DEVICE: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    let cols = DEVICE_COLS
        .split(", ")
        .map(|c| format!("d.{c} AS {c}"))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "SELECT {cols}, t.name AS tag_name FROM devices d \
         LEFT JOIN device_tags x ON x.device_id = d.id \
         LEFT JOIN tags t ON t.id = x.tag_id \
         WHERE d.id = $1 ORDER BY x.position"
    )
});

fn device_row(r: &impl SqlRow) -> Result<Device> {
    let policy = r.text("host_key_policy")?;
    let transport = r.text("transport")?;
    Ok(Device {
        id: r.i64("id")?,
        spec: DeviceSpec {
            hostname: r.text("hostname")?,
            address: r.text("address")?,
            port: r.int("port")?,
            platform: r.text("platform")?,
            tags: Vec::new(),
            description: r.opt_text("description")?,
            serial: r.opt_text("serial")?,
            model: r.opt_text("model")?,
            credential_id: r.opt_i64("credential_id")?,
            host_key_policy: HostKeyPolicy::parse(&policy)
                .ok_or_else(|| Error::internal(format!("unknown host key policy {policy:?}")))?,
            legacy_ssh: r.bool("legacy_ssh")?,
            enabled: r.bool("enabled")?,
            timeout_multiplier: r.opt_i64("timeout_percent")?.map(|p| p as f64 / 100.0),
            transport: Transport::parse(&transport)
                .ok_or_else(|| Error::internal(format!("unknown transport {transport:?}")))?,
            jump_host: r.opt_text("jump_host")?,
            zone: r.opt_text("zone")?,
        },
        created_at: r.ts("created_at")?,
        updated_at: r.ts("updated_at")?,
    })
}

impl<D: Dialect> SqlStore<D> {
    async fn devices_with_tags(&self, rows: Vec<D::Row>) -> Result<Vec<Device>> {
        let mut devices = rows.iter().map(device_row).collect::<Result<Vec<_>>>()?;
        let ids: Vec<i64> = devices.iter().map(|d| d.id).collect();
        let mut tags = load_tags(&self.db, Tagged::Device, &ids).await?;
        for d in &mut devices {
            d.tags = tags.remove(&d.id).unwrap_or_default();
        }
        Ok(devices)
    }
}

/// The device's columns after `id`, in the order of the INSERT/UPDATE placeholders.
fn bind_fields(q: Sql, device: &Device) -> Sql {
    q.bind(&device.hostname)
        .bind(&device.address)
        .bind(i64::from(device.port))
        .bind(&device.platform)
        .bind(&device.description)
        .bind(&device.serial)
        .bind(&device.model)
        .bind(device.credential_id)
        .bind(device.host_key_policy.as_str())
        .bind(device.legacy_ssh)
        .bind(device.enabled)
}

/// A device's timeout multiplier as stored: whole percent.
fn timeout_percent(device: &Device) -> Option<i64> {
    device
        .timeout_multiplier
        .map(|m| (m * 100.0).round().clamp(1.0, 1_000_000.0) as i64)
}

#[async_trait::async_trait]
impl<D: Dialect> DeviceStore for SqlStore<D> {
    async fn create_device(&self, device: &Device) -> Result<Device> {
        check::device(device)?;
        let now = Utc::now();
        let created = or_now(device.created_at, now);
        let updated = or_now(device.updated_at, created);
        let mut tx = self.db.begin_write().await?;
        let insert = Sql::new(
            "INSERT INTO devices (hostname, address, port, platform, description, serial, model, \
             credential_id, host_key_policy, legacy_ssh, enabled, created_at, updated_at, \
             timeout_percent, transport, jump_host, zone) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17) \
             RETURNING id",
        );
        let row = D::tx_fetch_one(
            &mut tx,
            bind_fields(insert, device)
                .bind(created)
                .bind(updated)
                .bind(timeout_percent(device))
                .bind(device.transport.as_str())
                .bind(&device.jump_host)
                .bind(&device.zone),
            "inserted device".into(),
        )
        .await?;
        let id = row.i64("id")?;
        set_tags::<D>(&mut tx, Tagged::Device, id, &device.tags).await?;
        D::commit(tx).await?;
        self.get_device(id).await
    }

    /// One statement: the device's row once per tag (or once with no tag), tags in their
    /// stored order (the engine reads a device per device task; a second query for its tags
    /// would double the round trips).
    async fn get_device(&self, id: DeviceId) -> Result<Device> {
        let rows = self
            .db
            .fetch_all(Sql::new(GET_DEVICE.as_str()).bind(id))
            .await?;
        let first = rows
            .first()
            .ok_or_else(|| Error::not_found(format!("device {id}")))?;
        let mut device = device_row(first)?;
        for r in &rows {
            if let Some(tag) = r.opt_text("tag_name")? {
                device.tags.push(tag);
            }
        }
        Ok(device)
    }

    async fn update_device(&self, device: &Device) -> Result<Device> {
        check::device(device)?;
        let updated = or_now(device.updated_at, Utc::now());
        let mut tx = self.db.begin_write().await?;
        let update = Sql::new(
            "UPDATE devices SET hostname = $2, address = $3, port = $4, platform = $5, \
             description = $6, serial = $7, model = $8, credential_id = $9, host_key_policy = $10, \
             legacy_ssh = $11, enabled = $12, updated_at = $13, timeout_percent = $14, \
             transport = $15, jump_host = $16, zone = $17 WHERE id = $1",
        )
        .bind(device.id);
        let n = D::tx_execute(
            &mut tx,
            bind_fields(update, device)
                .bind(updated)
                .bind(timeout_percent(device))
                .bind(device.transport.as_str())
                .bind(&device.jump_host)
                .bind(&device.zone),
        )
        .await?;
        if n == 0 {
            return Err(Error::not_found(format!("device {}", device.id)));
        }
        set_tags::<D>(&mut tx, Tagged::Device, device.id, &device.tags).await?;
        D::commit(tx).await?;
        self.get_device(device.id).await
    }

    async fn delete_device(&self, id: DeviceId) -> Result<()> {
        let n = self
            .db
            .execute(Sql::new("DELETE FROM devices WHERE id = $1").bind(id))
            .await?;
        if n == 0 {
            return Err(Error::not_found(format!("device {id}")));
        }
        Ok(())
    }

    async fn list_devices(&self, filter: &DeviceFilter, page: Page) -> Result<Paged<Device>> {
        let like = D::CI_LIKE;
        let mut w = Where::default();
        if let Some(h) = &filter.hostname {
            let p = w.arg(contains_pattern(h));
            w.cond(format!("hostname {like} {p} ESCAPE '\\'"));
        }
        if let Some(a) = &filter.address {
            let p = w.arg(contains_pattern(a));
            w.cond(format!("address {like} {p} ESCAPE '\\'"));
        }
        if let Some(pl) = &filter.platform {
            let p = w.arg(pl);
            w.cond(format!("platform = {p}"));
        }
        if let Some(t) = &filter.tag {
            let p = w.arg(t);
            w.cond(format!(
                "EXISTS (SELECT 1 FROM device_tags dt JOIN tags t ON t.id = dt.tag_id \
                 WHERE dt.device_id = devices.id AND t.name = {p})"
            ));
        }
        let total = self.db.count(w.count("devices")).await?;
        let rows = self
            .db
            .fetch_all(w.page(
                &format!("SELECT {DEVICE_COLS} FROM devices"),
                "hostname, id",
                page,
            ))
            .await?;
        Ok(Paged::new(self.devices_with_tags(rows).await?, total, page))
    }

    async fn devices_by_ids(&self, ids: &[DeviceId]) -> Result<Vec<Device>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let rows = self
            .db
            .fetch_all(
                Sql::new(format!(
                    "SELECT {DEVICE_COLS} FROM devices WHERE {} ORDER BY id",
                    D::in_list("id", "$1")
                ))
                .bind(Arg::Ids(ids.to_vec())),
            )
            .await?;
        self.devices_with_tags(rows).await
    }

    async fn device_ids_with_tags(&self, tags: &[String]) -> Result<Vec<DeviceId>> {
        if tags.is_empty() {
            return Ok(Vec::new());
        }
        let rows = self
            .db
            .fetch_all(
                Sql::new(format!(
                    "SELECT DISTINCT dt.device_id AS id FROM device_tags dt \
                     JOIN tags t ON t.id = dt.tag_id WHERE {} ORDER BY dt.device_id",
                    D::in_list("t.name", "$1")
                ))
                .bind(Arg::Texts(tags.to_vec())),
            )
            .await?;
        rows.iter().map(|r| r.i64("id")).collect()
    }
}
