//! Conformance suites that every backend must pass, written once as public async functions over
//! the traits, plus small fixtures. A new backend is done when its suite passes.
//!
//! - [`store::run_all`] for [`crate::store::Store`] backends;
//! - [`queue::run_all`] for [`crate::queue::Queue`] backends;
//! - [`sink::run_all`] for [`crate::snapshot::SnapshotSink`]s;
//! - [`driver::run_all`] for [`crate::driver::Driver`]s and their sessions;
//! - [`cipher::run_all`] for [`crate::cipher::SecretCipher`]s;
//! - [`scheduler::one_run_per_fire_with_three_schedulers`] for stores' lease and fire dedupe.
//!
//! The suites panic (with a message naming the broken behaviour) on the first failure, like
//! assertions in a test.

pub mod cipher;
pub mod driver;
pub mod queue;
pub mod scheduler;
pub mod sink;
pub mod store;

use chrono::{DateTime, TimeZone, Utc};

/// A fixed instant for tests: 2026-03-01 12:00:00 UTC.
pub fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0)
        .single()
        .unwrap_or(DateTime::<Utc>::UNIX_EPOCH)
}

/// A random suffix so suites can share a database with other tests.
pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..10]
    )
}
