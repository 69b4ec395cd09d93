//! The REST API (axum) under `/api`, close to the Python NetRaven's paths and payloads.
//!
//! Build an [`ApiState`] with [`ApiState::new`], get the router with [`router`] and serve it.
//! Every route is declared once in [`routes`]: the table builds the router, decides who may call
//! each route (see [`Access`]) and generates `GET /api/openapi.json`.
//!
//! Authentication: `POST /api/auth/token` (form or JSON `username`/`password`) returns a 30
//! minute HS256 JWT; admins can create API tokens for scripts (`POST /api/tokens`, shown once,
//! stored as a SHA-256 hash). Both are sent as `Authorization: Bearer <token>`.
//! Roles: `viewer` reads, `operator` also changes tags, devices and jobs and starts runs, `admin`
//! does everything (users, credentials, tokens). No role can read a credential secret.
//!
//! `GET /api/health` (liveness), `GET /api/ready` (readiness) and `GET /metrics` need no token:
//! none reveals anything but counters and ok/not-ok, so probes and scrapers need no credentials. Everything else needs at least `viewer`.
//!
//! Errors are JSON `{error, detail}`: 400 bad JSON syntax, 401 bad or missing token, 403 role,
//! 404 missing (every path id that does not exist), 409 duplicate or protected, 413 body over
//! 1 MiB, 415 wrong content type, 422 invalid input (wrong types or shape with the field path,
//! unknown fields or query parameters, failed validation, unknown references), 429 too many
//! failed logins.
//!
//! The rules every route follows (docs/api.md): `/api` is v1; `PUT` replaces a resource, `PATCH`
//! merges (RFC 7396); lists answer `{items, total, page, size, pages}`, take `page`, `size` ≤ 100,
//! `sort=field`/`sort=-field` and filters that may repeat (any of the values).

pub mod auth;
pub mod common;
pub mod configs;
pub mod credentials;
pub mod devices;
pub mod error;
pub mod inventory;
pub mod jobs;
pub mod jump_hosts;
pub mod oxidized;
pub mod runs;
pub mod system;
pub mod tags;
pub mod triggers;
pub mod users;
pub mod views;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{MethodRouter, delete, get, post, put};
use netraven_core::engine::Engine;
use netraven_core::prelude::*;
use std::sync::Arc;
use std::time::Instant;

pub use auth::{
    Access, AuthSettings, LoginLimiter, Principal, ensure_admin, hash_password, verify_password,
};
pub use error::{ApiError, ApiResult};

/// Largest request body the API accepts (larger bodies get 413).
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// Everything the handlers share. Cheap to clone.
#[derive(Clone, Debug)]
pub struct ApiState {
    /// Source of truth (with the API's users and tokens).
    pub store: Arc<dyn ServerStore>,
    /// The engine (run now, metrics, queue).
    pub engine: Arc<Engine>,
    /// Configuration history.
    pub sink: Arc<dyn SnapshotSink>,
    /// Token settings.
    pub auth: AuthSettings,
    /// When the API started (uptime).
    pub started: Instant,
    /// Failed-login counter.
    pub limiter: Arc<LoginLimiter>,
    /// Manual run triggers per user (counted like failures, limited per minute).
    pub run_limiter: Arc<LoginLimiter>,
    /// Commands a non-admin may put in a command job (`security.allowed_commands`).
    pub allowed_commands: Arc<regex::RegexSet>,
    /// Cancelled when the process shuts down: open log streams end (with a final event) so the
    /// server's graceful shutdown does not wait for runs to finish.
    pub shutdown: tokio_util::sync::CancellationToken,
}

/// The default `security.allowed_commands`: read-only commands of the common CLIs.
pub const DEFAULT_ALLOWED_COMMANDS: [&str; 3] = ["^show ", "^display ", "^get "];

