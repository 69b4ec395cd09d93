//! The canary sweep: device secrets that are unique canaries go through real backups, and are
//! then looked for everywhere NetRaven writes or answers something.
//!
//! The simulated devices ask for an enable secret; their passwords and enable secrets are
//! canaries (a random 64-bit seed in each), and so are a password a device rejects and an
//! enable secret a device refuses. After a backup run the canaries — plain, hex or base64 —
//! must appear in none of:
//!
//! - the stdout/stderr of every `netraven` process (debug logging), the one-shot `backup` too;
//! - any API answer: every response the test received, and a sweep over every GET route of
//!   `netraven_server::api::routes()` (and the Oxidized routes) with every real id, as admin
//!   and as viewer;
//! - log rows and results (through the API and in the database);
//! - git history: `git log -p --all` and every object (`git cat-file --batch-all-objects`) of
//!   each repository;
//! - a full dump of the database: SQLite (every table, every column, and the raw files of the
//!   data directory) or PostgreSQL (every table of the test's schema);
//! - every Redis key under the test's prefix, of every type, sampled during the run and after;
//! - panic messages (none may happen: not in a process's output, not in the test process).
//!
//! The sweep can fail: a control canary (in a device's host name, a query string and a Redis
//! key of each type) must be found in each kind of location, so a sweep that reads nothing
//! does not pass.
//!
//! The PostgreSQL + Redis variant needs `NETRAVEN_TEST_PG_URL` and `NETRAVEN_TEST_REDIS_URL`;
//! without them it prints a skip note, unless `CI=true`, where it fails.

mod e2e_support;

use base64::Engine as _;
use deadpool_redis::redis as r;
use e2e_support::{ADMIN_PASSWORD, Proc, free_port, random_suffix, test_env};
use netraven_drivers::sim::{Faults, SimConfig, SimFleet};
use netraven_server::api::routes;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Every process logs at debug (sqlx's and hyper's chatter aside): a secret must not reach a
/// log line at any level an operator is likely to turn on.
const LOG: &str = "debug,sqlx=info,hyper=info,hyper_util=info";

// ---------------------------------------------------------------------------------------------
// Canaries and the sweep

/// The secrets that must appear nowhere, and the control that must appear in each place.
#[derive(Clone)]
struct Canaries {
    /// (what, value).
    secrets: Vec<(String, String)>,
    /// Planted on purpose in every kind of location.
    control: String,
}

/// Every encoding of `s` looked for: plain, hex (both cases), and base64 (standard and URL
/// alphabets) at each of the three alignments a substring can have inside a longer encoding.
fn encodings(s: &str) -> Vec<Vec<u8>> {
    let mut out = vec![
        s.as_bytes().to_vec(),
        hex::encode(s).into_bytes(),
        hex::encode_upper(s).into_bytes(),
    ];
    for engine in [
        base64::engine::general_purpose::STANDARD,
        base64::engine::general_purpose::URL_SAFE,
    ] {
        for pad in 0..3 {
            let mut b = vec![b'x'; pad];
            b.extend_from_slice(s.as_bytes());
            let e = engine.encode(&b);
            // Characters that depend only on the canary's own bytes.
            let start = (pad * 4).div_ceil(3) + 1;
            let end = e.trim_end_matches('=').len().saturating_sub(2);
            if end > start + 8 {
                out.push(e.as_bytes()[start..end].to_vec());
            }
        }
    }
    out
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}

/// Everything collected, by location kind ("process output", "api", ...) and place.
#[derive(Default)]
struct Sweep {
    places: Vec<(&'static str, String, Vec<u8>)>,
    seen: HashSet<u64>,
}

impl Sweep {
    fn add(&mut self, kind: &'static str, place: impl Into<String>, bytes: impl Into<Vec<u8>>) {
        let bytes = bytes.into();
        // Samples taken again and again (Redis while the run goes on) are kept once.
        let mut h = std::hash::DefaultHasher::new();
        std::hash::Hash::hash(&(kind, &bytes), &mut h);
        if self.seen.insert(std::hash::Hasher::finish(&h)) {
            self.places.push((kind, place.into(), bytes));
        }
    }

    /// The places of `kind` holding `value` in any encoding.
    fn find(&self, kind: &str, value: &str) -> Vec<String> {
        let needles = encodings(value);
        self.places
            .iter()
            .filter(|(k, _, b)| *k == kind && needles.iter().any(|n| contains(b, n)))
            .map(|(_, p, _)| p.clone())
            .collect()
    }

    fn kinds(&self) -> BTreeSet<&'static str> {
        self.places.iter().map(|(k, _, _)| *k).collect()
    }

    fn bytes(&self, kind: &str) -> usize {
        self.places
            .iter()
            .filter(|(k, _, _)| *k == kind)
            .map(|(_, _, b)| b.len())
            .sum()
    }

