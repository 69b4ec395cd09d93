//! [`PostgresStore`]: the distributed store. All tables live in one schema (default `netraven`),
//! reached through the connection's `search_path`.

// `Arg`, `db_err`, `DateTime`, `Utc`, `Error` and `Result` come with `common.rs`.
use crate::sql::{MIGRATIONS_TABLE, migrate_err};
use netraven_core::cipher::SecretCipher;
use netraven_core::error::ErrorKind;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

type Db = sqlx::Postgres;
type DbRow = sqlx::postgres::PgRow;
type DbConn = sqlx::PgConnection;
type Backend = PostgresStore;
type TsT = DateTime<Utc>;

const CI_LIKE: &str = "ILIKE";

fn ts(d: DateTime<Utc>) -> TsT {
    d
}

fn from_ts(v: TsT) -> Result<DateTime<Utc>> {
    Ok(v)
}

/// Membership in a list bound as one array parameter.
fn in_list(expr: &str, placeholder: &str) -> String {
    format!("{expr} = ANY({placeholder})")
}

fn bind_arg(q: Q, a: Arg) -> Q {
    match a {
        Arg::I64(v) => q.bind(v),
        Arg::OptI64(v) => q.bind(v),
        Arg::Text(v) => q.bind(v),
        Arg::OptText(v) => q.bind(v),
        Arg::Ts(v) => q.bind(v),
        Arg::Ids(v) => q.bind(v),
        Arg::Texts(v) => q.bind(v),
        Arg::Bool(v) => q.bind(v),
    }
}

/// The schema used when none is given.
pub const DEFAULT_SCHEMA: &str = "netraven";

/// Options for [`PostgresStore::connect_with`].
#[derive(Debug, Clone)]
pub struct PostgresOptions {
    /// Schema holding NetRaven's tables and its migration table; created if missing. Lowercase
    /// letters, digits and `_`, starting with a letter or `_`, at most 63 characters.
    pub schema: String,
    /// Pooled connections.
    pub max_connections: u32,
    /// How long to wait for a pooled connection before failing with `Unavailable`.
    pub acquire_timeout: Duration,
}

impl Default for PostgresOptions {
    fn default() -> Self {
        PostgresOptions {
            schema: DEFAULT_SCHEMA.to_string(),
            max_connections: 10,
            acquire_timeout: Duration::from_secs(10),
        }
    }
}

fn valid_schema(s: &str) -> Result<()> {
    let mut chars = s.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_');
    if !first_ok
        || s.len() > 63
        || !s
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    {
        return Err(Error::invalid(format!(
            "invalid PostgreSQL schema name {s:?} (use [a-z_][a-z0-9_]*, at most 63 characters)"
        )));
    }
    Ok(())
}

/// The PostgreSQL store.
#[derive(Clone)]
pub struct PostgresStore {
    pool: sqlx::PgPool,
    cipher: Arc<dyn SecretCipher>,
    schema: String,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore")
            .field("schema", &self.schema)
            .field("cipher_key", &self.cipher.current_key_id())
            .finish_non_exhaustive()
    }
}

impl PostgresStore {
    /// Connects to `url` (a `postgres://` URL), using `schema` (default `netraven`), creating the
    /// schema if needed and applying pending migrations.
    pub async fn connect(
        url: &str,
        schema: Option<&str>,
        cipher: Arc<dyn SecretCipher>,
    ) -> Result<Self> {
        let options = PostgresOptions {
            schema: schema.unwrap_or(DEFAULT_SCHEMA).to_string(),
            ..PostgresOptions::default()
        };
        Self::connect_with(url, options, cipher).await
    }

    /// Connects with explicit options; see [`PostgresStore::connect`].
    pub async fn connect_with(
        url: &str,
        options: PostgresOptions,
        cipher: Arc<dyn SecretCipher>,
    ) -> Result<Self> {
        valid_schema(&options.schema)?;
        let connect = PgConnectOptions::from_str(url)
            .map_err(|e| Error::invalid(format!("invalid PostgreSQL URL: {e}")))?
            .options([("search_path", options.schema.as_str())]);
        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections.max(1))
            .acquire_timeout(options.acquire_timeout)
            .connect_with(connect)
            .await
            .map_err(db_err)?;
        // The name was validated above, so quoting it is enough.
        let create = format!("CREATE SCHEMA IF NOT EXISTS \"{}\"", options.schema);
        if let Err(e) = sqlx::query(sqlx::AssertSqlSafe(create))
            .execute(&pool)
            .await
            .map_err(db_err)
        {
            // Two processes creating the schema at once: the loser sees a unique violation.
            if e.kind() != ErrorKind::Conflict {
                return Err(e);
            }
        }
        let store = PostgresStore {
            pool,
            cipher,
            schema: options.schema,
        };
        store.migrate().await?;
        tracing::debug!(schema = %store.schema, "connected PostgreSQL store");
        Ok(store)
    }

    /// Applies pending migrations (bookkept in `<schema>.netraven_migrations`). Idempotent and
    /// safe to run from several processes at once (sqlx takes an advisory lock).
    pub async fn migrate(&self) -> Result<()> {
        let mut m = sqlx::migrate!("./migrations/postgres");
        m.dangerous_set_table_name(MIGRATIONS_TABLE);
        m.run(&self.pool).await.map_err(migrate_err)
    }

    /// The schema holding the tables.
    pub fn schema(&self) -> &str {
        &self.schema
    }

    /// The underlying connection pool.
    pub fn pool(&self) -> &sqlx::PgPool {
        &self.pool
    }

    /// Drops the store's schema with everything in it and closes the pool (tests, uninstall).
    pub async fn drop_schema(&self) -> Result<()> {
        let sql = format!("DROP SCHEMA IF EXISTS \"{}\" CASCADE", self.schema);
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        self.pool.close().await;
        Ok(())
    }

    /// Closes the pool.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    async fn begin_write(&self) -> Result<sqlx::Transaction<'static, Db>> {
        self.pool.begin().await.map_err(db_err)
    }
}

include!("common.rs");
