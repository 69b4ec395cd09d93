//! The command line: argument parsing and one function per subcommand. Each command builds its
//! parts through [`crate::wiring`] and calls the library; nothing here holds logic of its own.

use crate::config::Config;
use clap::{Parser, Subcommand};
use netraven_core::prelude::*;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// NetRaven: back up and track the configuration of network devices.
#[derive(Debug, Parser)]
#[command(name = "netraven", version = crate::VERSION, about, long_about = None)]
pub struct Cli {
    /// More log output (-v info, -vv debug); NETRAVEN_LOG or RUST_LOG set the filter outright.
    #[arg(long, short, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Configuration file (TOML). Without one, NetRaven runs embedded: SQLite, the in-process
    /// queue and a git repository under ./netraven-data. NETRAVEN_* variables override it.
    #[arg(long, short, global = true, env = "NETRAVEN_CONFIG")]
    pub config: Option<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the API, the scheduler and a worker in one process (the embedded default).
    Serve,
    /// Run only the REST API (distributed mode: needs PostgreSQL and Redis).
    Api,
    /// Run only the scheduler and maintenance (recovery, git writer, log pruning); several may
    /// run, one acts.
    Scheduler,
    /// Run only a worker; start as many as you like, on any machines.
    Worker {
        /// Take only this zone's device tasks (a site the server cannot reach: run the worker
        /// inside it). Default: `worker.zone` (NETRAVEN_WORKER_ZONE), else the default zone.
        #[arg(long)]
        zone: Option<String>,
    },
    /// Apply database migrations and exit.
    Migrate {
        /// Only say whether migrations are pending (exit 1 if so); apply nothing.
        #[arg(long)]
        check: bool,
    },
    /// Start a simulated fleet and the embedded server over it, run a backup, keep serving.
    Demo {
        /// Number of simulated devices.
        #[arg(long, default_value_t = 50)]
        devices: usize,
        /// First simulator port (default: any free ports).
        #[arg(long)]
        port_base: Option<u16>,
    },
    /// Serve simulated SSH devices on 127.0.0.1 until killed.
    Sim {
        /// Number of devices.
        #[arg(long, default_value_t = 10)]
        devices: usize,
        /// Platform(s) (netmiko device_type), comma-separated to mix.
        #[arg(long, default_value = "cisco_ios")]
        platform: String,
        /// First port; devices listen on consecutive ports.
        #[arg(long)]
        port_base: Option<u16>,
        /// Write a matching CSV inventory here once every device listens.
        #[arg(long)]
        inventory: Option<PathBuf>,
        /// Configuration size per device in bytes.
        #[arg(long)]
        config_size: Option<usize>,
        /// Offer only diffie-hellman-group14-sha1 key exchange (like many real IOS devices).
        #[arg(long)]
        legacy_kex: bool,
        /// Make every device's config change on every fetch.
        #[arg(long)]
        changing: bool,
        /// Prompt template replacing the platform's (`{hostname}`, `{user}`, `{mode}` for the
        /// mode character, `{count}`), e.g. `'{hostname}{mode} '` for a Junos prompt without
        /// `user@` or `'bash-5.1{mode} '` for a Linux PS1: a configured prompt the platform's
        /// pattern may not match, which the driver learns.
        #[arg(long)]
        prompt: Option<String>,
        /// Serve telnet instead of SSH (legacy devices): a `Username:`/`Password:` login, then
        /// the same device; the inventory gets `transport=telnet`.
        #[arg(long)]
        telnet: bool,
        /// Hostnames are `{prefix}{index:04}` (default `sim-`): a second fleet next to another.
        #[arg(long, default_value = "sim-")]
        hostname_prefix: String,
        /// Simulated network latency of every device, in ms (the fault `latency=N`):
        /// everything a device sends (SSH messages and output) reaches the client N ms later,
        /// so every request/response exchange takes at least N ms more (a round-trip time of
        /// N ms); output sent back to back is delayed once. `--fault RANGE:latency=N` sets it
        /// per device.
        #[arg(long, value_name = "N")]
        latency_ms: Option<u64>,
        /// Faults to inject, repeatable: `[FIRST[-LAST]:]FAULT,FAULT…` for devices FIRST to LAST
        /// (indexes; none: every device), e.g. `0:garbage=4096`, `1:flood=209715200,flood-lines`,
        /// `2-41:hang-after=3000`, `trickle=256/100`. Faults: wrong-password,
        /// second-credential-only, keyboard-interactive-only, hang-after=BYTES,
        /// drop-after=BYTES, trickle=BYTES/MS, latency=MS, change-every=K, ignore-paging-off,
        /// flood=BYTES, flood-lines, hang-in-line=TEXT, garbage=BYTES, no-exec, exec-unprivileged.
        #[arg(long = "fault")]
        faults: Vec<String>,
    },
    /// Back up every device of a CSV inventory into a git repository, once.
    Backup {
        /// CSV (hostname,address,port,platform,username,password,enable_secret,tags) or JSON.
        #[arg(long)]
        inventory: PathBuf,
        /// Bare git repository (created if missing).
        #[arg(long)]
        repo: PathBuf,
        /// Devices at once.
        #[arg(long, default_value_t = 100)]
        concurrency: usize,
        /// Seconds allowed per device.
        #[arg(long, default_value_t = 60)]
        timeout: u64,
    },
    /// Import devices into the configured store: a CSV inventory (with the credentials of its
    /// login columns, e.g. what `netraven sim --inventory` writes) or another tool's inventory,
    /// kept in step on every re-import (added, updated, never deleted).
    Import {
        /// Input format.
        #[arg(long, value_parser = ["csv", "netbox", "nornir", "oxidized", "rancid", "ansible"], default_value = "csv")]
        from: String,
        /// The file, the Nornir inventory directory or the NetBox URL.
        file: PathBuf,
        /// Options of the other formats.
        #[command(flatten)]
        opts: netraven::integrations::ImportOptions,
    },
    /// Manage API users.
    User {
        /// What to do.
        #[command(subcommand)]
        action: UserAction,
    },
    /// Manage the credential encryption key.
    Keys {
        /// What to do.
        #[command(subcommand)]
        action: KeyAction,
    },
    /// Device platforms: list them, check a platform file, test one on a captured transcript.
    Platforms {
        /// What to do.
        #[command(subcommand)]
        action: PlatformsAction,
    },
    /// A client of a running server's API (NETRAVEN_URL, NETRAVEN_TOKEN): devices, jobs (run
    /// with progress; exit 2 on failures), runs, configurations, logs.
    Ctl(netraven::ctl::CtlArgs),
    /// Inspect the configuration.
    Config {
        /// What to do.
        #[command(subcommand)]
        action: ConfigAction,
    },
}