    /// Fails naming each secret and the places it was found in (never the secret itself), and
    /// when the control is missing from a kind of location that must hold it.
    fn check(&self, c: &Canaries, kinds: &[&'static str]) {
        let problems = self.problems(c, kinds);
        assert!(
            problems.is_empty(),
            "canary sweep:\n{}",
            problems.join("\n")
        );
    }

    /// What [`Sweep::check`] fails with.
    fn problems(&self, c: &Canaries, kinds: &[&'static str]) -> Vec<String> {
        let have = self.kinds();
        let mut problems = Vec::new();
        for k in kinds {
            if !have.contains(k) {
                problems.push(format!("nothing was collected from {k}"));
                continue;
            }
            if self.find(k, &c.control).is_empty() {
                problems.push(format!(
                    "the control canary was not found in {k} ({} bytes read): the sweep reads \
                     nothing there",
                    self.bytes(k)
                ));
            }
        }
        for (what, value) in &c.secrets {
            for k in &have {
                let found = self.find(k, value);
                if !found.is_empty() {
                    problems.push(format!("{what} found in {k}: {found:?}"));
                }
            }
        }
        let panics: Vec<String> = self
            .places
            .iter()
            .filter(|(k, _, b)| *k == "process output" && contains(b, b"panicked at"))
            .map(|(_, p, _)| p.clone())
            .collect();
        if !panics.is_empty() {
            problems.push(format!("panics in {panics:?}"));
        }
        let summary: BTreeMap<&str, (usize, usize)> = have
            .iter()
            .map(|k| {
                let n = self.places.iter().filter(|(x, _, _)| x == k).count();
                (*k, (n, self.bytes(k)))
            })
            .collect();
        eprintln!("sweep (places, bytes): {summary:?}");
        problems
    }
}

/// Panics in the test process (the simulator's tasks included), recorded with every
/// registered canary masked, and printed masked: a panic message never shows a secret, and a
/// panic in a spawned task that would otherwise go unnoticed fails the sweep. One hook for the
/// whole test binary (both variants may run at once).
static PANICS: Mutex<Vec<String>> = Mutex::new(Vec::new());
static MASKS: Mutex<Vec<(String, String)>> = Mutex::new(Vec::new());

fn record_panics(c: &Canaries) {
    static HOOK: std::sync::Once = std::sync::Once::new();
    MASKS
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .extend(c.secrets.iter().cloned());
    HOOK.call_once(|| {
        std::panic::set_hook(Box::new(|info| {
            let mut msg = info.to_string();
            for (what, v) in MASKS.lock().unwrap_or_else(|p| p.into_inner()).iter() {
                msg = msg.replace(v.as_str(), &format!("<{what}>"));
            }
            eprintln!("panic: {msg}");
            PANICS.lock().unwrap_or_else(|p| p.into_inner()).push(msg);
        }));
    });
}

/// Adds the recorded panics to the sweep and fails if there were any.
fn check_panics(s: &mut Sweep) {
    let panics = PANICS.lock().unwrap_or_else(|p| p.into_inner()).clone();
    for p in &panics {
        s.add("panic", "test process", p.clone());
    }
    assert!(
        panics.is_empty(),
        "{} panics in the test process (printed above, canaries masked)",
        panics.len()
    );
}

// ---------------------------------------------------------------------------------------------
// A recording API client

/// A REST client that keeps every answer (status, headers, body) for the sweep.
#[derive(Clone)]
struct Client {
    base: String,
    http: reqwest::Client,
    token: Option<String>,
    sweep: Arc<Mutex<Sweep>>,
}

struct Answer {
    status: u16,
    body: Value,
    text: String,
}

impl Client {
    fn new(addr: &str, sweep: Arc<Mutex<Sweep>>) -> Client {
        Client {
            base: format!("http://{addr}"),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .no_proxy()
                .build()
                .expect("http client"),
            token: None,
            sweep,
        }
    }

    async fn send(&self, method: &str, path: &str, body: Option<Value>) -> Answer {
        let m = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut req = self.http.request(m, format!("{}{path}", self.base));
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req
            .send()
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let status = resp.status().as_u16();
        let headers = format!("{:?}", resp.headers());
        let bytes = resp.bytes().await.unwrap_or_default().to_vec();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let mut all = format!("{status} {headers}\n").into_bytes();
        all.extend_from_slice(&bytes);
        self.sweep
            .lock()
            .expect("sweep")
            .add("api", format!("{method} {path}"), all);
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Answer { status, body, text }
    }

    async fn get(&self, path: &str) -> Value {
        let a = self.send("GET", path, None).await;
        assert_eq!(a.status, 200, "GET {path}: {}", a.status);
        a.body
    }

    async fn post(&self, path: &str, body: Value, status: u16) -> Value {
        let a = self.send("POST", path, Some(body)).await;
        assert_eq!(
            a.status,
            status,
            "POST {path}: {} {}",
            a.status,
            a.text.len()
        );
        a.body
    }

    async fn login(&self, user: &str, password: &str) -> Client {
        let t = self
            .post(
                "/api/auth/token",
                json!({"username": user, "password": password}),
                200,
            )
            .await;
        let mut c = self.clone();
        c.token = Some(t["access_token"].as_str().expect("token").to_string());
        c
    }

    async fn wait_healthy(&self, proc: &mut Proc) {
        let end = Instant::now() + Duration::from_secs(30);
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
            assert!(Instant::now() < end, "{} not healthy", proc.name);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Every item of a list, following pages.
    async fn items(&self, path: &str) -> Vec<Value> {
        let sep = if path.contains('?') { '&' } else { '?' };
        let mut out = Vec::new();
        for page in 1.. {
            let v = self.get(&format!("{path}{sep}page={page}&size=100")).await;
            out.extend(v["items"].as_array().cloned().unwrap_or_default());
            if page >= v["pages"].as_u64().unwrap_or(1) {
                break;
            }
        }
        out
    }
}

// ---------------------------------------------------------------------------------------------
// The scenario, common to both variants

/// The fleet, the canaries, and what the seeding created.
struct World {
    fleet: SimFleet,
    canaries: Canaries,
    /// Device 1 logs in with its second candidate; its first is a rejected canary password.
    bad_password: String,
    /// Device 2's credential has the right password and a wrong enable secret.
    bad_enable: String,
}

fn world_canaries() -> (u64, String, String, String) {
    let mut raw = [0u8; 24];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut raw);
    let seed = u64::from_le_bytes(raw[..8].try_into().expect("8 bytes"));
    let bad_pw = format!("pwbad-{}", hex::encode(&raw[8..16]));
    let bad_en = format!("enbad-{}", hex::encode(&raw[16..24]));
    let control = format!("ctl{}", &random_suffix());
    (seed, bad_pw, bad_en, control)
}

async fn world() -> World {
    let (seed, bad_password, bad_enable, control) = world_canaries();
    let mut device_faults = std::collections::HashMap::new();
    device_faults.insert(
        1,
        Faults {
            second_credential_only: true,
            ..Faults::default()
        },
    );
    let fleet = SimFleet::start(SimConfig {
        devices: 3,
        platform: "cisco_ios".into(),
        key_seed: seed,
        hostname_prefix: format!("{control}-"),
        config_size: Some(4000),
        device_faults,
        ..SimConfig::default()
    })
    .await
    .expect("simulator");
    let mut secrets = Vec::new();
    for d in fleet.devices() {
        let c = d.accepted_credential();
        let i = d.index();
        // The cisco_ios simulator asks for the enable secret.
        assert!(
            d.platform()
                .spec
                .sim
                .as_ref()
                .is_some_and(|s| s.enable_password)
        );
        secrets.push((
            format!("password of device {i}"),
            c.password.expose().to_string(),
        ));
        secrets.push((
            format!("enable secret of device {i}"),
            c.enable_secret.expose().to_string(),
        ));
    }
    secrets.push((
        "a password the device rejected".into(),
        bad_password.clone(),
    ));
    secrets.push((
        "an enable secret the device refused".into(),
        bad_enable.clone(),
    ));
    for (what, v) in &secrets {
        assert!(v.len() >= 20, "{what} is too short to be a unique canary");
    }
    World {
        fleet,
        canaries: Canaries { secrets, control },
        bad_password,
        bad_enable,
    }
}

/// Creates the credentials (no tags: each pinned to its device, one shared through a tag with
/// device 1 only), the devices and a backup job; returns the job id.
async fn seed(api: &Client, w: &World) -> i64 {
    let dev = w.fleet.devices();
    let cred = |name: &str, password: &str, enable: &str, tags: Vec<&str>| {
        json!({"name": name, "username": dev[0].accepted_credential().username,
               "password": password, "enable_secret": enable, "tags": tags,
               "create_missing_tags": true})
    };
    let good = |i: usize| {
        let c = dev[i].accepted_credential();
        (
            c.password.expose().to_string(),
            c.enable_secret.expose().to_string(),
        )
    };
    let mut creds = Vec::new();
    let (p0, e0) = good(0);
    creds.push(
        api.post("/api/credentials", cred("dev0", &p0, &e0, vec![]), 201)
            .await,
    );
    // Device 1: its pinned credential is rejected; the right one comes through the tag `d1`.
    creds.push(
        api.post(
            "/api/credentials",
            cred("dev1-wrong", &w.bad_password, &good(1).1, vec![]),
            201,
        )
        .await,
    );
    let (p1, e1) = good(1);
    api.post(
        "/api/credentials",
        cred("dev1-right", &p1, &e1, vec!["d1"]),
        201,
    )
    .await;
    // Device 2: the right password, an enable secret the device refuses.
    let (p2, _) = good(2);
    creds.push(
        api.post(
            "/api/credentials",
            cred("dev2-bad-enable", &p2, &w.bad_enable, vec![]),
            201,
        )
        .await,
    );
    // A jump host whose secret is a canary (write-only: never in an answer, a log or a
    // database in clear); no device uses it.
    api.post(
        "/api/jump-hosts",
        json!({"name": "canary-bastion", "address": "127.0.0.1", "port": 1,
               "username": "jump", "password": w.bad_password}),
        201,
    )
    .await;
    for (i, d) in dev.iter().enumerate() {
        let mut tags = vec!["canary"];
        if i == 1 {
            tags.push("d1");
        }
        api.post(
            "/api/devices",
            json!({"hostname": d.hostname(), "address": "127.0.0.1", "port": d.port(),
                   "platform": "cisco_ios", "tags": tags, "create_missing_tags": true,
                   "credential_id": creds[i]["id"]}),
            201,
        )
        .await;
    }
    let job = api
        .post(
            "/api/jobs",
            json!({"name": "canary-backup", "kind": {"type": "backup"},
                   "targets": {"tags": ["canary"]}, "schedule": {"type": "manual"}}),
            201,
        )
        .await;
    job["id"].as_i64().expect("job id")
}

/// Runs the job and waits for the run to end; checks the outcome per device.
async fn run(api: &Client, job: i64, w: &World) -> i64 {
    let a = api
        .post(&format!("/api/jobs/{job}/run"), json!({}), 202)
        .await;
    let run_id = a["run_id"].as_i64().expect("run id");
    let end = Instant::now() + Duration::from_secs(120);
    let run = loop {
        let run = api.get(&format!("/api/runs/{run_id}")).await;
        let s = run["status"].as_str().unwrap_or_default();
        if s != "QUEUED" && s != "RUNNING" && !s.is_empty() {
            break run;
        }
        assert!(
            Instant::now() < end,
            "run {run_id} did not end: {}",
            run["status"]
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    // Devices 0 and 1 are backed up (1 with its second credential); device 2 fails at enable.
    let results = api
        .items(&format!("/api/job-results?run_id={run_id}"))
        .await;
    assert_eq!(results.len(), 3, "results: {}", results.len());
    let by_id: Vec<String> = results
        .iter()
        .map(|r| format!("{}={}", r["device_id"], r["status"]))
        .collect();
    eprintln!("run {run_id}: {} {by_id:?}", run["status"]);
    assert!(
        w.fleet.devices()[1].logins() >= 1,
        "device 1 never logged in"
    );
    assert!(
        w.fleet.devices()[1].passwords_received() >= 2,
        "device 1 was offered one password"
    );
    assert!(
        w.fleet.devices()[2].logins() >= 1,
        "device 2 never logged in"
    );
    let ok = results.iter().filter(|r| r["status"] == "SUCCESS").count();
    assert_eq!(
        ok, 2,
        "two devices are backed up, device 2 fails at enable: {by_id:?}"
    );
    run_id
}

/// Calls every GET route of the route table (and the Oxidized routes and the page) with every
/// real id, as `api`; returns the routes answered 200.
async fn sweep_api(api: &Client, control: &str) -> BTreeSet<String> {
    let mut ok = BTreeSet::new();
    let devices = api.items("/api/devices").await;
    let device_ids: Vec<i64> = devices.iter().filter_map(|d| d["id"].as_i64()).collect();
    let hostnames: Vec<String> = devices
        .iter()
        .filter_map(|d| d["hostname"].as_str().map(String::from))
        .collect();
    let runs: Vec<i64> = api
        .items("/api/runs")
        .await
        .iter()
        .filter_map(|r| r["id"].as_i64())
        .collect();
    let mut snapshots: Vec<Vec<i64>> = Vec::new();
    for d in &device_ids {
        let h = api.items(&format!("/api/configs/{d}/history")).await;
        snapshots.push(h.iter().filter_map(|s| s["id"].as_i64()).collect());
    }
    let all_snaps: Vec<i64> = snapshots.iter().flatten().copied().collect();
    assert!(!all_snaps.is_empty(), "no snapshot to sweep");
    let users: Vec<i64> = api.send("GET", "/api/users?size=100", None).await.body["items"]
        .as_array()
        .map(|a| a.iter().filter_map(|u| u["id"].as_i64()).collect())
        .unwrap_or_default();
    for spec in routes().iter().filter(|s| s.method == "GET") {
        let path = spec.path;
        let mut urls: Vec<String> = Vec::new();
        if !path.contains('{') {
            match path {
                "/api/logs/stream" => {
                    urls.extend(runs.iter().map(|r| format!("{path}?run_id={r}")));
                }
                "/api/configs/diff" => {
                    for s in &snapshots {
                        if let (Some(first), Some(last)) = (s.last(), s.first()) {
                            urls.push(format!("{path}?from={first}&to={last}"));
                        }
                    }
                    if all_snaps.len() >= 2 {
                        urls.push(format!("{path}?from={}&to={}", all_snaps[0], all_snaps[1]));
                    }
                }
                "/api/configs/search" => {
                    for q in [
                        "hostname", "enable", "secret", "password", "username", "key",
                    ] {
                        urls.push(format!("{path}?q={q}&context=10&size=100"));
                    }
                    urls.push(format!("{path}?q=.&regex=true&context=10&size=100"));
                }
                "/api/devices/recent" => {
                    let ids: Vec<String> = device_ids.iter().map(|i| i.to_string()).collect();
                    urls.push(format!("{path}?ids={}", ids.join(",")));
                }
                "/api/tokens" => {
                    urls.extend(users.iter().map(|u| format!("{path}?user_id={u}&size=100")));
                    urls.push(path.into());
                }
                "/api/devices" => {
                    urls.push(path.into());
                    // The control canary in a query string (logged by the server at debug).
                    urls.push(format!("{path}?hostname={control}-0000"));
                }
                _ => {
                    urls.push(path.into());
                    if spec.is_list() {
                        for page in 1..=20 {
                            urls.push(format!("{path}?page={page}&size=100"));
                        }
                    }
                }
            }
        } else if path.starts_with("/api/configs/snapshots/") {
            for s in &all_snaps {
                urls.push(path.replace("{id}", &s.to_string()));
                urls.push(format!(
                    "{}?format=text",
                    path.replace("{id}", &s.to_string())
                ));
            }
        } else if path.contains("{device_id}") {
            for d in &device_ids {
                let p = path.replace("{device_id}", &d.to_string());
                if path.ends_with("/latest") {
                    urls.push(format!("{p}?format=text"));
                }
                urls.push(p);
            }
        } else {
            let base = path.trim_end_matches("/{id}");
            assert!(
                !base.contains('{'),
                "the sweep does not know how to call GET {path}: teach sweep_api"
            );
            let ids: Vec<i64> = if base == "/api/runs" {
                runs.clone()
            } else if base == "/api/users" {
                users.clone()
            } else {
                // A route this role may not list (e.g. admin-only jump hosts as viewer) gives
                // no ids; its detail route is then swept by the admin's pass.
                api.send("GET", &format!("{base}?size=100"), None)
                    .await
                    .body["items"]
                    .as_array()
                    .map(|a| a.iter().filter_map(|i| i["id"].as_i64()).collect())
                    .unwrap_or_default()
            };
            urls.extend(ids.iter().map(|i| format!("{base}/{i}")));
        }
        for u in urls {
            let a = api.send("GET", &u, None).await;
            if a.status == 200 {
                ok.insert(path.to_string());
            }
        }
    }
    // The Oxidized-compatible reader and the page.
    for h in &hostnames {
        for u in [
            format!("/oxidized/node/show/{h}"),
            format!("/oxidized/node/show/{h}.json"),
            format!("/oxidized/node/fetch/{h}"),
        ] {
            api.send("GET", &u, None).await;
        }
        let versions = api
            .send(
                "GET",
                &format!("/oxidized/node/version.json?node={h}"),
                None,
            )
            .await
            .body;
        for v in versions.as_array().cloned().unwrap_or_default() {
            let oid = v["oid"]
                .as_str()
                .map(String::from)
                .unwrap_or_else(|| v["oid"].to_string());
            for kind in ["view", "diffs"] {
                api.send(
                    "GET",
                    &format!("/oxidized/node/version/{kind}?node={h}&oid={oid}"),
                    None,
                )
                .await;
            }
        }
    }
    for u in ["/oxidized/nodes", "/oxidized/nodes.json", "/"] {
        api.send("GET", u, None).await;
    }
    ok
}

/// Checks that the API sweep answered 200 on every GET route of the table.
fn assert_every_get_route(ok: &BTreeSet<String>) {
    let missing: Vec<&str> = routes()
        .iter()
        .filter(|s| s.method == "GET" && !ok.contains(s.path))
        .map(|s| s.path)
        .collect();
    assert!(
        missing.is_empty(),
        "GET routes never answered 200 in the sweep: {missing:?}"
    );
}

/// Adds every file under `dir` (the raw bytes: database files, keys, git's packed objects),
/// and each git repository's history and objects.
fn sweep_files(s: &mut Sweep, dir: &Path) {
    let mut stack = vec![dir.to_path_buf()];
    let mut repos = Vec::new();
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                if p.join("HEAD").is_file() && p.join("objects").is_dir() {
                    repos.push(p.clone());
                }
                stack.push(p);
            } else if let Ok(b) = std::fs::read(&p) {
                s.add("files", p.display().to_string(), b);
            }
        }
    }
    assert!(
        !repos.is_empty(),
        "no git repository under {}",
        dir.display()
    );
    for repo in repos {
        sweep_git(s, &repo);
    }
}

fn sweep_git(s: &mut Sweep, repo: &Path) {
    let git = |args: &[&str]| {
        let out = std::process::Command::new("git")
            .arg("--git-dir")
            .arg(repo)
            .args(args)
            .output()
            .expect("run git");
        assert!(
            out.status.success(),
            "git {args:?} failed in {}",
            repo.display()
        );
        out.stdout
    };
    let log = git(&["log", "-p", "--all", "--full-history", "--format=fuller"]);
    assert!(!log.is_empty(), "empty git history in {}", repo.display());
    s.add(
        "git history",
        format!("{} log -p --all", repo.display()),
        log,
    );
    let objects = git(&["cat-file", "--batch-all-objects", "--batch"]);
    s.add(
        "git history",
        format!("{} objects", repo.display()),
        objects,
    );
}

/// Every column of every row of every table of a SQLite database.
async fn sweep_sqlite(s: &mut Sweep, db: &Path) {
    use sqlx::Row;
    let opts = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(db)
        .read_only(true);
    let pool = sqlx::SqlitePool::connect_with(opts)
        .await
        .expect("open sqlite");
    let tables: Vec<String> =
        sqlx::query_scalar("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
            .fetch_all(&pool)
            .await
            .expect("tables");
    assert!(tables.iter().any(|t| t == "credentials"), "{tables:?}");
    let mut rows_total = 0;
    for t in &tables {
        let cols: Vec<String> = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT name FROM pragma_table_info('{t}')"
        )))
        .fetch_all(&pool)
        .await
        .expect("columns")
        .iter()
        .map(|r| r.get::<String, _>(0))
        .collect();
        let select = cols
            .iter()
            .map(|c| format!("CAST(\"{c}\" AS BLOB)"))
            .collect::<Vec<_>>()
            .join(", ");
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {select} FROM \"{t}\"")))
            .fetch_all(&pool)
            .await
            .expect("rows");
        let mut dump = Vec::new();
        for row in &rows {
            for (i, c) in cols.iter().enumerate() {
                let v: Option<Vec<u8>> = row.get(i);
                dump.extend_from_slice(c.as_bytes());
                dump.push(b'=');
                dump.extend(v.unwrap_or_default());
                dump.push(b'\t');
            }
            dump.push(b'\n');
        }
        rows_total += rows.len();
        s.add("database", format!("sqlite table {t}"), dump);
    }
    assert!(rows_total > 10, "the database dump is nearly empty");
    pool.close().await;
}

