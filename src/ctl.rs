//! `netraven ctl`: a command-line client of a NetRaven server's REST API (feature
//! `integrations`). The server's URL and an API token come from `--url`/`--token` or
//! `NETRAVEN_URL`/`NETRAVEN_TOKEN` (create a token with `POST /api/tokens`). Output is a table,
//! or the API's JSON with `--json`.
//!
//! `ctl jobs run NAME` starts a run and shows a progress bar with per-state counts until the
//! run ends; it exits 0 when every device succeeded (or there were none), 2 otherwise.

use netraven_core::sources::encode_query_value as percent;
use netraven_core::{Error, ErrorKind, Result};
use serde_json::{Value, json};
use std::time::Duration;

/// `println!` that ignores a closed stdout (`ctl … | head`).
macro_rules! out {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($t)*);
    }};
}

/// `print!` that ignores a closed stdout.
macro_rules! out_raw {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = write!(std::io::stdout(), $($t)*);
    }};
}

/// `netraven ctl` arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct CtlArgs {
    /// The server's base URL.
    #[arg(long, env = "NETRAVEN_URL", default_value = "http://127.0.0.1:8000")]
    pub url: String,
    /// An API token (or a login JWT).
    #[arg(long, env = "NETRAVEN_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Print the API's JSON instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: CtlCommand,
}

/// `netraven ctl …`
#[derive(Debug, Clone, clap::Subcommand)]
pub enum CtlCommand {
    /// Devices.
    #[command(subcommand)]
    Devices(DevicesCmd),
    /// Jobs.
    #[command(subcommand)]
    Jobs(JobsCmd),
    /// Runs.
    #[command(subcommand)]
    Runs(RunsCmd),
    /// Configuration history.
    #[command(subcommand)]
    Config(ConfigCmd),
    /// Logs.
    #[command(subcommand)]
    Logs(LogsCmd),
}

/// `ctl devices …`
#[derive(Debug, Clone, clap::Subcommand)]
pub enum DevicesCmd {
    /// List devices.
    List,
    /// Add a device.
    Add {
        /// Hostname.
        hostname: String,
        /// Address.
        address: String,
        /// Platform.
        platform: String,
        /// SSH port.
        #[arg(long, default_value_t = 22)]
        port: u16,
        /// Tags (repeatable).
        #[arg(long)]
        tag: Vec<String>,
    },
    /// Import a CSV inventory through the API.
    Import {
        /// The CSV file.
        file: std::path::PathBuf,
    },
}

/// `ctl jobs …`
#[derive(Debug, Clone, clap::Subcommand)]
pub enum JobsCmd {
    /// List jobs.
    List,
    /// Run a job now and follow it until it ends (exit 0 success, 2 failures).
    Run {
        /// Job name.
        name: String,
    },
}

/// `ctl runs …`
#[derive(Debug, Clone, clap::Subcommand)]
pub enum RunsCmd {
    /// One run with its counts.
    Show {
        /// Run id.
        id: i64,
    },
}

/// `ctl config …`
#[derive(Debug, Clone, clap::Subcommand)]
pub enum ConfigCmd {
    /// A device's latest configuration.
    Show {
        /// Hostname.
        hostname: String,
    },
    /// Diff of two snapshots.
    Diff {
        /// Older snapshot id.
        from: i64,
        /// Newer snapshot id.
        to: i64,
    },
    /// Devices whose latest configuration contains TEXT.
    Search {
        /// Text (literal, case-insensitive).
        text: String,
    },
}

/// `ctl logs …`
#[derive(Debug, Clone, clap::Subcommand)]
pub enum LogsCmd {
    /// The latest log lines, and with `--follow` new ones as they come.
    Tail {
        /// Lines to show first.
        #[arg(short = 'n', long, default_value_t = 20)]
        lines: u32,
        /// Only this run.
        #[arg(long)]
        run: Option<i64>,
        /// Keep printing new lines.
        #[arg(short, long)]
        follow: bool,
    },
}

