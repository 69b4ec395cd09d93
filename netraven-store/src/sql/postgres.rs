//! [`PostgresStore`]: the distributed store. All tables live in one schema (default `netraven`),
//! reached through the connection's `search_path`.

use crate::sql::dialect::{Dialect, SqlRow};
use crate::sql::query::{Arg, Sql};
use crate::sql::{MIGRATIONS_TABLE, PostgresStore, SqlStore, db_err, migrate_err};
use chrono::{DateTime, Utc};
use netraven_core::cipher::SecretCipher;
use netraven_core::error::{Error, ErrorKind, Result};
use netraven_core::store::{SchemaStatus, SchemaStore};
use sqlx::Row;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgRow};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

type Q = sqlx::query::Query<'static, sqlx::Postgres, sqlx::postgres::PgArguments>;

/// The sqlx query for a dialect-neutral one (lists are bound as arrays).
fn build(q: Sql) -> Q {
    let mut out = sqlx::query(sqlx::AssertSqlSafe(q.text));
    for a in q.args {
        out = match a {
            Arg::I64(v) => out.bind(v),
            Arg::OptI64(v) => out.bind(v),
            Arg::Text(v) => out.bind(v),
            Arg::OptText(v) => out.bind(v),
            Arg::Ts(v) => out.bind(v),
            Arg::OptTs(v) => out.bind(v),
            Arg::Ids(v) => out.bind(v),
            Arg::Texts(v) => out.bind(v),
            Arg::Bool(v) => out.bind(v),
            Arg::OptBool(v) => out.bind(v),
        };
    }
    out
}

fn get<'r, T>(row: &'r PgRow, col: &str) -> Result<T>
where
    T: sqlx::Decode<'r, sqlx::Postgres> + sqlx::Type<sqlx::Postgres>,
{
    row.try_get(col).map_err(db_err)
}

impl SqlRow for PgRow {
    fn i64(&self, col: &str) -> Result<i64> {
        get(self, col)
    }
    fn opt_i64(&self, col: &str) -> Result<Option<i64>> {
        get(self, col)
    }
    fn text(&self, col: &str) -> Result<String> {
        get(self, col)
    }
    fn opt_text(&self, col: &str) -> Result<Option<String>> {
        get(self, col)
    }
    fn bool(&self, col: &str) -> Result<bool> {
        get(self, col)
    }
    fn opt_bool(&self, col: &str) -> Result<Option<bool>> {
        get(self, col)
    }
    fn ts(&self, col: &str) -> Result<DateTime<Utc>> {
        get(self, col)
    }
    fn opt_ts(&self, col: &str) -> Result<Option<DateTime<Utc>>> {
        get(self, col)
    }
}

/// The PostgreSQL backend of [`PostgresStore`]: its connection pool and schema.
#[derive(Clone)]
pub struct PostgresBackend {
    pool: sqlx::PgPool,
    schema: String,
    server_clock: bool,
}

impl std::fmt::Debug for PostgresBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgreSQL")
            .field("schema", &self.schema)
            .finish_non_exhaustive()
    }
}

impl Dialect for PostgresBackend {
    type Row = PgRow;
    type Tx = sqlx::Transaction<'static, sqlx::Postgres>;

    const CI_LIKE: &'static str = "ILIKE";

    /// Membership in a list bound as one array parameter.
    fn in_list(expr: &str, placeholder: &str) -> String {
        format!("{expr} = ANY({placeholder})")
    }

    fn ids_table(placeholder: &str) -> String {
        format!("SELECT unnest({placeholder}) AS id")
    }

