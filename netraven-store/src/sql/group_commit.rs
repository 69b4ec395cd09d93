//! Group commit for [`crate::sql::SqliteStore`]: the small writes of the engine's per-device path
//! (result and run tallies, log lines, snapshot, credential statistics) from many concurrent
//! callers share one SQLite transaction.
//!
//! SQLite has one writer at a time. Before, every such write was its own `BEGIN IMMEDIATE …
//! COMMIT` on one of the pool's connections, and concurrent writers queued on the database lock
//! (SQLite's busy handler sleeps between retries). Now each write is queued to one writer task.
//! The writer takes everything pending (up to [`MAX_BATCH`] writes), runs them in one
//! transaction, commits once, and only then answers every caller with its own outcome. While
//! many callers write (the last batch held several writes), the writer lingers 1 ms before
//! taking the next batch, so each commit carries more writes.
//!
//! A write that fails must fail alone. Writes first run back to back (no savepoints: every
//! statement is a round trip to SQLite's connection thread, and failures are rare). If one
//! fails, the whole transaction is rolled back — nobody has been answered yet — and the same
//! writes run again, each in its own `SAVEPOINT`: a failing one is rolled back to its savepoint
//! and answered with its error, the others commit. That is why a write is a re-runnable `Fn`
//! that owns what it writes. A caller therefore returns only after its write is committed
//! (or with the error that kept it from being committed): the guarantees of a transaction per
//! write hold, including the unique constraints (a duplicate result in the same batch sees the
//! first one's row and is reported as not inserted).

use crate::sql::dialect::TxFuture;
use crate::sql::{copy_err, db_err};
use futures::FutureExt;
use netraven_core::error::{Error, Result};
use std::collections::VecDeque;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use tokio::sync::{mpsc, oneshot};

/// The transaction every write of a batch runs in.
pub(crate) type Tx = sqlx::Transaction<'static, sqlx::Sqlite>;

/// Writes per transaction at most, so a long queue does not hold the database lock (and keep
/// the first callers waiting) for long.
pub(crate) const MAX_BATCH: usize = 256;

/// When the last batch held at least this many writes (many callers are writing), the writer
/// waits [`LINGER`] before the next batch so that more writes share it: a commit rewrites the
/// pages every write touches (the run's row, the tails of the logs and results, indexes) into
/// the WAL, once per commit. A lone writer (tests, an idle server) is never delayed.
const LINGER_FROM: usize = 4;
/// See [`LINGER_FROM`]; under the engine's load batches grow from ~8 to ~65 writes.
const LINGER: std::time::Duration = std::time::Duration::from_millis(1);

/// The savepoint a write runs in when writes run one by one (one at a time, so one name
/// suffices).
const SAVEPOINT: &str = "SAVEPOINT netraven_write";
const RELEASE: &str = "RELEASE netraven_write";
const ROLLBACK_TO: &str = "ROLLBACK TO netraven_write";

/// One queued write.
trait Op: Send {
    /// Runs the write's statements on the batch transaction and keeps the outcome (replacing
    /// that of an earlier run); true if it succeeded.
    fn run<'a>(&'a mut self, tx: &'a mut Tx) -> Pin<Box<dyn Future<Output = bool> + Send + 'a>>;
    /// Answers the caller: with the kept outcome when the batch committed, else with `err`.
    fn answer(self: Box<Self>, err: Option<&Error>);
}

/// A caller's write, its latest outcome and where the outcome goes.
struct Pending<T, F> {
    op: F,
    out: Option<Result<T>>,
    reply: oneshot::Sender<Result<T>>,
}

impl<T, F> Op for Pending<T, F>
where
    T: Send + 'static,
    F: for<'t> Fn(&'t mut Tx) -> TxFuture<'t, T> + Send + 'static,
{
    fn run<'a>(&'a mut self, tx: &'a mut Tx) -> Pin<Box<dyn Future<Output = bool> + Send + 'a>> {
        Box::pin(async move {
            let out = (self.op)(tx).await;
            let ok = out.is_ok();
            self.out = Some(out);
            ok
        })
    }

    fn answer(self: Box<Self>, err: Option<&Error>) {
        let out = match (err, self.out) {
            (None, Some(out)) => out,
            // Rolled back with the whole batch: the caller sees why.
            (Some(e), _) => Err(copy_err(e)),
            (None, None) => Err(Error::internal("the write panicked; it was rolled back")),
        };
        // A caller that went away no longer needs its answer.
        let _ = self.reply.send(out);
    }
}

