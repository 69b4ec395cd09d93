//! # netraven-store
//!
//! Everything in NetRaven that persists or delivers:
//! - [`sql`]: the SQLite (embedded default) and PostgreSQL stores implementing
//!   [`netraven_core::store::Store`];
//! - [`cipher`]: AES-256-GCM encryption of credential secrets at rest;
//! - [`queue`]: the Redis queue (distributed) and the embedded in-process queue;
//! - [`git`]: the git snapshot writer (one writer per repository, batched commits).

pub mod cipher;
pub mod git;
pub mod git_tree;
pub mod keys;
pub mod mirror;
pub mod pack;
pub mod queue;
pub mod sql;