/// The API client.
struct Api {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Api {
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Body>) -> Result<Value> {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token);
        match body {
            Some(Body::Json(v)) => req = req.json(&v),
            Some(Body::Csv(b)) => req = req.header("content-type", "text/csv").body(b),
            None => {}
        }
        let resp = req.send().await.map_err(|e| {
            let kind = if e.is_timeout() {
                ErrorKind::Timeout
            } else {
                ErrorKind::Connection
            };
            Error::new(kind, format!("cannot reach {}: {e}", self.base))
        })?;
        let status = resp.status().as_u16();
        let text = resp
            .text()
            .await
            .map_err(|e| Error::new(ErrorKind::Connection, format!("reading the answer: {e}")))?;
        let v: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        if status >= 400 {
            let detail = v["detail"]
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| v.to_string());
            let kind = match status {
                401 | 403 => ErrorKind::Auth,
                404 => ErrorKind::NotFound,
                409 => ErrorKind::Conflict,
                s if s >= 500 => ErrorKind::Unavailable,
                _ => ErrorKind::InvalidInput,
            };
            return Err(Error::new(kind, format!("{status}: {detail}")));
        }
        Ok(v)
    }

    async fn get(&self, path: &str) -> Result<Value> {
        self.call(reqwest::Method::GET, path, None).await
    }

    /// Every item of a paged list.
    async fn all(&self, path: &str) -> Result<Vec<Value>> {
        let sep = if path.contains('?') { '&' } else { '?' };
        let mut out = Vec::new();
        for page in 1..=10_000 {
            let v = self
                .get(&format!("{path}{sep}page={page}&size=100"))
                .await?;
            let items = v["items"].as_array().cloned().unwrap_or_default();
            out.extend(items);
            if page >= v["pages"].as_u64().unwrap_or(1) as usize {
                break;
            }
        }
        Ok(out)
    }
}

enum Body {
    Json(Value),
    Csv(Vec<u8>),
}

/// Prints rows as aligned columns under a header.
fn table(header: &[&str], rows: Vec<Vec<String>>) {
    let mut w: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in &rows {
        for (i, c) in r.iter().enumerate() {
            w[i] = w[i].max(c.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let s: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<width$}", width = w[i]))
            .collect();
        out!("{}", s.join("  ").trim_end());
    };
    line(header.iter().map(|h| h.to_uppercase()).collect());
    for r in rows {
        line(r);
    }
}

fn s(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        Value::Array(a) => a.iter().map(s).collect::<Vec<_>>().join(","),
        other => other.to_string(),
    }
}

fn print_json(v: &Value) {
    out!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
}

/// Whether a run status is final.
fn is_final(status: &str) -> bool {
    !matches!(status, "QUEUED" | "RUNNING")
}

