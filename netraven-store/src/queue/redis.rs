//! [`RedisQueue`]: the distributed [`Queue`] on Redis.
//!
//! # Layout
//!
//! Every key starts with the deployment's prefix `P` (e.g. `netraven:`):
//!
//! | key | type | holds |
//! |---|---|---|
//! | `P task:<id>` | hash | `kind` (JSON), `dedupe`, `attempt`, `max`, `failures`, `released`, `state`, `worker`, `error` |
//! | `P ready` | list | ids deliverable now (pushed left, claimed from the right: FIFO) |
//! | `P inflight:<worker>` | list | ids a worker holds (moved there atomically by `LMOVE`) |
//! | `P leases` | sorted set | leased ids, score = lease expiry (ms since the epoch) |
//! | `P delayed` | sorted set | ids waiting for their time (retry backoff, `run_at`), score = due ms |
//! | `P dead` | sorted set | ids whose failures reached their limit, score = when (removed after the retention period by [`Queue::prune_dead`]) |
//! | `P dedupe:<key>` | string | the id of the live task holding a dedupe key |
//! | `P z:<zone>:ready`, `…:leases`, `…:delayed`, `…:dead` | as above | the same four keys of a named zone (the default zone's are the unprefixed ones above) |
//! | `P zones` | set | named zones that had tasks or workers |
//! | `P beats` | sorted set | worker ids, score = last heartbeat (ms); silent for a day: forgotten |
//! | `P beat-zone` | hash | worker id → its zone (`""`: the default zone) |
//!
//! # Zones
//!
//! A task's zone (`zone` in its hash, `""` for the default zone) decides which ready list,
//! lease set, delayed set and dead set hold it; a claim reads only its zone's keys, so a worker
//! never gets another zone's task. Settling a task finds the zone in its hash. Reaping and
//! pruning walk the default zone and every zone in `P zones`.
//!
//! Every state change is one Lua script (`*.lua` beside this file), so it is atomic. Times come
//! from the [`Clock`] given to the constructor and are passed to the scripts, so tests can drive
//! lease expiry with a manual clock — or, with [`RedisQueueOptions::server_time`] (what the
//! server uses), from the Redis server's `TIME`, one clock for every worker. Task ids are random UUIDs, never a counter: after Redis lost
//! its data a new task can never take the id (and so the fencing token) of an old lease.
//!
//! # Batches
//!
//! The enqueue, claim and settle scripts take a batch: [`Queue::enqueue_many`],
//! [`Queue::claim_many_in`] and [`Queue::settle_many`] are one script call per up to
//! [`RedisQueueOptions::batch_limit`] tasks, and the single calls are batches of one, so both
//! run the same code. Inside a batch every task is handled as its single call would be, in
//! order (a dedupe key taken earlier in the batch, a lease settled earlier in the batch); a
//! lost lease is refused for its own task only.
//!
//! # Fencing
//!
//! The attempt number in the task hash is bumped at every claim; `extend`, `complete`, `retry` and
//! `release` succeed only if the task is leased and its attempt equals the lease's, otherwise they
//! fail with [`ErrorKind::Stale`]. A task whose hash is gone (completed, or Redis lost its data)
//! is stale too.
//!
//! # Blocking claims
//!
//! `claim` with a `wait` first runs the claim script; when nothing is ready it blocks with
//! `BLMOVE ready ready RIGHT RIGHT` (an order-preserving no-op that returns as soon as the ready
//! list is non-empty) on a dedicated connection whose response timeout is longer than the block,
//! then runs the claim script again. Blocks are sliced to at most one second so delayed tasks that
//! come due are seen, and the whole claim is bounded by `wait`. Dedicated connections are kept in
//! a small idle list and reused.

use async_trait::async_trait;
use chrono::{DateTime, TimeZone, Utc};
use deadpool_redis::redis as r;
use deadpool_redis::{Pool, Runtime};
use netraven_core::clock::Clock;
use netraven_core::error::{Error, ErrorKind, Result};
use netraven_core::queue::*;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const ENQUEUE_LUA: &str = include_str!("enqueue.lua");
const CLAIM_LUA: &str = include_str!("claim.lua");
const SETTLE_LUA: &str = include_str!("settle.lua");
const REAP_LUA: &str = include_str!("reap.lua");
const PRUNE_LUA: &str = include_str!("prune.lua");
const BEAT_LUA: &str = include_str!("beat.lua");

