//! [`SqliteStore`]: the embedded default store (one SQLite file, WAL mode).

// `Arg`, `db_err`, `DateTime`, `Utc`, `Error` and `Result` come with `common.rs`.
use crate::sql::{MIGRATIONS_TABLE, migrate_err};
use netraven_core::cipher::SecretCipher;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

type Db = sqlx::Sqlite;
type DbRow = sqlx::sqlite::SqliteRow;
type DbConn = sqlx::SqliteConnection;
type Backend = SqliteStore;
/// SQLite keeps timestamps as INTEGER microseconds since the epoch (sortable, comparable).
type TsT = i64;

/// SQLite's `LIKE` is case-insensitive for ASCII.
const CI_LIKE: &str = "LIKE";

fn ts(d: DateTime<Utc>) -> TsT {
    d.timestamp_micros()
}

fn from_ts(v: TsT) -> Result<DateTime<Utc>> {
    DateTime::<Utc>::from_timestamp_micros(v)
        .ok_or_else(|| Error::internal(format!("timestamp {v} out of range in database")))
}

/// Membership in a list bound as one JSON array parameter.
fn in_list(expr: &str, placeholder: &str) -> String {
    format!("{expr} IN (SELECT value FROM json_each({placeholder}))")
}

fn json_list<T: serde::Serialize>(v: &[T]) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "[]".to_string())
}

fn bind_arg(q: Q, a: Arg) -> Q {
    match a {
        Arg::I64(v) => q.bind(v),
        Arg::OptI64(v) => q.bind(v),
        Arg::Text(v) => q.bind(v),
        Arg::OptText(v) => q.bind(v),
        Arg::Ts(v) => q.bind(ts(v)),
        Arg::Ids(v) => q.bind(json_list(&v)),
        Arg::Texts(v) => q.bind(json_list(&v)),
        Arg::Bool(v) => q.bind(v),
    }
}

/// Tuning for [`SqliteStore::open_with`].
#[derive(Debug, Clone)]
pub struct SqliteOptions {
    /// Pooled connections (readers run in parallel under WAL; writers take turns).
    pub max_connections: u32,
    /// How long a writer waits for the write lock before failing with `Unavailable`.
    pub busy_timeout: Duration,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        SqliteOptions {
            max_connections: 8,
            busy_timeout: Duration::from_secs(30),
        }
    }
}

/// The SQLite store: one database file in WAL mode, created (with its directory) on first
/// start, migrated on open.
#[derive(Clone)]
pub struct SqliteStore {
    pool: sqlx::SqlitePool,
    cipher: Arc<dyn SecretCipher>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("cipher_key", &self.cipher.current_key_id())
            .finish_non_exhaustive()
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
            .connect_with(connect)
            .await
            .map_err(|e| db_err(e).context(format!("opening {}", path.display())))?;
        let store = SqliteStore { pool, cipher };
        store.migrate().await?;
        tracing::debug!(path = %path.display(), "opened SQLite store");
        Ok(store)
    }

    /// A private in-memory database (tests): one connection that lives as long as the store.
    pub async fn in_memory(cipher: Arc<dyn SecretCipher>) -> Result<Self> {
        let connect = SqliteConnectOptions::new()
            .in_memory(true)
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .acquire_timeout(Duration::from_secs(60))
            .connect_with(connect)
            .await
            .map_err(db_err)?;
        let store = SqliteStore { pool, cipher };
        store.migrate().await?;
        Ok(store)
    }

    /// Applies pending migrations (bookkept in the table `netraven_migrations`). Idempotent.
    pub async fn migrate(&self) -> Result<()> {
        let mut m = sqlx::migrate!("./migrations/sqlite");
        m.dangerous_set_table_name(MIGRATIONS_TABLE);
        m.run(&self.pool).await.map_err(migrate_err)
    }

    /// The underlying connection pool.
    pub fn pool(&self) -> &sqlx::SqlitePool {
        &self.pool
    }

    /// Closes the pool (waits for connections to be returned).
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// A transaction that takes the write lock at once (`BEGIN IMMEDIATE`), so it never fails
    /// half-way on a lock upgrade; waiting is bounded by the busy timeout.
    async fn begin_write(&self) -> Result<sqlx::Transaction<'static, Db>> {
        self.pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(db_err)
    }
}

include!("common.rs");
