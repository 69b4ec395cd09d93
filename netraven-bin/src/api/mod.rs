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
//! 404 missing, 409 duplicate or protected, 413 body over 1 MiB, 415 wrong content type,
//! 422 invalid input (wrong types, unknown fields, failed validation), 429 too many failed logins.

pub mod auth;
pub mod common;
pub mod configs;
pub mod credentials;
pub mod devices;
pub mod error;
pub mod inventory;
pub mod jobs;
pub mod oxidized;
pub mod runs;
pub mod system;
pub mod tags;
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
}

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
        }
    }
}

/// One route of the API: the single declaration the router, the role check and the OpenAPI
/// document are built from.
#[derive(Debug, Clone, Copy)]
pub struct RouteSpec {
    /// HTTP method (`GET`, `POST`, `PUT`, `DELETE`).
    pub method: &'static str,
    /// axum path, with `{param}` placeholders (also OpenAPI syntax).
    pub path: &'static str,
    /// Who may call it.
    pub access: Access,
    /// One line for the OpenAPI document.
    pub summary: &'static str,
    /// Success status.
    pub success: u16,
}

const V: Access = Access::Role(Role::Viewer);
const O: Access = Access::Role(Role::Operator);
const A: Access = Access::Role(Role::Admin);
const P: Access = Access::Public;