/// Longest single blocking pop; a claim with a longer `wait` blocks in slices of this.
const BLOCK_SLICE: Duration = Duration::from_secs(1);
/// Extra response time granted to a blocking connection beyond its block.
const BLOCK_GRACE: Duration = Duration::from_secs(5);

/// Tuning for [`RedisQueue`].
#[derive(Debug, Clone)]
pub struct RedisQueueOptions {
    /// Maximum pooled (non-blocking) connections.
    pub pool_size: usize,
    /// Response timeout for pooled commands.
    pub response_timeout: Duration,
    /// Idle dedicated connections kept for blocking claims.
    pub max_idle_blocking: usize,
    /// Most delayed tasks promoted, or expired leases reaped, by one script call.
    pub batch_limit: u32,
    /// Lease expiry (claims, extensions, reaping, the dead set's times) decided by the Redis
    /// server's clock (`TIME` inside the scripts) instead of the [`Clock`] given to the
    /// constructor, so workers whose clocks disagree never reap each other's live leases. Off by
    /// default (tests drive leases with a manual clock); the server turns it on. Retry and
    /// `run_at` times still come from the caller's clock.
    pub server_time: bool,
}

impl Default for RedisQueueOptions {
    fn default() -> Self {
        RedisQueueOptions {
            pool_size: 16,
            response_timeout: Duration::from_secs(5),
            max_idle_blocking: 32,
            batch_limit: 1000,
            server_time: false,
        }
    }
}

struct Scripts {
    enqueue: r::Script,
    claim: r::Script,
    settle: r::Script,
    reap: r::Script,
    prune: r::Script,
    beat: r::Script,
}

/// A [`Queue`] on Redis with leases, attempt fencing, delays, dedupe keys and a dead set, under a
/// key prefix per deployment. See the module docs for the key layout.
pub struct RedisQueue {
    pool: Pool,
    client: r::Client,
    prefix: String,
    clock: Arc<dyn Clock>,
    options: RedisQueueOptions,
    scripts: Scripts,
    blocking: Mutex<Vec<r::aio::MultiplexedConnection>>,
}

impl fmt::Debug for RedisQueue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisQueue")
            .field("prefix", &self.prefix)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

/// Maps a Redis error to a NetRaven error: connection trouble is [`ErrorKind::Unavailable`]
/// (retryable); protocol or script mistakes are [`ErrorKind::Internal`].
fn redis_err(e: r::RedisError) -> Error {
    use r::{ErrorKind as K, ServerErrorKind as S};
    let kind = match e.kind() {
        K::Parse | K::UnexpectedReturnType | K::Client | K::Extension => ErrorKind::Internal,
        K::Server(S::ResponseError | S::ExecAbort | S::NoScript | S::CrossSlot | S::NoPerm) => {
            ErrorKind::Internal
        }
        K::InvalidClientConfig => ErrorKind::InvalidInput,
        _ => ErrorKind::Unavailable,
    };
    Error::new(kind, format!("redis: {e}")).with_source(e)
}

fn pool_err(e: deadpool_redis::PoolError) -> Error {
    match e {
        deadpool_redis::PoolError::Backend(e) => redis_err(e),
        other => Error::unavailable(format!("redis pool: {other}")),
    }
}

fn to_ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

fn from_ms(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms)
        .single()
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

fn dur_ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX / 4)
}

/// One task of the claim script's reply: id, kind JSON, dedupe key, attempt, max attempts,
/// expiry ms, failures, releases.
type ClaimReply = (String, String, String, u32, u32, i64, u32, u32);

/// One lease to settle: the lease, the script's op, its numeric argument and the reason.
type SettleItem<'a> = (&'a Lease, &'static str, i64, &'a str);

