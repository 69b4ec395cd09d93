//! The SQL stores: [`SqliteStore`] (the embedded default) and [`PostgresStore`] (distributed).
//!
//! Both implement every focused store trait of [`netraven_core::store`] with runtime-checked
//! sqlx queries: values are always bound, never interpolated; the only text spliced into SQL is
//! fixed column lists and `$n` placeholders.
//!
//! ## One implementation, two backends
//!
//! The schema is the same on both backends (see `migrations/sqlite` and `migrations/postgres`:
//! same tables, columns and indexes; SQLite keeps timestamps as INTEGER microseconds since the
//! epoch, PostgreSQL as `TIMESTAMPTZ`). Both stores are [`SqlStore`] over a backend:
//! [`SqliteStore`] is `SqlStore<SqliteBackend>`, [`PostgresStore`] is `SqlStore<PostgresBackend>`.
//! The store traits are implemented once, generically, one module per concern (`devices`,
//! `tags`, `credentials`, `jobs`, `runs`, `results`, `logs`, `snapshots`, `host_keys`, `leases`,
//! `users`), against the `Dialect` trait (`dialect.rs`): the backend runs dialect-neutral queries
//! (`$n` text plus bound values), reads typed columns and supplies the few fragments where the
//! SQL differs (the case-insensitive `LIKE`, list parameters, how a write transaction begins).
//! No `sqlx::Any`, and no sqlx trait bounds in the shared code.
//!
//! ## Writes on SQLite: group commit
//!
//! The small writes of the engine's per-device path (`record_result`, `append_logs`,
//! `insert_snapshot`, `put_snapshot`, `record_credential_use`, `mark_device_started`) go through
//! `Dialect::write`. On PostgreSQL that is a transaction per write, as before; on SQLite
//! concurrent writes are queued to one writer task that commits them together, each caller
//! answered with its own outcome after the commit (`group_commit.rs`). Every statement is a
//! hand-off to sqlx's connection thread and back, so the writes made of several statements
//! (`record_result`: insert + tallies; `put_snapshot`: hash check, index row, content, latest
//! entry) run as one multi-statement query on SQLite (`Dialect::MULTI_STATEMENT`) and statement
//! by statement on PostgreSQL.
//!
//! ## Migrations
//!
//! Versioned migrations are embedded and applied by `open`/`connect` and by `migrate()`. Their
//! bookkeeping lives in the table `netraven_migrations` (SQLite) or in the PostgreSQL schema the
//! store was given (default `netraven`), so an embedding application's own sqlx migrations do not
//! clash.
//!
//! ## Credentials
//!
//! Secrets are stored only as ciphertext from the [`SecretCipher`] passed to the constructor, with
//! the row identity as associated data (`credential:{id}:password`,
//! `credential:{id}:enable_secret`). `reencrypt_credentials` re-encrypts every credential with a
//! new cipher (key rotation).

use netraven_core::error::{Error, ErrorKind};
use std::sync::Arc;

mod dialect;
mod group_commit;
mod postgres;
mod query;
mod sqlite;

mod credentials;
mod devices;
mod host_keys;
mod jobs;
mod jump_hosts;
mod latest;
mod leases;
mod logs;
mod results;
mod runs;
mod snapshots;
mod tags;
mod users;

pub use netraven_core::cipher::SecretCipher;
pub use postgres::{DEFAULT_SCHEMA, PostgresBackend, PostgresOptions};
pub use query::like_escape;
pub use sqlite::{SqliteBackend, SqliteOptions};

/// The SQLite store: one database file in WAL mode, created (with its directory) on first
/// start, migrated on open. See [`SqlStore`].
pub type SqliteStore = SqlStore<SqliteBackend>;

/// The PostgreSQL store: all tables in one schema (default `netraven`). See [`SqlStore`].
pub type PostgresStore = SqlStore<PostgresBackend>;

