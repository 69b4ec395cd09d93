//! The NetRaven reference server: configuration, wiring backends from configuration, the REST API
//! and the command-line tool. The binary (`src/main.rs`) only parses arguments and calls in here.

pub mod api;
pub mod config;
pub mod wiring;
