//! Queues implementing [`netraven_core::queue::Queue`]:
//!
//! - [`RedisQueue`]: the distributed queue on Redis (deadpool-redis), for `netraven worker`
//!   processes on many machines;
//! - [`EmbeddedQueue`]: the in-process queue of the single-process default (core's
//!   [`netraven_core::memory::MemoryQueue`]). It is empty after a restart; the engine's recovery
//!   refills it from the store, as it refills a Redis that lost its data.

mod redis;

pub use self::redis::{RedisQueue, RedisQueueOptions};
pub use netraven_core::memory::MemoryQueue as EmbeddedQueue;