/// A SQL store over one backend (`B` is [`SqliteBackend`] or [`PostgresBackend`]): the
/// backend's connection pool and the cipher that seals credential secrets.
#[derive(Clone)]
pub struct SqlStore<B> {
    db: B,
    cipher: Arc<dyn SecretCipher>,
    /// Credentials already reported as undecryptable (each is logged once, clones share it).
    unreadable_seen: Arc<std::sync::Mutex<std::collections::HashSet<i64>>>,
    /// Credential-use statistics waiting to be written together (see `credentials.rs`).
    credential_uses: Arc<credentials::UseTallies>,
}

impl<B: std::fmt::Debug> std::fmt::Debug for SqlStore<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlStore")
            .field("backend", &self.db)
            .field("cipher_key", &self.cipher.current_key_id())
            .finish()
    }
}

/// Name of the table that records applied migrations (SQLite; on PostgreSQL it lives in the
/// store's schema under the same name).
pub const MIGRATIONS_TABLE: &str = "netraven_migrations";

/// Rows deleted per statement when a caller passes a batch size of 0 to `prune_logs`.
const DEFAULT_PRUNE_BATCH: u32 = 10_000;

/// The same error for another caller waiting on one shared write (errors are not `Clone`;
/// kind and message are what a caller acts on).
pub(crate) fn copy_err(e: &Error) -> Error {
    Error::new(e.kind(), e.message())
}

/// Maps a sqlx error to a NetRaven error: unique violations are Conflict, missing rows NotFound,
/// connection trouble Unavailable, everything else Internal.
pub(crate) fn db_err(e: sqlx::Error) -> Error {
    let err = match &e {
        sqlx::Error::RowNotFound => Error::not_found("row not found"),
        sqlx::Error::Database(d) => {
            if d.is_unique_violation() {
                Error::conflict(format!("already exists ({})", d.message()))
            } else if d.is_foreign_key_violation() {
                Error::invalid(format!("refers to a missing row ({})", d.message()))
            } else if d.is_check_violation() {
                Error::invalid(format!("rejected by the database ({})", d.message()))
            } else {
                let code = d.code().map(|c| c.to_string()).unwrap_or_default();
                let transient = matches!(
                    code.as_str(),
                    // SQLite: BUSY, LOCKED, BUSY_SNAPSHOT, BUSY_TIMEOUT
                    "5" | "6" | "517" | "773" | "261"
                    // PostgreSQL: serialization failure, deadlock, shutdown, too many connections
                    | "40001" | "40P01" | "57P01" | "57P02" | "57P03" | "53300"
                    // PostgreSQL: the database was dropped or renamed away, or does not
                    // exist (yet): an outage of the store, not a bug
                    | "57P04" | "3D000"
                ) || code.starts_with("08")
                    // PostgreSQL: the database refuses connections (ALLOW_CONNECTIONS false)
                    || (code == "55000" && d.message().contains("accepting connections"));
                if transient {
                    Error::unavailable(format!("database busy or unavailable ({})", d.message()))
                } else {
                    Error::internal(format!("database error {code} ({})", d.message()))
                }
            }
        }
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::BeginFailed => Error::unavailable(format!("database unavailable: {e}")),
        sqlx::Error::Configuration(_) => Error::invalid(format!("database configuration: {e}")),
        _ => Error::internal(format!("database: {e}")),
    };
    err.with_source(e)
}

/// The schema status from the migrations this build embeds and the versions a database applied.
pub(crate) fn schema_status(
    known: &sqlx::migrate::Migrator,
    applied: &[i64],
) -> netraven_core::store::SchemaStatus {
    let known: Vec<i64> = known
        .iter()
        .filter(|m| m.migration_type.is_up_migration())
        .map(|m| m.version)
        .collect();
    netraven_core::store::SchemaStatus {
        applied: applied.iter().copied().max(),
        latest: known.iter().copied().max().unwrap_or(0),
        pending: known.into_iter().filter(|v| !applied.contains(v)).collect(),
    }
}

/// Maps a migration error.
pub(crate) fn migrate_err(e: sqlx::migrate::MigrateError) -> Error {
    Error::new(
        ErrorKind::Internal,
        format!("database migration failed: {e}"),
    )
    .with_source(e)
}
