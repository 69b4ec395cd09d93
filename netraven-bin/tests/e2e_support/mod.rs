//! Shared rig of the end-to-end tests: the real `netraven` binary as child processes (output
//! captured to files, printed when a test fails, killed when dropped), free 127.0.0.1 ports, and
//! a small JSON client of the REST API.

#![allow(dead_code)]

use serde_json::{Value, json};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_netraven");

/// Password of the first admin (`NETRAVEN_ADMIN_PASSWORD`).
pub const ADMIN_PASSWORD: &str = "e2e-Admin-password-42";

/// A free TCP port on 127.0.0.1 (bound, read, released).
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("local addr").port()
}

/// A short random hex string.
pub fn random_suffix() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..10].to_string()
}

/// One running `netraven` process. Dropping it kills it (SIGKILL) and, when the test is
/// failing, prints its output.
pub struct Proc {
    pub name: String,
    child: Child,
    stdout: PathBuf,
    stderr: PathBuf,
    exit: Option<ExitStatus>,
}

impl Proc {
    /// Starts `netraven <args>` with `envs` (every inherited `NETRAVEN_*` variable removed),
    /// its output going to `<logs>/<name>.stdout` and `.stderr`.
    pub fn spawn(name: &str, args: &[&str], envs: &[(String, String)], logs: &Path) -> Proc {
        let stdout = logs.join(format!("{name}.stdout"));
        let stderr = logs.join(format!("{name}.stderr"));
        let mut cmd = Command::new(BIN);
        cmd.args(args)
            .current_dir(logs)
            .stdin(Stdio::null())
            .stdout(File::create(&stdout).expect("create stdout file"))
            .stderr(File::create(&stderr).expect("create stderr file"));
        for (k, _) in std::env::vars() {
            if k.starts_with("NETRAVEN_") {
                cmd.env_remove(k);
            }
        }
        // No NO_COLOR: logs written to a file must come without colour codes by themselves.
        // The simulated devices listen on 127.0.0.1, which servers refuse by default.
        cmd.env("NETRAVEN_LOG", "info,sqlx=warn")
            .env("NETRAVEN_ALLOW_LOOPBACK", "true")
            .env_remove("NO_COLOR");
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {BIN} {args:?}: {e}"));
        Proc {
            name: name.to_string(),
            child,
            stdout,
            stderr,
            exit: None,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Captured stdout and stderr so far.
    pub fn output(&self) -> String {
        let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
        format!(
            "===== {} stdout =====\n{}\n===== {} stderr =====\n{}",
            self.name,
            read(&self.stdout),
            self.name,
            read(&self.stderr)
        )
    }

    fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &self.pid().to_string()])
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(ok, "could not send {sig} to {}", self.name);
    }

    /// Sends SIGTERM.
    pub fn term(&self) {
        self.signal("-TERM");
    }

    /// Sends SIGKILL and reaps the process.
    pub fn kill9(&mut self) {
        self.signal("-KILL");
        self.exit = self.child.wait().ok();
    }

    /// Has it exited? (Reaps it if so.)
    pub fn try_exit(&mut self) -> Option<ExitStatus> {
        if self.exit.is_none() {
            self.exit = self.child.try_wait().expect("try_wait");
        }
        self.exit
    }

    /// Waits up to `limit` for the process to exit.
    pub async fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let end = Instant::now() + limit;
        loop {
            if let Some(s) = self.try_exit() {
                return Some(s);
            }
            if Instant::now() >= end {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits for a clean exit (status 0) within `limit`, failing the test with the output
    /// otherwise.
    pub async fn expect_exit_ok(&mut self, limit: Duration) {
        match self.wait_exit(limit).await {
            Some(s) if s.success() => {}
            Some(s) => panic!("{} exited with {s}\n{}", self.name, self.output()),
            None => panic!(
                "{} did not exit within {limit:?}\n{}",
                self.name,
                self.output()
            ),
        }
    }

    /// Panics with the output if the process has exited.
    pub fn assert_alive(&mut self) {
        if let Some(s) = self.try_exit() {
            panic!("{} exited early with {s}\n{}", self.name, self.output());
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if self.try_exit().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if std::thread::panicking() {
            eprintln!("{}", self.output());
        }
    }
}

/// Output of every process, for assertion messages.
pub fn all_output(procs: &[&Proc]) -> String {
    procs
        .iter()
        .map(|p| p.output())
        .collect::<Vec<_>>()
        .join("\n")
}

/// A response: status and JSON body (`Value::Null` when the body is not JSON).
#[derive(Debug, Clone)]
pub struct Resp {
    pub status: u16,
    pub body: Value,
    pub text: String,
}

/// A logged-in client of the REST API.
#[derive(Clone)]
pub struct Api {
    pub base: String,
    http: reqwest::Client,
    token: Option<String>,
}

impl Api {
    pub fn new(addr: &str) -> Api {
        Api {
            base: format!("http://{addr}"),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(15))
                .no_proxy()
                .build()
                .expect("http client"),
            token: None,
        }
    }

    pub async fn send(&self, method: &str, path: &str, body: Option<Value>) -> Resp {
        let url = format!("{}{path}", self.base);
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut req = self.http.request(method.clone(), &url);
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req
            .send()
            .await
            .unwrap_or_else(|e| panic!("{method} {url}: {e}"));
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Resp { status, body, text }
    }

    /// GET expecting 200; returns the JSON body.
    pub async fn get(&self, path: &str) -> Value {
        let r = self.send("GET", path, None).await;
        assert_eq!(r.status, 200, "GET {path}: {}", r.text);
        r.body
    }

    /// POST expecting `status`; returns the JSON body.
    pub async fn post(&self, path: &str, body: Value, status: u16) -> Value {
        let r = self.send("POST", path, Some(body)).await;
        assert_eq!(r.status, status, "POST {path}: {}", r.text);
        r.body
    }

    /// Waits until `GET /api/health` answers 200, while `proc` keeps running.
    pub async fn wait_healthy(&self, proc: &mut Proc, limit: Duration) {
        let end = Instant::now() + limit;
        loop {
            proc.assert_alive();
            if let Ok(r) = self
                .http
                .get(format!("{}/api/health", self.base))
                .timeout(Duration::from_secs(2))
                .send()
                .await
                && r.status().as_u16() == 200
            {
                return;
            }
            assert!(
                Instant::now() < end,
                "{} not healthy within {limit:?}\n{}",
                self.base,
                proc.output()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Logs in as `admin` and keeps the token.
    pub async fn login_admin(&mut self) {
        let r = self
            .post(
                "/api/auth/token",
                json!({"username": "admin", "password": ADMIN_PASSWORD}),
                200,
            )
            .await;
        assert_eq!(r["token_type"], "bearer", "{r}");
        self.token = Some(r["access_token"].as_str().expect("access_token").into());
    }

    /// Every item of a paginated list (`{items, total, page, size, pages}`), following pages.
    pub async fn all_items(&self, path: &str) -> Vec<Value> {
        let sep = if path.contains('?') { '&' } else { '?' };
        let mut items = Vec::new();
        let mut page = 1;
        loop {
            let v = self.get(&format!("{path}{sep}page={page}&size=100")).await;
            let batch = v["items"].as_array().expect("items").clone();
            items.extend(batch);
            let pages = v["pages"].as_u64().unwrap_or(1);
            if page as u64 >= pages {
                break;
            }
            page += 1;
        }
        items
    }

    /// Starts a manual run of a job; returns the run id.
    pub async fn run_job(&self, job_id: i64) -> i64 {
        let r = self
            .post(&format!("/api/jobs/{job_id}/run"), json!({}), 202)
            .await;
        r["run_id"]
            .as_i64()
            .unwrap_or_else(|| panic!("no run_id: {r}"))
    }

    /// The results and warning/error logs of a run, for failure messages.
    pub async fn run_report(&self, run_id: i64) -> String {
        let results = self
            .send(
                "GET",
                &format!("/api/job-results?run_id={run_id}&size=100"),
                None,
            )
            .await;
        let logs = self
            .send(
                "GET",
                &format!("/api/logs?run_id={run_id}&level=warning&size=100"),
                None,
            )
            .await;
        format!("results: {}\nlogs: {}", results.text, logs.text)
    }

    /// Polls `GET /api/runs/{id}` until the run is final; returns it.
    pub async fn wait_run_final(&self, run_id: i64, limit: Duration) -> Value {
        let end = Instant::now() + limit;
        loop {
            let run = self.get(&format!("/api/runs/{run_id}")).await;
            let status = run["status"].as_str().unwrap_or_default().to_string();
            if !status.is_empty() && status != "QUEUED" && status != "RUNNING" {
                return run;
            }
            assert!(
                Instant::now() < end,
                "run {run_id} not final within {limit:?}: {run}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// Creates, through the API, a tag, one credential per simulated device (its own user name,
/// password and enable secret), one device per simulated device (127.0.0.1, its port and
/// platform, the tag, its credential first) and a manual backup job over the tag. Returns the
/// job id and the device ids in fleet order.
pub async fn seed_fleet(
    api: &Api,
    fleet: &netraven_drivers::sim::SimFleet,
    tag: &str,
) -> (i64, Vec<i64>) {
    api.post("/api/tags", json!({"name": tag}), 201).await;
    let mut device_ids = Vec::new();
    for dev in fleet.devices() {
        let c = &dev.credentials()[0];
        let password = c.password.expose().to_string();
        let cred = api
            .post(
                "/api/credentials",
                json!({
                    "name": format!("{}-login", dev.hostname()),
                    "username": c.username,
                    "password": password,
                    "enable_secret": c.enable_secret.expose(),
                }),
                201,
            )
            .await;
        // The password is write-only.
        let shown = cred.to_string();
        assert!(
            !shown.contains(&password) && !shown.contains(c.enable_secret.expose()),
            "a credential response shows its secret: {shown}"
        );
        let cred_id = cred["id"].as_i64().expect("credential id");
        let d = api
            .post(
                "/api/devices",
                json!({
                    "hostname": dev.hostname(),
                    "address": "127.0.0.1",
                    "port": dev.port(),
                    "platform": dev.platform().name(),
                    "tags": [tag],
                    "credential_id": cred_id,
                }),
                201,
            )
            .await;
        device_ids.push(d["id"].as_i64().expect("device id"));
    }
    let job = api
        .post(
            "/api/jobs",
            json!({
                "name": format!("{tag}-backup"),
                "kind": {"type": "backup"},
                "targets": {"tags": [tag]},
                "schedule": {"type": "manual"},
            }),
            201,
        )
        .await;
    (job["id"].as_i64().expect("job id"), device_ids)
}

/// Every secret of the fleet's devices (login passwords and enable secrets).
pub fn fleet_secrets(fleet: &netraven_drivers::sim::SimFleet) -> Vec<String> {
    fleet
        .devices()
        .iter()
        .flat_map(|d| {
            d.credentials().iter().flat_map(|c| {
                [
                    c.password.expose().to_string(),
                    c.enable_secret.expose().to_string(),
                ]
            })
        })
        .collect()
}

/// The value of a test's backend URL variable; `None` (after printing that the test skipped)
/// when it is unset, and a panic instead when `CI=true`.
pub fn test_env(var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(v) if !v.is_empty() => Some(v),
        _ => {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("{var} must be set when CI=true");
            }
            println!("skipped: {var} not set");
            None
        }
    }
}

/// A test's own PostgreSQL schema and Redis key prefix (a random suffix after `tag`) and a
/// fresh credential key; [`Backends::clean_up`] removes both.
pub struct Backends {
    pub pg_url: String,
    pub schema: String,
    pub redis_url: String,
    pub prefix: String,
    pub key: String,
}

impl Backends {
    /// Names a schema `TAG_SUFFIX` and a key prefix `TAG-SUFFIX` and makes a random key.
    pub fn new(pg_url: String, redis_url: String, tag: &str) -> Self {
        use base64::Engine as _;
        let mut raw = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut raw);
        let suffix = random_suffix();
        Backends {
            pg_url,
            schema: format!("{tag}_{suffix}"),
            redis_url,
            prefix: format!("{tag}-{suffix}"),
            key: base64::engine::general_purpose::STANDARD.encode(raw),
        }
    }

    /// The environment of a `netraven` process on these backends: data directory, API address,
    /// database, queue, keys, the first admin's password, worker concurrency 4 and a 1 s
    /// scheduler tick; `extra` adds or overrides variables.
    pub fn process_env(
        &self,
        data: &Path,
        api_addr: &str,
        extra: &[(&str, &str)],
    ) -> Vec<(String, String)> {
        let mut env: Vec<(String, String)> = [
            ("NETRAVEN_DATA_DIR", data.display().to_string()),
            ("NETRAVEN_API_LISTEN", api_addr.to_string()),
            ("NETRAVEN_DATABASE_URL", self.pg_url.clone()),
            ("NETRAVEN_DATABASE_SCHEMA", self.schema.clone()),
            ("NETRAVEN_REDIS_URL", self.redis_url.clone()),
            ("NETRAVEN_QUEUE_PREFIX", self.prefix.clone()),
            ("NETRAVEN_ENCRYPTION_KEY", self.key.clone()),
            (
                "NETRAVEN_JWT_SECRET",
                format!("jwt-{}-0123456789abcdef0123456789abcdef", self.prefix),
            ),
            ("NETRAVEN_ADMIN_PASSWORD", ADMIN_PASSWORD.to_string()),
            ("NETRAVEN_WORKER_CONCURRENCY", "4".to_string()),
            ("NETRAVEN_SCHEDULER_TICK_SECS", "1".to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        for (k, v) in extra {
            env.retain(|(key, _)| key != k);
            env.push((k.to_string(), v.to_string()));
        }
        env
    }

    /// Drops the schema and deletes the prefix's keys (both best effort, reported).
    pub async fn clean_up(&self) {
        use netraven_store::cipher::{AesGcmCipher, KeyMaterial};
        use std::sync::Arc;
        let key = KeyMaterial::from_base64(&self.key).expect("key");
        let cipher = Arc::new(AesGcmCipher::from_key(&key));
        match netraven_store::sql::PostgresStore::connect(&self.pg_url, Some(&self.schema), cipher)
            .await
        {
            Ok(store) => {
                if let Err(e) = store.drop_schema().await {
                    eprintln!("could not drop schema {}: {e}", self.schema);
                }
            }
            Err(e) => eprintln!("could not connect to drop schema {}: {e}", self.schema),
        }
        let clock = Arc::new(netraven_core::clock::SystemClock);
        match netraven_store::queue::RedisQueue::connect(&self.redis_url, &self.prefix, clock).await
        {
            Ok(q) => {
                if let Err(e) = q.purge().await {
                    eprintln!("could not delete keys of {}: {e}", self.prefix);
                }
            }
            Err(e) => eprintln!("could not connect to redis to clean {}: {e}", self.prefix),
        }
    }
}
