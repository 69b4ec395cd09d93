//! The examples are the documentation, so the tests run them: each `main` must succeed.
#![cfg(feature = "sim")]

#[path = "../examples/custom_driver.rs"]
mod custom_driver;
#[path = "../examples/custom_sink.rs"]
mod custom_sink;
#[path = "../examples/embed.rs"]
mod embed;
#[path = "../examples/events.rs"]
mod events;

#[test]
fn embed_backs_up_into_sqlite_and_git() {
    embed::main().expect("examples/embed.rs");
}

#[test]
fn custom_sink_mirrors_what_git_holds() {
    custom_sink::main().expect("examples/custom_sink.rs");
}

#[test]
fn custom_driver_passes_the_driver_suite_and_backs_up() {
    custom_driver::main().expect("examples/custom_driver.rs");
}

#[test]
fn events_follow_a_run_as_it_happens() {
    events::main().expect("examples/events.rs");
}
