//! An Oxidized-compatible read API under `/oxidized`, so NMS integrations written for Oxidized
//! (LibreNMS's "Oxidized" config view, Observium, scripts) work against NetRaven with only the
//! URL changed. The read model lives in `netraven_core::oxidized`; this module maps Oxidized's
//! paths and query parameters onto it.
//!
//! | Oxidized path | answer |
//! |---|---|
//! | `GET /nodes?format=json`, `/nodes.json` | every device as a node: `name`, `full_name`, `ip`, `group`, `model`, `status`, `time`, `last`, `mtime` |
//! | `GET /node/show/NAME[?format=json]` (NAME may be `GROUP/NAME`) | one node |
//! | `GET /node/fetch/NAME` or `/node/fetch/GROUP/NAME` | the latest configuration, text |
//! | `GET /node/version?node_full=GROUP/NAME&format=json` | versions, newest first: `oid`, `date`, `num` |
//! | `GET /node/version/view?node=NAME&group=G&oid=OID&format=text\|json` | one version's text (JSON: its lines) |
//! | `GET /node/version/diffs?node=NAME&group=G&oid=OID[&oid2=OID]&format=text\|json` | unified diff to `oid` from `oid2` (default: the version before) |
//!
//! Authentication: `Authorization: Bearer <token>` (a login JWT or an API token), or HTTP Basic
//! with a user name and either its password or one of its API tokens — for tools that only
//! know Basic. Any active user (viewer or above) may read.

use super::auth::{API_TOKEN_PREFIX, HashGate, authenticate, verify_password};
use super::{ApiError, ApiResult, ApiState};
use axum::Router;
use axum::extract::{Path, Query, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine as _;
use netraven_core::oxidized;
use serde::Deserialize;
use serde_json::json;
use std::collections::HashMap;

/// The `/oxidized` routes (mounted by [`super::router`]).
pub fn routes(state: &ApiState) -> Router<ApiState> {
    Router::new()
        .route("/oxidized/nodes", get(nodes))
        .route("/oxidized/nodes.json", get(nodes))
        .route("/oxidized/node/show/{*node}", get(show))
        .route("/oxidized/node/fetch/{*node}", get(fetch))
        .route("/oxidized/node/version", get(versions))
        .route("/oxidized/node/version.json", get(versions))
        .route("/oxidized/node/version/view", get(view))
        .route("/oxidized/node/version/diffs", get(diffs))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            require_reader,
        ))
}

/// Bearer or Basic authentication of any active user.
async fn require_reader(State(state): State<ApiState>, req: Request, next: Next) -> Response {
    let h = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let result = if let Some(t) = h
        .strip_prefix("Bearer ")
        .or_else(|| h.strip_prefix("bearer "))
    {
        authenticate(&state, t.trim()).await.map(|_| ())
    } else if let Some(b) = h
        .strip_prefix("Basic ")
        .or_else(|| h.strip_prefix("basic "))
    {
        basic(&state, b.trim()).await
    } else {
        Err(ApiError::unauthorized(
            "missing credentials (Bearer token or Basic)",
        ))
    };
    match result {
        Ok(()) => next.run(req).await,
        Err(e) => {
            let mut r = e.into_response();
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Basic realm=\"netraven\""),
            );
            r
        }
    }
}

async fn basic(state: &ApiState, encoded: &str) -> ApiResult<()> {
    let bad = || ApiError::unauthorized("invalid user name or password");
    let raw = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .map_err(|_| bad())?;
    let raw = String::from_utf8(raw).map_err(|_| bad())?;
    let (user, pass) = raw.split_once(':').ok_or_else(bad)?;
    if pass.starts_with(API_TOKEN_PREFIX) {
        let p = authenticate(state, pass).await?;
        return if p.user.username == user {
            Ok(())
        } else {
            Err(bad())
        };
    }
    if !state
        .limiter
        .allowed(user, 5, std::time::Duration::from_secs(300))
    {
        return Err(ApiError::new(
            axum::http::StatusCode::TOO_MANY_REQUESTS,
            "too_many_attempts",
            "too many failed logins; try again later",
        ));
    }
    let found = state.store.get_user_by_name(user).await?;
    let hash = found
        .as_ref()
        .map(|u| u.password_hash.clone())
        .unwrap_or_else(|| super::auth::dummy_hash().to_string());
    let pass = pass.to_string();
    let ok = HashGate::global()
        .run(move || verify_password(&pass, &hash))
        .await?;
    match found {
        Some(u) if ok && u.active => {
            state.limiter.succeeded(user);
            Ok(())
        }
        _ => {
            state.limiter.failed(user);
            Err(bad())
        }
    }
}

