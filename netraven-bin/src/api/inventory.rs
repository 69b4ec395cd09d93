//! `POST /api/inventory/sync`: brings the devices in step with another tool's inventory — a
//! NetBox instance or the text of a Nornir, Oxidized, RANCID or Ansible inventory — with
//! `dry_run: true` previewing the additions, updates and disables before anything is saved.
//! Admins only: a sync moves existing devices (address and port updates) and turns the
//! source's logins into credentials pinned to new devices, both an admin's rights
//! (docs/security.md). The logic is `netraven_core::sources::sync`.
//!
//! Body: `{"from": "nornir", "dry_run": true, "content": "<hosts.yaml>", "groups": "...",
//! "defaults": "...", "owner_tag": "nornir", "platform_map": "ios=cisco_ios"}`; for Oxidized
//! also `delimiter` and `fields`, for Ansible `yaml`, for RANCID `group`; for NetBox
//! `{"from": "netbox", "url": "...", "token": "...", "site": [...], "role": [...], "tag": [...],
//! "status": "active"}`. Answer: the sync report (`added`, `updated`, `disabled`, `unchanged`,
//! `errors`, `dry_run`).

use super::auth::require_role;
use super::error::ApiJson;
use super::{ApiResult, ApiState};
use axum::Router;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use netraven::core::sources::InventorySource;
use netraven::core::sources::netbox::{NetboxFilter, NetboxSource};
use netraven::core::sources::platforms::PlatformMap;
use netraven::core::sources::sync::{SyncOptions, sync};
use netraven::core::sources::text::TextInventory;
use netraven_core::prelude::*;
use serde::Deserialize;
use std::sync::Arc;
use std::time::Duration;

/// The route (mounted by [`super::router`]).
pub fn routes(state: &ApiState) -> Router<ApiState> {
    Router::new()
        .route("/api/inventory/sync", post(sync_inventory))
        .route_layer(axum::middleware::from_fn_with_state(
            (state.clone(), Role::Admin),
            require_role,
        ))
}

/// The request body.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct SyncRequest {
    from: String,
    dry_run: bool,
    owner_tag: Option<String>,
    platform_map: String,
    content: String,
    groups: String,
    defaults: String,
    delimiter: Option<String>,
    fields: Option<String>,
    yaml: bool,
    group: Option<String>,
    url: Option<String>,
    token: Option<String>,
    site: Vec<String>,
    role: Vec<String>,
    tag: Vec<String>,
    status: Option<String>,
}

async fn sync_inventory(
    State(st): State<ApiState>,
    ApiJson(req): ApiJson<SyncRequest>,
) -> ApiResult<Response> {
    let mut map = PlatformMap::default();
    map.parse_pairs(&req.platform_map)?;
    let source: Box<dyn InventorySource> = if req.from == "netbox" {
        let url = req
            .url
            .as_deref()
            .ok_or_else(|| Error::invalid("netbox needs 'url'"))?;
        let token = req
            .token
            .clone()
            .ok_or_else(|| Error::invalid("netbox needs 'token'"))?;
        let filter = NetboxFilter {
            sites: req.site,
            roles: req.role,
            tags: req.tag,
            status: req.status.unwrap_or_else(|| "active".into()),
        };
        let client = Arc::new(netraven::integrations::ReqwestClient::new(
            Duration::from_secs(60),
        )?);
        Box::new(NetboxSource::new(
            url,
            Secret::new(token),
            filter,
            map,
            client,
        )?)
    } else {
        Box::new(TextInventory {
            kind: req.from,
            content: req.content,
            groups: req.groups,
            defaults: req.defaults,
            delimiter: req.delimiter,
            fields: req.fields,
            yaml: req.yaml,
            group: req.group,
            map,
        })
    };
    let opts = SyncOptions {
        owner_tag: req.owner_tag,
    };
    let report = sync(st.store.as_ref(), source.as_ref(), &opts, req.dry_run).await?;
    Ok(axum::Json(report).into_response())
}
