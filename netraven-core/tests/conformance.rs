//! The in-memory backends pass the same suites as every other backend.

use netraven_core::clock::Clock;
use netraven_core::memory::{MemoryQueue, MemoryStore};
use netraven_core::queue::Queue;
use netraven_core::snapshot::StoreSnapshotSink;
use netraven_core::store::Store;
use netraven_core::testkit;
use std::sync::Arc;

#[tokio::test]
async fn memory_store_passes_the_store_suite() {
    testkit::store::run_all(Arc::new(MemoryStore::new())).await;
}

#[tokio::test]
async fn memory_queue_passes_the_queue_suite() {
    testkit::queue::run_all(|clock| async move {
        Arc::new(MemoryQueue::new(clock as Arc<dyn Clock>)) as Arc<dyn Queue>
    })
    .await;
}

#[tokio::test]
async fn store_sink_over_memory_store_passes_the_sink_suite() {
    let store = Arc::new(MemoryStore::new());
    testkit::sink::run_all(Arc::new(StoreSnapshotSink::new(store)), 1).await;
}

#[tokio::test]
async fn three_schedulers_on_memory_store_make_one_run_per_fire() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let queue: Arc<dyn Queue> = Arc::new(MemoryQueue::new(Arc::new(
        netraven_core::clock::SystemClock,
    )));
    testkit::scheduler::one_run_per_fire_with_three_schedulers(store, queue).await;
}

#[tokio::test]
async fn boxed_and_shared_sinks_are_sinks() {
    let store = Arc::new(MemoryStore::new());
    let boxed: Box<dyn netraven_core::snapshot::SnapshotSink> =
        Box::new(StoreSnapshotSink::new(store.clone()));
    testkit::sink::run_all(Arc::new(boxed), 2).await;
    let shared: Arc<StoreSnapshotSink> = Arc::new(StoreSnapshotSink::new(store));
    testkit::sink::run_all(Arc::new(shared), 3).await;
}

#[tokio::test]
async fn an_engine_only_store_passes_the_engine_suite() {
    // What a store of an embedder's own (no users) must pass.
    testkit::store::run_engine(Arc::new(MemoryStore::new())).await;
}