/// The queue into the writer task, started on first use on a thread of its own (and again if
/// it has stopped).
pub(crate) struct GroupCommit {
    pool: sqlx::SqlitePool,
    /// The writer's own connection (a WAL file), see [`Checkpoints`]; `None`: it writes on `pool`.
    writer: Option<sqlx::SqlitePool>,
    queue: Mutex<Option<mpsc::UnboundedSender<Box<dyn Op>>>>,
}

impl GroupCommit {
    /// A group committer over `pool` (its writer task starts with the first write); `writer`:
    /// a pool of one connection to the same WAL file that does not checkpoint on commit, which
    /// the writer then uses (see [`Checkpoints`]).
    pub(crate) fn new(pool: sqlx::SqlitePool, writer: Option<sqlx::SqlitePool>) -> Arc<Self> {
        Arc::new(GroupCommit {
            pool,
            writer,
            queue: Mutex::new(None),
        })
    }

    /// Runs `op` in the next batch and returns its outcome once the batch has committed.
    pub(crate) async fn write<T, F>(&self, op: F) -> Result<T>
    where
        T: Send + 'static,
        F: for<'t> Fn(&'t mut Tx) -> TxFuture<'t, T> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let pending: Box<dyn Op> = Box::new(Pending {
            op,
            out: None,
            reply,
        });
        if let Err(mpsc::error::SendError(pending)) = self.sender().send(pending) {
            pending.answer(Some(&Error::unavailable("the SQLite writer has stopped")));
        }
        answer.await.unwrap_or_else(|_| {
            // The writer task ended without answering (its runtime shut down); the batch was
            // not committed.
            Err(Error::unavailable(
                "the SQLite writer stopped before the write was committed",
            ))
        })
    }

    /// Closes the writer's own connection, if it has one.
    pub(crate) async fn close(&self) {
        if let Some(w) = &self.writer {
            w.close().await;
        }
    }

    fn sender(&self) -> mpsc::UnboundedSender<Box<dyn Op>> {
        // A poisoned lock only means another thread panicked while swapping the sender; the
        // Option inside is still whole.
        let mut queue = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(tx) = queue.as_ref()
            && !tx.is_closed()
        {
            return tx.clone();
        }
        let (tx, rx) = mpsc::unbounded_channel();
        let (pool, writer_pool) = (self.pool.clone(), self.writer.clone());
        // Its own thread and runtime: each statement's answer wakes the writer, and on the
        // shared runtime that wake-up would queue behind the engine's CPU-heavy device tasks.
        // Timers only (the pool's acquire timeout): with no I/O driver the idle writer parks on
        // a futex, and a statement's answer wakes it without an eventfd write and an epoll
        // round.
        let started = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .and_then(|rt| {
                std::thread::Builder::new()
                    .name("netraven-sqlite-writer".into())
                    .spawn(move || rt.block_on(writer(pool, writer_pool, rx)))
            });
        if let Err(e) = started {
            // No thread to be had: the writer runs on the caller's runtime instead.
            tracing::warn!(error = %e, "no thread for the SQLite writer; it shares the runtime");
            let (tx2, rx2) = mpsc::unbounded_channel();
            tokio::spawn(writer(self.pool.clone(), self.writer.clone(), rx2));
            *queue = Some(tx2.clone());
            return tx2;
        }
        *queue = Some(tx.clone());
        tx
    }
}

/// The writer task: one batch after another until every sender is gone.
async fn writer(
    pool: sqlx::SqlitePool,
    own: Option<sqlx::SqlitePool>,
    mut rx: mpsc::UnboundedReceiver<Box<dyn Op>>,
) {
    let mut w = Writer {
        checkpoints: own.is_some().then(|| Checkpoints::new(pool.clone())),
        pool: own.unwrap_or(pool),
        carried: VecDeque::new(),
        one_by_one: 0,
        last_batch: 0,
    };
    loop {
        if w.carried.is_empty() {
            match rx.recv().await {
                Some(op) => w.carried.push_back(op),
                None => return,
            }
        }
        if w.last_batch >= LINGER_FROM {
            tokio::time::sleep(LINGER).await;
        }
        if let Some(c) = &mut w.checkpoints {
            c.bound(&w.pool).await;
        }
        w.batch(&mut rx).await;
    }
}