impl ApiState {
    /// State with default auth settings (30 minute tokens, 5 failed logins per 5 minutes).
    pub fn new(
        store: Arc<dyn ServerStore>,
        engine: Arc<Engine>,
        sink: Arc<dyn SnapshotSink>,
        jwt_secret: Vec<u8>,
    ) -> Self {
        ApiState {
            store,
            engine,
            sink,
            auth: AuthSettings::new(jwt_secret),
            started: Instant::now(),
            limiter: Arc::new(LoginLimiter::default()),
            run_limiter: Arc::new(LoginLimiter::with_capacity(10_000)),
            allowed_commands: Arc::new(
                regex::RegexSet::new(DEFAULT_ALLOWED_COMMANDS)
                    .unwrap_or_else(|_| regex::RegexSet::empty()),
            ),
            shutdown: tokio_util::sync::CancellationToken::new(),
        }
    }

    /// Ends open log streams when `token` is cancelled (the server's shutdown).
    pub fn with_shutdown(mut self, token: tokio_util::sync::CancellationToken) -> Self {
        self.shutdown = token;
        self
    }

    /// Replaces the patterns a non-admin's command job must match (each command, one of them).
    pub fn with_allowed_commands<S: AsRef<str>>(mut self, patterns: &[S]) -> Result<Self> {
        let set = regex::RegexSet::new(patterns.iter().map(|p| p.as_ref()))
            .map_err(|e| Error::invalid(format!("security.allowed_commands: {e}")))?;
        self.allowed_commands = Arc::new(set);
        Ok(self)
    }
}