/// The route table: every route with its access rule and handler.
fn table() -> Vec<(RouteSpec, MethodRouter<ApiState>)> {
    use auth as au;
    use configs as c;
    use credentials as cr;
    use devices as d;
    use jobs as j;
    use runs as ru;
    use system as s;
    use tags as t;
    use users as u;
    use views as vw;
    fn spec(
        method: &'static str,
        path: &'static str,
        access: Access,
        success: u16,
        summary: &'static str,
    ) -> RouteSpec {
        RouteSpec {
            method,
            path,
            access,
            summary,
            success,
        }
    }
    vec![
        (
            spec("GET", "/api/health", P, 200, "Liveness check"),
            get(s::health),
        ),
        (
            spec(
                "GET",
                "/api/ready",
                P,
                200,
                "Readiness: store and queue reachable, migrations current (503 if not)",
            ),
            get(s::ready),
        ),
        (
            spec("GET", "/metrics", P, 200, "Prometheus metrics"),
            get(s::metrics),
        ),
        (
            spec("GET", "/api/openapi.json", V, 200, "This OpenAPI document"),
            get(s::openapi),
        ),
        (
            spec(
                "GET",
                "/api/system/status",
                V,
                200,
                "Store, queue and worker status",
            ),
            get(s::status),
        ),
        (
            spec(
                "POST",
                "/api/auth/token",
                P,
                200,
                "Log in (form or JSON username/password); returns a bearer token",
            ),
            post(au::login),
        ),
        (
            spec("GET", "/api/auth/me", V, 200, "The calling user"),
            get(au::me),
        ),
        // Read models of the web page
        (
            spec(
                "GET",
                "/api/dashboard",
                V,
                200,
                "Dashboard figures: device health, failing devices, latest runs, runs per day with p50/p95 durations (days, stale_hours)",
            ),
            get(vw::dashboard),
        ),
        (
            spec(
                "GET",
                "/api/devices/recent",
                V,
                200,
                "Recent results of up to 100 devices (ids, n): last results, last success and failure, credential that worked",
            ),
            get(vw::recent_results),
        ),
        (
            spec(
                "POST",
                "/api/jobs/preview",
                V,
                200,
                "The next fire times of a schedule (nothing is stored)",
            ),
            post(vw::preview_schedule),
        ),
        // Users
        (
            spec("GET", "/api/users", A, 200, "List users"),
            get(u::list_users),
        ),
        (
            spec("POST", "/api/users", A, 201, "Create a user"),
            post(u::create_user),
        ),
        (
            spec("GET", "/api/users/{id}", A, 200, "Get a user"),
            get(u::get_user),
        ),
        (
            spec(
                "PUT",
                "/api/users/{id}",
                A,
                200,
                "Change a user's password, role or active flag",
            ),
            put(u::update_user),
        ),
        (
            spec(
                "DELETE",
                "/api/users/{id}",
                A,
                204,
                "Delete a user and its tokens",
            ),
            delete(u::delete_user),
        ),
        // API tokens
        (
            spec(
                "GET",
                "/api/tokens",
                A,
                200,
                "List API tokens (of user_id, default the caller)",
            ),
            get(u::list_tokens),
        ),
        (
            spec(
                "POST",
                "/api/tokens",
                A,
                201,
                "Create an API token; the token is shown only in this response",
            ),
            post(u::create_token),
        ),
        (
            spec("DELETE", "/api/tokens/{id}", A, 204, "Revoke an API token"),
            delete(u::delete_token),
        ),
        // Tags
        (
            spec("GET", "/api/tags", V, 200, "List tags"),
            get(t::list_tags),
        ),
        (
            spec("POST", "/api/tags", O, 201, "Create a tag"),
            post(t::create_tag),
        ),
        (
            spec("GET", "/api/tags/{id}", V, 200, "Get a tag"),
            get(t::get_tag),
        ),
        (
            spec("PUT", "/api/tags/{id}", O, 200, "Rename or describe a tag"),
            put(t::update_tag),
        ),
        (
            spec("DELETE", "/api/tags/{id}", O, 204, "Delete a tag"),
            delete(t::delete_tag),
        ),
        // Credentials
        (
            spec(
                "GET",
                "/api/credentials",
                V,
                200,
                "List credentials (never their secrets)",
            ),
            get(cr::list_credentials),
        ),
        (
            spec(
                "POST",
                "/api/credentials",
                A,
                201,
                "Create a credential (password is write-only)",
            ),
            post(cr::create_credential),
        ),
        (
            spec(
                "GET",
                "/api/credentials/{id}",
                V,
                200,
                "Get a credential (never its secrets)",
            ),
            get(cr::get_credential),
        ),
        (
            spec(
                "PUT",
                "/api/credentials/{id}",
                A,
                200,
                "Update a credential; omitted secrets are kept",
            ),
            put(cr::update_credential),
        ),
        (
            spec(
                "DELETE",
                "/api/credentials/{id}",
                A,
                204,
                "Delete a credential",
            ),
            delete(cr::delete_credential),
        ),
        // Devices
        (
            spec(
                "GET",
                "/api/devices",
                V,
                200,
                "List devices (filters hostname, address, platform, tag)",
            ),
            get(d::list_devices),
        ),
        (
            spec("POST", "/api/devices", O, 201, "Create a device"),
            post(d::create_device),
        ),
        (
            spec(
                "POST",
                "/api/devices/import",
                O,
                200,
                "Import devices from CSV (text/csv) or a JSON array; reports per-row errors and duplicates",
            ),
            post(d::import_devices),
        ),
        (
            spec("GET", "/api/devices/{id}", V, 200, "Get a device"),
            get(d::get_device),
        ),
        (
            spec("PUT", "/api/devices/{id}", O, 200, "Replace a device"),
            put(d::update_device),
        ),
        (
            spec("DELETE", "/api/devices/{id}", O, 204, "Delete a device"),
            delete(d::delete_device),
        ),
        // Jobs and runs
        (
            spec(
                "GET",
                "/api/jobs",
                V,
                200,
                "List jobs (filters name, enabled)",
            ),
            get(j::list_jobs),
        ),
        (
            spec("POST", "/api/jobs", O, 201, "Create a job"),
            post(j::create_job),
        ),
        (
            spec("GET", "/api/jobs/{id}", V, 200, "Get a job"),
            get(j::get_job),
        ),
        (
            spec("PUT", "/api/jobs/{id}", O, 200, "Replace a job"),
            put(j::update_job),
        ),
        (
            spec(
                "DELETE",
                "/api/jobs/{id}",
                O,
                204,
                "Delete a job (system jobs: 409)",
            ),
            delete(j::delete_job),
        ),
        (
            spec(
                "POST",
                "/api/jobs/{id}/run",
                O,
                202,
                "Run a job now (Idempotency-Key header makes retries return the same run)",
            ),
            post(ru::run_job),
        ),
        (
            spec(
                "GET",
                "/api/runs",
                V,
                200,
                "List runs (filters job_id, status, since, until)",
            ),
            get(ru::list_runs),
        ),
        (
            spec(
                "GET",
                "/api/runs/{id}",
                V,
                200,
                "Get a run with status, counts and timings",
            ),
            get(ru::get_run),
        ),
        (
            spec(
                "GET",
                "/api/job-results",
                V,
                200,
                "List per-device results (filters device_id, job_id, run_id, status, since, until)",
            ),
            get(ru::list_results),
        ),
        // Logs
        (
            spec(
                "GET",
                "/api/logs",
                V,
                200,
                "List logs (filters run_id, device_id, job_id, level, kind, source, since, until, search; order)",
            ),
            get(ru::list_logs),
        ),
        (
            spec(
                "GET",
                "/api/logs/stream",
                V,
                200,
                "A run's logs as server-sent events, live until the run ends",
            ),
            get(ru::stream_logs),
        ),
        // Configs
        (
            spec(
                "GET",
                "/api/configs/search",
                V,
                200,
                "Search the latest configurations (q)",
            ),
            get(c::search),
        ),
        (
            spec(
                "GET",
                "/api/configs/diff",
                V,
                200,
                "Unified diff of two snapshots (from, to)",
            ),
            get(c::diff),
        ),
        (
            spec(
                "GET",
                "/api/configs/snapshots/{id}",
                V,
                200,
                "A snapshot with its content",
            ),
            get(c::snapshot),
        ),
        (
            spec(
                "GET",
                "/api/configs/{device_id}/history",
                V,
                200,
                "A device's snapshots, newest first",
            ),
            get(c::history),
        ),
    ]
}

/// Every route of the API with its access rule (for documentation and tests).
pub fn routes() -> Vec<RouteSpec> {
    table().into_iter().map(|(s, _)| s).collect()
}

/// The API router. Serve it with `axum::serve(listener, router(state))`.
pub fn router(state: ApiState) -> Router {
    let mut r: Router<ApiState> = Router::new();
    for (spec, mr) in table() {
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