/// `netraven user …`
#[derive(Debug, Subcommand)]
pub enum UserAction {
    /// Create a user; the password is read from NETRAVEN_NEW_PASSWORD or generated and printed.
    Create {
        /// Login name.
        username: String,
        /// admin, operator or viewer.
        #[arg(long, default_value = "viewer")]
        role: String,
    },
    /// Set a new password (from NETRAVEN_NEW_PASSWORD, or generated and printed).
    Passwd {
        /// Login name.
        username: String,
    },
    /// List users.
    List,
}

/// `netraven keys …`
#[derive(Debug, Subcommand)]
pub enum KeyAction {
    /// Generate a new key and re-encrypt every credential with it.
    Rotate,
}

/// `netraven platforms …` (user files come from `platforms_dir` / NETRAVEN_PLATFORMS_DIR).
#[derive(Debug, Subcommand)]
pub enum PlatformsAction {
    /// One line per platform: name, aliases, vendor, description.
    List,
    /// Validate a platform file against its own sample (and a transcript, if given).
    Check {
        /// The platform file (TOML).
        file: PathBuf,
        /// A session captured from a real device.
        #[arg(long)]
        transcript: Option<PathBuf>,
    },
    /// Run a platform file over a session captured from a real device; prints what would be
    /// stored.
    Test {
        /// The platform file (TOML).
        file: PathBuf,
        /// The captured session (terminal log).
        #[arg(long)]
        transcript: PathBuf,
    },
}

