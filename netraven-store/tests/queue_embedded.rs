//! The embedded queue passes the core queue conformance suite.

use netraven_core::clock::ManualClock;
use netraven_core::queue::Queue;
use netraven_core::testkit;
use netraven_store::queue::EmbeddedQueue;
use std::sync::Arc;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_suite() {
    testkit::queue::run_all(|clock: Arc<ManualClock>| async move {
        Arc::new(EmbeddedQueue::new(clock)) as Arc<dyn Queue>
    })
    .await;
}
