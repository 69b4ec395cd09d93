//! The NetRaven reference server: configuration, wiring backends from configuration, the REST API
//! and the command-line tool. The binary (`src/main.rs`) only calls [`cli::main`].

pub mod api;
pub mod cli;
pub mod demo;
pub mod server;
pub mod ui;
pub mod wiring;

pub use netraven::config;

/// The git commit this binary was built from (`unknown` when built outside a repository).
pub const GIT_COMMIT: &str = env!("NETRAVEN_GIT_COMMIT");

/// `<version> (<commit>)`, as `netraven --version` and `/api/health` show it.
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (",
    env!("NETRAVEN_GIT_COMMIT"),
    ")"
);