impl RedisQueue {
    /// Connects to `url` (e.g. `redis://127.0.0.1:6379/0`); every key starts with `prefix`
    /// (a `:` is appended unless it ends with one). Checks the connection with a `PING`.
    pub async fn connect(url: &str, prefix: &str, clock: Arc<dyn Clock>) -> Result<Self> {
        Self::connect_with(url, prefix, clock, RedisQueueOptions::default()).await
    }

    /// Like [`RedisQueue::connect`], with tuning.
    pub async fn connect_with(
        url: &str,
        prefix: &str,
        clock: Arc<dyn Clock>,
        options: RedisQueueOptions,
    ) -> Result<Self> {
        if prefix.is_empty() {
            return Err(Error::invalid("redis queue key prefix must not be empty"));
        }
        let client = r::Client::open(url)
            .map_err(|e| Error::invalid(format!("redis url: {e}")).with_source(e))?;
        let conn_cfg = r::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(options.response_timeout))
            .set_response_timeout(Some(options.response_timeout));
        let manager = deadpool_redis::Manager::new_with_config(url, conn_cfg)
            .map_err(|e| Error::invalid(format!("redis url: {e}")).with_source(e))?;
        let pool = Pool::builder(manager)
            .max_size(options.pool_size.max(1))
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(|e| Error::invalid(format!("redis pool: {e}")))?;
        let prefix = if prefix.ends_with(':') {
            prefix.to_string()
        } else {
            format!("{prefix}:")
        };
        let q = RedisQueue {
            pool,
            client,
            prefix,
            clock,
            options,
            scripts: Scripts {
                enqueue: r::Script::new(ENQUEUE_LUA),
                claim: r::Script::new(CLAIM_LUA),
                settle: r::Script::new(SETTLE_LUA),
                reap: r::Script::new(REAP_LUA),
                prune: r::Script::new(PRUNE_LUA),
                beat: r::Script::new(BEAT_LUA),
            },
            blocking: Mutex::new(Vec::new()),
        };
        let mut conn = q.conn().await?;
        let _: String = r::cmd("PING")
            .query_async(&mut conn)
            .await
            .map_err(redis_err)?;
        tracing::debug!(prefix = %q.prefix, "redis queue connected");
        Ok(q)
    }

    /// `now` for a script: the caller's clock in ms, or -1 (the script reads Redis `TIME`).
    fn now_arg(&self) -> i64 {
        if self.options.server_time {
            -1
        } else {
            to_ms(self.clock.now())
        }
    }

    /// The key prefix (ends with `:`).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    async fn conn(&self) -> Result<deadpool_redis::Connection> {
        self.pool.get().await.map_err(pool_err)
    }

    fn key(&self, name: &str) -> String {
        format!("{}{}", self.prefix, name)
    }

    /// A key of `zone` (`None`: the default zone's, unprefixed).
    fn zone_key(&self, zone: Option<&str>, name: &str) -> String {
        match zone {
            Some(z) => format!("{}z:{z}:{name}", self.prefix),
            None => self.key(name),
        }
    }

    /// The default zone and every named zone that had tasks or workers.
    async fn zones(&self) -> Result<Vec<Option<String>>> {
        let mut conn = self.conn().await?;
        let mut named: Vec<String> = r::cmd("SMEMBERS")
            .arg(self.key("zones"))
            .query_async(&mut conn)
            .await
            .map_err(redis_err)?;
        named.sort();
        Ok(std::iter::once(None)
            .chain(named.into_iter().map(Some))
            .collect())
    }

    /// Task counts of one zone.
    async fn stats_of(&self, zone: Option<&str>) -> Result<QueueStats> {
        let mut conn = self.conn().await?;
        let (ready, delayed, leased, dead): (u64, u64, u64, u64) = r::pipe()
            .cmd("LLEN")
            .arg(self.zone_key(zone, "ready"))
            .cmd("ZCARD")
            .arg(self.zone_key(zone, "delayed"))
            .cmd("ZCARD")
            .arg(self.zone_key(zone, "leases"))
            .cmd("ZCARD")
            .arg(self.zone_key(zone, "dead"))
            .query_async(&mut conn)
            .await
            .map_err(redis_err)?;
        Ok(QueueStats {
            ready,
            delayed,
            leased,
            dead,
        })
    }

    async fn blocking_conn(&self) -> Result<r::aio::MultiplexedConnection> {
        let idle = self
            .blocking
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pop();
        if let Some(c) = idle {
            return Ok(c);
        }
        let cfg = r::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.options.response_timeout))
            .set_response_timeout(Some(BLOCK_SLICE + BLOCK_GRACE));
        self.client
            .get_multiplexed_async_connection_with_config(&cfg)
            .await
            .map_err(redis_err)
    }

    fn return_blocking(&self, c: r::aio::MultiplexedConnection) {
        let mut g = self.blocking.lock().unwrap_or_else(|p| p.into_inner());
        if g.len() < self.options.max_idle_blocking {
            g.push(c);
        }
    }

    /// Claims up to `max` ready tasks of `zone` in one script call (no waiting).
    async fn try_claim_many(
        &self,
        worker_id: &str,
        zone: Option<&str>,
        max: usize,
        lease_for: Duration,
    ) -> Result<Vec<Lease>> {
        let now = self.now_arg();
        let mut conn = self.conn().await?;
        let reply: Vec<ClaimReply> = self
            .scripts
            .claim
            .prepare_invoke()
            .arg(&self.prefix)
            .arg(worker_id)
            .arg(now)
            .arg(dur_ms(lease_for))
            .arg(self.options.batch_limit)
            .arg(zone.unwrap_or(""))
            .arg(max)
            .invoke_async(&mut conn)
            .await
            .map_err(redis_err)?;
        let mut out = Vec::with_capacity(reply.len());
        let mut unreadable = None;
        for (id, kind, dedupe, attempt, max_attempts, expires, failures, released) in reply {
            let kind: TaskKind = match serde_json::from_str(&kind) {
                Ok(k) => k,
                Err(e) => {
                    // The task stays leased (it expires and is reaped like a dead worker's);
                    // the others of the batch are still handed out.
                    unreadable.get_or_insert(Error::internal(format!(
                        "redis queue: task {id} has an unreadable body: {e}"
                    )));
                    continue;
                }
            };
            out.push(Lease {
                task: Task {
                    id,
                    kind,
                    dedupe_key: (!dedupe.is_empty()).then_some(dedupe),
                    attempt,
                    max_attempts,
                    failures,
                    released,
                    zone: zone.map(str::to_string),
                },
                worker_id: worker_id.to_string(),
                expires_at: from_ms(expires),
            });
        }
        match unreadable {
            Some(e) if out.is_empty() => Err(e),
            Some(e) => {
                tracing::warn!(error = %e, "claimed a task with an unreadable body");
                Ok(out)
            }
            None => Ok(out),
        }
    }

    /// Blocks until the ready list is non-empty or `block` passed (without taking anything).
    async fn wait_ready(&self, zone: Option<&str>, block: Duration) -> Result<()> {
        let mut conn = self.blocking_conn().await?;
        let ready = self.zone_key(zone, "ready");
        let secs = block.as_secs_f64().max(0.01);
        let res: r::RedisResult<Option<String>> = r::cmd("BLMOVE")
            .arg(&ready)
            .arg(&ready)
            .arg("RIGHT")
            .arg("RIGHT")
            .arg(secs)
            .query_async(&mut conn)
            .await;
        match res {
            Ok(_) => {
                self.return_blocking(conn);
                Ok(())
            }
            // The connection may be in an unknown state: drop it.
            Err(e) => Err(redis_err(e)),
        }
    }

    /// Settles one lease; Stale if it was lost.
    async fn settle(
        &self,
        lease: &Lease,
        op: &'static str,
        arg: i64,
        reason: &str,
    ) -> Result<Vec<i64>> {
        self.settle_batch(&[(lease, op, arg, reason)])
            .await?
            .pop()
            .unwrap_or_else(|| Err(Error::internal("redis queue: empty script reply")))
    }

    /// Settles leases in script calls of at most `batch_limit` each: one reply per lease, a lost
    /// lease Stale in its own slot.
    async fn settle_batch(&self, items: &[SettleItem<'_>]) -> Result<Vec<Result<Vec<i64>>>> {
        let mut out = Vec::with_capacity(items.len());
        for chunk in items.chunks(self.chunk()) {
            let now = self.now_arg();
            let mut inv = self.scripts.settle.prepare_invoke();
            inv.arg(&self.prefix).arg(now);
            for (lease, op, arg, reason) in chunk {
                inv.arg(&lease.task.id)
                    .arg(lease.task.attempt)
                    .arg(*op)
                    .arg(*arg)
                    .arg(*reason);
            }
            let mut conn = self.conn().await?;
            let reply: Vec<Vec<i64>> = inv.invoke_async(&mut conn).await.map_err(redis_err)?;
            if reply.len() != chunk.len() {
                return Err(Error::internal(format!(
                    "redis queue: {} settle replies for {} leases",
                    reply.len(),
                    chunk.len()
                )));
            }
            for ((lease, ..), r) in chunk.iter().zip(reply) {
                out.push(match r.first() {
                    Some(-1) => Err(Error::stale(format!(
                        "task {} attempt {} no longer holds its lease",
                        lease.task.id, lease.task.attempt
                    ))),
                    Some(_) => Ok(r),
                    None => Err(Error::internal("redis queue: empty script reply")),
                });
            }
        }
        Ok(out)
    }

    /// Items per script call of a batch.
    fn chunk(&self) -> usize {
        usize::try_from(self.options.batch_limit)
            .unwrap_or(1000)
            .max(1)
    }

    /// Deletes every key under this queue's prefix (SCAN + UNLINK, never FLUSHDB). For tests and
    /// for an operator resetting a deployment's queue. Returns the number of keys deleted.
    pub async fn purge(&self) -> Result<u64> {
        let mut conn = self.conn().await?;
        let pattern = format!("{}*", escape_glob(&self.prefix));
        let mut cursor: u64 = 0;
        let mut deleted = 0u64;
        loop {
            let (next, keys): (u64, Vec<String>) = r::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(500)
                .query_async(&mut conn)
                .await
                .map_err(redis_err)?;
            if !keys.is_empty() {
                let n: u64 = r::cmd("UNLINK")
                    .arg(&keys)
                    .query_async(&mut conn)
                    .await
                    .map_err(redis_err)?;
                deleted += n;
            }
            if next == 0 {
                break;
            }
            cursor = next;
        }
        Ok(deleted)
    }
}

