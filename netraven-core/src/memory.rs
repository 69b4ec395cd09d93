//! In-memory implementations: [`MemoryStore`] (every store trait), [`MemoryQueue`] (the embedded
//! queue) and [`FakeDriver`] (a scripted driver for tests and examples).
//!
//! The store and queue are complete implementations, not mocks: they pass the same conformance
//! suites as the persistent backends. The memory store loses everything when the process exits;
//! the memory queue is refilled from the store by [`crate::engine::Engine::recover`].

mod driver;
mod queue;
mod store;

pub use driver::{FakeBehavior, FakeDriver};
pub use queue::MemoryQueue;
pub use store::MemoryStore;
