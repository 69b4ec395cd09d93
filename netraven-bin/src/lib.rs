//! The NetRaven reference server: configuration, wiring backends from configuration, the REST API
//! and the command-line tool. The binary (`src/main.rs`) only calls [`cli::main`].

pub mod api;
pub mod backup;
pub mod cli;
pub mod config;
pub mod demo;
pub mod inventory;
pub mod server;
pub mod ui;
pub mod wiring;
