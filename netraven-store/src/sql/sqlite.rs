//! [`SqliteStore`]: the embedded default store (one SQLite file, WAL mode).

use crate::sql::dialect::{Dialect, SqlRow, TxFuture};
use crate::sql::group_commit::GroupCommit;
use crate::sql::query::{Arg, Sql};
use crate::sql::{MIGRATIONS_TABLE, SqlStore, SqliteStore, db_err, migrate_err};
use chrono::{DateTime, Utc};
use netraven_core::cipher::SecretCipher;
use netraven_core::error::{Error, Result};
use netraven_core::store::{SchemaStatus, SchemaStore};
use sqlx::Row;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

type Q = sqlx::query::Query<'static, sqlx::Sqlite, sqlx::sqlite::SqliteArguments>;

/// SQLite keeps timestamps as INTEGER microseconds since the epoch (sortable, comparable).
fn ts(d: DateTime<Utc>) -> i64 {
    d.timestamp_micros()
}

fn from_ts(v: i64) -> Result<DateTime<Utc>> {
    DateTime::<Utc>::from_timestamp_micros(v)
        .ok_or_else(|| Error::internal(format!("timestamp {v} out of range in database")))
}

fn json_list<T: serde::Serialize>(v: &[T]) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "[]".to_string())
}

/// The sqlx query for a dialect-neutral one (lists are bound as one JSON array).
fn build(q: Sql) -> Q {
    let mut out = sqlx::query(sqlx::AssertSqlSafe(q.text));
    for a in q.args {
        out = match a {
            Arg::I64(v) => out.bind(v),
            Arg::OptI64(v) => out.bind(v),
            Arg::Text(v) => out.bind(v),
            Arg::OptText(v) => out.bind(v),
            Arg::Ts(v) => out.bind(ts(v)),
            Arg::OptTs(v) => out.bind(v.map(ts)),
            Arg::Ids(v) => out.bind(json_list(&v)),
            Arg::Texts(v) => out.bind(json_list(&v)),
            Arg::Bool(v) => out.bind(v),
            Arg::OptBool(v) => out.bind(v),
        };
    }
    out
}

fn get<'r, T>(row: &'r SqliteRow, col: &str) -> Result<T>
where
    T: sqlx::Decode<'r, sqlx::Sqlite> + sqlx::Type<sqlx::Sqlite>,
{
    row.try_get(col).map_err(db_err)
}

impl SqlRow for SqliteRow {
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
        from_ts(get(self, col)?)
    }
    fn opt_ts(&self, col: &str) -> Result<Option<DateTime<Utc>>> {
        get::<Option<i64>>(self, col)?.map(from_ts).transpose()
    }
}

/// The SQLite backend of [`SqliteStore`]: its connection pool and the group committer of its
/// per-device writes.
#[derive(Clone)]
pub struct SqliteBackend {
    pool: sqlx::SqlitePool,
    writes: Arc<GroupCommit>,
}

impl SqliteBackend {
    /// `writer`: for a WAL file, the group committer's own connection (see `group_commit.rs`);
    /// `None` writes on `pool` (an in-memory database, whose one connection is the database).
    fn new(pool: sqlx::SqlitePool, writer: Option<sqlx::SqlitePool>) -> Self {
        SqliteBackend {
            writes: GroupCommit::new(pool.clone(), writer),
            pool,
        }
    }
}

impl std::fmt::Debug for SqliteBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SQLite")
    }
}

impl Dialect for SqliteBackend {
    type Row = SqliteRow;
    type Tx = sqlx::Transaction<'static, sqlx::Sqlite>;

    /// SQLite's `LIKE` is case-insensitive for ASCII.
    const CI_LIKE: &'static str = "LIKE";

    /// sqlx runs a multi-statement query's statements one after another on the connection's
    /// thread, binding `$n` by number from the one argument list.
    const MULTI_STATEMENT: bool = true;

    /// Membership in a list bound as one JSON array parameter.
    fn in_list(expr: &str, placeholder: &str) -> String {
        format!("{expr} IN (SELECT value FROM json_each({placeholder}))")
    }

    fn ids_table(placeholder: &str) -> String {
        format!("SELECT value AS id FROM json_each({placeholder})")
    }

    async fn fetch_all(&self, q: Sql) -> Result<Vec<SqliteRow>> {
        build(q).fetch_all(&self.pool).await.map_err(db_err)
    }

    async fn fetch_optional(&self, q: Sql) -> Result<Option<SqliteRow>> {
        build(q).fetch_optional(&self.pool).await.map_err(db_err)
    }

    async fn execute(&self, q: Sql) -> Result<u64> {
        Ok(build(q)
            .execute(&self.pool)
            .await
            .map_err(db_err)?
            .rows_affected())
    }

    /// `BEGIN IMMEDIATE` takes the write lock at once; waiting is bounded by the busy timeout.
    async fn begin_write(&self) -> Result<Self::Tx> {
        self.pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(db_err)
    }

    async fn commit(tx: Self::Tx) -> Result<()> {
        tx.commit().await.map_err(db_err)
    }

