//! Store benchmark (not a test): fills a store with 100,000 devices, 1,000,000 log rows,
//! 1,000,000 device results and 200,000 snapshots, then times the API's typical queries through
//! the store traits.
//!
//! ```text
//! cargo run --release -p netraven-store --example store_bench -- [sqlite|postgres|both]
//! ```
//!
//! PostgreSQL is read from `NETRAVEN_BENCH_PG_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test`) and uses the schema `netraven_bench`, which is
//! dropped and refilled. SQLite uses a temporary file. Bulk loading generates rows inside the
//! database (`generate_series` / a recursive CTE) in large batches, one transaction per table.

use netraven_core::model::*;
use netraven_core::store::Store;
use netraven_store::cipher::{AesGcmCipher, KeyMaterial};
use netraven_store::sql::{PostgresStore, SqliteStore};
use std::sync::Arc;
use std::time::{Duration, Instant};

const DEVICES: i64 = 100_000;
const RUNS: i64 = 1_000;
const PER_RUN: i64 = 1_000; // results and logs per run: 1,000,000 each
const SNAPS_PER_DEVICE: i64 = 2;

type BoxErr = Box<dyn std::error::Error>;

/// PostgreSQL fill: one statement per table, rows generated server-side.
const PG_FILL: &[&str] = &[
    "INSERT INTO tags (name) SELECT 'tag-' || g FROM generate_series(0, 9) g",
    "INSERT INTO devices (hostname, address, port, platform, host_key_policy, legacy_ssh, enabled, created_at, updated_at)
     SELECT 'dev-' || lpad(g::text, 6, '0'), '10.' || (g / 65536) || '.' || ((g / 256) % 256) || '.' || (g % 256), 22,
            (ARRAY['cisco_ios','arista_eos','juniper_junos','cisco_nxos','linux'])[1 + g % 5], 'tofu', false, true,
            TIMESTAMPTZ '2024-01-01', TIMESTAMPTZ '2024-01-01'
     FROM generate_series(1, 100000) g",
    "INSERT INTO device_tags (device_id, tag_id, position) SELECT d.id, t.id, 0 FROM devices d JOIN tags t ON t.name = 'tag-' || (d.id % 10)",
    "INSERT INTO jobs (name, kind, targets, schedule, schedule_type, enabled, overlap, missed, system, created_at, updated_at)
     SELECT 'job-' || g, '{\"type\":\"backup\"}', '{\"device_ids\":[],\"tags\":[]}', '{\"type\":\"manual\"}', 'manual', true, 'forbid', 'run_once', false,
            TIMESTAMPTZ '2024-01-01', TIMESTAMPTZ '2024-01-01' FROM generate_series(1, 100) g",
    "INSERT INTO runs (job_id, trigger_kind, fire_time, status, queued_at, started_at, finished_at, total, succeeded, failed)
     SELECT 1 + g % 100, 'schedule', TIMESTAMPTZ '2024-01-01' + g * interval '1 hour', 'COMPLETED_PARTIAL_FAILURE',
            TIMESTAMPTZ '2024-01-01' + g * interval '1 hour', TIMESTAMPTZ '2024-01-01' + g * interval '1 hour',
            TIMESTAMPTZ '2024-01-01' + g * interval '1 hour' + interval '10 minutes', 1000, 950, 50
     FROM generate_series(0, 999) g",
    "INSERT INTO device_results (run_id, job_id, device_id, status, error_kind, message, duration_ms, changed, attempt, started_at, finished_at)
     SELECT 1 + g / 1000, 1 + (g / 1000) % 100, 1 + (g * 7919) % 100000,
            CASE WHEN g % 20 = 0 THEN 'FAILED' ELSE 'SUCCESS' END, CASE WHEN g % 20 = 0 THEN 'timeout' END,
            NULL, 1000 + g % 5000, CASE WHEN g % 20 = 0 THEN NULL ELSE g % 3 = 0 END, 1,
            TIMESTAMPTZ '2024-01-01' + (g / 1000) * interval '1 hour' + (g % 1000) * interval '500 ms',
            TIMESTAMPTZ '2024-01-01' + (g / 1000) * interval '1 hour' + (g % 1000) * interval '500 ms' + interval '2 s'
     FROM generate_series(0::bigint, 999999) g",
    "INSERT INTO logs (time, level, kind, run_id, job_id, device_id, source, message)
     SELECT TIMESTAMPTZ '2024-01-01' + (g / 1000) * interval '1 hour' + (g % 1000) * interval '500 ms',
            CASE WHEN g % 20 = 0 THEN 3 WHEN g % 7 = 0 THEN 2 ELSE 1 END,
            (ARRAY['job','connection','session','snapshot'])[1 + g % 4], 1 + g / 1000, 1 + (g / 1000) % 100, 1 + (g * 7919) % 100000,
            'worker:' || (g % 8),
            CASE WHEN g % 20 = 0 THEN 'login to dev-' || lpad((1 + (g * 7919) % 100000)::text, 6, '0') || ' failed: read timeout after 30 s'
                 ELSE 'device dev-' || lpad((1 + (g * 7919) % 100000)::text, 6, '0') || ' backup stored (' || (g % 97) || ' lines changed)' END
     FROM generate_series(0::bigint, 999999) g",
    "INSERT INTO snapshots (device_id, hostname, run_id, hash, size, created_at, commit_id)
     SELECT 1 + g % 100000, 'dev-' || lpad((1 + g % 100000)::text, 6, '0'), 1 + g / 100000, md5(g::text), 400,
            TIMESTAMPTZ '2024-01-01' + (g / 100000) * interval '1 day', md5((g / 100000)::text)
     FROM generate_series(0, 199999) g",
    "INSERT INTO snapshot_contents (snapshot_id, content)
     SELECT id, 'hostname ' || hostname || E'\\ninterface Gi0/1\\n description uplink ' || id || E'\\nntp server 10.0.0.' || (id % 250) || E'\\n' FROM snapshots",
    "INSERT INTO snapshot_latest (device_id, snapshot_id, created_at, hostname, run_id, hash, size, commit_id)
     SELECT DISTINCT ON (device_id) device_id, id, created_at, hostname, run_id, hash, size, commit_id
     FROM snapshots ORDER BY device_id, created_at DESC, id DESC",
    "ANALYZE",
];