    fn lease_clock(&self) -> Option<&'static str> {
        self.server_clock.then_some("clock_timestamp()")
    }

    async fn fetch_all(&self, q: Sql) -> Result<Vec<PgRow>> {
        build(q).fetch_all(&self.pool).await.map_err(db_err)
    }

    async fn fetch_optional(&self, q: Sql) -> Result<Option<PgRow>> {
        build(q).fetch_optional(&self.pool).await.map_err(db_err)
    }

    async fn execute(&self, q: Sql) -> Result<u64> {
        Ok(build(q)
            .execute(&self.pool)
            .await
            .map_err(db_err)?
            .rows_affected())
    }

    /// Row locks and unique constraints do the serialising; a plain transaction is enough.
    async fn begin_write(&self) -> Result<Self::Tx> {
        self.pool.begin().await.map_err(db_err)
    }

    async fn commit(tx: Self::Tx) -> Result<()> {
        tx.commit().await.map_err(db_err)
    }

    async fn tx_fetch_all(tx: &mut Self::Tx, q: Sql) -> Result<Vec<PgRow>> {
        build(q).fetch_all(&mut **tx).await.map_err(db_err)
    }

    async fn tx_fetch_optional(tx: &mut Self::Tx, q: Sql) -> Result<Option<PgRow>> {
        build(q).fetch_optional(&mut **tx).await.map_err(db_err)
    }

    async fn tx_execute(tx: &mut Self::Tx, q: Sql) -> Result<u64> {
        Ok(build(q)
            .execute(&mut **tx)
            .await
            .map_err(db_err)?
            .rows_affected())
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
    /// Create the schema and apply pending migrations on connect (default). `false` connects to
    /// the schema as it is, e.g. to ask [`SchemaStore::schema_status`] whether migrations are
    /// pending.
    pub migrate: bool,
    /// Decide lease expiry ([`LeaseStore`](netraven_core::store::LeaseStore): the scheduler,
    /// maintenance and git writer leases) by the database server's clock instead of the `now`
    /// each caller passes, so processes whose clocks disagree never both hold a lease. Off by
    /// default (tests drive leases with a manual clock); the server turns it on.
    pub server_clock: bool,
}

impl Default for PostgresOptions {
    fn default() -> Self {
        PostgresOptions {
            schema: DEFAULT_SCHEMA.to_string(),
            max_connections: 10,
            acquire_timeout: Duration::from_secs(10),
            migrate: true,
            server_clock: false,
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
        let store = SqlStore {
            db: PostgresBackend {
                pool,
                schema: options.schema,
                server_clock: options.server_clock,
            },
            cipher,
            unreadable_seen: Default::default(),
            credential_uses: Default::default(),
        };
        if !options.migrate {
            return Ok(store);
        }
        // The name was validated above, so quoting it is enough.
        let create = format!("CREATE SCHEMA IF NOT EXISTS \"{}\"", store.db.schema);
        if let Err(e) = sqlx::query(sqlx::AssertSqlSafe(create))
            .execute(&store.db.pool)
            .await
            .map_err(db_err)
        {
            // Two processes creating the schema at once: the loser sees a unique violation.
            if e.kind() != ErrorKind::Conflict {
                return Err(e);
            }
        }
        store.migrate().await?;
        tracing::debug!(schema = %store.db.schema, "connected PostgreSQL store");
        Ok(store)
    }

    /// Applies pending migrations (bookkept in `<schema>.netraven_migrations`). Idempotent and
    /// safe to run from several processes at once (sqlx takes an advisory lock).
    pub async fn migrate(&self) -> Result<()> {
        Self::migrator()
            .run(&self.db.pool)
            .await
            .map_err(migrate_err)
    }

    fn migrator() -> sqlx::migrate::Migrator {
        let mut m = sqlx::migrate!("./migrations/postgres");
        m.dangerous_set_table_name(MIGRATIONS_TABLE);
        m
    }

    /// The schema holding the tables.
    pub fn schema(&self) -> &str {
        &self.db.schema
    }

    /// The underlying connection pool.
    pub fn pool(&self) -> &sqlx::PgPool {
        &self.db.pool
    }

    /// Drops the store's schema with everything in it and closes the pool (tests, uninstall).
    pub async fn drop_schema(&self) -> Result<()> {
        let sql = format!("DROP SCHEMA IF EXISTS \"{}\" CASCADE", self.db.schema);
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(&self.db.pool)
            .await
            .map_err(db_err)?;
        self.db.pool.close().await;
        Ok(())
    }

    /// Closes the pool.
    pub async fn close(&self) {
        self.db.pool.close().await;
    }
}

#[async_trait::async_trait]
impl SchemaStore for PostgresStore {
    async fn schema_status(&self) -> Result<SchemaStatus> {
        let exists: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = $1 AND table_name = $2",
        )
        .bind(&self.db.schema)
        .bind(MIGRATIONS_TABLE)
        .fetch_one(&self.db.pool)
        .await
        .map_err(db_err)?;
        let applied: Vec<i64> = if exists == 0 {
            Vec::new()
        } else {
            sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                "SELECT version FROM {MIGRATIONS_TABLE} WHERE success"
            )))
            .fetch_all(&self.db.pool)
            .await
            .map_err(db_err)?
        };
        Ok(crate::sql::schema_status(&Self::migrator(), &applied))
    }
}
