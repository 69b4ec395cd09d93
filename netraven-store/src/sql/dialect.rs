//! What differs between the SQL backends, as a trait: the concern modules (`devices.rs`,
//! `runs.rs`, …) are written once against [`Dialect`] and [`SqlRow`], and `sqlite.rs` /
//! `postgres.rs` implement them. Queries travel as dialect-neutral [`Sql`] (text with `$n`
//! placeholders plus [`Arg`] values); only the backend turns them into sqlx queries, so no sqlx
//! trait bounds leak into the shared code.

use crate::sql::query::Sql;
use chrono::{DateTime, Utc};
use netraven_core::error::{Error, Result};
use std::fmt::Debug;
use std::future::Future;
use std::pin::Pin;

/// A boxed future that borrows a write transaction (what [`Dialect::write`] runs).
pub type TxFuture<'t, T> = Pin<Box<dyn Future<Output = Result<T>> + Send + 't>>;

/// Typed column access on a backend's row (timestamps are converted from the backend's storage
/// form).
pub trait SqlRow: Send + Sync + 'static {
    /// An integer column.
    fn i64(&self, col: &str) -> Result<i64>;
    /// A nullable integer column.
    fn opt_i64(&self, col: &str) -> Result<Option<i64>>;
    /// A text column.
    fn text(&self, col: &str) -> Result<String>;
    /// A nullable text column.
    fn opt_text(&self, col: &str) -> Result<Option<String>>;
    /// A boolean column.
    fn bool(&self, col: &str) -> Result<bool>;
    /// A nullable boolean column.
    fn opt_bool(&self, col: &str) -> Result<Option<bool>>;
    /// A timestamp column.
    fn ts(&self, col: &str) -> Result<DateTime<Utc>>;
    /// A nullable timestamp column.
    fn opt_ts(&self, col: &str) -> Result<Option<DateTime<Utc>>>;

    /// An integer column converted to a narrower or unsigned field type.
    fn int<T: TryFrom<i64>>(&self, col: &str) -> Result<T> {
        let v = self.i64(col)?;
        T::try_from(v).map_err(|_| Error::internal(format!("{col} {v} out of range in database")))
    }
}

/// One SQL backend: its connection pool, how it runs a [`Sql`] query, and the few places
/// where the SQL text differs. Implemented by [`crate::sql::SqliteBackend`] and
/// [`crate::sql::PostgresBackend`]; not meant to be implemented outside this crate.
pub trait Dialect: Clone + Debug + Send + Sync + 'static {
    /// The backend's row type.
    type Row: SqlRow;
    /// An open write transaction.
    type Tx: Send;

    /// The case-insensitive `LIKE` operator.
    const CI_LIKE: &'static str;

    /// Whether one [`Sql`] may hold several statements separated by `;`, run in order in one
    /// round trip, every `$n` of them referring to one shared argument list (SQLite). A write
    /// made of several statements then costs one hand-off to the connection instead of one per
    /// statement; read its rows with `tx_fetch_all`. PostgreSQL prepares one statement per
    /// query, so callers keep a statement-by-statement path for it.
    const MULTI_STATEMENT: bool = false;

    /// SQL for "`expr` is in the list bound at `placeholder`" (a list bound as one parameter:
    /// `Arg::Ids` or `Arg::Texts`).
    fn in_list(expr: &str, placeholder: &str) -> String;

    /// SQL for a one-column table (`id`) of the ids bound as one `Arg::Ids` at `placeholder`,
    /// for queries that work per id (correlated subqueries), duplicates included.
    fn ids_table(placeholder: &str) -> String;

    /// SQL for the database server's current time when leases are decided by the database's
    /// clock (one clock for every process, whatever their own clocks say); `None` uses the
    /// caller's `now`.
    fn lease_clock(&self) -> Option<&'static str> {
        None
    }

    /// Runs a query on the pool and returns every row.
    fn fetch_all(&self, q: Sql) -> impl Future<Output = Result<Vec<Self::Row>>> + Send;
    /// Runs a query on the pool and returns the first row, if any.
    fn fetch_optional(&self, q: Sql) -> impl Future<Output = Result<Option<Self::Row>>> + Send;
    /// Runs a statement on the pool and returns the number of rows it affected.
    fn execute(&self, q: Sql) -> impl Future<Output = Result<u64>> + Send;

    /// A transaction that holds the write lock from the start (SQLite `BEGIN IMMEDIATE`), so it
    /// never fails half-way on a lock upgrade. Dropping it uncommitted rolls back.
    fn begin_write(&self) -> impl Future<Output = Result<Self::Tx>> + Send;
    /// Commits a transaction.
    fn commit(tx: Self::Tx) -> impl Future<Output = Result<()>> + Send;
    /// Runs `op` in a write transaction and returns its outcome once that is committed; an
    /// error from `op` rolls back what it did. By default a transaction of its own
    /// ([`Dialect::begin_write`], `op`, [`Dialect::commit`]); SQLite shares one transaction among
    /// concurrent writes (group commit) and may run `op` more than once before one of its runs
    /// commits, which is why `op` is an `Fn` that owns what it writes.
    fn write<T, F>(&self, op: F) -> impl Future<Output = Result<T>> + Send
    where
        T: Send + 'static,
        F: for<'t> Fn(&'t mut Self::Tx) -> TxFuture<'t, T> + Send + 'static,
    {
        async move {
            let mut tx = self.begin_write().await?;
            let out = op(&mut tx).await?;
            Self::commit(tx).await?;
            Ok(out)
        }
    }

    /// [`Dialect::fetch_all`] inside a transaction.
    fn tx_fetch_all(
        tx: &mut Self::Tx,
        q: Sql,
    ) -> impl Future<Output = Result<Vec<Self::Row>>> + Send;
    /// [`Dialect::fetch_optional`] inside a transaction.
    fn tx_fetch_optional(
        tx: &mut Self::Tx,
        q: Sql,
    ) -> impl Future<Output = Result<Option<Self::Row>>> + Send;
    /// [`Dialect::execute`] inside a transaction.
    fn tx_execute(tx: &mut Self::Tx, q: Sql) -> impl Future<Output = Result<u64>> + Send;

    /// [`Dialect::fetch_optional`], with a missing row as `NotFound(what)`.
    fn fetch_one(&self, q: Sql, what: String) -> impl Future<Output = Result<Self::Row>> + Send {
        async move {
            self.fetch_optional(q)
                .await?
                .ok_or_else(|| Error::not_found(what))
        }
    }

    /// [`Dialect::fetch_one`] inside a transaction.
    fn tx_fetch_one(
        tx: &mut Self::Tx,
        q: Sql,
        what: String,
    ) -> impl Future<Output = Result<Self::Row>> + Send {
        async move {
            Self::tx_fetch_optional(tx, q)
                .await?
                .ok_or_else(|| Error::not_found(what))
        }
    }

    /// `SELECT COUNT(*) AS n …` as a number.
    fn count(&self, q: Sql) -> impl Future<Output = Result<u64>> + Send {
        async move {
            let row = self.fetch_one(q, "count".to_string()).await?;
            row.int("n")
        }
    }
}