/// Every row of every table of a PostgreSQL schema (bytea shows as hex, which the sweep reads).
async fn sweep_postgres(s: &mut Sweep, url: &str, schema: &str) {
    use sqlx::Row;
    let pool = sqlx::PgPool::connect(url).await.expect("connect postgres");
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables WHERE table_schema = $1 ORDER BY 1",
    )
    .bind(schema)
    .fetch_all(&pool)
    .await
    .expect("tables");
    assert!(tables.iter().any(|t| t == "credentials"), "{tables:?}");
    let mut rows_total = 0;
    for t in &tables {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT t::text FROM \"{schema}\".\"{t}\" t"
        )))
        .fetch_all(&pool)
        .await
        .expect("rows");
        let dump: Vec<String> = rows.iter().map(|r| r.get::<String, _>(0)).collect();
        rows_total += dump.len();
        s.add(
            "database",
            format!("postgres table {schema}.{t}"),
            dump.join("\n"),
        );
    }
    assert!(rows_total > 10, "the database dump is nearly empty");
    pool.close().await;
}

/// Every key under `prefix`, of every type, with its whole value.
async fn sweep_redis(
    s: &Arc<Mutex<Sweep>>,
    conn: &mut r::aio::MultiplexedConnection,
    prefix: &str,
) -> usize {
    let mut cursor: u64 = 0;
    let mut keys: Vec<Vec<u8>> = Vec::new();
    loop {
        let (next, batch): (u64, Vec<Vec<u8>>) = r::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{prefix}*"))
            .arg("COUNT")
            .arg(1000)
            .query_async(conn)
            .await
            .expect("scan");
        keys.extend(batch);
        cursor = next;
        if cursor == 0 {
            break;
        }
    }
    for k in &keys {
        let ty: String = r::cmd("TYPE").arg(k).query_async(conn).await.expect("type");
        let value: Vec<u8> = match ty.as_str() {
            "string" => r::cmd("GET")
                .arg(k)
                .query_async::<Option<Vec<u8>>>(conn)
                .await
                .ok()
                .flatten()
                .unwrap_or_default(),
            "list" => flat(
                r::cmd("LRANGE")
                    .arg(k)
                    .arg(0)
                    .arg(-1)
                    .query_async(conn)
                    .await,
            ),
            "set" => flat(r::cmd("SMEMBERS").arg(k).query_async(conn).await),
            "zset" => flat(
                r::cmd("ZRANGE")
                    .arg(k)
                    .arg(0)
                    .arg(-1)
                    .arg("WITHSCORES")
                    .query_async(conn)
                    .await,
            ),
            "hash" => flat(r::cmd("HGETALL").arg(k).query_async(conn).await),
            "stream" => {
                let v: r::Value = r::cmd("XRANGE")
                    .arg(k)
                    .arg("-")
                    .arg("+")
                    .query_async(conn)
                    .await
                    .expect("xrange");
                let mut out = Vec::new();
                value_bytes(&v, &mut out);
                out
            }
            "none" => continue,
            other => panic!("redis key of unknown type {other}"),
        };
        let mut all = k.clone();
        all.push(b'=');
        all.extend(value);
        s.lock()
            .expect("sweep")
            .add("redis", format!("{ty} {}", String::from_utf8_lossy(k)), all);
    }
    keys.len()
}