/// Runs `netraven ctl`; returns the process exit code.
pub async fn run(args: CtlArgs) -> Result<u8> {
    let token = args
        .token
        .clone()
        .ok_or_else(|| Error::invalid("no API token: set NETRAVEN_TOKEN or pass --token"))?;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .map_err(|e| Error::internal(format!("HTTP client: {e}")))?;
    let api = Api {
        http,
        base: args.url.trim_end_matches('/').to_string(),
        token,
    };
    let json = args.json;
    match args.command {
        CtlCommand::Devices(DevicesCmd::List) => {
            let items = api.all("/api/devices").await?;
            if json {
                print_json(&Value::Array(items));
            } else {
                table(
                    &[
                        "id", "hostname", "address", "port", "platform", "tags", "enabled",
                    ],
                    items
                        .iter()
                        .map(|d| {
                            [
                                "id", "hostname", "address", "port", "platform", "tags", "enabled",
                            ]
                            .iter()
                            .map(|k| s(&d[*k]))
                            .collect()
                        })
                        .collect(),
                );
            }
        }
        CtlCommand::Devices(DevicesCmd::Add {
            hostname,
            address,
            platform,
            port,
            tag,
        }) => {
            let body = json!({"hostname": hostname, "address": address, "platform": platform, "port": port, "tags": tag});
            let d = api
                .call(
                    reqwest::Method::POST,
                    "/api/devices",
                    Some(Body::Json(body)),
                )
                .await?;
            if json {
                print_json(&d);
            } else {
                out!("created device {} ({})", s(&d["hostname"]), s(&d["id"]));
            }
        }
        CtlCommand::Devices(DevicesCmd::Import { file }) => {
            let bytes = std::fs::read(&file)
                .map_err(|e| Error::invalid(format!("cannot read {}: {e}", file.display())))?;
            let r = api
                .call(
                    reqwest::Method::POST,
                    "/api/devices/import",
                    Some(Body::Csv(bytes)),
                )
                .await?;
            if json {
                print_json(&r);
            } else {
                out!(
                    "{} created, {} duplicates, {} errors",
                    s(&r["created"]),
                    r["duplicates"].as_array().map_or(0, Vec::len),
                    r["errors"].as_array().map_or(0, Vec::len)
                );
            }
            if r["errors"].as_array().is_some_and(|e| !e.is_empty()) {
                return Ok(2);
            }
        }
        CtlCommand::Jobs(JobsCmd::List) => {
            let items = api.all("/api/jobs").await?;
            if json {
                print_json(&Value::Array(items));
            } else {
                table(
                    &["id", "name", "kind", "schedule", "enabled"],
                    items
                        .iter()
                        .map(|j| {
                            vec![
                                s(&j["id"]),
                                s(&j["name"]),
                                s(&j["kind"]["type"]),
                                s(&j["schedule"]["type"]),
                                s(&j["enabled"]),
                            ]
                        })
                        .collect(),
                );
            }
        }
        CtlCommand::Jobs(JobsCmd::Run { name }) => return run_job(&api, &name, json).await,
        CtlCommand::Runs(RunsCmd::Show { id }) => {
            let r = api.get(&format!("/api/runs/{id}")).await?;
            if json {
                print_json(&r);
            } else {
                let c = &r["counts"];
                out!(
                    "run {} of job {}: {}\n  devices {}  succeeded {}  failed {}  changed {}  unchanged {}\n  queued {}  started {}  finished {}",
                    s(&r["id"]),
                    s(&r["job_id"]),
                    s(&r["status"]),
                    s(&c["total"]),
                    s(&c["succeeded"]),
                    s(&c["failed"]),
                    s(&c["changed"]),
                    s(&c["unchanged"]),
                    s(&r["queued_at"]),
                    s(&r["started_at"]),
                    s(&r["finished_at"])
                );
            }
        }
        CtlCommand::Config(ConfigCmd::Show { hostname }) => {
            let devs = api
                .all(&format!("/api/devices?hostname={}", percent(&hostname)))
                .await?;
            let d = devs
                .iter()
                .find(|d| d["hostname"] == hostname.as_str())
                .ok_or_else(|| Error::not_found(format!("device '{hostname}'")))?;
            let h = api
                .get(&format!("/api/configs/{}/history?size=1", s(&d["id"])))
                .await?;
            let snap = h["items"]
                .get(0)
                .ok_or_else(|| Error::not_found(format!("no configuration of {hostname} yet")))?;
            let full = api
                .get(&format!("/api/configs/snapshots/{}", s(&snap["id"])))
                .await?;
            if json {
                print_json(&full);
            } else {
                out_raw!("{}", full["content"].as_str().unwrap_or_default());
            }
        }
        CtlCommand::Config(ConfigCmd::Diff { from, to }) => {
            let d = api
                .get(&format!("/api/configs/diff?from={from}&to={to}"))
                .await?;
            if json {
                print_json(&d);
            } else {
                out_raw!("{}", d["diff"].as_str().unwrap_or_default());
            }
        }
        CtlCommand::Config(ConfigCmd::Search { text }) => {
            let items = api
                .all(&format!("/api/configs/search?q={}", percent(&text)))
                .await?;
            if json {
                print_json(&Value::Array(items));
            } else {
                table(
                    &["device", "hostname", "snapshot", "taken"],
                    items
                        .iter()
                        .map(|m| {
                            vec![
                                s(&m["device_id"]),
                                s(&m["hostname"]),
                                s(&m["id"]),
                                s(&m["created_at"]),
                            ]
                        })
                        .collect(),
                );
            }
        }
        CtlCommand::Logs(LogsCmd::Tail { lines, run, follow }) => {
            tail(&api, lines, run, follow, json).await?;
        }
    }
    Ok(0)
}

