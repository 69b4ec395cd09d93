//! Shared helpers for the SQL store tests: stores on both backends, each PostgreSQL test in its
//! own randomly named schema.
#![allow(dead_code)]

use netraven_store::cipher::{AesGcmCipher, KeyMaterial};
use netraven_store::sql::{PostgresStore, SecretCipher, SqliteStore};
use std::sync::Arc;

/// A fresh single-key cipher.
pub fn cipher() -> Arc<AesGcmCipher> {
    Arc::new(AesGcmCipher::from_key(&KeyMaterial::generate()))
}

/// A cipher with a fixed test key, for tests that check the stored `v1:<key id>:` prefix.
pub fn known_cipher() -> Arc<AesGcmCipher> {
    Arc::new(AesGcmCipher::from_key(
        &KeyMaterial::from_bytes(&[7u8; 32]).expect("32-byte key"),
    ))
}

/// An in-memory SQLite store.
pub async fn sqlite_mem(cipher: Arc<dyn SecretCipher>) -> SqliteStore {
    SqliteStore::in_memory(cipher)
        .await
        .expect("in-memory sqlite")
}

/// The PostgreSQL URL for tests, or None (after printing why) when it is not set. Panics when
/// unset under `CI=true`.
pub fn pg_url() -> Option<String> {
    match std::env::var("NETRAVEN_TEST_PG_URL") {
        Ok(u) if !u.trim().is_empty() => Some(u),
        _ => {
            if std::env::var("CI").map(|v| v == "true").unwrap_or(false) {
                panic!("NETRAVEN_TEST_PG_URL must be set when CI=true");
            }
            eprintln!("skipped: NETRAVEN_TEST_PG_URL not set");
            None
        }
    }
}

/// A random schema name for one test.
pub fn random_schema() -> String {
    format!("nrt_{}", uuid::Uuid::new_v4().simple())
}

/// A PostgreSQL store in a new random schema, or None when PostgreSQL is not configured.
pub async fn pg(cipher: Arc<dyn SecretCipher>) -> Option<PostgresStore> {
    let url = pg_url()?;
    let schema = random_schema();
    Some(
        PostgresStore::connect(&url, Some(&schema), cipher)
            .await
            .expect("connect to PostgreSQL"),
    )
}