/// The bytes of every string in a Redis reply.
fn value_bytes(v: &r::Value, out: &mut Vec<u8>) {
    match v {
        r::Value::BulkString(b) => out.extend_from_slice(b),
        r::Value::SimpleString(s) => out.extend_from_slice(s.as_bytes()),
        r::Value::Array(a) | r::Value::Set(a) => a.iter().for_each(|x| value_bytes(x, out)),
        r::Value::Map(m) => m.iter().for_each(|(a, b)| {
            value_bytes(a, out);
            value_bytes(b, out);
        }),
        other => out.extend_from_slice(format!("{other:?}").as_bytes()),
    }
    out.push(b'\n');
}

fn flat(v: r::RedisResult<Vec<Vec<u8>>>) -> Vec<u8> {
    v.unwrap_or_default().join(&b'\n')
}

/// Process output (stdout and stderr files of a `Proc`).
fn sweep_proc(s: &mut Sweep, p: &Proc) {
    s.add("process output", p.name.clone(), p.output());
}

/// The one-shot `netraven backup` of devices 0 and 2 (device 2 with the enable secret it
/// refuses), from a CSV inventory with the canaries as its login columns.
async fn one_shot(s: &mut Sweep, w: &World, dir: &Path) {
    let dev = w.fleet.devices();
    let mut csv = String::from("hostname,address,port,platform,username,password,enable_secret\n");
    for (i, enable) in [(0, None), (2, Some(w.bad_enable.as_str()))] {
        let c = dev[i].accepted_credential();
        csv.push_str(&format!(
            "{},127.0.0.1,{},cisco_ios,{},{},{}\n",
            dev[i].hostname(),
            dev[i].port(),
            c.username,
            c.password.expose(),
            enable.unwrap_or(c.enable_secret.expose())
        ));
    }
    let inv = dir.join("inventory.csv");
    std::fs::write(&inv, csv).expect("inventory");
    let repo = dir.join("oneshot.git");
    let env: Vec<(String, String)> = vec![("NETRAVEN_LOG".into(), LOG.into())];
    let mut p = Proc::spawn(
        "backup",
        &[
            "backup",
            "--inventory",
            &inv.display().to_string(),
            "--repo",
            &repo.display().to_string(),
            "--timeout",
            "20",
        ],
        &env,
        dir,
    );
    let status = p.wait_exit(Duration::from_secs(90)).await;
    assert!(status.is_some(), "the one-shot backup did not finish");
    // Device 2 fails at enable, so the exit status says a device failed; the repository has
    // device 0's configuration.
    sweep_proc(s, &p);
    sweep_git(s, &repo);
    std::fs::remove_file(&inv).expect("remove the inventory (it holds the canaries)");
}