/// A request body of a route, for the OpenAPI document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReqBody {
    /// `application/json` of this component schema.
    Json(&'static str),
    /// `application/json` of this component schema, or the same fields form-encoded.
    JsonOrForm(&'static str),
    /// `text/csv`, or `application/json` with an array of this component schema.
    CsvOrJsonArray(&'static str),
}

/// The success response of a route, for the OpenAPI document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RespBody {
    /// `application/json` of this component schema.
    Json(&'static str),
    /// A list: `{items, total, page, size, pages}` of this component schema.
    Page(&'static str),
    /// No content (204).
    Empty,
    /// Text of this media type (`text/plain`, `text/event-stream`, `text/html`).
    Text(&'static str),
}

/// One route of the API: the single declaration the router, the role check and the OpenAPI
/// document are built from.
#[derive(Debug, Clone, Copy)]
pub struct RouteSpec {
    /// HTTP method (`GET`, `POST`, `PUT`, `PATCH`, `DELETE`).
    pub method: &'static str,
    /// axum path, with `{param}` placeholders (also OpenAPI syntax).
    pub path: &'static str,
    /// Who may call it.
    pub access: Access,
    /// One line for the OpenAPI document.
    pub summary: &'static str,
    /// Success status.
    pub success: u16,
    /// Request body, if it takes one.
    pub request: Option<ReqBody>,
    /// Success response body.
    pub response: RespBody,
}

impl RouteSpec {
    /// The same route with another success status (201 created, 202 accepted).
    fn status(mut self, success: u16) -> Self {
        self.success = success;
        self
    }

    /// Whether the route is a list (answers the page envelope and takes `page`, `size`, `sort`).
    pub fn is_list(&self) -> bool {
        matches!(self.response, RespBody::Page(_))
    }

    /// Whether the route reads query parameters (its handler then refuses unknown ones); every
    /// other route refuses any query parameter.
    pub fn takes_query(&self) -> bool {
        self.is_list() || QUERY_ROUTES.contains(&(self.method, self.path))
    }
}

/// The routes besides the lists that take query parameters.
const QUERY_ROUTES: &[(&str, &str)] = &[
    ("GET", "/api/dashboard"),
    ("GET", "/api/devices/recent"),
    ("GET", "/api/logs/stream"),
    ("GET", "/api/configs/diff"),
    ("GET", "/api/configs/snapshots/{id}"),
    ("GET", "/api/configs/{device_id}/latest"),
];

/// Refuses a query string on a route that reads none (422 naming the parameters), so a typo is
/// never silently ignored.
async fn no_query(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let names: Vec<String> = req
        .uri()
        .query()
        .map(|q| {
            form_urlencoded::parse(q.as_bytes())
                .map(|(k, _)| k.into_owned())
                .collect()
        })
        .unwrap_or_default();
    if names.is_empty() {
        return next.run(req).await;
    }
    ApiError::invalid(format!(
        "query: unknown parameter(s) {}; this route takes none",
        names.join(", ")
    ))
    .into_response()
}

const V: Access = Access::Role(Role::Viewer);
const O: Access = Access::Role(Role::Operator);
const A: Access = Access::Role(Role::Admin);
const P: Access = Access::Public;

use RespBody::{Empty, Json as J, Page as Pg, Text};

fn spec(
    method: &'static str,
    path: &'static str,
    access: Access,
    summary: &'static str,
    request: Option<ReqBody>,
    response: RespBody,
) -> RouteSpec {
    let success = if response == Empty { 204 } else { 200 };
    RouteSpec {
        method,
        path,
        access,
        summary,
        success,
        request,
        response,
    }
}

fn body(schema: &'static str) -> Option<ReqBody> {
    Some(ReqBody::Json(schema))
}

/// The route table: every route with its access rule, bodies and handler.
fn table() -> Vec<(RouteSpec, MethodRouter<ApiState>)> {
    use auth as au;
    use axum::routing::patch;
    use configs as c;
    use credentials as cr;
    use devices as d;
    use jobs as j;
    use jump_hosts as jh;
    use runs as ru;
    use system as s;
    use tags as t;
    use users as u;
    use views as vw;
    let mut v = vec![
        (
            spec("GET", "/api/health", P, "Liveness check", None, J("Health")),
            get(s::health),
        ),
        (
            spec(
                "GET",
                "/api/ready",
                P,
                "Readiness: store and queue reachable, migrations current (503 if not)",
                None,
                J("Ready"),
            ),
            get(s::ready),
        ),
        (
            spec(
                "GET",
                "/metrics",
                P,
                "Prometheus metrics",
                None,
                Text("text/plain"),
            ),
            get(s::metrics),
        ),
        (
            spec(
                "GET",
                "/api/openapi.json",
                V,
                "This OpenAPI document",
                None,
                J("OpenApiDocument"),
            ),
            get(s::openapi),
        ),
        (
            spec(
                "GET",
                "/api/system/status",
                V,
                "Store, queue (ready, leased, delayed, dead), scheduler (leader, last tick, next fires), git writer, worker and maintenance status",
                None,
                J("SystemStatus"),
            ),
            get(s::status),
        ),
        (
            spec(
                "POST",
                "/api/auth/token",
                P,
                "Log in (form or JSON username/password); returns a bearer token",
                Some(ReqBody::JsonOrForm("LoginForm")),
                J("TokenResponse"),
            ),
            post(au::login),
        ),
        (
            spec("GET", "/api/auth/me", V, "The calling user", None, J("Me")),
            get(au::me),
        ),
        // Read models of the web page
        (
            spec(
                "GET",
                "/api/dashboard",
                V,
                "Dashboard figures: device health, failing devices, latest runs, runs per day with p50/p95 durations (days, stale_hours)",
                None,
                J("Dashboard"),
            ),
            get(vw::dashboard),
        ),
        (
            spec(
                "GET",
                "/api/devices/recent",
                V,
                "Recent results of up to 100 devices (ids, n): last results, last success and failure, credential that worked",
                None,
                J("RecentResults"),
            ),
            get(vw::recent_results),
        ),
        (
            spec(
                "POST",
                "/api/jobs/preview",
                V,
                "The next fire times of a schedule (nothing is stored)",
                body("PreviewInput"),
                J("SchedulePreview"),
            ),
            post(vw::preview_schedule),
        ),
    ];
    // The five routes of a resource: list, create, get, replace (PUT), merge-patch (PATCH), delete.
    macro_rules! resource {
        ($base:literal, $item:literal, $schema:literal, $input:literal, $replace:literal,
         $read:expr, $write:expr, $list:expr, $create:expr, $get:expr, $put:expr, $patch:expr, $del:expr,
         $ls:literal, $cs:literal, $gs:literal, $ps:literal, $ds:literal) => {
            v.push((spec("GET", $base, $read, $ls, None, Pg($schema)), get($list)));
            v.push((spec("POST", $base, $write, $cs, body($input), J($schema)).status(201), post($create)));
            v.push((spec("GET", $item, $read, $gs, None, J($schema)), get($get)));
            v.push((spec("PUT", $item, $write, $ps, body($replace), J($schema)), put($put)));
            v.push((spec("PATCH", $item, $write, "Change some fields (JSON merge patch: omitted fields stay, null resets a field to its default)", body("MergePatch"), J($schema)), patch($patch)));
            v.push((spec("DELETE", $item, $write, $ds, None, Empty), delete($del)));
        };
    }
    resource!(
        "/api/users",
        "/api/users/{id}",
        "User",
        "UserCreate",
        "UserReplace",
        A,
        A,
        u::list_users,
        u::create_user,
        u::get_user,
        u::update_user,
        u::patch_user,
        u::delete_user,
        "List users (filters username, role, active; sort)",
        "Create a user",
        "Get a user",
        "Replace a user's username, role and active flag (and password if given)",
        "Delete a user and its tokens"
    );
    v.extend([
        (
            spec(
                "GET",
                "/api/tokens",
                A,
                "List API tokens (of user_id, default the caller; sort)",
                None,
                Pg("ApiToken"),
            ),
            get(u::list_tokens),
        ),
        (
            spec(
                "POST",
                "/api/tokens",
                A,
                "Create an API token; the token is shown only in this response",
                body("TokenCreate"),
                J("TokenCreated"),
            )
            .status(201),
            post(u::create_token),
        ),
        (
            spec(
                "DELETE",
                "/api/tokens/{id}",
                A,
                "Revoke an API token",
                None,
                Empty,
            ),
            delete(u::delete_token),
        ),
    ]);
    resource!(
        "/api/tags",
        "/api/tags/{id}",
        "Tag",
        "TagInput",
        "TagInput",
        V,
        O,
        t::list_tags,
        t::create_tag,
        t::get_tag,
        t::update_tag,
        t::patch_tag,
        t::delete_tag,
        "List tags (filter name; sort)",
        "Create a tag",
        "Get a tag",
        "Replace a tag (name and description)",
        "Delete a tag"
    );
    resource!(
        "/api/credentials",
        "/api/credentials/{id}",
        "CredentialInfo",
        "CredentialCreate",
        "CredentialReplace",
        V,
        A,
        cr::list_credentials,
        cr::create_credential,
        cr::get_credential,
        cr::update_credential,
        cr::patch_credential,
        cr::delete_credential,
        "List credentials, never their secrets (filters name, username, tag; sort)",
        "Create a credential (password is write-only; create_missing_tags)",
        "Get a credential (never its secrets)",
        "Replace a credential; omitted secrets are kept",
        "Delete a credential"
    );
    resource!(
        "/api/jump-hosts",
        "/api/jump-hosts/{id}",
        "JumpHostInfo",
        "JumpHostCreate",
        "JumpHostReplace",
        A,
        A,
        jh::list_jump_hosts,
        jh::create_jump_host,
        jh::get_jump_host,
        jh::update_jump_host,
        jh::patch_jump_host,
        jh::delete_jump_host,
        "List jump hosts (SSH bastions), never their secrets (sort)",
        "Create a jump host (password or key is write-only; via must exist)",
        "Get a jump host (never its secret)",
        "Replace a jump host; an omitted password is kept",
        "Delete a jump host (409 while a device or jump host names it)"
    );
    v.push((spec("POST", "/api/devices/import", O, "Import devices from CSV (text/csv) or a JSON array; bad rows are reported with their row number and reason, good rows saved", Some(ReqBody::CsvOrJsonArray("DeviceSpec")), J("ImportReport")), post(d::import_devices)));
    v.push((
        spec(
            "POST",
            "/api/devices/bulk",
            O,
            "Delete or retag many devices at once (every id must exist)",
            body("BulkInput"),
            J("BulkReport"),
        ),
        post(d::bulk),
    ));
    resource!(
        "/api/devices",
        "/api/devices/{id}",
        "Device",
        "DeviceInput",
        "DeviceInput",
        V,
        O,
        d::list_devices,
        d::create_device,
        d::get_device,
        d::update_device,
        d::patch_device,
        d::delete_device,
        "List devices with their current state (filters hostname, address, platform, tag, enabled, last_status, changed_since, stale_since; sort)",
        "Create a device (platform must have a driver, address an IP or DNS name; create_missing_tags)",
        "Get a device",
        "Replace a device",
        "Delete a device"
    );
    resource!(
        "/api/jobs",
        "/api/jobs/{id}",
        "Job",
        "JobInput",
        "JobInput",
        V,
        O,
        j::list_jobs,
        j::create_job,
        j::get_job,
        j::update_job,
        j::patch_job,
        j::delete_job,
        "List jobs (filters name, enabled, kind, tag; sort)",
        "Create a job (targets must exist and not be empty; create_missing_tags)",
        "Get a job",
        "Replace a job",
        "Delete a job (system jobs: 409)"
    );
    v.extend([
        (spec("POST", "/api/devices/{id}/backup", O, "Back up one device now (trigger api; a run still queued is returned); shares the manual-run limit", None, J("DeviceBackupAccepted")).status(202), post(triggers::backup_device)),
        (spec("POST", "/api/jobs/{id}/run", O, "Run a job now (Idempotency-Key header makes retries return the same run)", None, J("RunAccepted")).status(202), post(ru::run_job)),
        (spec("GET", "/api/runs", V, "List runs (filters job_id, status, since, until; sort)", None, Pg("Run")), get(ru::list_runs)),
        (spec("GET", "/api/runs/{id}", V, "Get a run with status, counts and timings", None, J("Run")), get(ru::get_run)),
        (spec("GET", "/api/job-results", V, "List per-device results (filters device_id, job_id, run_id, status, since, until; sort)", None, Pg("DeviceResult")), get(ru::list_results)),
        (spec("GET", "/api/logs", V, "List logs (filters run_id, device_id, job_id, level, kind, source, since, until, search; after_id cursor; order or sort)", None, Pg("LogEntry")), get(ru::list_logs)),
        (spec("GET", "/api/logs/stream", V, "A run's logs as server-sent events, live until the run ends (resumes after Last-Event-ID or after_id)", None, Text("text/event-stream")), get(ru::stream_logs)),
        (spec("GET", "/api/configs/search", V, "Search the latest configurations (q, regex=true, context): matching lines with line numbers and context", None, Pg("SearchHit")), get(c::search)),
        (spec("GET", "/api/configs/diff", V, "Unified diff of two snapshots (from, to)", None, J("DiffResponse")), get(c::diff)),
        (spec("GET", "/api/configs/snapshots/{id}", V, "A snapshot with its content (format=text: a text/plain download); ETag and If-None-Match (304)", None, J("Snapshot")), get(c::snapshot)),
        (spec("GET", "/api/configs/{device_id}/latest", V, "A device's newest snapshot with its content (format=text: a text/plain download); ETag and If-None-Match (304)", None, J("Snapshot")), get(c::latest)),
        (spec("GET", "/api/configs/{device_id}/history", V, "A device's snapshots, newest first (404 for an unknown device)", None, Pg("SnapshotMeta")), get(c::history)),
    ]);
    v
}

/// Every route of the API with its access rule (for documentation and tests).
pub fn routes() -> Vec<RouteSpec> {
    table().into_iter().map(|(s, _)| s).collect()
}

/// The API router. Serve it with `axum::serve(listener, router(state))`.
pub fn router(state: ApiState) -> Router {
    let mut r: Router<ApiState> = Router::new();
    for (spec, mr) in table() {
        let mr = if spec.takes_query() {
            mr
        } else {
            mr.layer(axum::middleware::from_fn(no_query))
        };
        let mr = match spec.access {
            Access::Public => mr,
            Access::Role(role) => mr.route_layer(axum::middleware::from_fn_with_state(
                (state.clone(), role),
                auth::require_role,
            )),
        };
        r = r.route(spec.path, mr);
    }
    r.merge(oxidized::routes(&state))
        .merge(inventory::routes(&state))
        .route("/", axum::routing::get(crate::ui::index))
        .route("/assets/{*file}", axum::routing::get(crate::ui::asset))
        .fallback(error::not_found_fallback)
        .method_not_allowed_fallback(error::method_not_allowed_fallback)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .with_state(state)
}