/// The writer's state between batches.
struct Writer {
    pool: sqlx::SqlitePool,
    /// Writes taken from the queue but not answered yet, in order.
    carried: VecDeque<Box<dyn Op>>,
    /// How many of the first carried writes run one by one in savepoints (a batch of them
    /// had a failure).
    one_by_one: usize,
    /// Writes the last committed batch held.
    last_batch: usize,
    /// Background checkpoints of a WAL file.
    checkpoints: Option<Checkpoints>,
}

/// Writes committed between two background checkpoints (~64 devices' result, logs, snapshot
/// and credential statistics: about half of SQLite's 1,000-page automatic checkpoint).
const CHECKPOINT_EVERY: usize = 256;

/// WAL pages beyond which the writer checkpoints itself before its next batch (16 MB): a
/// longer WAL makes every reader look further for its pages.
const WAL_LIMIT_PAGES: i64 = 4_096;

/// Checkpoints of the WAL on the pool's connections, so the writer does not copy pages into
/// the database file itself.
///
/// SQLite checkpoints in the connection that commits once the WAL holds 1,000 pages: that was
/// the writer, the one thread every write waits on, and copying the WAL back was a fifth of its
/// time. The writer's connection has automatic checkpoints off; instead the writer starts a
/// `PASSIVE` checkpoint on another connection (its own sqlx thread, so on the other core) every
/// [`CHECKPOINT_EVERY`] writes, one at a time. A passive checkpoint never blocks the writer or
/// readers. While writes keep coming the WAL cannot start over from its beginning (that needs
/// every page copied back when a write begins), so once a checkpoint reports more than
/// [`WAL_LIMIT_PAGES`] the writer runs one itself between two batches: it copies only what came
/// since the last background one, and the WAL restarts.
struct Checkpoints {
    pool: sqlx::SqlitePool,
    /// Writes committed since the last checkpoint was started.
    since: usize,
    /// Whether one is running.
    busy: Arc<std::sync::atomic::AtomicBool>,
    /// WAL pages the last checkpoint reported.
    wal_pages: Arc<std::sync::atomic::AtomicI64>,
}

impl Checkpoints {
    fn new(pool: sqlx::SqlitePool) -> Self {
        Checkpoints {
            pool,
            since: 0,
            busy: Arc::default(),
            wal_pages: Arc::default(),
        }
    }

    /// Counts `writes` committed writes and starts a checkpoint when they are due.
    fn committed(&mut self, writes: usize) {
        use std::sync::atomic::Ordering;
        self.since += writes;
        if self.since < CHECKPOINT_EVERY || self.busy.swap(true, Ordering::AcqRel) {
            return;
        }
        self.since = 0;
        let (pool, busy, pages) = (self.pool.clone(), self.busy.clone(), self.wal_pages.clone());
        tokio::spawn(async move {
            // A failed checkpoint leaves the pages in the WAL for the next one.
            match checkpoint(&pool).await {
                Ok(n) => pages.store(n, Ordering::Release),
                Err(e) => tracing::debug!(error = %e, "background WAL checkpoint failed"),
            }
            busy.store(false, Ordering::Release);
        });
    }

    /// Checkpoints on the writer's connection `own` when the WAL has grown past the limit.
    async fn bound(&mut self, own: &sqlx::SqlitePool) {
        use std::sync::atomic::Ordering;
        if self.wal_pages.load(Ordering::Acquire) < WAL_LIMIT_PAGES {
            return;
        }
        // While a background checkpoint runs this one fails at once (one checkpointer at a
        // time); the next batch tries again.
        match checkpoint(own).await {
            // Every page is copied back: the next write starts the WAL over.
            Ok(_) => self.wal_pages.store(0, Ordering::Release),
            Err(e) => tracing::debug!(error = %e, "WAL checkpoint failed"),
        }
    }
}

/// A passive checkpoint; the WAL's size in pages.
async fn checkpoint(pool: &sqlx::SqlitePool) -> Result<i64> {
    // (busy, pages in the WAL, pages copied back)
    let (_, pages, _): (i64, i64, i64) = sqlx::query_as("PRAGMA wal_checkpoint(PASSIVE)")
        .fetch_one(pool)
        .await
        .map_err(db_err)?;
    Ok(pages)
}