/// Escapes the glob metacharacters of a Redis `MATCH` pattern.
fn escape_glob(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[async_trait]
impl Queue for RedisQueue {
    async fn enqueue(&self, spec: TaskSpec) -> Result<Enqueued> {
        self.enqueue_many(vec![spec])
            .await?
            .pop()
            .ok_or_else(|| Error::internal("redis queue: empty enqueue reply"))
    }

    async fn enqueue_many(&self, specs: Vec<TaskSpec>) -> Result<Vec<Enqueued>> {
        let mut out = Vec::with_capacity(specs.len());
        for chunk in specs.chunks(self.chunk()) {
            let now = if self.options.server_time {
                -1
            } else {
                to_ms(self.clock.now())
            };
            let mut inv = self.scripts.enqueue.prepare_invoke();
            inv.arg(&self.prefix).arg(now);
            for spec in chunk {
                let id = uuid::Uuid::new_v4().simple().to_string();
                let kind = serde_json::to_string(&spec.kind)
                    .map_err(|e| Error::internal(format!("task body: {e}")))?;
                inv.arg(id)
                    .arg(kind)
                    .arg(spec.dedupe_key.as_deref().unwrap_or(""))
                    .arg(spec.max_attempts.max(1))
                    .arg(spec.run_at.map(to_ms).unwrap_or(i64::MIN))
                    .arg(spec.zone.as_deref().unwrap_or(""));
            }
            let mut conn = self.conn().await?;
            let reply: Vec<(i64, String)> = inv.invoke_async(&mut conn).await.map_err(redis_err)?;
            if reply.len() != chunk.len() {
                return Err(Error::internal(format!(
                    "redis queue: {} enqueue replies for {} tasks",
                    reply.len(),
                    chunk.len()
                )));
            }
            out.extend(reply.into_iter().map(|(queued, id)| {
                if queued == 1 {
                    Enqueued::New(id)
                } else {
                    Enqueued::Duplicate(id)
                }
            }));
        }
        Ok(out)
    }

    async fn claim_in(
        &self,
        worker_id: &str,
        zone: Option<&str>,
        lease_for: Duration,
        wait: Duration,
    ) -> Result<Option<Lease>> {
        Ok(self
            .claim_many_in(worker_id, zone, 1, lease_for, wait)
            .await?
            .pop())
    }

    async fn claim_many_in(
        &self,
        worker_id: &str,
        zone: Option<&str>,
        max: usize,
        lease_for: Duration,
        wait: Duration,
    ) -> Result<Vec<Lease>> {
        if worker_id.is_empty() {
            return Err(Error::invalid("worker id must not be empty"));
        }
        if let Some(z) = zone {
            netraven_core::model::validate_zone(z)?;
        }
        if max == 0 {
            return Ok(Vec::new());
        }
        // One script call hands out at most `batch_limit` tasks.
        let max = max.min(self.chunk());
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let leases = self.try_claim_many(worker_id, zone, max, lease_for).await?;
            if !leases.is_empty() {
                return Ok(leases);
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Ok(Vec::new());
            }
            let block = (deadline - now).min(BLOCK_SLICE);
            if block < Duration::from_millis(10) {
                tokio::time::sleep(block).await;
            } else {
                self.wait_ready(zone, block).await?;
            }
        }
    }

    async fn extend(&self, lease: &Lease, lease_for: Duration) -> Result<DateTime<Utc>> {
        let reply = self.settle(lease, "extend", dur_ms(lease_for), "").await?;
        match reply.get(1) {
            Some(ms) => Ok(from_ms(*ms)),
            None => Err(Error::internal("redis queue: extend reply without expiry")),
        }
    }

    async fn complete(&self, lease: &Lease) -> Result<()> {
        self.settle(lease, "complete", 0, "").await.map(|_| ())
    }

    async fn retry(&self, lease: &Lease, at: DateTime<Utc>, reason: &str) -> Result<RetryOutcome> {
        let reply = self.settle(lease, "retry", to_ms(at), reason).await?;
        if reply.first() == Some(&2) {
            tracing::warn!(task = %lease.task.id, reason, "task used all its attempts; moved to dead set");
            Ok(RetryOutcome::Dead)
        } else {
            Ok(RetryOutcome::Scheduled)
        }
    }

    async fn release(&self, lease: &Lease) -> Result<()> {
        self.settle(lease, "release", 0, "").await.map(|_| ())
    }

    async fn defer(&self, lease: &Lease, at: DateTime<Utc>) -> Result<()> {
        self.settle(lease, "defer", to_ms(at), "").await.map(|_| ())
    }

    async fn settle_many(&self, batch: &[(&Lease, SettleOp<'_>)]) -> Result<Vec<Result<Settled>>> {
        let items: Vec<SettleItem<'_>> = batch
            .iter()
            .map(|(lease, op)| match *op {
                SettleOp::Complete => (*lease, "complete", 0, ""),
                SettleOp::Retry { at, reason } => (*lease, "retry", to_ms(at), reason),
                SettleOp::Release => (*lease, "release", 0, ""),
                SettleOp::Defer { at } => (*lease, "defer", to_ms(at), ""),
            })
            .collect();
        let replies = self.settle_batch(&items).await?;
        Ok(items
            .iter()
            .zip(replies)
            .map(|((lease, op, _, reason), r)| {
                let r = r?;
                if *op != "retry" {
                    return Ok(Settled::Done);
                }
                if r.first() == Some(&2) {
                    tracing::warn!(task = %lease.task.id, reason, "task used all its attempts; moved to dead set");
                    Ok(Settled::Retried(RetryOutcome::Dead))
                } else {
                    Ok(Settled::Retried(RetryOutcome::Scheduled))
                }
            })
            .collect())
    }

    async fn prune_dead(&self, before: DateTime<Utc>) -> Result<u64> {
        let mut total = 0u64;
        for zone in self.zones().await? {
            loop {
                let mut conn = self.conn().await?;
                let n: u64 = self
                    .scripts
                    .prune
                    .prepare_invoke()
                    .arg(&self.prefix)
                    .arg(to_ms(before))
                    .arg(self.options.batch_limit)
                    .arg(zone.as_deref().unwrap_or(""))
                    .invoke_async(&mut conn)
                    .await
                    .map_err(redis_err)?;
                total += n;
                if n < u64::from(self.options.batch_limit) {
                    break;
                }
            }
        }
        if total > 0 {
            tracing::info!(prefix = %self.prefix, removed = total, "removed dead tasks past their retention");
        }
        Ok(total)
    }

    async fn reap_expired(&self) -> Result<u64> {
        let now = self.now_arg();
        let mut total = 0u64;
        for zone in self.zones().await? {
            loop {
                let mut conn = self.conn().await?;
                let (expired, promoted): (u64, u64) = self
                    .scripts
                    .reap
                    .prepare_invoke()
                    .arg(&self.prefix)
                    .arg(now)
                    .arg(self.options.batch_limit)
                    .arg(zone.as_deref().unwrap_or(""))
                    .invoke_async(&mut conn)
                    .await
                    .map_err(redis_err)?;
                total += expired;
                if expired < u64::from(self.options.batch_limit)
                    && promoted < u64::from(self.options.batch_limit)
                {
                    break;
                }
            }
        }
        if total > 0 {
            tracing::info!(prefix = %self.prefix, expired = total, "returned expired leases to the queue");
        }
        Ok(total)
    }

    async fn stats(&self) -> Result<QueueStats> {
        let mut total = QueueStats::default();
        for z in self.zone_stats().await? {
            total.ready += z.stats.ready;
            total.delayed += z.stats.delayed;
            total.leased += z.stats.leased;
            total.dead += z.stats.dead;
        }
        Ok(total)
    }

    async fn zone_stats(&self) -> Result<Vec<ZoneStats>> {
        let mut out = Vec::new();
        for zone in self.zones().await? {
            let stats = self.stats_of(zone.as_deref()).await?;
            if zone.is_none() || stats != QueueStats::default() {
                out.push(ZoneStats { zone, stats });
            }
        }
        Ok(out)
    }

    async fn heartbeat(&self, worker_id: &str, zone: Option<&str>) -> Result<()> {
        if let Some(z) = zone {
            netraven_core::model::validate_zone(z)?;
        }
        let mut conn = self.conn().await?;
        let _: i64 = self
            .scripts
            .beat
            .prepare_invoke()
            .arg(&self.prefix)
            .arg(worker_id)
            .arg(zone.unwrap_or(""))
            .arg(self.now_arg())
            .invoke_async(&mut conn)
            .await
            .map_err(redis_err)?;
        Ok(())
    }

    async fn workers(&self, since: DateTime<Utc>) -> Result<Vec<WorkerBeat>> {
        let mut conn = self.conn().await?;
        let beats: Vec<(String, i64)> = r::cmd("ZRANGEBYSCORE")
            .arg(self.key("beats"))
            .arg(to_ms(since))
            .arg("+inf")
            .arg("WITHSCORES")
            .query_async(&mut conn)
            .await
            .map_err(redis_err)?;
        if beats.is_empty() {
            return Ok(Vec::new());
        }
        let zones: Vec<Option<String>> = r::cmd("HMGET")
            .arg(self.key("beat-zone"))
            .arg(beats.iter().map(|(w, _)| w.as_str()).collect::<Vec<_>>())
            .query_async(&mut conn)
            .await
            .map_err(redis_err)?;
        let mut out: Vec<WorkerBeat> = beats
            .into_iter()
            .zip(zones)
            .map(|((worker_id, ms), zone)| WorkerBeat {
                worker_id,
                zone: zone.filter(|z| !z.is_empty()),
                at: from_ms(ms),
            })
            .collect();
        out.sort_by(|a, b| (&a.zone, &a.worker_id).cmp(&(&b.zone, &b.worker_id)));
        Ok(out)
    }
}
