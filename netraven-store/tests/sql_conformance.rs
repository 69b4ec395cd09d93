//! The core store conformance suite (`netraven_core::testkit::store::run_all`) on SQLite (always:
//! in memory and in a WAL file) and on PostgreSQL (when `NETRAVEN_TEST_PG_URL` is set; each test
//! in its own random schema, dropped at the end; required when `CI=true`).

mod sql_support;

use netraven_store::sql::SqliteStore;
use sql_support::*;
use std::sync::Arc;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_in_memory_passes_the_store_conformance_suite() {
    let store = sqlite_mem(cipher()).await;
    netraven_core::testkit::store::run_all(Arc::new(store)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_file_passes_the_store_conformance_suite() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteStore::open(dir.path().join("netraven.db"), cipher())
        .await
        .expect("open sqlite");
    netraven_core::testkit::store::run_all(Arc::new(store)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_passes_the_store_conformance_suite() {
    let Some(store) = pg(cipher()).await else {
        return;
    };
    let handle = store.clone();
    netraven_core::testkit::store::run_all(Arc::new(store)).await;
    handle.drop_schema().await.expect("drop schema");
}