impl Writer {
    /// Runs one batch: the carried writes, then whatever else is queued, up to [`MAX_BATCH`];
    /// commits and answers them, or carries them into the next batch.
    async fn batch(&mut self, rx: &mut mpsc::UnboundedReceiver<Box<dyn Op>>) {
        let mut tx = match self.pool.begin_with("BEGIN IMMEDIATE").await {
            Ok(tx) => tx,
            Err(e) => {
                // As a write's own BEGIN failing before: every waiting write gets the error.
                let e = db_err(e);
                while let Ok(op) = rx.try_recv() {
                    self.carried.push_back(op);
                }
                for op in self.carried.drain(..) {
                    op.answer(Some(&e));
                }
                self.one_by_one = 0;
                return;
            }
        };
        let one_by_one = std::mem::take(&mut self.one_by_one);
        let mut ran: Vec<Box<dyn Op>> = Vec::new();
        if one_by_one > 0 {
            // Only the writes of the failed batch, each in its own savepoint.
            while ran.len() < one_by_one {
                let Some(mut op) = self.carried.pop_front() else {
                    break;
                };
                match in_savepoint(&mut tx, op.as_mut()).await {
                    Ok(()) => ran.push(op),
                    Err(e) => {
                        // The transaction is unusable: nothing of it commits.
                        tracing::warn!(error = %e, writes = ran.len() + 1, "a SQLite write batch broke; rolled back");
                        drop(tx);
                        op.answer(Some(&e));
                        for op in ran {
                            op.answer(Some(&e));
                        }
                        return;
                    }
                }
            }
        } else {
            while ran.len() < MAX_BATCH {
                let mut op = match self.carried.pop_front() {
                    Some(op) => op,
                    None => match rx.try_recv() {
                        Ok(op) => op,
                        Err(_) => break,
                    },
                };
                let ok = run(&mut tx, op.as_mut()).await;
                ran.push(op);
                if !ok {
                    // Its partial work is in the transaction: roll everything back and run
                    // these writes again one by one (nobody has been answered yet).
                    drop(tx);
                    self.one_by_one = ran.len();
                    for op in ran.into_iter().rev() {
                        self.carried.push_front(op);
                    }
                    return;
                }
            }
        }
        let err = tx.commit().await.map_err(db_err).err();
        self.last_batch = ran.len();
        if let (None, Some(c)) = (&err, &mut self.checkpoints) {
            c.committed(ran.len());
        }
        for op in ran {
            op.answer(err.as_ref());
        }
    }
}

/// Runs a write; a panic counts as a failure (and does not take the writer down).
async fn run(tx: &mut Tx, op: &mut dyn Op) -> bool {
    match AssertUnwindSafe(op.run(tx)).catch_unwind().await {
        Ok(ok) => ok,
        Err(_) => {
            tracing::error!("a SQLite write panicked; it is rolled back");
            false
        }
    }
}

/// Runs a write in its own savepoint: kept if it succeeded, rolled back if not. An error means
/// the transaction itself is unusable.
async fn in_savepoint(tx: &mut Tx, op: &mut dyn Op) -> Result<()> {
    exec(tx, SAVEPOINT).await?;
    if !run(tx, op).await {
        exec(tx, ROLLBACK_TO).await?;
    }
    exec(tx, RELEASE).await
}

async fn exec(tx: &mut Tx, sql: &'static str) -> Result<()> {
    sqlx::query(sql)
        .execute(&mut **tx)
        .await
        .map(|_| ())
        .map_err(db_err)
}

#[cfg(test)]
mod tests {
    use super::*;
    use netraven_core::error::ErrorKind;

    async fn exec_on(tx: &mut Tx, sql: &'static str, k: &'static str) -> Result<u64> {
        sqlx::query(sql)
            .bind(k)
            .execute(&mut **tx)
            .await
            .map(|r| r.rows_affected())
            .map_err(db_err)
    }

    async fn count(tx: &mut Tx) -> Result<i64> {
        sqlx::query_scalar("SELECT count(*) FROM t")
            .fetch_one(&mut **tx)
            .await
            .map_err(db_err)
    }

