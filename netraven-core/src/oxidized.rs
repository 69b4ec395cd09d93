//! The read model behind the Oxidized-compatible API (`/oxidized/...`): devices as Oxidized
//! nodes, their configuration versions and diffs, so NMS integrations written for Oxidized
//! (LibreNMS, Observium, ...) read NetRaven unchanged.
//!
//! Mapping: a node's `name` is the hostname, its `group` the device's first tag (`default`
//! without tags), `full_name` is `group/name`, `model` the Oxidized model of the platform
//! ([`crate::sources::platforms::oxidized_model`]); `status` is `success` or `no_connection`
//! after the last backup (`never` before one), `time` its end (`YYYY-MM-DD HH:MM:SS UTC`, like
//! Oxidized). A version's `oid` is the snapshot id.

use crate::error::{Error, Result};
use crate::model::*;
use crate::snapshot::SnapshotSink;
use crate::sources::platforms::oxidized_model;
use crate::store::Store;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Value, json};

/// The group of a device as Oxidized would name it.
pub fn group_of(d: &Device) -> &str {
    d.tags.first().map(String::as_str).unwrap_or("default")
}

fn oxidized_time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// One node as Oxidized's `/nodes.json` lists it.
#[derive(Debug, Clone, Serialize)]
pub struct Node {
    /// Device name.
    pub name: String,
    /// `group/name`.
    pub full_name: String,
    /// Address.
    pub ip: String,
    /// Group.
    pub group: String,
    /// Oxidized model.
    pub model: String,
    /// `success`, `no_connection` or `never`.
    pub status: String,
    /// End of the last backup, or `never`.
    pub time: String,
    /// The last backup: `{start, end, status, time}` (seconds), or null.
    pub last: Value,
    /// Oxidized's per-node variables (none here).
    pub vars: Value,
    /// When the configuration last changed, or `unknown`.
    pub mtime: String,
}

async fn node(store: &dyn Store, d: &Device, latest: Option<&SnapshotMeta>) -> Result<Node> {
    let filter = ResultFilter {
        device_id: Some(d.id),
        ..Default::default()
    };
    let last = store
        .list_results(&filter, Page::first(1))
        .await?
        .items
        .into_iter()
        .next();
    let status = match &last {
        None => "never",
        Some(r) if r.status == DeviceStatus::Success => "success",
        Some(_) => "no_connection",
    };
    let group = group_of(d).to_string();
    Ok(Node {
        full_name: format!("{group}/{}", d.hostname),
        name: d.hostname.clone(),
        ip: d.address.clone(),
        model: oxidized_model(&d.platform).to_string(),
        status: status.into(),
        time: last
            .as_ref()
            .map(|r| oxidized_time(r.finished_at))
            .unwrap_or_else(|| "never".into()),
        last: last
            .map(|r| {
                json!({
                    "start": oxidized_time(r.started_at),
                    "end": oxidized_time(r.finished_at),
                    "status": status,
                    "time": r.duration_ms as f64 / 1000.0,
                })
            })
            .unwrap_or(Value::Null),
        vars: Value::Null,
        mtime: latest
            .map(|s| oxidized_time(s.created_at))
            .unwrap_or_else(|| "unknown".into()),
        group,
    })
}

/// Every device as a node, by hostname.
pub async fn nodes(store: &dyn Store) -> Result<Vec<Node>> {
    let mut out = Vec::new();
    let mut page = 1;
    loop {
        let p = store
            .list_devices(&DeviceFilter::default(), Page::new(page, 500))
            .await?;
        let ids: Vec<DeviceId> = p.items.iter().map(|d| d.id).collect();
        let latest = store.latest_snapshots(&ids).await?;
        for d in &p.items {
            let snap = latest.iter().find(|s| s.device_id == d.id);
            out.push(node(store, d, snap).await?);
        }
        if page >= p.pages {
            return Ok(out);
        }
        page += 1;
    }
}

/// The device a node name names: `name`, or `group/name` as LibreNMS's `node_full` sends it
/// (the group part is not required to match: a device's tags may have changed).
pub async fn find(store: &dyn Store, node: &str) -> Result<Device> {
    let name = node.rsplit('/').next().unwrap_or(node);
    let filter = DeviceFilter {
        hostname: Some(name.to_string()),
        ..Default::default()
    };
    store
        .list_devices(&filter, Page::new(1, 10_000))
        .await?
        .items
        .into_iter()
        .find(|d| d.hostname == name)
        .ok_or_else(|| Error::not_found(format!("node '{node}'")))
}

/// One node's details (`/node/show/NAME`).
pub async fn show(store: &dyn Store, node_name: &str) -> Result<Node> {
    let d = find(store, node_name).await?;
    let latest = store.latest_snapshot(d.id).await?;
    node(store, &d, latest.as_ref()).await
}

/// A device's configuration versions, newest first, as Oxidized's `/node/version` lists
/// them: `{oid, date, num, message, author}`.
pub async fn versions(sink: &dyn SnapshotSink, device: &Device) -> Result<Vec<Value>> {
    let metas = sink.history(device.id, Page::new(1, 1000)).await?;
    let total = metas.items.len();
    Ok(metas
        .items
        .iter()
        .enumerate()
        .map(|(i, s)| {
            json!({
                "oid": s.id.to_string(),
                "date": s.created_at.format("%Y-%m-%d %H:%M:%S %z").to_string(),
                "num": total - i,
                "message": format!("update {}", s.hostname),
                "author": {"name": "netraven", "email": "netraven@localhost",
                           "time": s.created_at.format("%Y-%m-%d %H:%M:%S %z").to_string()},
                "commit": s.commit_id,
            })
        })
        .collect())
}

/// One version's snapshot, checked to belong to the device.
pub async fn version(sink: &dyn SnapshotSink, device: &Device, oid: &str) -> Result<Snapshot> {
    let id: SnapshotId = oid
        .trim()
        .parse()
        .map_err(|_| Error::invalid(format!("oid '{oid}' is not a version of this node")))?;
    let s = sink.get(id).await?;
    if s.meta.device_id != device.id {
        return Err(Error::not_found(format!(
            "version {oid} of {}",
            device.hostname
        )));
    }
    Ok(s)
}

/// The device's latest configuration (`/node/fetch/NAME`).
pub async fn fetch(sink: &dyn SnapshotSink, device: &Device) -> Result<String> {
    sink.latest(device.id)
        .await?
        .map(|s| s.content)
        .ok_or_else(|| Error::not_found(format!("no configuration of {} yet", device.hostname)))
}

/// The diff from version `oid` to `oid2` (or to the version before `oid` when missing), as
/// unified text.
pub async fn diff(
    sink: &dyn SnapshotSink,
    device: &Device,
    oid: &str,
    oid2: Option<&str>,
) -> Result<String> {
    let to = version(sink, device, oid).await?;
    let from = match oid2 {
        Some(o) => version(sink, device, o).await?,
        None => {
            let all = sink.history(device.id, Page::new(1, 1000)).await?.items;
            let older = all
                .iter()
                .skip_while(|m| m.id != to.meta.id)
                .nth(1)
                .map(|m| m.id);
            match older {
                Some(id) => sink.get(id).await?,
                None => return Ok(String::new()),
            }
        }
    };
    Ok(crate::diff::unified_diff(&from, &to))
}
