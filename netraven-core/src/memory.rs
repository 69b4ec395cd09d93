//! In-memory implementations.