fn wants_json(q: &HashMap<String, String>, node: &str) -> bool {
    q.get("format").is_some_and(|f| f == "json") || node.ends_with(".json")
}

async fn nodes(State(st): State<ApiState>) -> ApiResult<Response> {
    Ok(axum::Json(oxidized::nodes(st.store.as_ref()).await?).into_response())
}

async fn show(
    State(st): State<ApiState>,
    Path(node): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Response> {
    let name = node.trim_end_matches(".json");
    let n = oxidized::show(st.store.as_ref(), name).await?;
    if wants_json(&q, &node) {
        return Ok(axum::Json(n).into_response());
    }
    let text = format!(
        "name: {}\nfull_name: {}\nip: {}\ngroup: {}\nmodel: {}\nstatus: {}\ntime: {}\n",
        n.name, n.full_name, n.ip, n.group, n.model, n.status, n.time
    );
    Ok(text.into_response())
}

async fn fetch(State(st): State<ApiState>, Path(node): Path<String>) -> ApiResult<Response> {
    let d = oxidized::find(st.store.as_ref(), &node).await?;
    Ok(oxidized::fetch(st.sink.as_ref(), &d).await?.into_response())
}

/// The query parameters of the version routes (Oxidized's names).
#[derive(Debug, Deserialize)]
struct VersionQuery {
    node_full: Option<String>,
    node: Option<String>,
    group: Option<String>,
    oid: Option<String>,
    oid2: Option<String>,
    format: Option<String>,
}

impl VersionQuery {
    /// `node_full` (`GROUP/NAME`), else `node` (with `group` ignored: it only narrows).
    fn node(&self) -> ApiResult<&str> {
        let _ = &self.group;
        self.node_full
            .as_deref()
            .or(self.node.as_deref())
            .ok_or_else(|| ApiError::invalid("node_full or node is required"))
    }

    fn oid(&self) -> ApiResult<&str> {
        self.oid
            .as_deref()
            .ok_or_else(|| ApiError::invalid("oid is required"))
    }

    fn json(&self) -> bool {
        self.format.as_deref() == Some("json")
    }
}

async fn versions(
    State(st): State<ApiState>,
    Query(q): Query<VersionQuery>,
) -> ApiResult<Response> {
    let d = oxidized::find(st.store.as_ref(), q.node()?).await?;
    Ok(axum::Json(oxidized::versions(st.sink.as_ref(), &d).await?).into_response())
}

fn text_or_lines(text: String, json: bool) -> Response {
    if json {
        let lines: Vec<&str> = text.lines().collect();
        return axum::Json(json!(lines)).into_response();
    }
    text.into_response()
}

async fn view(State(st): State<ApiState>, Query(q): Query<VersionQuery>) -> ApiResult<Response> {
    let d = oxidized::find(st.store.as_ref(), q.node()?).await?;
    let s = oxidized::version(st.sink.as_ref(), &d, q.oid()?).await?;
    Ok(text_or_lines(s.content, q.json()))
}

async fn diffs(State(st): State<ApiState>, Query(q): Query<VersionQuery>) -> ApiResult<Response> {
    let d = oxidized::find(st.store.as_ref(), q.node()?).await?;
    let diff = oxidized::diff(st.sink.as_ref(), &d, q.oid()?, q.oid2.as_deref()).await?;
    Ok(text_or_lines(diff, q.json()))
}
