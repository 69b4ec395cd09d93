//! Shared rig for the API tests: the router over a MemoryStore, MemoryQueue and an engine with a
//! FakeDriver, called in-process (tower `oneshot`), plus three logged-in users.

#![allow(dead_code)]

use axum::Router;
use axum::body::Body;
use axum::http::{Request, header};
use netraven_core::clock::SystemClock;
use netraven_core::driver::DriverRegistry;
use netraven_core::engine::{Engine, EngineConfig, EngineParts};
use netraven_core::memory::{FakeBehavior, FakeDriver, MemoryQueue, MemoryStore};
use netraven_core::normalise::Rules;
use netraven_core::prelude::*;
use netraven_core::snapshot::StoreSnapshotSink;
use netraven_server::api::{self, ApiState};
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;
use tower::ServiceExt;

pub const PLATFORM: &str = "fake_ios";

pub struct Rig {
    pub app: Router,
    pub store: Arc<dyn ServerStore>,
    pub engine: Arc<Engine>,
    pub driver: Arc<FakeDriver>,
    pub admin: String,
    pub operator: String,
    pub viewer: String,
}

#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: axum::http::HeaderMap,
    pub content_type: String,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "status {} body is not JSON ({e}): {}",
                self.status,
                self.text()
            )
        })
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    /// Asserts an error response: the status and a JSON `{error, detail}` body.
    pub fn assert_error(&self, status: u16) -> Value {
        assert_eq!(self.status, status, "body: {}", self.text());
        assert!(
            self.content_type.starts_with("application/json"),
            "error without JSON content type: {}",
            self.content_type
        );
        let v = self.json();
        assert!(v["error"].is_string(), "no error code: {v}");
        assert!(v["detail"].is_string(), "no detail: {v}");
        v
    }
}

pub fn password(role: &str) -> String {
    format!("password-{role}-123")
}

pub async fn rig() -> Rig {
    rig_on(Arc::new(MemoryStore::new())).await
}

/// The same rig over any store (the SQLite store in the persistence variants of the tests).
pub async fn rig_on(store: Arc<dyn ServerStore>) -> Rig {
    let clock = Arc::new(SystemClock);
    let queue = Arc::new(MemoryQueue::new(clock.clone()));
    let rules = Rules::new(
        &[r"^! Last change"],
        &[(r"^(snmp-server community )\S+", "${1}{marker}")],
    )
    .unwrap();
    let driver = Arc::new(FakeDriver::new(
        PLATFORM,
        rules,
        FakeBehavior {
            config: "hostname default\n".into(),
            ..FakeBehavior::default()
        },
    ));
    let mut reg = DriverRegistry::new();
    reg.register(driver.clone());
    let sink = Arc::new(StoreSnapshotSink::new(store.clone()));
    let engine = Arc::new(Engine::new(
        EngineParts {
            store: store.clone(),
            queue,
            drivers: Arc::new(reg),
            sink: sink.clone(),
            clock,
        },
        EngineConfig {
            worker_id: "api-test".into(),
            concurrency: 8,
            device_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(2),
            device_attempts: 1,
            claim_wait: Duration::from_millis(50),
            ..EngineConfig::default()
        },
    ));
    let state = ApiState::new(
        store.clone(),
        engine.clone(),
        sink,
        b"test-secret-test-secret".to_vec(),
    );
    let app = api::router(state);
    // The first start creates admin with a given password.
    assert!(
        api::ensure_admin(store.clone(), Some(password("admin")))
            .await
            .unwrap()
            .is_none()
    );
    for (name, role) in [("operator", Role::Operator), ("viewer", Role::Viewer)] {
        store
            .create_user(&User {
                id: 0,
                username: name.into(),
                password_hash: api::hash_password(&password(name)).unwrap(),
                role,
                active: true,
                created_at: chrono::Utc::now(),
            })
            .await
            .unwrap();
    }
    let mut rig = Rig {
        app,
        store,
        engine,
        driver,
        admin: String::new(),
        operator: String::new(),
        viewer: String::new(),
    };
    rig.admin = rig.login("admin").await;
    rig.operator = rig.login("operator").await;
    rig.viewer = rig.login("viewer").await;
    rig
}

impl Rig {
    pub async fn login(&self, user: &str) -> String {
        let r = self
            .send(
                "POST",
                "/api/auth/token",
                None,
                Some((
                    "application/x-www-form-urlencoded",
                    format!("username={user}&password={}", password(user)).into_bytes(),
                )),
                &[],
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text());
        let v = r.json();
        assert_eq!(v["token_type"], "bearer");
        assert_eq!(v["expires_in"], 1800);
        v["access_token"].as_str().unwrap().to_string()
    }

    pub async fn send(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<(&str, Vec<u8>)>,
        headers: &[(&str, &str)],
    ) -> Resp {
        let mut b = Request::builder().method(method).uri(path);
        if let Some(t) = token {
            b = b.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        let req = match body {
            Some((ct, bytes)) => b
                .header(header::CONTENT_TYPE, ct)
                .body(Body::from(bytes))
                .unwrap(),
            None => b.body(Body::empty()).unwrap(),
        };
        let resp = self.app.clone().oneshot(req).await.unwrap();
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let content_type = resp
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let body = axum::body::to_bytes(resp.into_body(), 64 * 1024 * 1024)
            .await
            .unwrap()
            .to_vec();
        // Server errors fail the test, except a readiness probe's 503 (its answer under test).
        assert!(
            status < 500 || (path == "/api/ready" && status == 503),
            "{method} {path} -> {status}: {}",
            String::from_utf8_lossy(&body)
        );
        Resp {
            status,
            headers,
            content_type,
            body,
        }
    }

    pub async fn get(&self, path: &str, token: &str) -> Resp {
        self.send("GET", path, Some(token), None, &[]).await
    }

    pub async fn json(&self, method: &str, path: &str, token: &str, body: Value) -> Resp {
        self.send(
            method,
            path,
            Some(token),
            Some(("application/json", body.to_string().into_bytes())),
            &[],
        )
        .await
    }

    pub async fn raw(&self, method: &str, path: &str, token: &str, ct: &str, body: &[u8]) -> Resp {
        self.send(method, path, Some(token), Some((ct, body.to_vec())), &[])
            .await
    }

    pub async fn device_count(&self) -> u64 {
        self.store
            .list_devices(&DeviceFilter::default(), Page::first(1))
            .await
            .unwrap()
            .total
    }
}