/// SQLite fill: the same rows, generated with a recursive CTE (timestamps in microseconds).
const SQLITE_FILL: &[&str] = &[
    "INSERT INTO tags (name) WITH RECURSIVE g(x) AS (SELECT 0 UNION ALL SELECT x + 1 FROM g WHERE x < 9) SELECT 'tag-' || x FROM g",
    "INSERT INTO devices (hostname, address, port, platform, host_key_policy, legacy_ssh, enabled, created_at, updated_at)
     WITH RECURSIVE g(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM g WHERE x < 100000)
     SELECT 'dev-' || printf('%06d', x), '10.' || (x / 65536) || '.' || ((x / 256) % 256) || '.' || (x % 256), 22,
            CASE x % 5 WHEN 0 THEN 'cisco_ios' WHEN 1 THEN 'arista_eos' WHEN 2 THEN 'juniper_junos' WHEN 3 THEN 'cisco_nxos' ELSE 'linux' END,
            'tofu', 0, 1, 1704067200000000, 1704067200000000 FROM g",
    "INSERT INTO device_tags (device_id, tag_id, position) SELECT d.id, t.id, 0 FROM devices d JOIN tags t ON t.name = 'tag-' || (d.id % 10)",
    "INSERT INTO jobs (name, kind, targets, schedule, schedule_type, enabled, overlap, missed, system, created_at, updated_at)
     WITH RECURSIVE g(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM g WHERE x < 100)
     SELECT 'job-' || x, '{\"type\":\"backup\"}', '{\"device_ids\":[],\"tags\":[]}', '{\"type\":\"manual\"}', 'manual', 1, 'forbid', 'run_once', 0,
            1704067200000000, 1704067200000000 FROM g",
    "INSERT INTO runs (job_id, trigger_kind, fire_time, status, queued_at, started_at, finished_at, total, succeeded, failed)
     WITH RECURSIVE g(x) AS (SELECT 0 UNION ALL SELECT x + 1 FROM g WHERE x < 999)
     SELECT 1 + x % 100, 'schedule', 1704067200000000 + x * 3600000000, 'COMPLETED_PARTIAL_FAILURE',
            1704067200000000 + x * 3600000000, 1704067200000000 + x * 3600000000, 1704067200000000 + x * 3600000000 + 600000000,
            1000, 950, 50 FROM g",
    "INSERT INTO device_results (run_id, job_id, device_id, status, error_kind, message, duration_ms, changed, attempt, started_at, finished_at)
     WITH RECURSIVE g(x) AS (SELECT 0 UNION ALL SELECT x + 1 FROM g WHERE x < 999999)
     SELECT 1 + x / 1000, 1 + (x / 1000) % 100, 1 + (x * 7919) % 100000,
            CASE WHEN x % 20 = 0 THEN 'FAILED' ELSE 'SUCCESS' END, CASE WHEN x % 20 = 0 THEN 'timeout' END,
            NULL, 1000 + x % 5000, CASE WHEN x % 20 = 0 THEN NULL ELSE x % 3 = 0 END, 1,
            1704067200000000 + (x / 1000) * 3600000000 + (x % 1000) * 500000,
            1704067200000000 + (x / 1000) * 3600000000 + (x % 1000) * 500000 + 2000000 FROM g",
    "INSERT INTO logs (time, level, kind, run_id, job_id, device_id, source, message)
     WITH RECURSIVE g(x) AS (SELECT 0 UNION ALL SELECT x + 1 FROM g WHERE x < 999999)
     SELECT 1704067200000000 + (x / 1000) * 3600000000 + (x % 1000) * 500000,
            CASE WHEN x % 20 = 0 THEN 3 WHEN x % 7 = 0 THEN 2 ELSE 1 END,
            CASE x % 4 WHEN 0 THEN 'job' WHEN 1 THEN 'connection' WHEN 2 THEN 'session' ELSE 'snapshot' END,
            1 + x / 1000, 1 + (x / 1000) % 100, 1 + (x * 7919) % 100000, 'worker:' || (x % 8),
            CASE WHEN x % 20 = 0 THEN 'login to dev-' || printf('%06d', 1 + (x * 7919) % 100000) || ' failed: read timeout after 30 s'
                 ELSE 'device dev-' || printf('%06d', 1 + (x * 7919) % 100000) || ' backup stored (' || (x % 97) || ' lines changed)' END
     FROM g",
    "INSERT INTO snapshots (device_id, hostname, run_id, hash, size, created_at, commit_id)
     WITH RECURSIVE g(x) AS (SELECT 0 UNION ALL SELECT x + 1 FROM g WHERE x < 199999)
     SELECT 1 + x % 100000, 'dev-' || printf('%06d', 1 + x % 100000), 1 + x / 100000, hex(randomblob(32)), 400,
            1704067200000000 + (x / 100000) * 86400000000, hex(randomblob(20)) FROM g",
    "INSERT INTO snapshot_contents (snapshot_id, content)
     SELECT id, 'hostname ' || hostname || char(10) || 'interface Gi0/1' || char(10) || ' description uplink ' || id || char(10) || 'ntp server 10.0.0.' || (id % 250) || char(10) FROM snapshots",
    "INSERT INTO snapshot_latest (device_id, snapshot_id, created_at, hostname, run_id, hash, size, commit_id)
     SELECT device_id, id, created_at, hostname, run_id, hash, size, commit_id
     FROM snapshots WHERE id IN (SELECT MAX(id) FROM snapshots GROUP BY device_id)",
    "ANALYZE",
];

