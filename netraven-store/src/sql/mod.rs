//! The SQL stores: [`SqliteStore`] (the embedded default) and [`PostgresStore`] (distributed).
//!
//! Both implement every focused store trait of [`netraven_core::store`] (and so
//! [`netraven_core::store::Store`]) with runtime-checked sqlx queries: values are always bound,
//! never interpolated; the only text spliced into SQL is fixed column lists and `$n` placeholders.
//!
//! ## One implementation, two backends
//!
//! The schema is the same on both backends (see `migrations/sqlite` and `migrations/postgres`:
//! same tables, columns and indexes; SQLite keeps timestamps as INTEGER microseconds since the
//! epoch, PostgreSQL as `TIMESTAMPTZ`). The trait implementations live once, in `common.rs`, and
//! are compiled into each backend module with `include!`, against a handful of per-backend items
//! (`Db`, timestamp conversion, the case-insensitive `LIKE` operator, id-list parameters, how a
//! write transaction begins). This keeps the SQL shared where the dialects agree without
//! `sqlx::Any` and without generic trait-bound towers.
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
use serde::Serialize;
use serde::de::DeserializeOwned;

mod postgres;
mod sqlite;

pub use netraven_core::cipher::SecretCipher;
pub use postgres::{PostgresOptions, PostgresStore};
pub use sqlite::{SqliteOptions, SqliteStore};

/// Name of the table that records applied migrations (SQLite; on PostgreSQL it lives in the
/// store's schema under the same name).
pub const MIGRATIONS_TABLE: &str = "netraven_migrations";

/// Rows deleted per statement when a caller passes a batch size of 0 to `prune_logs`.
const DEFAULT_PRUNE_BATCH: u32 = 10_000;

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
                ) || code.starts_with("08");
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

/// Maps a migration error.
pub(crate) fn migrate_err(e: sqlx::migrate::MigrateError) -> Error {
    Error::new(
        ErrorKind::Internal,
        format!("database migration failed: {e}"),
    )
    .with_source(e)
}

/// A value bound into a dynamically assembled query.
#[derive(Debug, Clone)]
pub(crate) enum Arg {
    I64(i64),
    OptI64(Option<i64>),
    Text(String),
    OptText(Option<String>),
    Ts(chrono::DateTime<chrono::Utc>),
    Ids(Vec<i64>),
    Texts(Vec<String>),
    Bool(bool),
}

/// A WHERE clause under construction: conditions joined by AND, with `$n` placeholders that
/// match the order of `args`.
#[derive(Debug, Default)]
pub(crate) struct Where {
    conds: Vec<String>,
    pub(crate) args: Vec<Arg>,
}

impl Where {
    /// Adds a bound value and returns its placeholder (`$n`).
    pub(crate) fn arg(&mut self, a: Arg) -> String {
        self.args.push(a);
        format!("${}", self.args.len())
    }

    /// Adds a condition (SQL text with placeholders from [`Where::arg`]).
    pub(crate) fn cond(&mut self, c: String) {
        self.conds.push(c);
    }

    /// ` WHERE a AND b`, or nothing.
    pub(crate) fn sql(&self) -> String {
        if self.conds.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", self.conds.join(" AND "))
        }
    }
}

/// `%needle%` with LIKE wildcards escaped (for `LIKE … ESCAPE '\'`).
pub(crate) fn contains_pattern(needle: &str) -> String {
    format!("%{}%", netraven_core::model::like_escape(needle))
}

/// The serde name of a unit enum variant (`"forbid"`, …).
pub(crate) fn enum_name<T: Serialize>(v: &T) -> Result<String, Error> {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => Ok(s),
        _ => Err(Error::internal("enum does not serialise to a string")),
    }
}

/// Parses a serde name produced by [`enum_name`].
pub(crate) fn parse_enum<T: DeserializeOwned>(what: &str, s: &str) -> Result<T, Error> {
    serde_json::from_value(serde_json::Value::String(s.to_string()))
        .map_err(|_| Error::internal(format!("unknown {what} {s:?} in database")))
}

/// JSON text of a value.
pub(crate) fn to_json<T: Serialize>(v: &T) -> Result<String, Error> {
    serde_json::to_string(v).map_err(|e| Error::internal(format!("cannot encode JSON: {e}")))
}

/// Parses JSON text from a column.
pub(crate) fn from_json<T: DeserializeOwned>(what: &str, s: &str) -> Result<T, Error> {
    serde_json::from_str(s)
        .map_err(|e| Error::internal(format!("invalid {what} JSON in database: {e}")))
}

/// Numeric form of a log level (so `min_level` is a range condition).
pub(crate) fn level_num(l: netraven_core::model::LogLevel) -> i64 {
    use netraven_core::model::LogLevel::*;
    match l {
        Debug => 0,
        Info => 1,
        Warning => 2,
        Error => 3,
    }
}

/// Inverse of [`level_num`].
pub(crate) fn level_from_num(n: i64) -> Result<netraven_core::model::LogLevel, Error> {
    use netraven_core::model::LogLevel;
    Ok(match n {
        0 => LogLevel::Debug,
        1 => LogLevel::Info,
        2 => LogLevel::Warning,
        3 => LogLevel::Error,
        _ => {
            return Err(Error::internal(format!(
                "unknown log level {n} in database"
            )));
        }
    })
}

/// Converts a database integer to an unsigned field.
pub(crate) fn to_u<T: TryFrom<i64>>(what: &str, v: i64) -> Result<T, Error> {
    T::try_from(v).map_err(|_| Error::internal(format!("{what} {v} out of range in database")))
}

/// Converts an unsigned field to a database integer.
pub(crate) fn to_i(what: &str, v: u64) -> Result<i64, Error> {
    i64::try_from(v).map_err(|_| Error::invalid(format!("{what} {v} is too large")))
}
