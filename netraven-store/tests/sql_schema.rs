//! Schema version: a database opened without migrating reports its pending migrations; after
//! `migrate()` it is current (SQLite, and PostgreSQL when configured).

mod sql_support;

use netraven_core::store::SchemaStore;
use netraven_store::sql::{PostgresOptions, PostgresStore, SqliteOptions, SqliteStore};
use sql_support::*;

#[tokio::test]
async fn sqlite_pending_then_current() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("n.db");
    let opts = SqliteOptions {
        migrate: false,
        ..SqliteOptions::default()
    };
    let s = SqliteStore::open_with(&path, opts.clone(), cipher())
        .await
        .expect("open");
    let st = s.schema_status().await.expect("status");
    assert_eq!(st.applied, None, "{st:?}");
    assert!(!st.is_current() && st.latest >= 1, "{st:?}");
    assert_eq!(st.pending.first(), Some(&1), "{st:?}");
    s.migrate().await.expect("migrate");
    let st = s.schema_status().await.expect("status");
    assert!(st.is_current(), "{st:?}");
    assert_eq!(st.applied, Some(st.latest));
    s.close().await;
    // Reopening without migrating sees the applied schema.
    let s = SqliteStore::open_with(&path, opts, cipher())
        .await
        .expect("reopen");
    assert!(s.schema_status().await.expect("status").is_current());
}

#[tokio::test]
async fn postgres_pending_then_current() {
    let Some(url) = pg_url() else { return };
    let opts = PostgresOptions {
        schema: random_schema(),
        migrate: false,
        ..PostgresOptions::default()
    };
    let s = PostgresStore::connect_with(&url, opts, cipher())
        .await
        .expect("connect");
    let st = s.schema_status().await.expect("status");
    assert_eq!(st.applied, None, "{st:?}");
    assert!(!st.is_current(), "{st:?}");
    // The first connect with migrations creates the schema and applies them.
    let m = PostgresStore::connect(&url, Some(s.schema()), cipher())
        .await
        .expect("connect and migrate");
    let st = s.schema_status().await.expect("status");
    assert!(st.is_current(), "{st:?}");
    assert_eq!(st.applied, Some(st.latest));
    m.drop_schema().await.expect("drop");
}