/// `netraven config …`
#[derive(Debug, Subcommand)]
pub enum ConfigAction {
    /// Print the effective configuration with secrets masked.
    Check,
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    use netraven_core::logging::{LogEnv, LogPlan, init};
    let cli = Cli::parse();
    if matches!(cli.command, Command::Sim { .. }) {
        // Before the runtime's threads exist: they inherit the setting.
        no_memory_locking();
    }
    let cfg = match load_config(cli.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    // These draw progress on a terminal, which INFO lines would tear.
    let progress = matches!(
        cli.command,
        Command::Backup { .. } | Command::Demo { .. } | Command::Ctl(_)
    );
    let plan = LogPlan::decide(&LogEnv::from_process(
        cfg.logs.format,
        cli.verbose,
        progress,
    ));
    init(&plan);
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(dispatch(cli, cfg, plan.progress_bar)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Makes `mlock` fail at once in this process and the threads it starts from now on (soft
/// `RLIMIT_MEMLOCK` 0, `CAP_IPC_LOCK` dropped from the effective set): for `netraven sim`,
/// whose SSH server (russh) locks every packet buffer it allocates in memory and unlocks it on
/// free. The simulator's buffers hold simulated secrets only, and with the capability (root)
/// every lock splits and merges the process's memory mappings: about a quarter of its CPU per
/// device (docs/benchmarks.md, "Simulator CPU"). Best effort: a failure leaves locking on.
#[cfg(target_os = "linux")]
fn no_memory_locking() {
    #[repr(C)]
    struct CapHeader {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    #[derive(Clone, Copy, Default)]
    struct CapData {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    const CAPABILITY_VERSION_3: u32 = 0x2008_0522;
    const CAP_IPC_LOCK: u32 = 14;
    // SAFETY: getrlimit/setrlimit and capget/capset only read and write the structures passed
    // (the right sizes for version 3: one header, two data words); no other thread runs yet.
    unsafe {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut lim) == 0 {
            lim.rlim_cur = 0;
            libc::setrlimit(libc::RLIMIT_MEMLOCK, &lim);
        }
        let mut header = CapHeader {
            version: CAPABILITY_VERSION_3,
            pid: 0,
        };
        let mut data = [CapData::default(); 2];
        if libc::syscall(libc::SYS_capget, &mut header, data.as_mut_ptr()) == 0
            && data[0].effective & (1 << CAP_IPC_LOCK) != 0
        {
            data[0].effective &= !(1 << CAP_IPC_LOCK);
            libc::syscall(libc::SYS_capset, &mut header, data.as_ptr());
        }
    }
}

#[cfg(not(target_os = "linux"))]
fn no_memory_locking() {}

fn load_config(path: Option<&std::path::Path>) -> Result<Config> {
    Config::load(path, std::env::vars()).map_err(|e| Error::invalid(e.to_string()))
}

fn new_password() -> String {
    std::env::var("NETRAVEN_NEW_PASSWORD").unwrap_or_else(|_| crate::api::auth::random_password(20))
}

/// Runs the command; `bar`: draw progress (see `LogPlan::progress_bar`).
async fn dispatch(cli: Cli, cfg: Config, bar: bool) -> Result<ExitCode> {
    let signals = netraven::shutdown_on_signals;
    match cli.command {
        Command::Serve => crate::server::serve(&cfg, signals()).await?,
        Command::Api => crate::server::api(&cfg, signals()).await?,
        Command::Scheduler => crate::server::scheduler(&cfg, signals()).await?,
        Command::Worker { zone } => {
            let mut cfg = cfg;
            if zone.is_some() {
                cfg.worker.zone = zone;
            }
            crate::server::worker(&cfg, signals()).await?
        }
        Command::Migrate { check } => {
            let store = cfg.builder("cli")?;
            let st = store.open_store_with(!check).await?.schema_status().await?;
            let pending = st.pending.iter().map(i64::to_string).collect::<Vec<_>>();
            println!(
                "schema version {} of {}; {}",
                st.applied.unwrap_or(0),
                st.latest,
                match pending.is_empty() {
                    true => "no migrations pending".to_string(),
                    false => format!("pending migrations: {}", pending.join(", ")),
                }
            );
            if !st.is_current() {
                return Ok(ExitCode::from(1));
            }
        }
        Command::Demo { devices, port_base } => {
            let opts = netraven::demo::DemoOptions { devices, port_base };
            crate::demo::run(&cfg, &opts, bar, signals()).await?;
        }
        Command::Sim {
            devices,
            platform,
            port_base,
            inventory,
            config_size,
            legacy_kex,
            changing,
            prompt,
            telnet,
            hostname_prefix,
            latency_ms,
            faults,
        } => {
            let mut sim = netraven::demo::sim_config(
                devices,
                &platform,
                port_base,
                config_size,
                legacy_kex,
                changing,
            );
            sim.prompt = prompt;
            sim.telnet = telnet;
            sim.hostname_prefix = hostname_prefix;
            // Before the faults, so a device's own `latency=` fault replaces it.
            if let Some(ms) = latency_ms {
                sim.faults.latency = Some(std::time::Duration::from_millis(ms));
            }
            // Faults of every device first, so devices with their own faults keep them too.
            let mut parsed = faults
                .iter()
                .map(|a| netraven_drivers::sim::parse_fault_target(a))
                .collect::<netraven_core::error::Result<Vec<_>>>()?;
            parsed.sort_by_key(|(range, _)| range.is_some());
            for (range, spec) in parsed {
                match range {
                    None => sim.faults = sim.faults.clone().parse_into(spec)?,
                    Some((first, last)) => {
                        for i in first..=last.min(devices.saturating_sub(1)) {
                            let base = sim
                                .device_faults
                                .get(&i)
                                .cloned()
                                .unwrap_or_else(|| sim.faults.clone());
                            sim.device_faults.insert(i, base.parse_into(spec)?);
                        }
                    }
                }
            }
            // User platform files can be simulated too (and replace built-ins by name).
            if let Some(dir) = cfg.platforms_dir.as_deref() {
                sim.custom_platforms = netraven_drivers::platform::load_platform_dir(dir)?;
            }
            let fleet = netraven_drivers::sim::SimFleet::start(sim).await?;
            if let Some(path) = inventory {
                fleet.write_inventory(&path)?;
                eprintln!("inventory written to {}", path.display());
            }
            eprintln!(
                "{} simulated devices on 127.0.0.1:{}.. (Ctrl-C to stop)",
                fleet.devices().len(),
                fleet.port_base()
            );
            signals().cancelled().await;
        }
        Command::Platforms { action } => {
            use netraven_drivers::catalog;
            let (text, ok) = match action {
                PlatformsAction::List => {
                    let all = catalog::all_platforms(cfg.platforms_dir.as_deref())?;
                    (catalog::list_lines(&all), true)
                }
                PlatformsAction::Check { file, transcript } => {
                    catalog::check_file_report(&file, transcript.as_deref())?
                }
                PlatformsAction::Test { file, transcript } => {
                    catalog::test_file_report(&file, &transcript)?
                }
            };
            print!("{text}");
            if !ok {
                return Ok(ExitCode::FAILURE);
            }
        }
        Command::Backup {
            inventory,
            repo,
            concurrency,
            timeout,
        } => {
            let bar = bar.then(indicatif::ProgressBar::no_length);
            let progress = bar.clone().map(|b| -> netraven::backup::Progress {
                std::sync::Arc::new(move |done, total, _failed| {
                    b.set_length(total);
                    b.set_position(done);
                })
            });
            let opts = netraven::backup::BackupOptions {
                inventory,
                repo,
                concurrency,
                device_timeout: Duration::from_secs(timeout.max(1)),
                progress,
                platforms_dir: cfg.platforms_dir.clone(),
            };
            let summary = netraven::backup::run(&opts).await?;
            if let Some(b) = bar {
                b.finish_and_clear();
            }
            print!("{}", summary.render());
            if summary.failed_total() > 0 {
                return Ok(ExitCode::from(2));
            }
        }
        Command::Import { from, file, opts } if from != "csv" => {
            let store = crate::wiring::open_store(&cfg).await?;
            let location = file.to_string_lossy();
            let r = netraven::integrations::import(store.as_ref(), &from, &location, &opts).await?;
            print!("{}", r.render());
            if !r.errors.is_empty() {
                return Ok(ExitCode::from(2));
            }
        }
        Command::Import { file, opts, .. } => {
            if opts.dry_run {
                return Err(Error::invalid(
                    "--dry-run is for the other formats than csv",
                ));
            }
            let body = std::fs::read(&file)
                .map_err(|e| Error::invalid(format!("cannot read {}: {e}", file.display())))?;
            let rows = netraven_core::import::parse_csv(&body)?;
            let store = crate::wiring::open_store(&cfg).await?;
            let r = netraven_core::import::import(store.as_ref(), rows).await?;
            println!(
                "{} devices created, {} duplicates, {} errors; credentials: {} created, {} reused",
                r.created,
                r.duplicates.len(),
                r.errors.len(),
                r.credentials.created,
                r.credentials.reused
            );
            for e in r.errors.iter().chain(&r.duplicates) {
                println!("  row {}: {} {}", e["row"], e["hostname"], e["detail"]);
            }
            if !r.errors.is_empty() {
                return Ok(ExitCode::from(2));
            }
        }
        Command::Ctl(args) => return Ok(ExitCode::from(netraven::ctl::run(args).await?)),
        Command::User { action } => user(&cfg, action).await?,
        Command::Keys {
            action: KeyAction::Rotate,
        } => rotate_keys(&cfg).await?,
        Command::Config {
            action: ConfigAction::Check,
        } => print!("{}", cfg.masked_toml()),
    }
    Ok(ExitCode::SUCCESS)
}

async fn user(cfg: &Config, action: UserAction) -> Result<()> {
    let store = crate::wiring::open_store(cfg).await?;
    match action {
        UserAction::Create { username, role } => {
            let role = Role::parse(&role)
                .ok_or_else(|| Error::invalid("role must be admin, operator or viewer"))?;
            let password = new_password();
            let u = User {
                id: 0,
                username,
                password_hash: crate::api::hash_password(&password)?,
                role,
                active: true,
                created_at: chrono::Utc::now(),
            };
            let u = store.create_user(&u).await?;
            println!(
                "created user '{}' ({}) with password: {password}",
                u.username,
                u.role.as_str()
            );
        }
        UserAction::Passwd { username } => {
            let mut u = store
                .get_user_by_name(&username)
                .await?
                .ok_or_else(|| Error::not_found(format!("user '{username}'")))?;
            let password = new_password();
            u.password_hash = crate::api::hash_password(&password)?;
            store.update_user(&u).await?;
            println!("new password for '{username}': {password}");
        }
        UserAction::List => {
            let users = store.list_users(Page::new(1, 10_000)).await?;
            for u in users.items {
                println!(
                    "{}\t{}\t{}",
                    u.username,
                    u.role.as_str(),
                    if u.active { "active" } else { "inactive" }
                );
            }
        }
    }
    Ok(())
}

async fn rotate_keys(cfg: &Config) -> Result<()> {
    let r = cfg.builder("cli")?.rotate_key().await?;
    println!(
        "re-encrypted {} credentials with key {}; the previous key is kept in {}",
        r.reencrypted,
        r.key_id,
        r.previous.display()
    );
    Ok(())
}
