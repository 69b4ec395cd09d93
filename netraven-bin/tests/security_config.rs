//! Keys and secrets fail closed: with PostgreSQL or Redis a missing JWT secret or credential key
//! stops the process instead of being generated per host; short JWT secrets are refused; the
//! configuration and the wired node print no secret.

use netraven_server::config::Config;
use netraven_server::server::{MIN_JWT_SECRET, jwt_secret};

#[test]
fn jwt_secret_fails_closed_with_shared_backends_and_refuses_short_ones() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = Config {
        data_dir: dir.path().to_path_buf(),
        ..Config::default()
    };
    // Embedded (SQLite + in-process queue): generated once into the data directory.
    let first = jwt_secret(&cfg).expect("generated");
    assert_eq!(jwt_secret(&cfg).expect("read back"), first);

    let shared = tempfile::tempdir().expect("tempdir");
    let mut pg = Config {
        data_dir: shared.path().to_path_buf(),
        ..Config::default()
    };
    pg.database.url = Some("postgres://u:pw@127.0.0.1:1/x".into());
    let e = jwt_secret(&pg).expect_err("missing secret with PostgreSQL");
    assert!(e.message().contains("refusing to generate"), "{e}");
    assert!(
        !shared.path().join("jwt.secret").exists(),
        "a secret was generated"
    );
    let mut redis = Config {
        data_dir: shared.path().to_path_buf(),
        ..Config::default()
    };
    redis.queue.redis_url = Some("redis://127.0.0.1:1".into());
    assert!(jwt_secret(&redis).is_err());

    pg.api.jwt_secret = Some("short-secret".into());
    let e = jwt_secret(&pg).expect_err("short secret");
    assert!(e.message().contains(&MIN_JWT_SECRET.to_string()), "{e}");
    assert!(!e.message().contains("short-secret"), "{e}");
    pg.api.jwt_secret = Some("x".repeat(MIN_JWT_SECRET));
    assert_eq!(jwt_secret(&pg).expect("long enough").len(), MIN_JWT_SECRET);
}

#[tokio::test]
async fn a_missing_credential_key_stops_a_postgres_process() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cfg = Config {
        data_dir: dir.path().to_path_buf(),
        ..Config::default()
    };
    cfg.database.url = Some("postgres://u:pw@127.0.0.1:1/x".into());
    let e = cfg
        .builder("test")
        .expect("builder")
        .cipher()
        .expect_err("no key with PostgreSQL");
    assert!(e.message().contains("refusing to generate"), "{e}");
    assert!(
        !dir.path().join("secret.key").exists(),
        "a key was generated"
    );
    // With a configured key it opens.
    cfg.security.encryption_key = Some(
        "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=".into(), // 32 bytes, base64
    );
    assert!(cfg.builder("test").expect("builder").cipher().is_ok());
    // Embedded mode still creates its key file on first use.
    let embedded = Config {
        data_dir: dir.path().join("embedded"),
        ..Config::default()
    };
    assert!(embedded.builder("test").expect("builder").cipher().is_ok());
    assert!(dir.path().join("embedded/secret.key").exists());
}

#[tokio::test]
async fn the_wired_node_prints_no_secret() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cfg = Config {
        data_dir: dir.path().to_path_buf(),
        ..Config::default()
    };
    cfg.api.jwt_secret = Some("jwt-canary-0123456789-0123456789-0123".into());
    cfg.security.encryption_key = Some("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=".into());
    cfg.git.push_remote = Some("https://bot:push-canary@git.invalid/r.git".into());
    cfg.notify
        .webhooks
        .push(netraven_core::notify::WebhookSettings {
            name: "chat".into(),
            url: "https://hooks.invalid/services/hook-canary".into(),
            format: netraven_core::notify::WebhookFormat::Slack,
            secret: Some("hmac-canary".into()),
            filter: Default::default(),
        });
    cfg.notify.email = Some(netraven_core::notify::EmailSettings {
        relay: "127.0.0.1".into(),
        port: 2525,
        security: "plain".into(),
        username: Some("mailer".into()),
        password: Some("smtp-canary".into()),
        from: "netraven@example.invalid".into(),
        to: vec!["noc@example.invalid".into()],
        filter: Default::default(),
    });
    let cfg_shown = format!("{cfg:?}");
    for canary in ["hook-canary", "hmac-canary", "smtp-canary"] {
        assert!(!cfg_shown.contains(canary), "{canary} in {cfg_shown}");
    }
    let node = netraven_server::wiring::build(&cfg, "serve", false)
        .await
        .expect("wired");
    let shown = format!("{node:?}");
    for canary in [
        "jwt-canary",
        "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8",
        "push-canary",
        "hook-canary",
        "hmac-canary",
        "smtp-canary",
    ] {
        assert!(!shown.contains(canary), "{canary} in {shown}");
    }
    node.nr.shutdown().await.expect("shutdown");
}