async fn run_job(api: &Api, name: &str, json: bool) -> Result<u8> {
    let jobs = api
        .all(&format!("/api/jobs?name={}", percent(name)))
        .await?;
    let job = jobs
        .iter()
        .find(|j| j["name"] == name)
        .ok_or_else(|| Error::not_found(format!("job '{name}'")))?;
    let started = api
        .call(
            reqwest::Method::POST,
            &format!("/api/jobs/{}/run", s(&job["id"])),
            None,
        )
        .await?;
    let run_id = s(&started["run_id"]);
    let bar = (!json).then(|| {
        let b = indicatif::ProgressBar::new(0);
        let style = indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
        b.set_style(style);
        b
    });
    let run = loop {
        let r = api.get(&format!("/api/runs/{run_id}")).await?;
        let c = &r["counts"];
        if let Some(b) = &bar {
            let total = c["total"].as_u64().unwrap_or(0);
            let done = c["succeeded"].as_u64().unwrap_or(0) + c["failed"].as_u64().unwrap_or(0);
            b.set_length(total);
            b.set_position(done);
            b.set_message(format!(
                "{}  ok {}  failed {}  changed {}",
                s(&r["status"]),
                s(&c["succeeded"]),
                s(&c["failed"]),
                s(&c["changed"])
            ));
        }
        if is_final(r["status"].as_str().unwrap_or("")) {
            break r;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    let status = run["status"].as_str().unwrap_or("").to_string();
    if json {
        print_json(&run);
    } else {
        let c = &run["counts"];
        out!(
            "run {run_id} of {name}: {status} ({} devices: {} ok, {} failed, {} changed)",
            s(&c["total"]),
            s(&c["succeeded"]),
            s(&c["failed"]),
            s(&c["changed"])
        );
    }
    Ok(
        if matches!(
            status.as_str(),
            "COMPLETED_SUCCESS" | "COMPLETED_NO_DEVICES"
        ) {
            0
        } else {
            2
        },
    )
}

async fn tail(api: &Api, lines: u32, run: Option<i64>, follow: bool, json: bool) -> Result<()> {
    let filter = run.map(|r| format!("&run_id={r}")).unwrap_or_default();
    let first = api
        .get(&format!(
            "/api/logs?order=desc&size={}{filter}",
            lines.clamp(1, 100)
        ))
        .await?;
    let mut items = first["items"].as_array().cloned().unwrap_or_default();
    items.reverse();
    let show = |l: &Value| {
        if json {
            out!("{l}");
        } else {
            out!(
                "{} {:<7} {} {}",
                s(&l["time"]),
                s(&l["level"]),
                s(&l["source"]),
                s(&l["message"])
            );
        }
    };
    let mut last = 0;
    for l in &items {
        show(l);
        last = last.max(l["id"].as_i64().unwrap_or(0));
    }
    if !follow {
        return Ok(());
    }
    // Until interrupted (Ctrl-C ends the process).
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        // The newest page, printed oldest first from the first line not yet shown.
        let next = api
            .get(&format!("/api/logs?order=desc&size=100{filter}"))
            .await?;
        let mut fresh: Vec<Value> = next["items"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter(|l| l["id"].as_i64().unwrap_or(0) > last)
            .collect();
        fresh.reverse();
        for l in &fresh {
            show(l);
            last = last.max(l["id"].as_i64().unwrap_or(0));
        }
    }
}