    /// Group commit: concurrent writes share one transaction, each in its own savepoint (see
    /// `group_commit.rs`).
    async fn write<T, F>(&self, op: F) -> Result<T>
    where
        T: Send + 'static,
        F: for<'t> Fn(&'t mut Self::Tx) -> TxFuture<'t, T> + Send + 'static,
    {
        self.writes.write(op).await
    }

    async fn tx_fetch_all(tx: &mut Self::Tx, q: Sql) -> Result<Vec<SqliteRow>> {
        build(q).fetch_all(&mut **tx).await.map_err(db_err)
    }

    async fn tx_fetch_optional(tx: &mut Self::Tx, q: Sql) -> Result<Option<SqliteRow>> {
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

/// A pool of one connection that stays open as long as the pool (an in-memory database lives
/// in it; the group committer keeps its page cache).
fn one_kept_connection(acquire_timeout: Duration) -> SqlitePoolOptions {
    SqlitePoolOptions::new()
        .max_connections(1)
        .min_connections(1)
        .idle_timeout(None)
        .max_lifetime(None)
        .acquire_timeout(acquire_timeout)
}

/// Tuning for [`SqliteStore::open_with`].
#[derive(Debug, Clone)]
pub struct SqliteOptions {
    /// Pooled connections (readers run in parallel under WAL; writers take turns). The group
    /// committer of the engine's per-device writes has one more connection of its own.
    pub max_connections: u32,
    /// How long a writer waits for the write lock before failing with `Unavailable`.
    pub busy_timeout: Duration,
    /// Apply pending migrations on open (default). `false` opens the schema as it is, e.g. to
    /// ask [`SchemaStore::schema_status`] whether migrations are pending.
    pub migrate: bool,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        SqliteOptions {
            max_connections: 8,
            busy_timeout: Duration::from_secs(30),
            migrate: true,
        }
    }
}

impl SqliteStore {
    /// Opens (creating if needed) the database file at `path` with default options and applies
    /// pending migrations.
    pub async fn open(path: impl AsRef<Path>, cipher: Arc<dyn SecretCipher>) -> Result<Self> {
        Self::open_with(path, SqliteOptions::default(), cipher).await
    }

    /// Opens (creating if needed) the database file at `path` and applies pending migrations.
    pub async fn open_with(
        path: impl AsRef<Path>,
        options: SqliteOptions,
        cipher: Arc<dyn SecretCipher>,
    ) -> Result<Self> {
        let path = path.as_ref();
        if let Some(dir) = path.parent()
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(dir)
                .map_err(|e| Error::unavailable(format!("cannot create {}: {e}", dir.display())))?;
        }
        let connect = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(options.busy_timeout)
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(options.max_connections.max(1))
            .acquire_timeout(options.busy_timeout)
            .connect_with(connect.clone())
            .await
            .map_err(|e| db_err(e).context(format!("opening {}", path.display())))?;
        // The group committer's connection: one, kept open (its page cache stays warm across
        // batches), and it never checkpoints on commit (the committer starts checkpoints on the
        // pool instead).
        let writer = one_kept_connection(options.busy_timeout)
            .connect_with(connect.pragma("wal_autocheckpoint", "0"))
            .await
            .map_err(|e| db_err(e).context(format!("opening {}", path.display())))?;
        let store = SqlStore {
            db: SqliteBackend::new(pool, Some(writer)),
            cipher,
            unreadable_seen: Default::default(),
            credential_uses: Default::default(),
        };
        if options.migrate {
            store.migrate().await?;
        }
        tracing::debug!(path = %path.display(), "opened SQLite store");
        Ok(store)
    }

    /// A private in-memory database (tests): one connection that lives as long as the store.
    pub async fn in_memory(cipher: Arc<dyn SecretCipher>) -> Result<Self> {
        let connect = SqliteConnectOptions::new()
            .in_memory(true)
            .foreign_keys(true);
        let pool = one_kept_connection(Duration::from_secs(60))
            .connect_with(connect)
            .await
            .map_err(db_err)?;
        let store = SqlStore {
            db: SqliteBackend::new(pool, None),
            cipher,
            unreadable_seen: Default::default(),
            credential_uses: Default::default(),
        };
        store.migrate().await?;
        Ok(store)
    }

    /// Applies pending migrations (bookkept in the table `netraven_migrations`). Idempotent.
    pub async fn migrate(&self) -> Result<()> {
        Self::migrator()
            .run(&self.db.pool)
            .await
            .map_err(migrate_err)
    }

    fn migrator() -> sqlx::migrate::Migrator {
        let mut m = sqlx::migrate!("./migrations/sqlite");
        m.dangerous_set_table_name(MIGRATIONS_TABLE);
        m
    }

    /// The underlying connection pool.
    pub fn pool(&self) -> &sqlx::SqlitePool {
        &self.db.pool
    }

    /// Closes the pool (waits for connections to be returned).
    pub async fn close(&self) {
        self.db.writes.close().await;
        self.db.pool.close().await;
    }
}

#[async_trait::async_trait]
impl SchemaStore for SqliteStore {
    async fn schema_status(&self) -> Result<SchemaStatus> {
        let exists: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = $1",
        )
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