    /// Every write below is queued while the test holds the pool's only connection (the writer
    /// waits for it to begin), so they all land in one batch: the failing ones (an error after a
    /// write, a duplicate key, a panic) fail alone, the rest commit.
    #[tokio::test(flavor = "current_thread")]
    async fn one_batch_each_write_gets_its_own_outcome() {
        let pool = sqlx::sqlite::SqlitePoolOptions::new()
            .max_connections(1)
            .connect("sqlite::memory:")
            .await
            .unwrap();
        sqlx::query("CREATE TABLE t (k TEXT PRIMARY KEY)")
            .execute(&pool)
            .await
            .unwrap();
        let gc = GroupCommit::new(pool.clone(), None);
        const INSERT: &str = "INSERT INTO t (k) VALUES ($1)";
        let held = pool.acquire().await.unwrap();
        let writes = async {
            tokio::join!(
                gc.write(|tx| Box::pin(exec_on(tx, INSERT, "a"))),
                // Writes a row, then fails: the row must go with it.
                gc.write(|tx| Box::pin(async move {
                    exec_on(tx, INSERT, "b").await?;
                    Err::<u64, _>(Error::invalid("changed its mind"))
                })),
                // The same key as the first write: its own conflict.
                gc.write(|tx| Box::pin(exec_on(tx, INSERT, "a"))),
                gc.write(|tx| Box::pin(async move {
                    exec_on(tx, INSERT, "p").await?;
                    panic!("a write that panics")
                })),
                gc.write(|tx| Box::pin(async move {
                    exec_on(tx, INSERT, "c").await?;
                    count(tx).await
                })),
            )
        };
        // `join!` polls `writes` first, which queues all five; then the connection is let go.
        let release = async {
            tokio::task::yield_now().await;
            drop(held);
        };
        let ((a, half, dup, boom, c), ()) = tokio::join!(writes, release);
        assert_eq!(a.unwrap(), 1);
        assert_eq!(half.unwrap_err().kind(), ErrorKind::InvalidInput);
        assert_eq!(dup.unwrap_err().kind(), ErrorKind::Conflict);
        let boom: Result<u64> = boom;
        assert_eq!(boom.unwrap_err().kind(), ErrorKind::Internal);
        // "c" sees "a" and nothing of the failed writes.
        assert_eq!(c.unwrap(), 2);
        let keys: Vec<String> = sqlx::query_scalar("SELECT k FROM t ORDER BY k")
            .fetch_all(&pool)
            .await
            .unwrap();
        assert_eq!(keys, ["a", "c"]);
        // The writer goes on with later writes.
        let d = gc.write(|tx| Box::pin(exec_on(tx, INSERT, "d"))).await;
        assert_eq!(d.unwrap(), 1);
    }

    /// The writer's own connection never checkpoints on commit; the background checkpoints
    /// copy the WAL back into the database file (without them the file would stay as it was
    /// created, every page in the WAL) and keep the WAL from growing past the limit.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn background_checkpoints_copy_the_wal_back() {
        use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let connect = SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal);
        let pool = SqlitePoolOptions::new()
            .max_connections(2)
            .connect_with(connect.clone())
            .await
            .unwrap();
        sqlx::query("CREATE TABLE t (k TEXT PRIMARY KEY, v TEXT)")
            .execute(&pool)
            .await
            .unwrap();
        sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(&pool)
            .await
            .unwrap();
        let db_size = || std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        let created = db_size();
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(connect.pragma("wal_autocheckpoint", "0"))
            .await
            .unwrap();
        let gc = GroupCommit::new(pool.clone(), Some(writer));
        // Each row ~4 KB: 2 × CHECKPOINT_EVERY writes of a page or more each.
        let writes = (0..2 * CHECKPOINT_EVERY).map(|i| {
            gc.write(move |tx| {
                Box::pin(async move {
                    sqlx::query("INSERT INTO t (k, v) VALUES ($1, $2)")
                        .bind(format!("k{i}"))
                        .bind("x".repeat(4000))
                        .execute(&mut **tx)
                        .await
                        .map(|r| r.rows_affected())
                        .map_err(db_err)
                })
            })
        });
        for r in futures::future::join_all(writes).await {
            assert_eq!(r.unwrap(), 1);
        }
        // The checkpoint runs beside the writer: wait for it (bounded), then look at the file.
        let mut waited = 0;
        while db_size() < created + (CHECKPOINT_EVERY as u64) * 4000 && waited < 200 {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            waited += 1;
        }
        assert!(
            db_size() >= created + (CHECKPOINT_EVERY as u64) * 4000,
            "database file {} bytes (created {created}): nothing was checkpointed",
            db_size()
        );
    }
}