async fn time<T, F, Fut>(name: &str, mut f: F) -> Result<(String, f64, String), BoxErr>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = netraven_core::Result<T>>,
    T: std::fmt::Debug + Summ,
{
    let first = f().await?; // warm-up
    let mut samples = Vec::new();
    for _ in 0..7 {
        let start = Instant::now();
        let out = f().await?;
        samples.push(start.elapsed());
        std::hint::black_box(out);
    }
    samples.sort();
    let median = samples[samples.len() / 2];
    Ok((name.to_string(), ms(median), first.summary()))
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

trait Summ {
    fn summary(&self) -> String;
}
impl<T> Summ for Paged<T> {
    fn summary(&self) -> String {
        format!("{} rows of {}", self.items.len(), self.total)
    }
}
impl<T> Summ for Vec<T> {
    fn summary(&self) -> String {
        format!("{} rows", self.len())
    }
}

async fn run_queries(store: Arc<dyn Store>) -> Result<Vec<(String, f64, String)>, BoxErr> {
    let mut out = Vec::new();
    let s = store.clone();
    out.push(
        time(
            "device page: hostname contains + platform, page 3 of 50",
            || {
                let s = s.clone();
                async move {
                    let f = DeviceFilter {
                        hostname: Some("DEV-01".into()),
                        platform: Some("cisco_ios".into()),
                        ..Default::default()
                    };
                    s.list_devices(&f, Page::new(3, 50)).await
                }
            },
        )
        .await?,
    );
    out.push(
        time("device page: tag, page 10 of 50", || {
            let s = s.clone();
            async move {
                let f = DeviceFilter {
                    tag: Some("tag-3".into()),
                    ..Default::default()
                };
                s.list_devices(&f, Page::new(10, 50)).await
            }
        })
        .await?,
    );
    out.push(
        time("log page: run + min level warning, 50", || {
            let s = s.clone();
            async move {
                let f = LogFilter {
                    run_id: Some(512),
                    min_level: Some(LogLevel::Warning),
                    ..Default::default()
                };
                s.list_logs(&f, Page::first(50)).await
            }
        })
        .await?,
    );
    out.push(
        time("log text search: \"dev-04217\" over all logs, 50", || {
            let s = s.clone();
            async move {
                let f = LogFilter {
                    search: Some("dev-04217".into()),
                    ..Default::default()
                };
                s.list_logs(&f, Page::first(50)).await
            }
        })
        .await?,
    );
    out.push(
        time("log text search: \"TIMEOUT\" + run, 50", || {
            let s = s.clone();
            async move {
                let f = LogFilter {
                    search: Some("TIMEOUT".into()),
                    run_id: Some(77),
                    ..Default::default()
                };
                s.list_logs(&f, Page::first(50)).await
            }
        })
        .await?,
    );
    let ids: Vec<i64> = (1..=10_000).map(|i| i * 7).collect();
    out.push(
        time("latest snapshot per device, 10,000 devices", || {
            let s = s.clone();
            let ids = ids.clone();
            async move { s.latest_snapshots(&ids).await }
        })
        .await?,
    );
    out.push(
        time("device history: results of one device, 50", || {
            let s = s.clone();
            async move {
                let f = ResultFilter {
                    device_id: Some(4217),
                    ..Default::default()
                };
                s.list_results(&f, Page::first(50)).await
            }
        })
        .await?,
    );
    out.push(
        time("device history: snapshots of one device, 50", || {
            let s = s.clone();
            async move { s.list_snapshots(4217, Page::first(50)).await }
        })
        .await?,
    );
    out.push(
        time("results page: job + FAILED, 50", || {
            let s = s.clone();
            async move {
                let f = ResultFilter {
                    job_id: Some(12),
                    status: Some(DeviceStatus::Failed),
                    ..Default::default()
                };
                s.list_results(&f, Page::first(50)).await
            }
        })
        .await?,
    );
    Ok(out)
}

fn print_table(backend: &str, fill: Duration, rows: &[(String, f64, String)]) {
    println!("\n### {backend} (fill: {:.1} s)\n", fill.as_secs_f64());
    println!("| query | median ms | result |");
    println!("|---|---:|---|");
    for (name, ms, summary) in rows {
        println!("| {name} | {ms:.2} | {summary} |");
    }
}

async fn bench_sqlite() -> Result<(), BoxErr> {
    let dir = tempfile::tempdir()?;
    let cipher = Arc::new(AesGcmCipher::from_key(&KeyMaterial::generate()));
    let store = SqliteStore::open(dir.path().join("bench.db"), cipher).await?;
    let start = Instant::now();
    for sql in SQLITE_FILL {
        let mut tx = store.pool().begin().await?;
        sqlx::query(*sql).execute(&mut *tx).await?;
        tx.commit().await?;
    }
    let fill = start.elapsed();
    let rows = run_queries(Arc::new(store)).await?;
    print_table("SQLite (WAL file)", fill, &rows);
    Ok(())
}

async fn bench_postgres() -> Result<(), BoxErr> {
    let url = std::env::var("NETRAVEN_BENCH_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_string());
    let cipher = Arc::new(AesGcmCipher::from_key(&KeyMaterial::generate()));
    let old = PostgresStore::connect(&url, Some("netraven_bench"), cipher.clone()).await?;
    old.drop_schema().await?;
    let store = PostgresStore::connect(&url, Some("netraven_bench"), cipher).await?;
    let start = Instant::now();
    for sql in PG_FILL {
        let mut tx = store.pool().begin().await?;
        sqlx::query(*sql).execute(&mut *tx).await?;
        tx.commit().await?;
    }
    let fill = start.elapsed();
    let rows = run_queries(Arc::new(store.clone())).await?;
    print_table("PostgreSQL", fill, &rows);
    if std::env::var("NETRAVEN_BENCH_KEEP").is_err() {
        store.drop_schema().await?;
    }
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), BoxErr> {
    let which = std::env::args().nth(1).unwrap_or_else(|| "both".into());
    println!(
        "NetRaven store benchmark: {DEVICES} devices, {} results, {} logs, {} snapshots",
        RUNS * PER_RUN,
        RUNS * PER_RUN,
        DEVICES * SNAPS_PER_DEVICE
    );
    if which == "sqlite" || which == "both" {
        bench_sqlite().await?;
    }
    if which == "postgres" || which == "both" {
        bench_postgres().await?;
    }
    Ok(())
}