// ---------------------------------------------------------------------------------------------
// SQLite + embedded queue

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canaries_stay_secret_on_sqlite_and_the_embedded_queue() {
    let w = world().await;
    record_panics(&w.canaries);
    let tmp = tempfile::tempdir().expect("tempdir");
    let sweep = Arc::new(Mutex::new(Sweep::default()));
    let mut first = Sweep::default();
    let dir = tmp.path().join("oneshot");
    std::fs::create_dir_all(&dir).expect("dir");
    one_shot(&mut first, &w, &dir).await;
    sweep.lock().expect("sweep").places.extend(first.places);
    let data = tmp.path().join("data");
    let addr = format!("127.0.0.1:{}", free_port());
    let env: Vec<(String, String)> = [
        ("NETRAVEN_DATA_DIR", data.display().to_string()),
        ("NETRAVEN_API_LISTEN", addr.clone()),
        ("NETRAVEN_ADMIN_PASSWORD", ADMIN_PASSWORD.to_string()),
        ("NETRAVEN_LOG", LOG.to_string()),
        ("NETRAVEN_SCHEDULER_TICK_SECS", "1".to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let mut server = Proc::spawn("serve", &["serve"], &env, tmp.path());
    let anon = Client::new(&addr, sweep.clone());
    anon.wait_healthy(&mut server).await;
    let admin = anon.login("admin", ADMIN_PASSWORD).await;
    admin
        .post(
            "/api/users",
            json!({"username": "viewer", "password": "viewer-password-1", "role": "viewer"}),
            201,
        )
        .await;
    let job = seed(&admin, &w).await;
    run(&admin, job, &w).await;
    let ok = sweep_api(&admin, &w.canaries.control).await;
    assert_every_get_route(&ok);
    let viewer = anon.login("viewer", "viewer-password-1").await;
    sweep_api(&viewer, &w.canaries.control).await;
    server.term();
    server.expect_exit_ok(Duration::from_secs(20)).await;
    let mut db = Sweep::default();
    sweep_sqlite(&mut db, &data.join("netraven.db")).await;
    {
        let mut s = sweep.lock().expect("sweep");
        s.places.extend(db.places);
        sweep_proc(&mut s, &server);
        sweep_files(&mut s, &data);
        check_panics(&mut s);
    }
    sweep.lock().expect("sweep").check(
        &w.canaries,
        &["process output", "api", "git history", "database", "files"],
    );
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL + Redis

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canaries_stay_secret_on_postgres_and_redis() {
    let Some(pg_url) = test_env("NETRAVEN_TEST_PG_URL") else {
        return;
    };
    let Some(redis_url) = test_env("NETRAVEN_TEST_REDIS_URL") else {
        return;
    };
    let suffix = random_suffix();
    let schema = format!("nrc_{suffix}");
    let prefix = format!("nrc-{suffix}");
    let outcome = tokio::spawn(pg_scenario(
        pg_url.clone(),
        schema.clone(),
        redis_url.clone(),
        prefix.clone(),
    ))
    .await;
    // Clean up whether or not the scenario passed: the schema and the prefix's keys.
    if let Ok(pool) = sqlx::PgPool::connect(&pg_url).await {
        let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"
        )))
        .execute(&pool)
        .await;
        pool.close().await;
    }
    if let Ok(client) = r::Client::open(redis_url.as_str())
        && let Ok(mut conn) = client.get_multiplexed_async_connection().await
    {
        let keys: Vec<String> = r::cmd("KEYS")
            .arg(format!("{prefix}*"))
            .query_async(&mut conn)
            .await
            .unwrap_or_default();
        for k in keys {
            let _: r::RedisResult<()> = r::cmd("DEL").arg(k).query_async(&mut conn).await;
        }
    }
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

async fn pg_scenario(pg_url: String, schema: String, redis_url: String, prefix: String) {
    let w = world().await;
    record_panics(&w.canaries);
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let sweep = Arc::new(Mutex::new(Sweep::default()));
    let mut raw = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut raw);
    let addr = format!("127.0.0.1:{}", free_port());
    let env: Vec<(String, String)> = [
        ("NETRAVEN_DATA_DIR", data.display().to_string()),
        ("NETRAVEN_API_LISTEN", addr.clone()),
        ("NETRAVEN_DATABASE_URL", pg_url.clone()),
        ("NETRAVEN_DATABASE_SCHEMA", schema.clone()),
        ("NETRAVEN_REDIS_URL", redis_url.clone()),
        ("NETRAVEN_QUEUE_PREFIX", prefix.clone()),
        (
            "NETRAVEN_ENCRYPTION_KEY",
            base64::engine::general_purpose::STANDARD.encode(raw),
        ),
        (
            "NETRAVEN_JWT_SECRET",
            format!("jwt-{prefix}-0123456789abcdef0123456789abcdef"),
        ),
        ("NETRAVEN_ADMIN_PASSWORD", ADMIN_PASSWORD.to_string()),
        ("NETRAVEN_LOG", LOG.to_string()),
        ("NETRAVEN_SCHEDULER_TICK_SECS", "1".to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let mut migrate = Proc::spawn("migrate", &["migrate"], &env, tmp.path());
    migrate.expect_exit_ok(Duration::from_secs(60)).await;
    let mut api_proc = Proc::spawn("api", &["api"], &env, tmp.path());
    let mut scheduler = Proc::spawn("scheduler", &["scheduler"], &env, tmp.path());
    let mut worker = Proc::spawn("worker", &["worker"], &env, tmp.path());

    // Redis: the control planted in a key of every type, then sampled all along.
    let client = r::Client::open(redis_url.as_str()).expect("redis url");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("redis");
    let ctl = &w.canaries.control;
    let plant: Vec<r::Cmd> = vec![
        r::cmd("SET")
            .arg(format!("{prefix}:ctl:string"))
            .arg(ctl.as_str())
            .clone(),
        r::cmd("RPUSH")
            .arg(format!("{prefix}:ctl:list"))
            .arg(ctl.as_str())
            .clone(),
        r::cmd("SADD")
            .arg(format!("{prefix}:ctl:set"))
            .arg(ctl.as_str())
            .clone(),
        r::cmd("ZADD")
            .arg(format!("{prefix}:ctl:zset"))
            .arg(1)
            .arg(ctl.as_str())
            .clone(),
        r::cmd("HSET")
            .arg(format!("{prefix}:ctl:hash"))
            .arg("f")
            .arg(ctl.as_str())
            .clone(),
        r::cmd("XADD")
            .arg(format!("{prefix}:ctl:stream"))
            .arg("*")
            .arg("f")
            .arg(ctl.as_str())
            .clone(),
    ];
    for c in plant {
        let _: r::Value = c.query_async(&mut conn).await.expect("plant a control key");
    }
    let sampling = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let sampler = {
        let (sweep, prefix, sampling) = (sweep.clone(), prefix.clone(), sampling.clone());
        let mut conn = conn.clone();
        tokio::spawn(async move {
            let mut most = 0;
            while sampling.load(std::sync::atomic::Ordering::SeqCst) {
                most = most.max(sweep_redis(&sweep, &mut conn, &prefix).await);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            most
        })
    };

    let anon = Client::new(&addr, sweep.clone());
    anon.wait_healthy(&mut api_proc).await;
    let admin = anon.login("admin", ADMIN_PASSWORD).await;
    admin
        .post(
            "/api/users",
            json!({"username": "viewer", "password": "viewer-password-1", "role": "viewer"}),
            201,
        )
        .await;
    let job = seed(&admin, &w).await;
    scheduler.assert_alive();
    worker.assert_alive();
    run(&admin, job, &w).await;
    let ok = sweep_api(&admin, &w.canaries.control).await;
    assert_every_get_route(&ok);
    let viewer = anon.login("viewer", "viewer-password-1").await;
    sweep_api(&viewer, &w.canaries.control).await;
    sampling.store(false, std::sync::atomic::Ordering::SeqCst);
    let most_keys = sampler.await.expect("sampler");
    // The queue's own keys were seen (not only the planted ones).
    assert!(most_keys > 6, "no queue keys under {prefix} during the run");
    for p in [&worker, &scheduler, &api_proc] {
        p.term();
    }
    for p in [&mut worker, &mut scheduler, &mut api_proc] {
        p.expect_exit_ok(Duration::from_secs(20)).await;
    }
    sweep_redis(&sweep, &mut conn, &prefix).await;
    let mut db = Sweep::default();
    sweep_postgres(&mut db, &pg_url, &schema).await;
    {
        let mut s = sweep.lock().expect("sweep");
        s.places.extend(db.places);
        for p in [&migrate, &api_proc, &scheduler, &worker] {
            sweep_proc(&mut s, p);
        }
        sweep_files(&mut s, &data);
        check_panics(&mut s);
    }
    sweep.lock().expect("sweep").check(
        &w.canaries,
        &["process output", "api", "git history", "database", "redis"],
    );
}

/// The sweep itself: a secret is found in each encoding and each kind of place, and reported
/// without its value.
#[test]
fn the_sweep_finds_what_is_there() {
    let c = Canaries {
        secrets: vec![("s".into(), "pw-0-0123456789abcdef".into())],
        control: "ctl0123456789".into(),
    };
    let secret = &c.secrets[0].1;
    let plain = format!("x {secret} y");
    let in_b64 =
        base64::engine::general_purpose::STANDARD.encode(format!("{{\"p\":\"{secret}\"}}"));
    let in_hex = format!("\\x{}", hex::encode(format!("ab{secret}")));
    for (kind, text) in [
        ("api", plain.as_str()),
        ("database", in_hex.as_str()),
        ("redis", in_b64.as_str()),
    ] {
        let mut s = Sweep::default();
        s.add(kind, "place", format!("{text} {}", c.control));
        assert_eq!(
            s.find(kind, secret),
            vec!["place".to_string()],
            "{kind}: {text}"
        );
        let problems = s.problems(&c, &[kind]);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].contains("found in") && !problems[0].contains(secret.as_str()),
            "{problems:?}"
        );
    }
    // Without the control, a kind of place counts as unread.
    let mut s = Sweep::default();
    s.add("api", "place", "nothing here");
    assert_eq!(s.problems(&c, &["api"]).len(), 1);
    // Nothing collected from a kind of place: reported too.
    assert_eq!(s.problems(&c, &["redis"]).len(), 1);
    // A panic in a process's output is reported.
    let mut s = Sweep::default();
    s.add(
        "process output",
        "p",
        format!("thread 'main' panicked at src/x.rs {}", c.control),
    );
    assert_eq!(s.problems(&c, &["process output"]).len(), 1);
    // Clean and controlled: passes.
    let mut s = Sweep::default();
    s.add("api", "place", format!("all fine {}", c.control));
    s.check(&c, &["api"]);
}
